"""stored settings: values saved on the settings page, and the version every process follows

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00

`stored_settings` holds what a person saves on the settings page (JSON text; secrets as Fernet
tokens, key in the instance folder). `settings_version` is one row whose number grows with every
change, so each process reloads only when it moved. The tracker interval and the description
language chosen on the pages before (preferences) become stored settings.
"""
import json
import time

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

MOVED = {"tracker.interval_seconds": "TRACKER_INTERVAL_SECONDS", "ai.language": "AI_LANGUAGE"}


def upgrade():
    stored = op.create_table(
        'stored_settings',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('encrypted', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    version = op.create_table(
        'settings_version',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])
    conn = op.get_bind()
    preferences = sa.table('preferences', sa.column('key', sa.String), sa.column('value', sa.JSON))
    rows = conn.execute(sa.select(preferences.c.key, preferences.c.value)
                        .where(preferences.c.key.in_(list(MOVED)))).all()
    moved = [{"name": MOVED[key], "value": json.dumps(value), "encrypted": False, "updated_at": time.time()}
             for key, value in rows if value not in (None, "")]
    if moved:
        op.bulk_insert(stored, moved)
    conn.execute(preferences.delete().where(preferences.c.key.in_(list(MOVED))))


def downgrade():
    op.drop_table('settings_version')
    op.drop_table('stored_settings')
