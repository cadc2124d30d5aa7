"""Sillon: create_app() builds everything; `app` is what gunicorn serves ("app:app")."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from flask_jobprogress import make_store
from sqlalchemy.exc import OperationalError, ProgrammingError

import config as config_module
from modules import VERSION
from modules import db as db_module
from modules.jobs import make_runner
from modules.jobs.reaper import reap
from modules.stored_settings import Cipher, LiveSettings
from modules.web import cli as cli_module
from modules.web import i18n
from modules.web import init_app as init_web

ROOT = Path(__file__).resolve().parent
__version__ = VERSION
log = logging.getLogger("sillon")
STORE_BUSY_SECONDS = 0.5
REDIS_PREFIX = "sillon:progress"  # the Redis store's channel and key prefix (kept from before the package)


def engine_options(url):
    options = {"pool_pre_ping": True}
    if not url or url.startswith("sqlite"):
        # sqlite3 keeps 128 prepared statements per connection; batch SQL varies in length, so
        # they pile up (~50 MB over a large import). A few are all the app reuses.
        options["connect_args"] = {"cached_statements": 16}
    return options


def create_app(config=None):
    """Build the app from settings (environment, config.json, defaults), overridden by `config`."""
    config = dict(config or {})
    environ = config.pop("ENVIRON", None)
    layers = config_module.read_layers(environ=environ, root=ROOT)
    # Values given to create_app count as the environment: set by whoever starts the process.
    for name, value in config.items():
        if name in config_module.SETTINGS and value is not None:
            try:
                layers.environment[name] = config_module.check_value(name, value)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from None
    settings = config_module.resolve(layers)[0]
    instance = Path(settings["INSTANCE_PATH"])
    instance.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, instance_path=str(instance))
    app.config.update(
        SECRET_KEY=settings["SECRET_KEY"] or config_module.secret_key(instance),
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"] or f"sqlite:///{instance / 'sillon.db'}",
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=settings["MAX_UPLOAD_MB"] * 1024 * 1024,
        MIGRATIONS_DIR=ROOT / "migrations",
        UPLOAD_DIR=instance / "uploads",
        SILLON_VERSION=__version__,
        SQLITE_BUSY_TIMEOUT_SECONDS=settings["SQLITE_BUSY_TIMEOUT_SECONDS"],
    )
    app.config.update({k: v for k, v in config.items() if k not in config_module.SETTINGS})
    db_module.init_app(app)
    i18n.init_app(app, ROOT)
    problems = config_module.settings_problems(settings)
    if problems:
        raise RuntimeError("Sillon cannot start with these settings:\n- " + "\n- ".join(problems))
    with app.app_context():
        # The progress store's writes wait briefly for a lock: while another program holds the
        # database, the latest progress still reaches this process's pages (store.publish), and
        # the tracker publishes it again later.
        engine = db_module.db.engine
        store_engine = engine.execution_options(**{db_module.BUSY_SECONDS: STORE_BUSY_SECONDS})
        store = make_store(settings["PROGRESS_STORE"], engine=store_engine, redis_url=settings["REDIS_URL"],
                           redis_prefix=REDIS_PREFIX,
                           **({"poll_interval": settings["PROGRESS_POLL_INTERVAL"]}
                              if settings["PROGRESS_STORE"] == "database" else {}))
    # The live settings: what is saved in the app joins in here, and every request, job and tracker
    # poll follows later changes (modules/stored_settings).
    settings = LiveSettings(layers, engine, Cipher(instance))
    settings.refresh()
    if layers.unknown_keys:
        log.warning("%s: keys no setting reads, ignored: %s (the setting names are listed in docs/settings.md)",
                    layers.config_file, ", ".join(layers.unknown_keys))
    app.extensions["sillon"] = {"settings": settings, "progress_store": store, "runner": make_runner(settings["JOB_RUNNER"], settings=settings)}
    init_web(app)
    cli_module.init_app(app)
    with app.app_context():
        try:
            reap(startup=True)  # jobs whose runner died while this process was down: continued here
        except (OperationalError, ProgrammingError):
            log.warning("database not migrated yet: run `make migrate` (make run does it)")
        finally:
            db_module.db.session.remove()
    return app


def _module_app():
    # gunicorn imports "app:app"; tools that only import create_app should not build one.
    return create_app()


def _module_celery():
    # `celery -A app.celery worker`: the Celery app, configured from the same settings; each
    # worker process builds its Flask app (create_app) once, on its first job.
    from modules.jobs.celery_app import configure

    return configure(config_module.load_settings(root=ROOT), app_factory=create_app)


def __getattr__(name):
    if name == "app":
        value = globals()["app"] = _module_app()
        return value
    if name == "celery":
        value = globals()["celery"] = _module_celery()
        return value
    raise AttributeError(name)
