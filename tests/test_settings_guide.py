"""The first-run guide on the settings page: an empty Sillon is led through connect Last.fm, import
history, connect Discogs, sync and enrich, each step linking to its live progress while it runs; the
guide follows the person once they connected a service from it, and can be left at any point."""
from __future__ import annotations

import re
import time
import uuid

from tests.conftest import make_app, wait_for_job
from tests.emulators.lastfm import LastfmEmulator

KEY = "guide-key-5e21"


def steps(page):
    return re.findall(r'<li id="guide-([a-z-]+)" data-done="(true|false)"', page)


def test_the_guide_leads_an_empty_sillon_step_by_step_and_can_be_left(tmp_path, migrated_template):
    with LastfmEmulator(api_key=KEY) as fm:
        fm.add_listens("rj", [{"uts": 1_600_000_000 + i, "artist": "Low", "title": f"Song {i}", "album": "Things"}
                              for i in range(12)])
        app = make_app(tmp_path / "instance", migrated_template,
                       environ={"LASTFM_API_URL": fm.url, "LASTFM_REQUESTS_PER_SECOND": 100})
        client = app.test_client()
        page = client.get("/settings").get_data(as_text=True)
        assert steps(page) == [("connect-lastfm", "false"), ("import-history", "false"), ("connect-discogs", "false"),
                               ("sync", "false"), ("enrich", "false")]
        assert re.search(r'id="guide-connect-lastfm" data-done="false" aria-current="step">\s*<a href="#connect-lastfm"',
                         page)
        saved = client.post("/settings/connect/lastfm", headers={"Accept": "application/json"},
                            data={"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": "s", "LASTFM_USERNAME": "rj"})
        assert saved.status_code == 200
        page = client.get("/settings").get_data(as_text=True)
        assert steps(page)[:2] == [("connect-lastfm", "true"), ("import-history", "false")]
        assert 'id="guide-import-history" data-done="false" aria-current="step"' in page
        job_id = client.post("/api/v1/services/lastfm/import-history").get_json()["job_id"]
        assert wait_for_job(app, job_id)["status"] == "completed"
        page = client.get("/settings").get_data(as_text=True)
        assert "Start here" not in page and "First steps" in page, "the guide goes on after the first import"
        assert steps(page)[1] == ("import-history", "true")
        assert 'id="guide-connect-discogs" data-done="false" aria-current="step"' in page

    # A step whose job runs links to its live progress.
    from modules.db import db
    from modules.models import Job

    running = uuid.uuid4().hex
    with app.app_context():
        db.session.add(Job(id=running, kind="discogs_sync", status="running", active_kind="discogs_sync",
                           params={}, owner="elsewhere:1", heartbeat_at=time.time(), created_at=time.time()))
        db.session.commit()
    page = client.get("/settings").get_data(as_text=True)
    assert f'href="/progress/{running}" id="guide-sync-progress"' in page

    assert client.post("/settings/guide/hide").status_code == 303
    assert 'id="first-steps"' not in client.get("/settings").get_data(as_text=True)
