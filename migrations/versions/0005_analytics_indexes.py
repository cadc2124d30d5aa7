"""analytics indexes: listens by album

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 08:00:00

The analytics page asks, for each album on the shelf, whether it has any listen ("owned but never
played"), and counts listens per album. Without an index on listens.album_id that is a scan of every
listen per owned album (36 s for 2,000 copies and 1,000,000 listens on SQLite; bench_analytics.py).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_listens_album_played', 'listens', ['album_id', 'played_at'], unique=False)


def downgrade():
    op.drop_index('ix_listens_album_played', table_name='listens')
