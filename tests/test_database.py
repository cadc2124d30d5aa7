"""The database layer on the suite's engine (SQLite, or PostgreSQL in the second pass of `make test`)."""
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from modules.db import db, insert_ignoring_conflicts
from modules.models import Album, Artist, Job
from tests.conftest import DATABASE, ROOT, make_app


def test_the_app_runs_on_the_engine_the_suite_was_asked_for(app):
    with app.app_context():
        assert db.engine.dialect.name == DATABASE


def test_an_app_built_again_on_its_instance_folder_finds_its_data(tmp_path, migrated_template):
    first = make_app(tmp_path / "same", migrated_template)
    with first.app_context():
        db.session.add(Artist(name="Kept", name_key="kept"))
        db.session.commit()
        db.engine.dispose()
    again = make_app(tmp_path / "same", migrated_template)
    other = make_app(tmp_path / "other", migrated_template)
    with again.app_context():
        assert db.session.execute(sa.select(Artist.name)).scalars().all() == ["Kept"]
        db.engine.dispose()
    with other.app_context():
        assert db.session.execute(sa.select(Artist.name)).scalars().all() == []
        db.engine.dispose()


def test_insert_ignoring_conflicts_skips_duplicates_and_returns_new_rows(app):
    with app.app_context():
        with db.engine.begin() as conn:
            rows = [{"name": n, "name_key": n.lower(), "created_at": 1.0} for n in ("A", "B", "C")]
            first = insert_ignoring_conflicts(conn, Artist.__table__, rows, returning=[Artist.id, Artist.name_key])
            assert sorted(k for _, k in first) == ["a", "b", "c"]
            again = insert_ignoring_conflicts(conn, Artist.__table__, rows + [
                {"name": "D", "name_key": "d", "created_at": 1.0}], returning=[Artist.name_key])
            assert [k for (k,) in again] == ["d"]
            assert insert_ignoring_conflicts(conn, Artist.__table__, []) == []
        with db.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(Artist.__table__)).scalar() == 4


def test_server_defaults_and_json_columns_roundtrip(app):
    with app.app_context():
        with db.engine.begin() as conn:
            artist_id = conn.execute(sa.insert(Artist.__table__).values(name="X", name_key="x", created_at=1.0)
                                     .returning(Artist.id)).scalar_one()
            conn.execute(sa.insert(Album.__table__).values(artist_id=artist_id, title="T", title_key="t",
                                                           created_at=1.0))
            conn.execute(sa.insert(Job.__table__).values(id="j1", kind="k", status="queued",
                                                         params={"a": [1, "é", None]}, created_at=1.0))
        album = db.session.execute(sa.select(Album)).scalar_one()
        assert album.needs_enrichment is True and album.description_edited is False
        job = db.session.get(Job, "j1")
        assert job.params == {"a": [1, "é", None]} and job.cancel_requested is False
        # Generated ids stay clear of an explicit one (on PostgreSQL the sequence ignores it).
        db.session.add(Artist(id=1000, name="Y", name_key="y"))
        db.session.commit()
        db.session.add(Artist(name="Z", name_key="z"))
        db.session.commit()
        assert len(set(db.session.execute(sa.select(Artist.id)).scalars())) == 3


def test_migrations_go_down_to_nothing_and_up_again(tmp_path, migrated_template):
    from flask_migrate import downgrade, upgrade

    application = make_app(tmp_path / "m", migrated_template)
    with application.app_context():
        downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"artists", "albums", "tracks", "listens", "jobs", "collection_items", "preferences",
                "progress_snapshots"} <= tables
        db.engine.dispose()


@pytest.mark.postgresql_only
def test_psycopg_yields_to_other_greenlets_under_gevent(database_url):
    """gunicorn's gevent workers patch before loading the app: a slow query must not block the hub."""
    script = textwrap.dedent(f"""
        from gevent import monkey
        monkey.patch_all()
        import gevent, time
        import psycopg
        from psycopg import waiting
        assert waiting.wait is not getattr(waiting, "wait_c", None), waiting.wait
        url = {database_url.replace("postgresql+psycopg", "postgresql")!r}
        ticks = []
        def ticker():
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                ticks.append(time.monotonic())
                gevent.sleep(0.05)
        def query():
            with psycopg.connect(url) as conn:
                conn.execute("SELECT pg_sleep(1)")
        gevent.joinall([gevent.spawn(query), gevent.spawn(ticker)])
        assert len(ticks) >= 10, len(ticks)
        print("ok", waiting.wait.__name__, len(ticks))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stdout + done.stderr
