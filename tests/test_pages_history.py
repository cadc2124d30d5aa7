"""The jobs history page (labels, counts, filters, pages, newest first), the progress page of a
finished job (also after a restart that emptied a memory store), the language switcher's endpoint
and its redirect checks, and what a new person is shown first on every page."""
from __future__ import annotations

import re
import time

import pytest

from modules.db import db
from modules.models import Job
from tests.conftest import make_app, upload, wait_for_job
from tests.test_uploads import simple_csv


def add_jobs(app, rows):
    """Job records as a long-running app accumulates them (kind, status, result, age in seconds)."""
    now = time.time()
    with app.app_context():
        for i, (kind, status, result, age) in enumerate(rows):
            db.session.add(Job(id=f"{i:032x}", kind=kind, status=status, params={}, result=result,
                               message="Last.fm was down" if status == "error" else "Done",
                               created_at=now - age, started_at=now - age, finished_at=now - age + 65))
        db.session.commit()


def row_ids(page):
    return re.findall(r'<tr data-job-id="([0-9a-f]+)"', page)


def test_history_lists_newest_first_with_labels_counts_and_links(app, client):
    job_id = upload(client, ("a.csv", simple_csv(5, errors=2))).get_json()["job_id"]
    wait_for_job(app, job_id)
    add_jobs(app, [("discogs_sync", "completed", {"added": 12, "skipped": 3, "errors": 0}, 3600),
                   ("lastfm_history", "error", {"resumable": False}, 7200)])
    page = client.get("/jobs").get_data(as_text=True)
    ids = row_ids(page)
    assert ids == [job_id, f"{0:032x}", f"{1:032x}"]
    first = page.split(f'data-job-id="{job_id}"', 1)[1].split("</tr>", 1)[0]
    assert f'href="/progress/{job_id}"' in first and "Import of uploaded files" in first
    assert '<td class="num" data-count="imported">5</td>' in first
    assert '<td class="num" data-count="errors">2</td>' in first
    discogs = page.split(f'data-job-id="{0:032x}"', 1)[1].split("</tr>", 1)[0]
    assert "Discogs collection sync" in discogs and '<td class="num" data-count="imported">12</td>' in discogs
    assert "1 min 5 s" in discogs
    failed = page.split(f'data-job-id="{1:032x}"', 1)[1].split("</tr>", 1)[0]
    assert "Last.fm was down" in failed and 'data-count="imported">–<' in failed


def test_history_filters_by_kind_and_status_and_pages(app, client):
    rows = [("enrich", "completed", {"enriched": i}, 100 + i) for i in range(30)]
    rows += [("discogs_sync", "error", None, 10), ("discogs_sync", "completed", {"added": 1}, 20)]
    add_jobs(app, rows)
    first = client.get("/jobs").get_data(as_text=True)
    assert len(row_ids(first)) == 25 and "Page 1 of 2" in first and 'rel="next"' in first
    assert row_ids(first)[:2] == [f"{30:032x}", f"{31:032x}"]
    second = client.get("/jobs?page=2").get_data(as_text=True)
    assert len(row_ids(second)) == 7 and not set(row_ids(first)) & set(row_ids(second))
    kind = client.get("/jobs?kind=discogs_sync").get_data(as_text=True)
    assert row_ids(kind) == [f"{30:032x}", f"{31:032x}"] and "Page 1 of 1" in kind
    both = client.get("/jobs?kind=discogs_sync&status=error").get_data(as_text=True)
    assert row_ids(both) == [f"{30:032x}"]
    assert 'data-total="1"' in both and '<option value="error" selected>' in both
    nothing = client.get("/jobs?kind=progress_check").get_data(as_text=True)
    assert row_ids(nothing) == [] and "No job matches these filters." in nothing
    # Unknown filter values are ignored rather than failing.
    assert len(row_ids(client.get("/jobs?kind=<b>&status=nope&page=x").get_data(as_text=True))) == 25


def test_a_finished_job_page_shows_its_summary(app, client):
    job_id = upload(client, ("a.csv", simple_csv(7))).get_json()["job_id"]
    snap = wait_for_job(app, job_id)
    page = client.get(f"/progress/{job_id}").get_data(as_text=True)
    assert 'id="job-summary"' in page and '<dd id="summary-imported">7</dd>' in page
    assert 'class="status status-completed"' in page and 'aria-valuenow="100"' in page
    assert snap["message"] in page


def test_after_a_restart_with_a_memory_store_the_finished_job_is_rebuilt_from_its_record(tmp_path, migrated_template):
    instance = tmp_path / "instance"
    first = make_app(instance, migrated_template, environ={"PROGRESS_STORE": "memory"})
    client = first.test_client()
    job_id = upload(client, ("a.csv", simple_csv(9, errors=1))).get_json()["job_id"]
    assert wait_for_job(first, job_id)["status"] == "completed"
    restarted = make_app(instance, migrated_template, environ={"PROGRESS_STORE": "memory"})
    with restarted.app_context():
        assert restarted.extensions["sillon"]["progress_store"].get(job_id) is None
    page = restarted.test_client().get(f"/progress/{job_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<dd id="summary-imported">9</dd>' in html and '<dd id="summary-errors">1</dd>' in html
    assert 'class="status status-completed"' in html and "Rebuilt from the job" in html
    assert restarted.test_client().get("/progress/" + "f" * 32).status_code == 404
    for application in (first, restarted):
        with application.app_context():
            db.engine.dispose()


def test_the_language_endpoint_sets_the_cookie_and_goes_back_on_this_site_only(client):
    r = client.get("/language/fr?next=/jobs?kind=enrich")
    assert r.status_code == 303 and r.headers["Location"] == "/jobs?kind=enrich"
    assert "lang=fr" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    assert '<html lang="fr">' in client.get("/jobs").get_data(as_text=True)
    for target in ("https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "jobs"):
        r = client.get("/language/en", query_string={"next": target})
        assert r.status_code == 303 and r.headers["Location"] == "/journal", target
    r = client.get("/language/en", headers={"Referer": "http://localhost/collection?q=x"})
    assert r.headers["Location"] == "/collection?q=x"
    r = client.get("/language/en", headers={"Referer": "http://elsewhere.example/collection"})
    assert r.headers["Location"] == "/journal"
    assert client.get("/language/de").status_code == 400
    r = client.post("/language", data={"code": "fr", "next": "/settings"})
    assert r.status_code == 303 and r.headers["Location"] == "/settings"


def test_the_chosen_language_is_kept_for_browsers_without_the_cookie(app):
    chooser = app.test_client()
    chooser.get("/language/fr")
    other = app.test_client()
    assert '<html lang="fr">' in other.get("/journal").get_data(as_text=True)
    assert '<html lang="fr">' in other.get("/journal", headers={"Accept-Language": "en"}).get_data(as_text=True)
    other.get("/language/en")
    assert '<html lang="en">' in other.get("/journal").get_data(as_text=True)


def test_without_a_choice_the_browser_language_wins(client):
    assert '<html lang="fr">' in client.get("/journal", headers={"Accept-Language": "fr-CH, fr;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in client.get("/journal", headers={"Accept-Language": "de"}).get_data(as_text=True)


@pytest.mark.parametrize("path", ["/journal", "/timeline", "/jobs", "/settings"])
def test_a_new_person_is_led_to_the_first_import(client, path):
    page = client.get(path).get_data(as_text=True)
    assert "Start here" in page
    assert 'href="#lastfm-card"' in page or 'href="/settings#lastfm-card"' in page
    assert 'href="#upload-card"' in page or 'href="/settings#upload-card"' in page


def test_the_collection_leads_to_discogs_when_empty(client):
    page = client.get("/collection").get_data(as_text=True)
    assert 'href="/settings#discogs-card"' in page and 'href="/settings#upload-card"' in page


def test_settings_stop_showing_first_steps_once_something_was_imported(app, client):
    job_id = upload(client, ("a.csv", simple_csv(2))).get_json()["job_id"]
    wait_for_job(app, job_id)
    assert "Start here" not in client.get("/settings").get_data(as_text=True)
    assert "Start here" not in client.get("/journal").get_data(as_text=True)
