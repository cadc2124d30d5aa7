"""Reading listens back: pages, filters, export; and the API's error answers."""
import csv
import io
import json
import re

import pytest

from tests.conftest import upload, wait_for_job

ROWS = [  # artist, album, track, date (UTC)
    ("Nina Simone", "Pastel Blues", "Sinnerman", "01 Jan 2020 10:00"),
    ("Nina Simone", "", "Feeling Good", "01 Jan 2020 10:05"),
    ("Sun Ra", "Space Is the Place", "Space Is the Place", "02 Jan 2020 23:59"),
    ("Alice Coltrane", "Journey in Satchidananda", "Shiva-Loka", "03 Jan 2020 00:00"),
    ("Pharoah Sanders", "Karma", "The Creator Has a Master Plan", "15 Feb 2021 12:00"),
]


@pytest.fixture
def loaded(app, client):
    content = "\n".join(",".join(f'"{c}"' for c in row) for row in ROWS).encode()
    wait_for_job(app, upload(client, ("l.csv", content)).get_json()["job_id"])
    return client


def test_listens_newest_first_with_pages(loaded):
    body = loaded.get("/api/v1/listens?page=1&page_size=2").get_json()
    assert body["total"] == 5 and body["page"] == 1 and body["page_size"] == 2
    assert [i["title"] for i in body["items"]] == ["The Creator Has a Master Plan", "Shiva-Loka"]
    assert body["items"][0] == {"played_at": "2021-02-15T12:00:00Z", "artist": "Pharoah Sanders",
                                "album": "Karma", "title": "The Creator Has a Master Plan", "source": "lastfm_csv",
                                "album_image_url": None}
    page3 = loaded.get("/api/v1/listens?page=3&page_size=2").get_json()
    assert [i["title"] for i in page3["items"]] == ["Sinnerman"]
    assert loaded.get("/api/v1/listens?page=9").get_json()["items"] == []


def test_listens_filters(loaded):
    def titles(query):
        return [i["title"] for i in loaded.get("/api/v1/listens?" + query).get_json()["items"]]

    assert titles("from=2020-01-02&to=2020-01-02") == ["Space Is the Place"]  # `to` includes its day
    assert titles("from=2020-01-03") == ["The Creator Has a Master Plan", "Shiva-Loka"]
    assert titles("to=1577873100") == ["Sinnerman"]  # Unix seconds, exclusive end
    assert titles("from=2020-01-01T10:05:00Z&to=2020-01-01T10:06:00Z") == ["Feeling Good"]
    assert titles("artist=nina") == ["Feeling Good", "Sinnerman"]
    assert titles("artist=100%25") == []
    assert loaded.get("/api/v1/listens?artist=nina").get_json()["items"][0]["album"] is None


@pytest.mark.parametrize("query", ["page=0", "page_size=0", "page_size=501", "page=x", "from=yesterday"])
def test_listens_bad_parameters_are_400(loaded, query):
    r = loaded.get("/api/v1/listens?" + query)
    assert r.status_code == 400 and r.get_json()["error"]


def test_export_csv_and_json_have_every_listen(loaded):
    r = loaded.get("/api/v1/listens/export?format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 5 and rows[-1]["title"] == "Sinnerman" and rows[0]["played_at"] == "2021-02-15T12:00:00Z"
    items = json.loads(loaded.get("/api/v1/listens/export?format=json").get_data(as_text=True))
    assert len(items) == 5 and {i["artist"] for i in items} >= {"Sun Ra", "Nina Simone"}
    assert loaded.get("/api/v1/listens/export?format=xml").status_code == 400


def test_export_streams_in_chunks_past_one_keyset_page(app, loaded):
    from modules.web import listens_query
    with app.test_request_context():
        assert len(list(listens_query.iter_all(chunk=2))) == 5


def test_unknown_job_is_404_json(client):
    for path in ("/api/v1/jobs/nope", "/api/v1/jobs/nope/events"):
        r = client.get(path)
        assert r.status_code == 404 and "error" in r.get_json()
    assert client.post("/api/v1/jobs/nope/cancel").status_code == 404
    assert client.get("/progress/nope").status_code == 404


def test_pages_render_empty_and_full(client, loaded):
    journal = loaded.get("/journal").get_data(as_text=True)
    assert "Friday, January 3, 2020" in journal and "Shiva-Loka" in journal
    jobs = loaded.get("/jobs")
    assert jobs.status_code == 200
    jobs = " ".join(re.sub(r"<[^>]+>", " ", jobs.get_data(as_text=True)).split())
    assert "Import of uploaded files completed" in jobs and "1 job" in jobs  # the upload, listed
    settings = loaded.get("/settings")
    assert settings.status_code == 200
    assert "4 albums are waiting for enrichment." in settings.get_data(as_text=True)  # the upload's albums


def test_empty_journal_leads_to_first_import(client):
    page = client.get("/journal").get_data(as_text=True)
    assert "No listens yet" in page and 'href="/settings#lastfm-card"' in page and 'href="/settings#upload-card"' in page
    assert client.get("/").headers["Location"].endswith("/journal")


# --------------------------------------------------------------------------- starting a job: 202 or 409

def running_elsewhere(app, kind, status="running"):
    """A job of `kind` held by a worker of another host, alive (its heartbeat is fresh)."""
    import time
    import uuid

    from modules.db import db
    from modules.models import Job

    job_id = uuid.uuid4().hex
    with app.app_context():
        db.session.add(Job(id=job_id, kind=kind, status=status, params={}, owner="elsewhere:1",
                           active_kind=kind if status == "running" else None,
                           heartbeat_at=time.time(), created_at=time.time()))
        db.session.commit()
    return job_id


def links(job_id):
    return {"job_id": job_id, "progress_url": f"/progress/{job_id}", "events_url": f"/api/v1/jobs/{job_id}/events",
            "status_url": f"/api/v1/jobs/{job_id}"}


@pytest.mark.parametrize("kind, url, message", [
    ("progress_check", "/api/v1/diagnostics/progress-check?duration=1", "A progress check is already running."),
    ("enrich", "/api/v1/services/ai/enrich-all", "Enrichment is already running."),
    ("upload_import", "/api/v1/imports", "An import is already running; wait for it to finish or cancel it."),
])
def test_a_start_while_its_kind_runs_answers_409_with_the_running_jobs_links(app, client, kind, url, message):
    """Every route that starts a job answers the same 409 (job_answers.started): its own message and
    the links of the job that runs; an upload refused so keeps no file."""
    running = running_elsewhere(app, kind)
    files = {"files": (io.BytesIO(b'"A","B","C","01 Jan 2020 10:00"\n'), "a.csv")} if kind == "upload_import" else None
    r = client.post(url, data=files, content_type="multipart/form-data" if files else None)
    assert r.status_code == 409 and r.get_json() == {"error": message, **links(running)}
    uploads = app.config["UPLOAD_DIR"]
    assert not uploads.exists() or not any(uploads.iterdir())


def test_resuming_while_its_kind_runs_answers_409_with_the_running_jobs_links(app, client):
    stopped = running_elsewhere(app, "progress_check", status="interrupted")
    running = running_elsewhere(app, "progress_check")
    r = client.post(f"/api/v1/jobs/{stopped}/resume")
    assert r.status_code == 409 and r.get_json() == {
        "error": f"a progress_check job is already running ({running})", **links(running)}


# --------------------------------------------------------------------------- refused parameters

def test_a_refused_request_names_each_refused_field_and_what_it_must_be(client):
    r = client.get("/api/v1/listens?page=0&page_size=10&from=yesterday")
    assert r.status_code == 400 and r.get_json() == {"error": (
        "page must be a whole number from 1 to 10,000,000; from: unreadable date 'yesterday': use YYYY-MM-DD, "
        "an ISO 8601 time or Unix seconds")}
    r = client.post("/api/v1/playlists", json={"kind": "manual", "name": "m",
                                               "items": [{"artist": "a", "title": 5, "titel": 1}, 3]})
    assert r.status_code == 400 and r.get_json()["error"] == (
        "items[0].title must be text of at most 512 characters; "
        "items[0] has unknown fields titel; known: track_id, artist, title, album, album_id, duration, position; "
        "items[1] must be an object")


def test_refusals_speak_the_persons_language(client):
    client.set_cookie("lang", "fr")
    r = client.get("/api/v1/analytics/top-artists?limit=many")
    assert r.status_code == 400 and r.get_json() == {"error": "limit doit être un nombre entier de 1 à 100, pas 'many'."}


def test_a_blank_query_value_is_the_same_as_none(loaded):
    assert loaded.get("/api/v1/listens?page=&page_size=&from=&artist=").get_json() == loaded.get("/api/v1/listens").get_json()
    assert loaded.get("/api/v1/jobs?limit=").status_code == 200
