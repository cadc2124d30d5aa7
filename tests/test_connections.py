"""The settings page's connections: configured or not (never a secret), last success, and the
connection test (POST /api/v1/services/<name>/test) through the real client libraries against the
local emulators of Last.fm, Discogs, Spotify and the OpenAI API."""
from __future__ import annotations

import pytest

from tests.conftest import make_app, upload, wait_for_job
from tests.emulators.discogs import DiscogsEmulator
from tests.emulators.lastfm import LastfmEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.spotify import SpotifyEmulator

SECRETS = {"LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "lfm-secret-9f3b", "DISCOGS_TOKEN": "test-token",
           "SPOTIFY_CLIENT_SECRET": "test-secret", "AI_API_KEY": "test-ai-key"}


@pytest.fixture
def emus():
    with DiscogsEmulator() as dc, SpotifyEmulator() as sp, OpenAIEmulator() as oa, LastfmEmulator() as fm:
        yield type("Emus", (), {"dc": dc, "sp": sp, "oa": oa, "fm": fm})


def environ(e, **extra):
    env = {"LASTFM_API_URL": e.fm.url, "LASTFM_USERNAME": "rj", "DISCOGS_API_URL": e.dc.url,
           "SPOTIFY_CLIENT_ID": "test-id", "SPOTIFY_API_URL": e.sp.api_prefix, "SPOTIFY_TOKEN_URL": e.sp.token_url,
           "AI_API_URL": e.oa.base_url, "AI_MODEL": "tiny", **SECRETS}
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def build(tmp_path, migrated_template, emus):
    apps = []

    def make(name="instance", **extra):
        application = make_app(tmp_path / name, migrated_template, environ=environ(emus, **extra))
        apps.append(application)
        return application

    yield make
    for application in apps:
        with application.app_context():
            from modules.db import db
            db.engine.dispose()


def assert_no_secret(text, secrets=SECRETS):
    for name, value in secrets.items():
        assert value not in text, f"{name}'s value appears in the answer"


@pytest.mark.parametrize("name", ["lastfm", "discogs", "spotify", "ai"])
def test_a_configured_service_answers_its_test_and_the_success_is_kept(build, name):
    app = build()
    client = app.test_client()
    before = client.get("/settings").get_data(as_text=True)
    assert f'id="service-{name}" data-service="{name}" data-configured="true"' in before
    r = client.post(f"/api/v1/services/{name}/test")
    body = r.get_json()
    assert r.status_code == 200 and body["ok"] is True, body
    assert body["message"] and body["tested_at"] and body["last_success"] == body["tested_at"]
    assert_no_secret(r.get_data(as_text=True))
    page = client.get("/settings").get_data(as_text=True)
    assert body["message"] in page.replace("&#39;", "'")
    section = page.split(f'id="service-{name}"', 1)[1].split("</li>", 1)[0]
    assert f'datetime="{body["last_success"]}"' in section and "never" not in section
    assert_no_secret(page)


def test_the_test_says_what_a_refused_key_means_and_keeps_no_success(build, emus):
    app = build(LASTFM_API_KEY="wrong-key-7c1d", DISCOGS_TOKEN="wrong-token-22", SPOTIFY_CLIENT_SECRET="nope-nope",
                AI_API_KEY="bad-ai-key-31")
    client = app.test_client()
    wrong = {"a": "wrong-key-7c1d", "b": "wrong-token-22", "c": "nope-nope", "d": "bad-ai-key-31"}
    expected = {"lastfm": "API key", "discogs": "token", "spotify": "client credentials", "ai": "AI_API_KEY"}
    for name, words in expected.items():
        r = client.post(f"/api/v1/services/{name}/test")
        body = r.get_json()
        assert r.status_code == 502 and body["ok"] is False, (name, body)
        assert words in body["error"], (name, body["error"])
        assert body["last_success"] is None
        assert_no_secret(r.get_data(as_text=True), wrong)
    page = client.get("/settings").get_data(as_text=True)
    assert_no_secret(page, wrong)
    assert page.count("never") >= 4


def test_an_unreachable_service_is_a_clear_failure(build):
    app = build(AI_API_URL="http://127.0.0.1:9/v1", DISCOGS_API_URL="http://127.0.0.1:9")
    client = app.test_client()
    r = client.post("/api/v1/services/ai/test")
    assert r.status_code == 502 and "Could not reach the AI endpoint" in r.get_json()["error"]
    r = client.post("/api/v1/services/discogs/test")
    assert r.status_code == 502 and "could not reach Discogs" in r.get_json()["error"]


def test_an_unconfigured_service_cannot_be_tested_and_says_what_is_missing(build):
    app = build(DISCOGS_TOKEN=None, AI_API_KEY=None, AI_MODEL=None)
    client = app.test_client()
    r = client.post("/api/v1/services/discogs/test")
    assert r.status_code == 400 and "DISCOGS_TOKEN" in r.get_json()["error"]
    page = client.get("/settings").get_data(as_text=True)
    assert 'data-service="discogs" data-configured="false"' in page
    assert 'data-service="ai" data-configured="false"' in page
    section = page.split('id="service-ai"', 1)[1].split("</li>", 1)[0]
    assert "Not configured" in section and "AI_API_KEY, AI_MODEL" in section and "disabled" in section
    assert client.post("/api/v1/services/myspace/test").status_code == 404


def test_no_secret_value_reaches_the_settings_page(build):
    page = build().test_client().get("/settings").get_data(as_text=True)
    assert_no_secret(page)
    assert "Configured" in page


def test_a_completed_job_counts_as_the_last_success(build):
    app = build()
    client = app.test_client()
    job_id = upload(client, ("a.csv", b"Artist,Album,Track,03 Jan 2020 10:00\n")).get_json()["job_id"]
    assert wait_for_job(app, job_id)["status"] == "completed"
    r = client.post("/api/v1/services/discogs/sync")
    assert r.status_code == 202
    snap = wait_for_job(app, r.get_json()["job_id"])
    assert snap["status"] == "completed", snap["message"]
    page = client.get("/settings").get_data(as_text=True)
    section = page.split('id="service-discogs"', 1)[1].split("</li>", 1)[0]
    assert "(a job)" in section and "never" not in section
    lastfm = page.split('id="service-lastfm"', 1)[1].split("</li>", 1)[0]
    assert "never" in lastfm


def test_messages_quoting_a_secret_are_scrubbed_before_they_are_shown(build):
    from modules.web import connections

    app = build()
    with app.app_context():
        settings = app.extensions["sillon"]["settings"]
        text = connections.scrub("GET https://x/?token=test-token&key=lfm-secret-9f3b failed", settings)
    assert "test-token" not in text and "lfm-secret-9f3b" not in text and text.count("•••") == 2
