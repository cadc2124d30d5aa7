"""month plays: listens per UTC month of each artist, album and track

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:00:00

The top lists of a period (7 and 30 days, 12 months, a year) add up these rows for the period's
whole UTC months and count only the cut edges from the listens, instead of grouping every listen
of the period (docs/design-performance.md). Every writer of listens keeps them in its own
transaction, beside the all-time totals of 0007 (modules/importers/summaries.py). The upgrade fills
them from the listens already stored: one grouped range scan per month and table.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = (('artist_month_plays', 'artist_id', 'artists'), ('album_month_plays', 'album_id', 'albums'),
          ('track_month_plays', 'track_id', 'tracks'))


def upgrade():
    for table, key, parent in TABLES:
        op.create_table(
            table,
            sa.Column('month', sa.Integer(), autoincrement=False, nullable=False),
            sa.Column(key, sa.Integer(), autoincrement=False, nullable=False),
            sa.Column('plays', sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint([key], [f'{parent}.id']),
            sa.PrimaryKeyConstraint('month', key),
        )
    from modules.importers import summaries
    summaries.rebuild_months(op.get_bind())


def downgrade():
    for table, _key, _parent in reversed(TABLES):
        op.drop_table(table)
