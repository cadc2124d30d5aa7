"""Secrets never reach a page, a response, an event stream, a log line or the repository.

Every secret setting (config.SECRET_SETTINGS) gets a unique random value; real jobs run against the
emulators (Discogs sync, Last.fm history import, enrichment through Spotify, Last.fm and the AI
endpoint), with the right credentials and with refused ones (error messages are where URLs and
tokens tend to slip out). Then every GET route is fetched with real ids, event streams included,
and every response body and header, all log output at DEBUG (caplog) and a real gunicorn's whole
output are searched for each value. A last test scans the files git tracks for anything shaped like
a real key.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import subprocess
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa

import config
from tests.conftest import DATABASE, ROOT, make_app, wait_for_job
from tests.emulators.discogs import DiscogsEmulator
from tests.emulators.lastfm import LastfmEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.spotify import SpotifyEmulator


def _secret():
    return "zq" + secrets.token_hex(16)


URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")  # secret for the password they may hold


@pytest.fixture
def values():
    """A fresh random value for every secret setting (for the URLs: the password they carry)."""
    return {name: _secret() for name in config.SECRET_SETTINGS}


@pytest.fixture
def emus(values):
    with DiscogsEmulator(token=values["DISCOGS_TOKEN"]) as dc, \
            SpotifyEmulator(client_secret=values["SPOTIFY_CLIENT_SECRET"]) as sp, \
            OpenAIEmulator(api_key=values["AI_API_KEY"]) as oa, \
            LastfmEmulator(api_key=values["LASTFM_API_KEY"]) as fm:
        dc.add_item(101, title="Kind of Blue", artists=["Miles Davis"], year=1959)
        dc.add_item(102, title="Blue Train", artists=["John Coltrane"], year=1957)
        sp.add_artist("Miles Davis", "https://i.scdn.co/image/miles")
        sp.add_album("Miles Davis", "Kind of Blue", "https://i.scdn.co/image/kob")
        fm.add_listens("rj", [{"uts": 1_600_000_000 + i, "artist": "Massive Attack", "title": f"Teardrop {i}",
                               "album": "Mezzanine"} for i in range(5)])
        yield type("Emus", (), {"dc": dc, "sp": sp, "oa": oa, "fm": fm})


def environ_for(values, e):
    environ = {name: value for name, value in values.items() if name not in URL_SETTINGS}
    environ.update({name: f"redis://:{values[name]}@127.0.0.1:6379/0" for name in ("REDIS_URL", "CELERY_BROKER_URL")})
    environ.update({
        "DISCOGS_API_URL": e.dc.url, "DISCOGS_RETRY_BASE_SECONDS": 0.01, "DISCOGS_MAX_ATTEMPTS": 2,
        "SPOTIFY_CLIENT_ID": "test-id", "SPOTIFY_API_URL": e.sp.api_prefix, "SPOTIFY_TOKEN_URL": e.sp.token_url,
        "AI_API_URL": e.oa.base_url, "AI_MODEL": "tiny",
        "LASTFM_API_URL": e.fm.url, "LASTFM_USERNAME": "rj", "LASTFM_RETRY_BASE_SECONDS": 0.01,
        "LASTFM_REQUESTS_PER_SECOND": 100, "LASTFM_MAX_ATTEMPTS": 2, "ENRICH_RETRY_BASE_SECONDS": 0.01,
        "ENRICH_MAX_ATTEMPTS": 2,
    })
    return environ


def with_database_password(instance, values):
    """On PostgreSQL, the database URL carries a password too (trust auth ignores it)."""
    if DATABASE != "postgresql":
        return {}
    from tests.conftest import POSTGRES

    url = POSTGRES.for_instance(instance)
    return {"DATABASE_URL": url.replace("postgres@", f"postgres:{values['DATABASE_URL']}@", 1)}


def forms(value):
    """The shapes a value could leak in: as is, URL-quoted, and in a URL's user part."""
    return {value, quote(value, safe=""), quote(value)}


def leaks(text, values):
    return [name for name, value in values.items() if any(form in text for form in forms(value))]


def run(app, client, path, **kwargs):
    resp = client.post(path, **kwargs)
    assert resp.status_code in (202, 200), (path, resp.get_data(as_text=True))
    job_id = resp.get_json().get("job_id")
    if job_id:
        wait_for_job(app, job_id, timeout=60)
    return job_id


def _playlists(app):
    with app.app_context():
        from modules.db import db
        from modules.models import Playlist

        return db.session.execute(sa.select(Playlist.id)).scalars().all() or [1]


def _panels(_app):
    from modules.web.analytics import PANELS

    return list(PANELS)


OTHER_ARGUMENTS = {"code": lambda _app: ["en", "fr"], "panel": _panels, "playlist_id": _playlists,
                   "user": lambda _app: ["sillon"], "_rest": lambda _app: ["no-such-route"]}
ENDLESS = {"journal_live.events"}  # a stream that never ends by itself: its first events are read


def every_get(app, client, ids, albums):
    """Text of every GET route's answer (body and headers), with every real id for its arguments."""
    out = []
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint.split(".")[-1] == "static":  # files, the package's too
            continue
        choices = [{}]
        if "job_id" in rule.arguments:
            choices = [{"job_id": j} for j in ids]
        elif "album_id" in rule.arguments:
            choices = [{"album_id": a} for a in albums]
        elif rule.arguments:  # every other argument: each value it can take that shows something
            name = next(iter(rule.arguments))
            choices = [{name: v} for v in OTHER_ARGUMENTS[name](app)]
        for args in choices:
            path = adapter.build(rule.endpoint, args)
            if rule.endpoint in ENDLESS:
                resp = client.get(path, buffered=False)
                body = next(iter(resp.response))
                resp.close()
                out.append(f"{path} {resp.status_code} {resp.headers}\n{body}")
                continue
            resp = client.get(path)
            out.append(f"{path} {resp.status_code} {resp.headers}\n{resp.get_data(as_text=True)}")
    for path in ("/api/v1/listens/export?format=json", "/journal?artist=Massive", "/no-such-page",
                 "/api/v1/no-such-thing", "/timeline?unit=day"):
        resp = client.get(path)
        out.append(f"{path} {resp.status_code} {resp.headers}\n{resp.get_data(as_text=True)}")
    return out


def job_ids(app):
    from modules.db import db
    from modules.models import Album, Job

    with app.app_context():
        try:
            return (db.session.query(Job.id).all(), db.session.query(Album.id).all())
        finally:
            db.session.remove()


@pytest.fixture
def every_logger():
    """Loggers as a server has them: the migrations' logging.config.fileConfig (run by the session's
    template database) disables every logger that existed then, urllib3's and openai's among them."""
    disabled = [lg for lg in logging.root.manager.loggerDict.values()
                if isinstance(lg, logging.Logger) and lg.disabled]
    for lg in disabled:
        lg.disabled = False
    yield
    for lg in disabled:
        lg.disabled = True


def test_no_secret_in_any_page_response_stream_or_log(tmp_path, migrated_template, values, emus, caplog,
                                                      every_logger):
    caplog.set_level(logging.DEBUG)
    instance = tmp_path / "instance"
    environ = {**environ_for(values, emus), **with_database_password(instance, values)}
    app = make_app(instance, migrated_template, environ=environ)
    wrong = {name: _secret() for name in ("DISCOGS_TOKEN", "SPOTIFY_CLIENT_SECRET", "AI_API_KEY", "LASTFM_API_KEY")}
    refused = make_app(tmp_path / "refused", migrated_template,
                       environ={**environ, **wrong, **with_database_password(tmp_path / "refused", values)})
    seen = []
    try:
        client = app.test_client()
        resp = client.post("/login", data={"password": values["APP_PASSWORD"]})
        assert resp.status_code == 303
        seen.append(client.post("/login", data={"password": "wrong"}).get_data(as_text=True))
        run(app, client, "/api/v1/services/discogs/sync")
        run(app, client, "/api/v1/services/lastfm/import-history")
        run(app, client, "/api/v1/services/ai/enrich-all")
        seen.append(client.post("/api/v1/services/lastfm/check").get_data(as_text=True))
        seen.append(client.post("/api/v1/services/ai/enrich-all", csrf=False).get_data(as_text=True))  # CSRF
        script = app.test_client(use_cookies=False)
        bearer = {"Authorization": f"Bearer {values['API_TOKEN']}"}
        seen.append(script.get("/api/v1/jobs", headers=bearer).get_data(as_text=True))
        seen.append(script.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"}).get_data(as_text=True))
        lb = {"Authorization": f"Token {values['API_TOKEN']}"}  # the ListenBrainz API (/1/...)
        seen.append(script.get("/1/validate-token", headers=lb).get_data(as_text=True))
        seen.append(script.post("/1/submit-listens", headers=lb, csrf=False, data=json.dumps({"listen_type": "playing_now", "payload": [
            {"track_metadata": {"artist_name": "A", "track_name": "B"}}]})).get_data(as_text=True))
        seen.append(script.get("/1/user/nobody/listens", headers=lb).get_data(as_text=True))
        jobs, albums = job_ids(app)
        assert len(jobs) == 3 and albums
        seen += every_get(app, client, [j for (j,) in jobs], [a for (a,) in albums])

        # Refused credentials: the errors say what to fix, never the value.
        rclient = refused.test_client()
        rclient.post("/login", data={"password": values["APP_PASSWORD"]})
        seen.append(rclient.post("/api/v1/services/lastfm/check").get_data(as_text=True))
        run(refused, rclient, "/api/v1/services/discogs/sync")
        run(refused, rclient, "/api/v1/services/ai/enrich-all")
        rjobs, _ = job_ids(refused)
        seen += every_get(refused, rclient, [j for (j,) in rjobs], [])
        messages = " ".join(seen)
        assert "DISCOGS_TOKEN" in messages  # the refusal was reached and named the setting
    finally:
        for application in (app, refused):
            for job_id in list(application.extensions["sillon"]["runner"].threads):
                application.extensions["sillon"]["runner"].join(job_id, 10)
            with application.app_context():
                from modules.db import db
                db.engine.dispose()
    everything = {**values, **wrong}
    for text in seen:
        assert leaks(text, everything) == [], text[:2000]
    logged = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    loggers = {r.name.split(".")[0] for r in caplog.records}
    assert {"urllib3", "openai", "pylast", "spotipy", "httpx2"} <= loggers, loggers  # the libraries did log
    assert leaks(logged, everything) == [], [r.getMessage()[:300] for r in caplog.records
                                             if leaks(r.getMessage(), everything)][:5]


def test_no_secret_in_a_real_servers_output(server_factory, values, emus):
    environ = {k: str(v) for k, v in environ_for(values, emus).items()}
    server = server_factory(env={**environ, "LOG_LEVEL": "debug"})
    auth = {"Authorization": f"Bearer {values['API_TOKEN']}"}
    seen = []
    resp = requests.post(server.url + "/api/v1/services/discogs/sync", headers=auth, timeout=30)
    assert resp.status_code == 202, resp.text
    # ListenBrainz clients may send the token in the query string, which an access log line holds.
    token = {"token": values["API_TOKEN"]}
    checked = requests.get(server.url + "/1/validate-token", params=token, timeout=30).json()
    assert checked["valid"] is True
    assert requests.get(server.url + f"/1/user/{checked['user_name']}/listens", params=token,
                        timeout=30).status_code == 200
    events = requests.get(server.url + resp.json()["events_url"], headers=auth, timeout=60)
    assert "event: done" in events.text
    seen.append(events.text)
    with requests.Session() as browser_like:
        login = browser_like.get(server.url + "/login", timeout=10).text
        field = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        browser_like.post(server.url + "/login", data={"password": "wrong", "csrf_token": field}, timeout=10)
        resp = browser_like.post(server.url + "/login", data={"password": values["APP_PASSWORD"], "csrf_token": field},
                                 timeout=10)
        for path in ("/settings", "/jobs", "/collection", "/journal", "/api/v1/jobs",
                     "/api/v1/services/discogs/sync/progress", "/api/v1/services/tracker/status"):
            page = browser_like.get(server.url + path, timeout=30)
            assert page.status_code == 200, path
            seen.append(f"{page.headers}\n{page.text}")
    server.stop()
    output = server.log_path.read_text(errors="replace")
    assert "GET /settings" in output  # the access log was on
    assert "GET /1/validate-token?token=[redacted]" in output
    for text in seen + [output]:
        assert leaks(text, values) == [], text[:2000]


# ----------------------------------------------------------------------------- the repository

# A name that says "secret" next to a long random-looking value.
KEYLIKE = re.compile(
    r"""(?ix)(api[_-]?key|secret|token|password|passwd|auth)[\w.-]*["']?\s*[:=]\s*["']?
        ([A-Za-z0-9+/_\-]{24,}={0,2})""")
# Shapes of real keys from well-known services, whatever they are named.
KNOWN = re.compile(r"(sk-[A-Za-z0-9]{32,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36}|xox[abp]-[A-Za-z0-9-]{20,}"
                   r"|-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----)")
# Test fixtures say they are fake in the value itself.
FAKE = re.compile(r"(?i)(fake|test|example|dummy|sample|placeholder|not-a-real|x{8,})")


def looks_random(value):
    return len(set(value)) >= 12 and bool(re.search(r"\d", value)) and bool(re.search(r"[A-Za-z]", value))


def test_no_file_in_git_holds_a_real_looking_key():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    found = []
    for name in filter(None, files.decode().split("\0")):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", "ignore")
        for match in KEYLIKE.finditer(text):
            value = match.group(2)
            if looks_random(value) and not FAKE.search(value):
                found.append(f"{name}: {match.group(0)[:80]}")
        found += [f"{name}: {m.group(0)[:40]}" for m in KNOWN.finditer(text) if not FAKE.search(m.group(0))]
    assert found == [], found


def test_the_repository_scan_finds_a_planted_key(tmp_path):
    planted = f'DISCOGS_TOKEN = "{secrets.token_urlsafe(30)}"\n'
    assert any(looks_random(m.group(2)) and not FAKE.search(m.group(2)) for m in KEYLIKE.finditer(planted))
    assert KNOWN.search("key = sk-" + secrets.token_hex(20))
    assert not [m for m in KEYLIKE.finditer('api_key="test-key-0123456789abcdefghijkl"')
                if not FAKE.search(m.group(2))]


def test_config_json_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", "config.json"], cwd=ROOT)
    assert ignored.returncode == 0


FORM_SECRETS = {"lastfm": ("LASTFM_API_KEY", "LASTFM_API_SECRET"), "discogs": ("DISCOGS_TOKEN",),
                "spotify": ("SPOTIFY_CLIENT_SECRET",), "ai": ("AI_API_KEY",)}


def database_text(app, instance):
    """Everything the database holds, as bytes: the SQLite files, or every row of every PostgreSQL table."""
    if DATABASE != "postgresql":
        return b"".join(p.read_bytes() for p in instance.glob("sillon.db*"))
    from modules.db import db

    with app.app_context():
        try:
            tables = sa.inspect(db.engine).get_table_names()
            return "\n".join(str(db.session.execute(sa.text(f'SELECT * FROM "{t}"')).all()) for t in tables).encode()
        finally:
            db.session.remove()


def test_secrets_saved_through_the_forms_never_come_back(tmp_path, migrated_template, values, emus, caplog,
                                                         every_logger):
    caplog.set_level(logging.DEBUG)
    instance = tmp_path / "instance"
    typed = {name for names in FORM_SECRETS.values() for name in names}
    environ = {k: v for k, v in environ_for(values, emus).items() if k not in typed}
    app = make_app(instance, migrated_template, environ={**environ, **with_database_password(instance, values)})
    seen = []
    try:
        client = app.test_client()
        assert client.post("/login", data={"password": values["APP_PASSWORD"]}).status_code == 303
        wrong = _secret()
        refused = client.post("/settings/connect/lastfm", headers={"Accept": "application/json"},
                              data={"LASTFM_API_KEY": wrong, "LASTFM_API_SECRET": values["LASTFM_API_SECRET"]})
        assert refused.status_code == 400 and "refused the API key" in refused.get_json()["message"]
        seen.append(refused.get_data(as_text=True))
        seen.append(client.post("/settings/connect/lastfm", data={"LASTFM_API_KEY": wrong}).get_data(as_text=True))
        for group, names in FORM_SECRETS.items():
            resp = client.post(f"/settings/connect/{group}", headers={"Accept": "application/json"},
                               data={name: values[name] for name in names})
            assert resp.status_code == 200, (group, resp.get_json())
            seen.append(resp.get_data(as_text=True))
        settings = app.extensions["sillon"]["settings"]
        assert all(settings.source(name) == "app" for name in typed)
        run(app, client, "/api/v1/services/discogs/sync")
        run(app, client, "/api/v1/services/lastfm/import-history")
        run(app, client, "/api/v1/services/ai/enrich-all")
        for name in ("lastfm", "discogs", "spotify", "ai"):
            seen.append(client.post(f"/api/v1/services/{name}/test").get_data(as_text=True))
        seen.append(client.patch("/api/v1/settings", json={"AI_MODEL": "tiny"}).get_data(as_text=True))
        jobs, albums = job_ids(app)
        assert len(jobs) == 3 and albums
        seen += every_get(app, client, [j for (j,) in jobs], [a for (a,) in albums])
        assert '"is_set": true' in client.get("/api/v1/settings").get_data(as_text=True).replace('":true', '": true')
    finally:
        for job_id in list(app.extensions["sillon"]["runner"].threads):
            app.extensions["sillon"]["runner"].join(job_id, 10)
    secrets_typed = {name: values[name] for name in typed} | {"wrong": wrong}
    for text in seen:
        assert leaks(text, secrets_typed) == [], text[:2000]
    logged = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "settings saved in the app" in logged  # the save was logged, by name
    assert leaks(logged, secrets_typed) == []
    stored = database_text(app, instance)
    assert stored and [n for n, v in secrets_typed.items() if v.encode() in stored] == []
    with app.app_context():
        from modules.db import db
        db.engine.dispose()
