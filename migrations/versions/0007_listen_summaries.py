"""listen summaries: counts per time bucket and per artist, album and track

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00

Pages at a million listens read these instead of counting the listens every time; every writer of
listens keeps them in its own transaction (modules/importers/summaries.py, and the reasons in
docs/design-performance.md). The upgrade fills them from the listens already stored: one grouped
scan per table. Also an index on (played_at, id), the order of the journal and the listens API,
so a deep page is found by walking an index instead of reading the rows before it, and
(artist_id, played_at, id) in place of (artist_id, played_at): the artist-filtered journal then
reads the index alone.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _seconds():
    return sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'listen_counts',
        sa.Column('step', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('bucket', _seconds(), autoincrement=False, nullable=False),
        sa.Column('plays', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('step', 'bucket'),
    )
    op.create_table(
        'artist_plays',
        sa.Column('artist_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('plays', sa.Integer(), nullable=False),
        sa.Column('first_played_at', _seconds(), nullable=False),
        sa.Column('last_played_at', _seconds(), nullable=False),
        sa.ForeignKeyConstraint(['artist_id'], ['artists.id']),
        sa.PrimaryKeyConstraint('artist_id'),
    )
    op.create_index('ix_artist_plays_plays', 'artist_plays', ['plays'], unique=False)
    op.create_table(
        'album_plays',
        sa.Column('album_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('plays', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['album_id'], ['albums.id']),
        sa.PrimaryKeyConstraint('album_id'),
    )
    op.create_index('ix_album_plays_plays', 'album_plays', ['plays'], unique=False)
    op.create_table(
        'track_plays',
        sa.Column('track_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('plays', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['track_id'], ['tracks.id']),
        sa.PrimaryKeyConstraint('track_id'),
    )
    op.create_index('ix_track_plays_plays', 'track_plays', ['plays'], unique=False)
    op.create_index('ix_listens_played_id', 'listens', ['played_at', 'id'], unique=False)
    op.create_index('ix_listens_artist_played_id', 'listens', ['artist_id', 'played_at', 'id'], unique=False)
    op.drop_index('ix_listens_artist_played', table_name='listens')

    from modules.importers import summaries
    summaries.rebuild_totals(op.get_bind())  # 0010 rebuilds its own


def downgrade():
    op.create_index('ix_listens_artist_played', 'listens', ['artist_id', 'played_at'], unique=False)
    op.drop_index('ix_listens_artist_played_id', table_name='listens')
    op.drop_index('ix_listens_played_id', table_name='listens')
    for table in ('track_plays', 'album_plays', 'artist_plays'):
        op.drop_index(f'ix_{table}_plays', table_name=table)
        op.drop_table(table)
    op.drop_table('listen_counts')
