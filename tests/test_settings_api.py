"""GET and PATCH /api/v1/settings: every setting and its source, secrets as is_set only, refusals per field."""
from __future__ import annotations

import config
from tests.conftest import make_app


def test_get_names_every_setting_its_source_and_never_a_secret(tmp_path, migrated_template):
    app = make_app(tmp_path / "instance", migrated_template, environ={"LASTFM_USERNAME": "env-user"})
    client = app.test_client()
    resp = client.patch("/api/v1/settings", json={"LASTFM_API_KEY": "very-secret-31f", "TIMEZONE": "Europe/Paris"})
    assert resp.status_code == 200, resp.get_json()
    body = client.get("/api/v1/settings").get_json()
    assert set(body["settings"]) == set(config.SETTINGS)
    key = body["settings"]["LASTFM_API_KEY"]
    assert key == {"is_set": True, "secret": True, "source": "app", "editable": True, "locked": False}
    assert body["settings"]["TIMEZONE"]["value"] == "Europe/Paris"
    assert body["settings"]["LASTFM_USERNAME"] | {} == {"value": "env-user", "is_set": True, "secret": False,
                                                        "source": "environment", "editable": True, "locked": True}
    assert body["settings"]["DISCOGS_TOKEN"]["is_set"] is False
    assert body["settings"]["MAX_UPLOAD_MB"]["source"] == "default" and not body["settings"]["MAX_UPLOAD_MB"]["editable"]
    assert body["lost_secrets"] == [] and body["unknown_config_keys"] == []
    assert "very-secret-31f" not in resp.get_data(as_text=True) + client.get("/api/v1/settings").get_data(as_text=True)


def test_patch_refuses_with_a_message_per_field_and_saves_nothing(tmp_path, migrated_template):
    app = make_app(tmp_path / "instance", migrated_template, environ={"LASTFM_USERNAME": "env-user"})
    client = app.test_client()
    resp = client.patch("/api/v1/settings", json={"LASTFM_USERNAME": "other", "TIMEZONE": "Nowhere/City",
                                                  "DISCOGS_USERNAME": "kept-out"})
    assert resp.status_code == 400
    problems = resp.get_json()["fields"]
    assert set(problems) == {"LASTFM_USERNAME", "TIMEZONE"}
    assert "environment" in problems["LASTFM_USERNAME"] and "Nowhere/City" in problems["TIMEZONE"]
    assert client.get("/api/v1/settings").get_json()["settings"]["DISCOGS_USERNAME"]["is_set"] is False
    unknown = client.patch("/api/v1/settings", json={"DATABASE_URL": "sqlite://", "TIMEZONE": "UTC"})
    assert unknown.status_code == 400 and "DATABASE_URL" in unknown.get_json()["error"]
    interval = client.patch("/api/v1/settings", json={"TRACKER_INTERVAL_SECONDS": 3})
    assert interval.status_code == 400 and "TRACKER_INTERVAL_SECONDS" in interval.get_json()["error"]
    assert client.patch("/api/v1/settings", data="[1]", content_type="application/json").status_code == 400


def test_patch_follows_the_csrf_rule_of_every_change(client):
    resp = client.patch("/api/v1/settings", json={"TIMEZONE": "Asia/Tokyo"}, csrf=False,
                        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert resp.status_code in (400, 403)
    assert client.get("/api/v1/settings").get_json()["settings"]["TIMEZONE"]["value"] == "UTC"


def test_removing_a_saved_value_uncovers_the_default(client):
    assert client.patch("/api/v1/settings", json={"TRACKER_INTERVAL_SECONDS": 600}).status_code == 200
    assert client.get("/api/v1/services/tracker/status").get_json()["interval_seconds"] == 600
    body = client.patch("/api/v1/settings", json={"TRACKER_INTERVAL_SECONDS": None}).get_json()
    assert body["settings"]["TRACKER_INTERVAL_SECONDS"] == {"value": 120, "is_set": True, "secret": False,
                                                             "source": "default", "editable": True, "locked": False}
