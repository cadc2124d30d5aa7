"""The settings page's connection forms: Save tests through the real client library against the
emulators (the service's answer is shown; a refused test saves nothing unless "Save anyway"),
secrets are write-only, the source of each field is shown, environment values are locked, and a
lost encryption key names the secrets to enter again."""
from __future__ import annotations

import re

import pytest

from tests.conftest import make_app
from tests.emulators.discogs import DiscogsEmulator
from tests.emulators.lastfm import LastfmEmulator

KEY, SECRET = "fm-key-8c41d2e7", "fm-secret-55b0a9"


@pytest.fixture
def fm():
    with LastfmEmulator(api_key=KEY) as emulator:
        emulator.add_listens("rj", [{"uts": 1_600_000_000 + i, "artist": "Portishead", "title": f"Roads {i}",
                                     "album": "Dummy"} for i in range(3)])
        yield emulator


@pytest.fixture
def page_app(tmp_path, migrated_template, fm):
    return make_app(tmp_path / "instance", migrated_template,
                    environ={"LASTFM_API_URL": fm.url, "LASTFM_RETRY_BASE_SECONDS": 0.01, "LASTFM_MAX_ATTEMPTS": 2})


def post(client, group, data, json_answer=True):
    headers = {"Accept": "application/json"} if json_answer else {}
    return client.post(f"/settings/connect/{group}", data=data, headers=headers)


def settings_of(app):
    return app.extensions["sillon"]["settings"]


def test_save_tests_with_the_service_then_applies_at_once(page_app, fm):
    client = page_app.test_client()
    resp = post(client, "lastfm", {"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET, "LASTFM_USERNAME": "rj"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["tested"]["ok"] is True and "rj" in body["message"] and "3" in body["message"]
    assert body["saved"] == ["LASTFM_API_KEY", "LASTFM_API_SECRET", "LASTFM_USERNAME"]
    assert settings_of(page_app)["LASTFM_API_KEY"] == KEY
    page = client.get("/settings").get_data(as_text=True)
    assert KEY not in page and SECRET not in page
    assert 'id="saved-LASTFM_API_KEY"' in page and 'id="remove-LASTFM_API_KEY"' in page
    assert re.search(r'id="source-LASTFM_USERNAME">.*saved in the app', page)
    assert 'id="lastfm-start"' in page, "the import form appears without a restart"
    assert client.post("/api/v1/services/lastfm/check").status_code == 200


def test_a_wrong_key_is_refused_with_the_services_answer_and_nothing_saved(page_app, fm):
    client = page_app.test_client()
    resp = post(client, "lastfm", {"LASTFM_API_KEY": "wrong-key-1", "LASTFM_API_SECRET": SECRET,
                                   "LASTFM_USERNAME": "rj"})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["can_save_anyway"] is True and "refused the API key" in body["message"]
    assert "wrong-key-1" not in resp.get_data(as_text=True)
    assert settings_of(page_app)["LASTFM_API_KEY"] is None
    unknown = post(client, "lastfm", {"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET, "LASTFM_USERNAME": "nobody"})
    assert unknown.status_code == 400 and "does not know the user" in unknown.get_json()["message"]
    fm.set_private("rj")
    private = post(client, "lastfm", {"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET, "LASTFM_USERNAME": "rj"})
    assert private.status_code == 400 and "hides its recent listens" in private.get_json()["message"]
    fm.set_private("rj", False)
    anyway = post(client, "lastfm", {"LASTFM_API_KEY": "wrong-key-1", "LASTFM_API_SECRET": SECRET,
                                     "LASTFM_USERNAME": "rj", "save_anyway": "1"})
    assert anyway.status_code == 200 and "Saved anyway" in anyway.get_json()["message"]
    assert settings_of(page_app)["LASTFM_API_KEY"] == "wrong-key-1"


def test_an_unreachable_service_is_said_so(tmp_path, migrated_template):
    with DiscogsEmulator() as dc:
        url = dc.url
    app = make_app(tmp_path / "instance", migrated_template,
                   environ={"DISCOGS_API_URL": url, "DISCOGS_MAX_ATTEMPTS": 1, "DISCOGS_RETRY_BASE_SECONDS": 0.01})
    resp = post(app.test_client(), "discogs", {"DISCOGS_TOKEN": "tok-1"})
    assert resp.status_code == 400 and resp.get_json()["can_save_anyway"]
    assert "Discogs did not answer" in resp.get_json()["message"]


def test_without_script_a_refused_save_shows_the_page_with_the_answer(page_app):
    client = page_app.test_client()
    resp = post(client, "lastfm", {"LASTFM_API_KEY": "wrong-key-2", "LASTFM_API_SECRET": SECRET,
                                   "LASTFM_USERNAME": "rj"}, json_answer=False)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "refused the API key" in page and "wrong-key-2" not in page
    assert re.search(r'<button[^>]*id="connect-lastfm-anyway"(?![^>]*hidden)', page)
    ok = post(client, "general", {"TIMEZONE": "Europe/Paris", "TRACKER_INTERVAL_SECONDS": "300",
                                  "SCROBBLE_USERNAME": ""}, json_answer=False)
    assert ok.status_code == 303 and settings_of(page_app)["TIMEZONE"] == "Europe/Paris"
    bad = post(client, "general", {"TIMEZONE": "Atlantis/Capital", "TRACKER_INTERVAL_SECONDS": "300"})
    assert bad.status_code == 400 and "Atlantis/Capital" in bad.get_json()["problems"]["TIMEZONE"]


def test_replace_and_remove_a_saved_secret(page_app):
    client = page_app.test_client()
    assert post(client, "lastfm", {"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET,
                                   "LASTFM_USERNAME": "rj"}).status_code == 200
    untouched = post(client, "lastfm", {"LASTFM_API_KEY": "", "LASTFM_API_SECRET": "", "LASTFM_USERNAME": "rj"})
    assert untouched.get_json()["saved"] == [] and settings_of(page_app)["LASTFM_API_SECRET"] == SECRET
    removed = post(client, "lastfm", {"LASTFM_USERNAME": "rj", "remove": "LASTFM_API_SECRET"})
    assert removed.status_code == 200 and settings_of(page_app)["LASTFM_API_SECRET"] is None
    page = client.get("/settings").get_data(as_text=True)
    assert 'id="saved-LASTFM_API_SECRET"' not in page and 'name="LASTFM_API_SECRET" type="password"' in page


def test_environment_values_are_locked_on_the_page(tmp_path, migrated_template, fm):
    app = make_app(tmp_path / "instance", migrated_template,
                   environ={"LASTFM_API_URL": fm.url, "LASTFM_USERNAME": "rj", "LASTFM_API_KEY": KEY})
    client = app.test_client()
    page = client.get("/settings").get_data(as_text=True)
    field = re.search(r'<input id="setting-LASTFM_USERNAME"[^>]*>', page).group(0)
    assert "readonly" in field and 'name=' not in field
    assert re.search(r'<input id="setting-LASTFM_API_KEY" type="password" disabled', page) and KEY not in page
    assert re.search(r'id="source-LASTFM_USERNAME">.*from the environment', page)
    resp = post(client, "lastfm", {"LASTFM_USERNAME": "someone-else", "LASTFM_API_SECRET": SECRET})
    assert resp.status_code == 200 and settings_of(app)["LASTFM_USERNAME"] == "rj"
    assert resp.get_json()["saved"] == ["LASTFM_API_SECRET"]


def test_a_lost_encryption_key_names_the_secrets_never_a_500(tmp_path, migrated_template, fm):
    instance = tmp_path / "instance"
    app = make_app(instance, migrated_template, environ={"LASTFM_API_URL": fm.url})
    assert post(app.test_client(), "lastfm", {"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET,
                                              "LASTFM_USERNAME": "rj"}).status_code == 200
    (instance / "settings.key").write_bytes(b"not-the-key-that-made-them")  # replaced by mistake
    again = make_app(instance, migrated_template, environ={"LASTFM_API_URL": fm.url})
    client = again.test_client()
    resp = client.get("/settings")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "LASTFM_API_KEY, LASTFM_API_SECRET" in page and 'id="lost-LASTFM_API_KEY"' in page
    assert client.get("/api/v1/settings").get_json()["lost_secrets"] == ["LASTFM_API_KEY", "LASTFM_API_SECRET"]
    (instance / "settings.key").unlink()
    third = make_app(instance, migrated_template, environ={"LASTFM_API_URL": fm.url})
    assert post(third.test_client(), "lastfm", {"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET}).status_code == 200
    assert settings_of(third).lost_secrets == ()


def test_unknown_config_json_keys_are_named_on_the_page(tmp_path, migrated_template):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"LASTFM_APIKEY": "typo", "TIMEZONE": "Europe/Berlin"}')
    app = make_app(tmp_path / "instance", migrated_template, environ={"SILLON_CONFIG": str(cfg)})
    page = app.test_client().get("/settings").get_data(as_text=True)
    assert re.search(r'id="unknown-config-keys">[^<]*LASTFM_APIKEY', page) and "typo" not in page
    assert re.search(r'id="source-TIMEZONE">.*from config.json', page)
