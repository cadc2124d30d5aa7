"""scrobbles: what ListenBrainz clients send with a listen, and the listen feed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 10:00:00

`listens.additional_info` keeps what a scrobbling client sends beside the names (duration_ms,
MusicBrainz ids, track number, media player, submission client, ...): NULL for every other source,
so existing rows cost nothing. `listen_feed` is one row: the version every writer of listens bumps
in its transaction (open journals follow it live) and the track playing now
(modules/importers/listen_feed.py). Its row is made on first use, with a topic of its own.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('listens', sa.Column('additional_info', sa.JSON(), nullable=True))
    op.create_table(
        'listen_feed',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('topic', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('now_playing', sa.JSON(), nullable=True),
        sa.Column('now_playing_until', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('listen_feed')
    with op.batch_alter_table('listens') as batch:
        batch.drop_column('additional_info')
