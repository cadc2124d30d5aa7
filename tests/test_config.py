"""Settings: environment over config.json over defaults (docs/settings.md lists them: tests/test_docs.py)."""
import json
from pathlib import Path

import pytest

import config


def test_environment_wins_over_config_json(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"secrets": {"lastfm": {"api_key": "file-key", "username": "rj"},
                                           "tracker": {"interval_seconds": 300}}}))
    settings = config.load_settings({"SILLON_CONFIG": str(cfg), "LASTFM_API_KEY": "env-key"}, root=tmp_path)
    assert settings["LASTFM_API_KEY"] == "env-key"
    assert settings["LASTFM_USERNAME"] == "rj"
    assert settings["TRACKER_INTERVAL_SECONDS"] == 300
    assert settings["PROGRESS_STORE"] == "database"
    assert settings["INSTANCE_PATH"] == str((tmp_path / "instance").resolve())


def test_broken_config_json_is_a_clear_error(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text("{not json")
    with pytest.raises(RuntimeError, match="config.json is not valid JSON"):
        config.load_settings({"SILLON_CONFIG": str(cfg)}, root=tmp_path)


def test_invalid_number_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="MAX_UPLOAD_MB"):
        config.load_settings({"SILLON_CONFIG": str(tmp_path / "none"), "MAX_UPLOAD_MB": "lots"}, root=tmp_path)


def test_secret_key_is_generated_once_and_kept_private(tmp_path):
    key = config.secret_key(tmp_path)
    assert len(key) == 64 and config.secret_key(tmp_path) == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_app_uses_sqlite_in_instance_folder_by_default(tmp_path):
    # Built without the test fixtures' DATABASE_URL (which points at PostgreSQL in that pass).
    from app import create_app
    from tests.conftest import base_environ

    app = create_app({"ENVIRON": base_environ(tmp_path / "instance")})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{Path(app.instance_path) / 'sillon.db'}"
    with app.app_context():
        from modules.db import db
        db.engine.dispose()


def test_app_uses_database_url_when_set(tmp_path):
    from app import create_app
    from tests.conftest import base_environ

    url = "postgresql+psycopg://sillon@db.example:5432/sillon"
    app = create_app({"ENVIRON": {**base_environ(tmp_path / "instance"), "DATABASE_URL": url}})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url

