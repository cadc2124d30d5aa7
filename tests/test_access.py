"""Access control: the login page, the API token, CSRF, login limits, loopback-only without a password.

Apps are real (their own migrated database); requests go through Flask's test client, whose
`CsrfClient` (tests/conftest.py) sends the X-CSRFToken header a page's scripts send, unless a test
passes csrf=False to see what happens without it. One test starts a real gunicorn.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

import config
from tests.browsing import needs_chromium
from tests.conftest import ROOT, base_environ, free_port, make_app, wait_for_job

PASSWORD = "correct horse battery staple"
CHECK = "/api/v1/diagnostics/progress-check?duration=0.05&rate=100"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def locked(tmp_path, migrated_template):
    """An app with APP_PASSWORD set."""
    application = make_app(tmp_path / "locked", migrated_template, environ={"APP_PASSWORD": PASSWORD})
    yield application
    _dispose(application)


@pytest.fixture
def open_app(tmp_path, migrated_template):
    """An app without a password (this machine only)."""
    application = make_app(tmp_path / "open", migrated_template)
    yield application
    _dispose(application)


def _dispose(application):
    for job_id in list(application.extensions["sillon"]["runner"].threads):
        application.extensions["sillon"]["runner"].join(job_id, 10)
    with application.app_context():
        from modules.db import db
        db.engine.dispose()


def sign_in(client, password=PASSWORD, next_url=None, **kwargs):
    data = {"password": password, **({"next": next_url} if next_url else {})}
    return client.post("/login", data=data, **kwargs)


def every_route(app):
    """(method, path) for every route of the app but static files and the login page."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "jobprogress.static", "access.login"):
            continue
        path = adapter.build(rule.endpoint, {arg: 1 for arg in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def job_count(app):
    from modules.db import db
    from modules.models import Job

    with app.app_context():
        try:
            return db.session.execute(sa.select(sa.func.count()).select_from(Job)).scalar()
        finally:
            db.session.remove()


# ----------------------------------------------------------------------------- with a password


def test_with_a_password_every_route_needs_a_sign_in(locked):
    client = locked.test_client()
    routes = list(every_route(locked))
    assert len(routes) > 25  # pages, API, streams, services: the whole app, not a sample
    for method, path in routes:
        resp = client.open(path, method=method)
        if path.startswith("/1/"):  # the ListenBrainz API takes only the token, and answers in its shape
            expected = 400 if path == "/1/validate-token" else 401
            assert resp.status_code == expected and resp.get_json()["code"] == expected, (method, path)
            assert "token" in resp.get_json()["error"].lower()
        elif path.startswith("/api/"):
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert "Sign in" in resp.get_json()["error"]
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert resp.status_code in (302, 303), (method, path, resp.status_code)
            target = urlsplit(resp.headers["Location"])
            assert target.path == "/login", (method, path)
            assert (f"next={path}" in target.query.replace("%2F", "/")) == (method == "GET"), (method, target)
    assert job_count(locked) == 0  # no refused POST started anything


def test_static_files_and_the_login_page_need_no_sign_in(locked):
    client = locked.test_client()
    assert client.get("/static/js/http.js").status_code == 200
    assert client.get("/static/jobprogress/jobprogress.js").status_code == 200  # the progress client
    page = client.get("/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="password"' in html and 'name="csrf_token"' in html
    assert 'href="/settings"' not in html  # the menu waits for the sign-in


def test_a_page_asks_for_a_sign_in_then_comes_back(locked):
    client = locked.test_client()
    resp = client.get("/journal?artist=Bj%C3%B6rk")
    assert resp.status_code == 302
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["next"] == ["/journal?artist=Bj%C3%B6rk"]
    resp = sign_in(client, next_url="/journal?artist=Bj%C3%B6rk")
    assert resp.status_code == 303 and resp.headers["Location"] == "/journal?artist=Bj%C3%B6rk"
    assert client.get("/journal").status_code == 200
    assert client.get("/api/v1/jobs").status_code == 200
    assert 'id="sign-out"' in client.get("/settings").get_data(as_text=True)


def test_a_wrong_password_is_refused_with_a_message(locked):
    client = locked.test_client()
    resp = sign_in(client, "nope")
    assert resp.status_code == 401
    assert "Wrong password." in resp.get_data(as_text=True)
    assert client.get("/api/v1/jobs").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example",
                                    "javascript:alert(1)", "evil.example", "/\r\nSet-Cookie:x=1"])
def test_next_never_leaves_the_site(locked, target):
    client = locked.test_client()
    resp = sign_in(client, next_url=target)
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/journal"


def test_the_login_page_escapes_next(locked):
    html = locked.test_client().get('/login?next=/"><img src=x onerror=alert(1)>').get_data(as_text=True)
    assert "<img src=x" not in html
    assert 'value="/&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in html


def test_signing_out_ends_the_session(locked):
    client = locked.test_client()
    sign_in(client)
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.post("/logout").status_code == 303
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get("/logout").status_code in (302, 405)  # a link cannot sign anyone out


def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(locked):
    client = locked.test_client()
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = locked.test_client()
    resp = sign_in(secure, base_url="https://localhost", headers={"Referer": "https://localhost/login"})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie
    proxied = locked.test_client()
    cookie = sign_in(proxied, headers={"X-Forwarded-Proto": "https"}).headers["Set-Cookie"]
    assert "Secure" in cookie


def test_session_cookie_secure_setting_forces_secure(tmp_path, migrated_template):
    application = make_app(tmp_path / "secure", migrated_template,
                           environ={"APP_PASSWORD": PASSWORD, "SESSION_COOKIE_SECURE": "true"})
    try:
        assert "Secure" in sign_in(application.test_client()).headers["Set-Cookie"]
    finally:
        _dispose(application)


def test_changing_the_password_signs_sessions_out(tmp_path, migrated_template):
    environ = {"APP_PASSWORD": PASSWORD, "SECRET_KEY": "k" * 40}
    first = make_app(tmp_path / "same", migrated_template, environ=environ)
    second = make_app(tmp_path / "same", migrated_template, environ={**environ, "APP_PASSWORD": "another one"})
    try:
        client = first.test_client()
        sign_in(client)
        cookie = client.get_cookie("sillon_session").value
        assert client.get("/api/v1/jobs").status_code == 200
        other = second.test_client()
        other.set_cookie("sillon_session", cookie)
        assert other.get("/api/v1/jobs").status_code == 401
        same = first.test_client()
        same.set_cookie("sillon_session", cookie)
        assert same.get("/api/v1/jobs").status_code == 200  # a second worker of the same app accepts it
    finally:
        _dispose(first)
        _dispose(second)


def test_job_snapshots_and_streams_need_the_session(locked):
    owner = locked.test_client()
    sign_in(owner)
    resp = owner.post(CHECK)
    assert resp.status_code == 202
    job_id = resp.get_json()["job_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id) and uuid.UUID(job_id).version == 4  # unguessable
    wait_for_job(locked, job_id)
    stranger = locked.test_client()
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/events", f"/api/v1/jobs/{job_id}/errors.csv",
                 "/api/v1/jobs"):
        resp = stranger.get(path)
        assert resp.status_code == 401, path
        assert job_id not in resp.get_data(as_text=True)
    assert stranger.get(f"/progress/{job_id}").status_code == 302
    events = owner.get(f"/api/v1/jobs/{job_id}/events")
    assert events.status_code == 200 and "event: done" in events.get_data(as_text=True)


# ----------------------------------------------------------------------------- CSRF


def test_a_signed_in_post_without_the_csrf_token_is_refused(locked):
    client = locked.test_client()
    sign_in(client)
    resp = client.post(CHECK, csrf=False)
    assert resp.status_code == 400
    assert "security token (CSRF" in resp.get_json()["error"]
    resp = client.post(CHECK, csrf=False, headers={"X-CSRFToken": "forged"})
    assert resp.status_code == 400
    assert job_count(locked) == 0
    resp = client.post(CHECK)  # the header the page's scripts send
    assert resp.status_code == 202
    wait_for_job(locked, resp.get_json()["job_id"])


def test_the_login_form_itself_needs_the_csrf_token(locked):
    client = locked.test_client()
    resp = sign_in(client, csrf=False)
    assert resp.status_code == 400
    assert client.get("/api/v1/jobs").status_code == 401


def test_the_token_in_the_page_is_the_one_that_works(locked):
    client = locked.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    field = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"password": PASSWORD, "csrf_token": field}, csrf=False)
    assert resp.status_code == 303
    page = client.get("/settings").get_data(as_text=True)  # signing in starts a fresh session
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert 'name="csrf_token" value="' in page  # the upload form's hidden field
    resp = client.post(CHECK, csrf=False, headers={"X-CSRFToken": token})
    assert resp.status_code == 202
    wait_for_job(locked, resp.get_json()["job_id"])


def test_without_a_password_browser_posts_need_the_csrf_token(open_app):
    client = open_app.test_client()
    # A page another site opens posts with an Origin header (and whatever cookies apply).
    resp = client.post(CHECK, csrf=False, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 400
    client.get("/journal")  # the session cookie now exists
    assert client.post(CHECK, csrf=False).status_code == 400
    assert job_count(open_app) == 0
    resp = client.post(CHECK)
    assert resp.status_code == 202
    wait_for_job(open_app, resp.get_json()["job_id"])


def test_without_a_password_scripts_post_without_a_csrf_token(open_app):
    script = open_app.test_client(use_cookies=False)  # curl, requests: no cookie, no Origin
    resp = script.post(CHECK, csrf=False)
    assert resp.status_code == 202
    wait_for_job(open_app, resp.get_json()["job_id"])


def test_a_form_post_without_its_token_changes_nothing(open_app):
    from modules.db import db
    from modules.models import Album, Artist

    with open_app.app_context():
        artist = Artist(name="A", name_key="a")
        album = Album(artist=artist, title="T", title_key="t", description="kept")
        db.session.add(album)
        db.session.commit()
        album_id = album.id
        db.session.remove()
    client = open_app.test_client()
    html = client.get(f"/albums/{album_id}").get_data(as_text=True)
    assert 'name="csrf_token"' in html
    resp = client.post(f"/albums/{album_id}/description", data={"description": "forged"}, csrf=False)
    assert resp.status_code == 400
    assert "Reload the page" in resp.get_data(as_text=True)
    with open_app.app_context():
        assert db.session.get(Album, album_id).description == "kept"
        db.session.remove()
    field = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    resp = client.post(f"/albums/{album_id}/description", data={"description": "mine", "csrf_token": field},
                       csrf=False)
    assert resp.status_code == 303


# ----------------------------------------------------------------------------- the API token


def test_flask_token_create_makes_a_token_shown_once_and_kept_hashed(locked):
    from modules import preferences
    from modules.web.access import api_token

    runner = locked.test_cli_runner()
    out = runner.invoke(args=["token", "create"])
    assert out.exit_code == 0, out.output
    token = out.output.strip().splitlines()[-1]
    assert len(token) >= 40
    with locked.app_context():
        stored = preferences.get(api_token.HASH_KEY)
    assert stored and token not in str(stored)
    script = locked.test_client(use_cookies=False)
    auth = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/v1/jobs", headers=auth).status_code == 200
    resp = script.post(CHECK, headers=auth, csrf=False)  # no cookie: no CSRF token needed
    assert resp.status_code == 202
    job_id = resp.get_json()["job_id"]
    wait_for_job(locked, job_id)
    events = script.get(f"/api/v1/jobs/{job_id}/events", headers=auth)
    assert events.status_code == 200 and "event: done" in events.get_data(as_text=True)
    assert script.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    # A new token replaces the old one; revoking forgets it.
    newer = runner.invoke(args=["token", "create"]).output.strip().splitlines()[-1]
    assert script.get("/api/v1/jobs", headers=auth).status_code == 401
    assert script.get("/api/v1/jobs", headers={"Authorization": f"Bearer {newer}"}).status_code == 200
    assert runner.invoke(args=["token", "revoke"]).exit_code == 0
    resp = script.get("/api/v1/jobs", headers={"Authorization": f"Bearer {newer}"})
    assert resp.status_code == 401
    assert "flask token create" in resp.get_json()["error"]


def test_the_api_token_setting_works_too(tmp_path, migrated_template):
    application = make_app(tmp_path / "tok", migrated_template,
                           environ={"APP_PASSWORD": PASSWORD, "API_TOKEN": "fake-token-set-by-hand-0123456789"})
    try:
        client = application.test_client(use_cookies=False)
        ok = client.get("/api/v1/jobs", headers={"Authorization": "Bearer fake-token-set-by-hand-0123456789"})
        assert ok.status_code == 200
        assert client.get("/api/v1/jobs", headers={"Authorization": "Bearer a-token"}).status_code == 401
        assert client.get("/api/v1/jobs", headers={"Authorization": "Basic a-token"}).status_code == 401
    finally:
        _dispose(application)


# ----------------------------------------------------------------------------- login limits


def test_five_wrong_passwords_then_429_with_retry_after(locked):
    client = locked.test_client()
    for _ in range(5):
        assert sign_in(client, "guess").status_code == 401
    resp = sign_in(client, "guess")
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 301
    assert "Too many wrong passwords" in resp.get_data(as_text=True)
    # Even the right password waits: guessing stops here.
    assert sign_in(client).status_code == 429
    assert client.get("/api/v1/jobs").status_code == 401
    # Another address is not held back.
    other = locked.test_client()
    assert sign_in(other, environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 303


def test_the_limit_is_shared_by_every_process_and_ends_after_the_window(tmp_path, migrated_template):
    from modules.web.access import login_limit

    first = make_app(tmp_path / "shared", migrated_template, environ={"APP_PASSWORD": PASSWORD})
    second = make_app(tmp_path / "shared", migrated_template, environ={"APP_PASSWORD": PASSWORD})
    try:
        for _ in range(3):
            sign_in(first.test_client(), "guess")
        for _ in range(2):
            sign_in(second.test_client(), "guess")
        assert sign_in(first.test_client()).status_code == 429  # 3 + 2 failures, counted together
        with first.app_context():
            from modules.db import db
            assert login_limit.seconds_blocked("127.0.0.1") > 0
            later = __import__("time").time() + login_limit.WINDOW + 1
            assert login_limit.seconds_blocked("127.0.0.1", now=later) == 0
            db.session.remove()
    finally:
        _dispose(first)
        _dispose(second)


def test_a_right_password_clears_the_failures(locked):
    client = locked.test_client()
    for _ in range(4):
        sign_in(client, "guess")
    assert sign_in(client).status_code == 303
    client.post("/logout")
    for _ in range(4):
        assert sign_in(client, "guess").status_code == 401  # counting starts again


# ----------------------------------------------------------------------------- without a password


def test_without_a_password_everything_answers_on_this_machine(open_app):
    client = open_app.test_client()
    assert client.get("/journal").status_code == 200
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.get("/login").status_code == 302
    assert 'id="sign-out"' not in client.get("/journal").get_data(as_text=True)


@pytest.mark.parametrize("environ_base,headers", [
    ({"REMOTE_ADDR": "192.0.2.10"}, {}),
    ({}, {"X-Forwarded-For": "203.0.113.7"}),
    ({}, {"X-Forwarded-For": "127.0.0.1, 198.51.100.4"}),
    ({}, {"X-Real-IP": "198.51.100.4"}),
])
def test_without_a_password_other_machines_are_refused(open_app, environ_base, headers):
    client = open_app.test_client()
    resp = client.get("/api/v1/jobs", environ_base=environ_base, headers=headers)
    assert resp.status_code == 403
    assert "APP_PASSWORD" in resp.get_json()["error"]
    page = client.get("/journal", environ_base=environ_base, headers=headers)
    assert page.status_code == 403 and "APP_PASSWORD" in page.get_data(as_text=True)


def test_with_a_password_other_machines_may_sign_in(locked):
    client = locked.test_client()
    assert sign_in(client, environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 303
    assert client.get("/api/v1/jobs", environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 200


@pytest.mark.parametrize("bind,refused", [
    ("127.0.0.1:8000", False), ("localhost:8000", False), ("[::1]:8000", False), ("unix:/tmp/s.sock", False),
    ("0.0.0.0:8000", True), (":8000", True), ("[::]:8000", True), ("192.168.1.20:8000", True),
    ("sillon.example.org:80", True),
])
def test_bind_problem(bind, refused):
    assert bool(config.bind_problem([bind], {"APP_PASSWORD": None})) is refused
    assert config.bind_problem([bind], {"APP_PASSWORD": "set"}) is None


def test_gunicorn_refuses_a_public_bind_without_a_password(tmp_path):
    environ = {"PATH": "/usr/bin:/bin", **base_environ(tmp_path), "BIND": f"0.0.0.0:{free_port()}",
               "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Refusing to listen on 0.0.0.0" in done.stderr and "APP_PASSWORD" in done.stderr


def test_a_real_server_with_a_password(server_factory):
    server = server_factory(env={"APP_PASSWORD": PASSWORD, "API_TOKEN": "fake-script-token-0123456789abcdef"})
    assert requests.get(server.url + "/api/v1/jobs", timeout=10).status_code == 401
    assert requests.get(server.url + "/api/v1/jobs/0/events", timeout=10).status_code == 401
    page = requests.get(server.url + "/settings", timeout=10, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=")
    auth = {"Authorization": "Bearer fake-script-token-0123456789abcdef"}
    assert requests.get(server.url + "/api/v1/jobs", headers=auth, timeout=10).status_code == 200
    with requests.Session() as browser_like:
        login = browser_like.get(server.url + "/login", timeout=10).text
        field = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        resp = browser_like.post(server.url + "/login", data={"password": PASSWORD, "csrf_token": field},
                                 timeout=10, allow_redirects=False)
        assert resp.status_code == 303
        assert browser_like.get(server.url + "/api/v1/jobs", timeout=10).status_code == 200
    assert PASSWORD not in server.log()


# ----------------------------------------------------------------------------- in a real browser


@needs_chromium
def test_in_a_browser_sign_in_upload_follow_the_job_and_sign_out(server_factory, browser, tmp_path):
    server = server_factory(env={"APP_PASSWORD": PASSWORD})
    export = tmp_path / "scrobbles.csv"
    export.write_text("Radiohead,OK Computer,Airbag,09 Jun 2008 17:16\nBjörk,Homogenic,Jóga,10 Jun 2008 17:16\n")
    context = browser.new_context()
    context.set_default_timeout(30_000)
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status in (400, 401, 403) else None)
    try:
        page.goto(server.url + "/settings")
        assert urlsplit(page.url).path == "/login"
        page.fill("#password", "not it")
        page.click("#login-form button[type=submit]")
        assert page.locator("#login-error").inner_text() == "Wrong password."
        problems.clear()  # that 401 was the point
        page.fill("#password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(re.compile(r"/settings$"))
        cookie = next(c for c in context.cookies() if c["name"] == "sillon_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        # A form post (hidden csrf_token), then the progress page's stream and polling (cookie), then
        # the move to the journal when the job ends.
        page.set_input_files("#files", str(export))
        page.click("#upload-form button[type=submit]")
        page.wait_for_url(re.compile(r"/journal$"), timeout=60_000)
        assert "Airbag" in page.locator("main").inner_text()
        # A script's POST (X-CSRFToken from the meta tag): the tracker interval.
        page.goto(server.url + "/settings")
        page.fill("#tracker-interval", "300")
        page.click("#tracker-interval-form button[type=submit]")
        page.wait_for_function("document.getElementById('tracker-message').textContent.includes('300')")
        page.click("#sign-out")
        page.wait_for_url(re.compile(r"/login$"))
        page.goto(server.url + "/journal")
        assert urlsplit(page.url).path == "/login"
        assert problems == [], problems
        # A session that ends while a page is open: the page's next request goes back to the login page.
        page.fill("#password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(re.compile(r"/journal$"))
        page.goto(server.url + "/settings")
        context.clear_cookies()
        page.click("#tracker-interval-form button[type=submit]")
        page.wait_for_url(re.compile(r"/login\?next=%2Fsettings$"))
    finally:
        context.close()


def test_the_import_script_sends_the_api_token(server_factory):
    from tests.emulators.lastfm import LastfmEmulator

    with LastfmEmulator() as fm:
        fm.add_listens("rj", [{"uts": 1_600_000_000 + i, "artist": "Air", "title": f"La femme d'argent {i}",
                               "album": "Moon Safari"} for i in range(30)])
        server = server_factory(env={"APP_PASSWORD": PASSWORD, "API_TOKEN": "fake-script-token-0123456789abcdef",
                                     "LASTFM_API_URL": fm.url, "LASTFM_API_KEY": "test-key",
                                     "LASTFM_API_SECRET": "s", "LASTFM_USERNAME": "rj",
                                     "LASTFM_REQUESTS_PER_SECOND": "100"})
        script = [sys.executable, str(ROOT / "scripts" / "import_lastfm_history.py"), "--url", server.url]
        environ = {**os.environ, "PYTHONPATH": str(ROOT)}
        environ.pop("SILLON_API_TOKEN", None)
        refused = subprocess.run(script, capture_output=True, text=True, timeout=60, env=environ)
        assert refused.returncode == 1
        assert "SILLON_API_TOKEN" in refused.stderr
        done = subprocess.run(script, capture_output=True, text=True, timeout=120,
                              env={**environ, "SILLON_API_TOKEN": "fake-script-token-0123456789abcdef"})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "completed" in done.stdout
