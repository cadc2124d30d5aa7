"""job takeovers: a generation per run of a job, and the record of each takeover

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:00:00

`jobs.generation` grows each time a job is handed to a new runner (a start, a resume, a takeover
after its runner died): a runner or a broker message whose generation is not the job's current one
writes nothing (modules/jobs/lifecycle.py). `jobs.takeovers` lists the takeovers ("w1 stopped at
5,200 of 20,000; continued by w2") and `jobs.takeover_streak` counts those without a saved batch in
between, so a job that kills its runner stops after JOB_MAX_TAKEOVERS.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('generation', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('takeovers', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('takeover_streak', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('takeover_streak')
        batch.drop_column('takeovers')
        batch.drop_column('generation')
