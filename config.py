"""Settings: environment variables first, then values saved in the app, then an optional
config.json, then defaults.

config.json takes the flat setting names ({"LASTFM_API_KEY": "..."}) and the grouped layout people
already use:
    {"secrets": {"lastfm": {"api_key", "api_secret", "username"}, "discogs": {...},
                 "spotify": {...}, "tracker": {"interval_seconds": 120}}}
The values saved in the app live in the database (modules/stored_settings); this module only
reads the environment and the file, and says how the layers combine (`resolve`).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _timezone(value):
    """An IANA time zone name that zoneinfo knows, e.g. Europe/Paris."""
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise ValueError(f"{name!r} is not a time zone name zoneinfo knows (IANA names such as "
                         "Europe/Paris, America/New_York or UTC)") from None
    return name


# name -> (config.json path or None, default, converter, description). docs/settings.md's table is
# generated from this (mkdocs_hooks.py), so a setting added here is documented.
SETTINGS = {
    "DATABASE_URL": (None, None, str, "SQLAlchemy URL; default: SQLite file `sillon.db` in the instance folder"),
    "SECRET_KEY": (None, None, str, "Flask session key; default: generated once, kept in `instance/secret_key`"),
    "INSTANCE_PATH": (None, None, str, "Folder for the SQLite database, secret key and uploads; default `./instance`"),
    "PROGRESS_STORE": (None, "database", str, "`database` (every process sees every job), `redis` (snapshots in Redis, changes on pub/sub) or `memory` (one process)"),
    "REDIS_URL": (None, "redis://127.0.0.1:6379/0", str, "Redis for PROGRESS_STORE=redis and the Celery broker"),
    "JOB_RUNNER": (None, "thread", str, "`thread` (jobs run in the server's processes) or `celery` (jobs run in Celery workers: `celery -A app.celery worker`)"),
    "CELERY_BROKER_URL": (None, None, str, "Celery broker for JOB_RUNNER=celery; default: REDIS_URL"),
    "CELERY_QUEUE": (None, "sillon", str, "Celery queue the jobs are sent to and the workers consume"),
    "CELERY_VISIBILITY_TIMEOUT": (None, 3600, int, "Redis broker: seconds before a message taken by a worker that died is delivered again (recovery does not wait for it: JOB_STALE_SECONDS decides)"),
    "PROGRESS_POLL_INTERVAL": (None, 0.1, float, "Seconds between checks for progress published by other processes"),
    "PROGRESS_PUBLISH_INTERVAL": (None, 0.1, float, "Minimum seconds between two publishes of one job's progress"),
    "SSE_HEARTBEAT_SECONDS": (None, 15.0, float, "Seconds between heartbeat comments on an idle event stream"),
    "JOB_HEARTBEAT_SECONDS": (None, 5.0, float, "Seconds between a running job's liveness beats"),
    "JOB_STALE_SECONDS": (None, 30.0, float, "A running job with no beat for this long is taken over by a live runner and continued from its checkpoint (at least three JOB_HEARTBEAT_SECONDS)"),
    "JOB_AUTO_RESUME": (None, True, _bool, "Continue a job whose runner died without anyone pressing Resume (off: it is marked interrupted)"),
    "JOB_MAX_TAKEOVERS": (None, 3, int, "Takeovers of one job in a row (no batch saved in between); its runner's next death stops it with a message"),
    "MAX_UPLOAD_MB": (None, 512, int, "Largest upload accepted, in megabytes (413 above it)"),
    "MAX_UNZIPPED_MB": (None, 4096, int, "Most megabytes a zip upload may unpack to (zip bombs are refused before extracting)"),
    "MIN_PLAY_SECONDS": (None, 30, int, "Spotify plays shorter than this are skipped (and counted)"),
    "UPLOAD_WORKERS": (None, 4, int, "Files of one upload processed in parallel"),
    "IMPORT_BATCH_SIZE": (None, 500, int, "Rows written per database transaction by imports"),
    "SQLITE_BUSY_TIMEOUT_SECONDS": (None, 30.0, float, "SQLite: how long a statement waits for a lock held by another connection before it fails (the wait is in Python, between short tries: the server's pages and streams keep answering)"),
    "DB_WRITE_ATTEMPTS": (None, 6, int, "Tries of one import batch (a transaction) when the database stays locked or busy, before the job stops (resumable)"),
    "DB_RETRY_BASE_SECONDS": (None, 1.0, float, "First wait before a locked or busy batch is tried again; doubles each try, at most 30 s"),
    "LASTFM_API_KEY": ("lastfm.api_key", None, str, "Last.fm API key"),
    "LASTFM_API_SECRET": ("lastfm.api_secret", None, str, "Last.fm API secret"),
    "LASTFM_USERNAME": ("lastfm.username", None, str, "Last.fm user whose history is imported"),
    "LASTFM_API_URL": (None, "https://ws.audioscrobbler.com/2.0/", str, "Last.fm web service URL (http or https; a compatible server or a test emulator)"),
    "LASTFM_REQUESTS_PER_SECOND": (None, 5.0, float, "Most requests started per second towards Last.fm (its rule is 5)"),
    "LASTFM_CONCURRENCY": (None, 4, int, "Last.fm requests kept in flight at once by an import"),
    "LASTFM_RETRY_BASE_SECONDS": (None, 1.0, float, "First wait after a Last.fm rate limit or failure; doubles each try, at most LASTFM_RETRY_MAX_SECONDS"),
    "LASTFM_RETRY_MAX_SECONDS": (None, 60.0, float, "Longest single wait between two tries of a failing Last.fm request"),
    "LASTFM_MAX_ATTEMPTS": (None, 20, int, "Most tries of one Last.fm request in a row; bounds a burst of quick failures (with the defaults LASTFM_OUTAGE_SECONDS ends an outage first)"),
    "LASTFM_OUTAGE_SECONDS": (None, 600.0, float, "Most seconds an import keeps trying one failing Last.fm request (down, unreachable) before it stops (resumable)"),
    "TRACKER_AUTOSTART": (None, True, _bool, "Start the live tracker again after a restart if it was running"),
    "DISCOGS_TOKEN": ("discogs.token", None, str, "Discogs personal access token"),
    "DISCOGS_USERNAME": ("discogs.username", None, str, "Discogs user whose collection is synced (default: the token's own)"),
    "DISCOGS_API_URL": (None, "https://api.discogs.com", str, "Discogs API URL (a compatible server, or a test emulator)"),
    "DISCOGS_RETRY_BASE_SECONDS": (None, 2.0, float, "First wait after a Discogs rate limit or failure; doubles each try, at most 60 s"),
    "DISCOGS_MAX_ATTEMPTS": (None, 8, int, "Tries per Discogs request before a sync stops with an error"),
    "SPOTIFY_CLIENT_ID": ("spotify.client_id", None, str, "Spotify app client id (images)"),
    "SPOTIFY_CLIENT_SECRET": ("spotify.client_secret", None, str, "Spotify app client secret"),
    "SPOTIFY_API_URL": (None, "https://api.spotify.com/v1/", str, "Spotify Web API URL (a compatible server, or a test emulator)"),
    "SPOTIFY_TOKEN_URL": (None, "https://accounts.spotify.com/api/token", str, "Spotify token URL (client credentials)"),
    "AI_API_URL": ("ai.api_url", None, str, "OpenAI-compatible endpoint for album descriptions, e.g. https://api.openai.com/v1"),
    "AI_API_KEY": ("ai.api_key", None, str, "Key of the AI endpoint"),
    "AI_MODEL": ("ai.model", None, str, "Model that writes the descriptions"),
    "AI_LANGUAGE": ("ai.language", "English", str, "Language of the descriptions (also chosen on the settings page)"),
    "ENRICH_RETRY_BASE_SECONDS": (None, 1.0, float, "First wait after a 429 without Retry-After or a failure during enrichment"),
    "ENRICH_MAX_ATTEMPTS": (None, 6, int, "Tries per enrichment request before it counts as an error"),
    "TIMEZONE": (None, "UTC", _timezone, "IANA time zone of the analytics page's hours, weekdays, days and months, e.g. Europe/Paris"),
    "TRACKER_INTERVAL_SECONDS": ("tracker.interval_seconds", 120, int, "How often the live tracker asks for new listens"),
    "APP_PASSWORD": ("access.password", None, str, "Password of the login page; unset, Sillon answers on 127.0.0.1 only"),
    "API_TOKEN": ("access.api_token", None, str, "Bearer token scripts send (or create one with `flask token create`)"),
    "SCROBBLE_USERNAME": ("scrobble.username", None, str, "User name of the ListenBrainz API (`/1/user/<name>/...`); default: LASTFM_USERNAME, else `sillon`"),
    "SESSION_COOKIE_SECURE": (None, False, _bool, "Send the session cookie over https only (automatic when the request is https)"),
}

# Never shown on a page, in a response or in a log line (tests/test_secrets.py checks). The URLs are
# here because they may carry a password (postgresql://user:password@host/db).
SECRET_SETTINGS = frozenset({"SECRET_KEY", "LASTFM_API_KEY", "LASTFM_API_SECRET", "DISCOGS_TOKEN",
                             "SPOTIFY_CLIENT_SECRET", "AI_API_KEY", "DATABASE_URL", "REDIS_URL",
                             "CELERY_BROKER_URL", "APP_PASSWORD", "API_TOKEN"})


# What a person can save on the settings page (and PATCH /api/v1/settings), in the page's order.
# The others (database, runner, access, base URLs, limits) are the operator's: environment or
# config.json, read at start.
APP_SETTINGS = ("LASTFM_API_KEY", "LASTFM_API_SECRET", "LASTFM_USERNAME", "DISCOGS_TOKEN", "DISCOGS_USERNAME",
                "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "AI_API_URL", "AI_API_KEY", "AI_MODEL", "AI_LANGUAGE",
                "TRACKER_INTERVAL_SECONDS", "TIMEZONE", "SCROBBLE_USERNAME")

# Where a value comes from, as the settings page and GET /api/v1/settings name it.
ENVIRONMENT, SAVED, CONFIG_FILE, DEFAULT = "environment", "app", "config.json", "default"


def _from_json(data, dotted):
    node = data.get("secrets", {})
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _unknown_keys(data):
    """The config.json keys Sillon does not read (a typo, or a name from another version)."""
    unknown = [key for key in data if key != "secrets" and key not in SETTINGS]
    paths = {path for path, *_rest in SETTINGS.values() if path}
    groups = data.get("secrets")
    if isinstance(groups, dict):
        known_groups = {path.split(".")[0] for path in paths}
        for group, keys in groups.items():
            if group not in known_groups or not isinstance(keys, dict):
                unknown.append(f"secrets.{group}")
                continue
            unknown += [f"secrets.{group}.{key}" for key in keys if f"{group}.{key}" not in paths]
    elif groups is not None:
        unknown.append("secrets")
    return sorted(unknown)


class Layers:
    """The settings as the environment and config.json give them, before anything saved in the app."""

    def __init__(self, environment, file_values, unknown_keys, config_file, root):
        self.environment = environment  # name -> converted value, for every name set there
        self.file_values = file_values  # name -> converted value
        self.unknown_keys = unknown_keys  # config.json keys no setting reads
        self.config_file = config_file
        self.root = root


def _convert(name, value):
    try:
        return SETTINGS[name][2](value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name} has an invalid value: {exc}") from None


def read_layers(environ=None, config_file=None, root=None):
    """Read the environment and config.json; a bad value or a broken file stops here, named."""
    environ = os.environ if environ is None else environ
    root = Path(root or Path(__file__).resolve().parent)
    config_file = Path(environ.get("SILLON_CONFIG") or config_file or root / "config.json")
    data = {}
    if config_file.is_file():
        try:
            data = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"{config_file} is not valid JSON ({exc}); fix or remove it") from exc
        if not isinstance(data, dict):
            raise RuntimeError(f"{config_file} must hold a JSON object ({{\"NAME\": value, ...}})")
    environment, file_values = {}, {}
    try:
        for name, (json_path, _default, _convert_fn, _doc) in SETTINGS.items():
            if environ.get(name) not in (None, ""):
                environment[name] = _convert(name, environ[name])
            value = data.get(name)  # the flat name wins over the grouped path
            if value in (None, "") and json_path:
                value = _from_json(data, json_path)
            if value not in (None, ""):
                file_values[name] = _convert(name, value)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    return Layers(environment, file_values, _unknown_keys(data), config_file, root)


def resolve(layers, saved=None):
    """(values, sources) of every setting: environment, then saved in the app, then config.json, then default."""
    saved = saved or {}
    values, sources = {}, {}
    for name, (_path, default, convert, _doc) in SETTINGS.items():
        for source, layer in ((ENVIRONMENT, layers.environment), (SAVED, saved), (CONFIG_FILE, layers.file_values)):
            if name in layer:
                values[name], sources[name] = layer[name], source
                break
        else:
            values[name] = convert(default) if default is not None else None
            sources[name] = DEFAULT
    values["INSTANCE_PATH"] = str(Path(values["INSTANCE_PATH"] or layers.root / "instance").resolve())
    return values, sources


def check_value(name, value):
    """`value` converted for setting `name`; ValueError with a message for the person if it does not fit."""
    return _convert(name, value)


def load_settings(environ=None, config_file=None, root=None):
    """Resolve every setting from the environment, config.json and defaults (nothing saved in the app)."""
    return resolve(read_layers(environ, config_file, root))[0]


def settings_problems(settings):
    """Why these settings cannot work together (a list of messages; empty when they can)."""
    problems = []
    beat, stale = settings["JOB_HEARTBEAT_SECONDS"], settings["JOB_STALE_SECONDS"]
    if beat <= 0:
        problems.append(f"JOB_HEARTBEAT_SECONDS must be above 0 (it is {beat:g}).")
    elif stale < 3 * beat:
        problems.append(f"JOB_STALE_SECONDS ({stale:g}) must be at least three JOB_HEARTBEAT_SECONDS ({beat:g}): "
                        "otherwise a job whose beat is merely late is taken from a runner that is alive.")
    if settings["JOB_MAX_TAKEOVERS"] < 0:
        problems.append(f"JOB_MAX_TAKEOVERS must be 0 or more (it is {settings['JOB_MAX_TAKEOVERS']}).")
    if settings["CELERY_VISIBILITY_TIMEOUT"] < 1:
        problems.append("CELERY_VISIBILITY_TIMEOUT must be at least 1 second.")
    if settings["JOB_RUNNER"] not in ("thread", "celery"):
        problems.append(f"JOB_RUNNER must be thread or celery (it is {settings['JOB_RUNNER']!r}).")
    elif settings["JOB_RUNNER"] == "celery" and settings["PROGRESS_STORE"] == "memory":
        problems.append("JOB_RUNNER=celery needs a shared progress store: PROGRESS_STORE=redis or database.")
    return problems


LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches."""
    import ipaddress

    host = (host or "").strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def bind_problem(binds, settings):
    """Why gunicorn must not listen on `binds` with these settings, or None.

    Without APP_PASSWORD nothing asks who is there, so only this machine may connect.
    """
    if settings.get("APP_PASSWORD"):
        return None
    for bind in [binds] if isinstance(binds, str) else binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        host = bind.rsplit(":", 1)[0] if bind.count(":") == 1 or bind.startswith("[") else bind
        if not is_loopback(host):
            return (f"Refusing to listen on {bind}: APP_PASSWORD is not set, so anyone who reaches that address "
                    "would see and change everything in Sillon. Set APP_PASSWORD (environment or config.json "
                    "secrets.access.password), or bind to 127.0.0.1 (BIND=127.0.0.1:8000).")
    return None


def secret_key(instance_path):
    """The key kept in the instance folder, generated on first use (readable by the owner only)."""
    path = Path(instance_path) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_hex(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker wrote it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
