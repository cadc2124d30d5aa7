"""Settings saved in the app: precedence, encryption at rest, the version every process follows,
refusals named per field, and a lost encryption key (docs/settings.md)."""
from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

import config
from modules.stored_settings import SettingRefused
from tests.conftest import make_app


def _settings(app):
    return app.extensions["sillon"]["settings"]


def _rows(app):
    with app.app_context():
        from modules.db import db

        return {name: (value, encrypted) for name, value, encrypted in db.session.execute(
            sa.text("SELECT name, value, encrypted FROM stored_settings")).all()}


def test_environment_then_saved_then_config_json_then_default(tmp_path, migrated_template):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"LASTFM_USERNAME": "from-file", "AI_MODEL": "file-model",
                               "secrets": {"discogs": {"username": "grouped"}}}))
    app = make_app(tmp_path / "instance", migrated_template,
                   environ={"SILLON_CONFIG": str(cfg), "TIMEZONE": "Europe/Paris"})
    s = _settings(app)
    assert (s["LASTFM_USERNAME"], s.source("LASTFM_USERNAME")) == ("from-file", config.CONFIG_FILE)
    assert (s["DISCOGS_USERNAME"], s.source("DISCOGS_USERNAME")) == ("grouped", config.CONFIG_FILE)
    assert (s["TRACKER_INTERVAL_SECONDS"], s.source("TRACKER_INTERVAL_SECONDS")) == (120, config.DEFAULT)
    s.save({"LASTFM_USERNAME": "saved-user", "TRACKER_INTERVAL_SECONDS": "300"})
    assert (s["LASTFM_USERNAME"], s.source("LASTFM_USERNAME")) == ("saved-user", config.SAVED)
    assert s["TRACKER_INTERVAL_SECONDS"] == 300 and s["AI_MODEL"] == "file-model"
    with pytest.raises(SettingRefused) as refused:
        s.save({"TIMEZONE": "America/New_York", "LASTFM_USERNAME": "other"})
    assert set(refused.value.problems) == {"TIMEZONE"}
    assert "environment" in refused.value.problems["TIMEZONE"]
    assert s["LASTFM_USERNAME"] == "saved-user", "a refused change saves nothing, not even the valid part"
    assert (s["TIMEZONE"], s.source("TIMEZONE")) == ("Europe/Paris", config.ENVIRONMENT)
    s.save({"LASTFM_USERNAME": None})  # removing the saved value uncovers config.json again
    assert (s["LASTFM_USERNAME"], s.source("LASTFM_USERNAME")) == ("from-file", config.CONFIG_FILE)


def test_each_refused_value_is_named_with_its_reason(app):
    with pytest.raises(SettingRefused) as refused:
        _settings(app).save({"TRACKER_INTERVAL_SECONDS": "often", "TIMEZONE": "Mars/Olympus",
                             "DATABASE_URL": "sqlite://", "NO_SUCH": 1, "AI_API_URL": "ftp://x",
                             "AI_LANGUAGE": "x" * 40})
    problems = refused.value.problems
    assert set(problems) == {"TRACKER_INTERVAL_SECONDS", "TIMEZONE", "DATABASE_URL", "NO_SUCH", "AI_API_URL",
                             "AI_LANGUAGE"}
    assert "whole number" in problems["TRACKER_INTERVAL_SECONDS"]
    assert "Mars/Olympus" in problems["TIMEZONE"]
    assert "not from the app" in problems["DATABASE_URL"]
    assert "no setting NO_SUCH" in problems["NO_SUCH"]
    assert _rows(app) == {}


def test_secrets_are_encrypted_at_rest_with_a_private_key(app):
    s = _settings(app)
    s.save({"LASTFM_API_KEY": "key-4f1c9e", "LASTFM_USERNAME": "rj"})
    rows = _rows(app)
    assert rows["LASTFM_API_KEY"][1] and "key-4f1c9e" not in rows["LASTFM_API_KEY"][0]
    assert json.loads(rows["LASTFM_USERNAME"][0]) == "rj" and not rows["LASTFM_USERNAME"][1]
    key_file = app.instance_path + "/settings.key"
    import os

    assert os.stat(key_file).st_mode & 0o077 == 0
    assert s["LASTFM_API_KEY"] == "key-4f1c9e"


def test_a_change_reaches_another_process_at_its_next_refresh(tmp_path, migrated_template):
    instance = tmp_path / "instance"
    first, second = make_app(instance, migrated_template), make_app(instance, migrated_template)
    _settings(first).save({"DISCOGS_TOKEN": "tok-77aa", "TIMEZONE": "Asia/Tokyo"})
    assert _settings(second)["DISCOGS_TOKEN"] is None  # not looked yet
    assert _settings(second).refresh() is True
    assert (_settings(second)["DISCOGS_TOKEN"], _settings(second)["TIMEZONE"]) == ("tok-77aa", "Asia/Tokyo")
    assert _settings(second).refresh() is False, "nothing moved: no reload"
    # A request refreshes first: the second process's pages use the new time zone at once.
    _settings(first).save({"TIMEZONE": "Europe/Lisbon"})
    assert second.test_client().get("/api/v1/settings").get_json()["settings"]["TIMEZONE"]["value"] == "Europe/Lisbon"


def test_a_lost_key_names_the_secrets_to_enter_again(tmp_path, migrated_template):
    instance = tmp_path / "instance"
    app = make_app(instance, migrated_template)
    _settings(app).save({"LASTFM_API_KEY": "k-1", "DISCOGS_TOKEN": "t-1", "LASTFM_USERNAME": "rj"})
    (instance / "settings.key").unlink()
    again = make_app(instance, migrated_template)
    s = _settings(again)
    assert s.lost_secrets == ("DISCOGS_TOKEN", "LASTFM_API_KEY")
    assert s["LASTFM_API_KEY"] is None and s["LASTFM_USERNAME"] == "rj"
    s.save({"LASTFM_API_KEY": "k-2"})  # a new key is made; what is entered again is readable
    assert s["LASTFM_API_KEY"] == "k-2" and s.lost_secrets == ("DISCOGS_TOKEN",)


def test_config_json_unknown_keys_are_named_at_start(tmp_path, migrated_template, caplog):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"LASTFM_API_KEY": "flat", "LASTFM_APIKEY": "typo",
                               "secrets": {"lastfm": {"username": "rj", "user": "x"}, "tidal": {}}}))
    logger = logging.getLogger("sillon")
    was_disabled, logger.disabled = logger.disabled, False  # alembic's fileConfig (the template's migration) turns it off
    try:
        with caplog.at_level(logging.WARNING, logger="sillon"):
            app = make_app(tmp_path / "instance", migrated_template, environ={"SILLON_CONFIG": str(cfg)})
    finally:
        logger.disabled = was_disabled
    assert _settings(app)["LASTFM_API_KEY"] == "flat" and _settings(app)["LASTFM_USERNAME"] == "rj"
    assert _settings(app).layers.unknown_keys == ["LASTFM_APIKEY", "secrets.lastfm.user", "secrets.tidal"]
    warning = next(r.getMessage() for r in caplog.records if "no setting reads" in r.getMessage())
    assert "LASTFM_APIKEY" in warning and "secrets.lastfm.user" in warning and "flat" not in warning
