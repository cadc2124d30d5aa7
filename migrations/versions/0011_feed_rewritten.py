"""listen feed: the version of the last change to listens other than adding some

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 03:00:00

Every writer of listens bumps `listen_feed.version`; a writer that deletes listens (or rebuilds the
summaries) also sets `rewritten` to that version. A figure kept for version V can then be brought up
to a later version by adding the listens stored since V, as long as `rewritten` has not passed V
(modules/web/analytics.py, `by_listens_version`; docs/design-performance.md). Existing rows start at
0: nothing kept in a process survives the upgrade's restart anyway.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('listen_feed') as batch:
        batch.add_column(sa.Column('rewritten', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('listen_feed') as batch:
        batch.drop_column('rewritten')
