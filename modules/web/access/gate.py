"""Who may use Sillon: the login page, the API token, CSRF, and one gate every request passes.

With APP_PASSWORD set, every page, API call and event stream needs a signed-in session (the login
page) or `Authorization: Bearer <API token>`. Without it, Sillon answers only on this machine.
Every POST/PUT/PATCH/DELETE from a browser carries a CSRF token (Flask-WTF); requests with the API
token carry no cookie, so they need none.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.security import check_password_hash, generate_password_hash

from ..i18n import gettext as _
from . import api_token, login_limit

bp = Blueprint("access", __name__)
csrf = CSRFProtect()
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_ENDPOINTS = frozenset({"static", "jobprogress.static", "access.login"})
# Blueprints that check the API token themselves and take no cookie (the ListenBrainz API, /1/...).
TOKEN_ONLY_BLUEPRINTS = frozenset({"listenbrainz"})
SESSION_KEY = "signed_in"


class Access:
    """What the gate needs, built once per app: the password's hash, never the password."""

    def __init__(self, settings, secret_key):
        password = settings.get("APP_PASSWORD") or ""
        self.enabled = bool(password)
        self.password_hash = generate_password_hash(password) if password else None
        # Kept in the session: changing APP_PASSWORD (or SECRET_KEY) signs every session out.
        self.session_mark = hmac.new(secret_key.encode(), b"sillon-login:" + password.encode(),
                                     hashlib.sha256).hexdigest()[:32] if password else None
        self.api_token = settings.get("API_TOKEN") or None

    def password_matches(self, given):
        return bool(self.password_hash) and check_password_hash(self.password_hash, given or "")

    def signed_in(self):
        mark = session.get(SESSION_KEY)
        return bool(self.enabled and isinstance(mark, str) and hmac.compare_digest(mark, self.session_mark))


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over https (or a proxy says so)."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure
                    or request.headers.get("X-Forwarded-Proto", "").lower() == "https")


def access():
    return current_app.extensions["sillon"]["access"]


def client_address():
    """The address rate limits count against: behind a local proxy, the last hop it added."""
    from config import is_loopback

    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
    if forwarded and is_loopback(request.remote_addr):
        return forwarded[-1][:64]
    return (request.remote_addr or "unknown")[:64]


def _from_this_machine():
    from config import is_loopback

    hops = [request.remote_addr or ""]
    hops += [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
    hops += [request.headers[h] for h in ("X-Real-IP",) if h in request.headers]
    return all(is_loopback(h) for h in hops)


def _from_a_browser():
    # Browsers send Origin on every POST (and Sec-Fetch-Site); scripts such as curl send neither, and
    # without a cookie they hold nothing a forged request could borrow.
    return any(h in request.headers for h in ("Cookie", "Origin", "Sec-Fetch-Site"))


def _bearer():
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _wants_json():
    return request.path.startswith(("/api/", "/1/"))


def _refuse(status, message):
    if _wants_json():
        response = jsonify({"error": message})
        response.status_code = status
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="Sillon"'
        return response
    return render_template("error.html", title=_("Not allowed"), message=message), status


def gate():
    """Runs before every request: sign-in or token, this-machine-only without a password, CSRF."""
    gate_state = access()
    if not gate_state.enabled and not _from_this_machine():
        return _refuse(403, _("Sillon has no APP_PASSWORD, so it only answers on this machine (127.0.0.1). "
                              "Set APP_PASSWORD to use it from elsewhere."))
    if request.blueprint in TOKEN_ONLY_BLUEPRINTS:
        return None
    token = _bearer()
    if token is not None:
        if not api_token.matches(token, gate_state.api_token):
            return _refuse(401, _("The API token is not valid. Create one with `flask token create`."))
        return None  # no cookie is involved, so no CSRF check either
    if gate_state.enabled and request.endpoint not in PUBLIC_ENDPOINTS and not gate_state.signed_in():
        if _wants_json():
            return _refuse(401, _("Sign in first, or send Authorization: Bearer <API token>."))
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("access.login", next=_here()))
        return redirect(url_for("access.login"), 303)  # a form sent signed out is not sent again
    if request.method in UNSAFE_METHODS and (gate_state.enabled or _from_a_browser()):
        csrf.protect()
    return None


def _here():
    return request.full_path.rstrip("?") if request.query_string else request.path


def safe_next(target):
    """`target` if it is a path on this site, else the journal: never an open redirect."""
    target = (target or "").strip()
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith(("//", "/\\")) or parts.scheme or parts.netloc
            or any(c in target for c in "\r\n\t\\")):
        return url_for("pages.journal")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    gate_state = access()
    next_url = safe_next(request.values.get("next"))
    if not gate_state.enabled:
        return redirect(next_url)
    if request.method == "GET":
        if gate_state.signed_in():
            return redirect(next_url)
        return render_template("login.html", next_url=next_url, error=None)
    address = client_address()
    wait = login_limit.seconds_blocked(address)
    if wait:
        minutes = max(1, round(wait / 60))
        message = _("Too many wrong passwords from your address. Try again in %(n)s minutes.", n=minutes)
        response = current_app.make_response((render_template("login.html", next_url=next_url, error=message), 429))
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if not gate_state.password_matches(request.form.get("password")):
        login_limit.record_failure(address)
        return render_template("login.html", next_url=next_url, error=_("Wrong password.")), 401
    login_limit.forget(address)
    session.clear()  # a fresh session (and CSRF token) after signing in
    session[SESSION_KEY] = gate_state.session_mark
    session.permanent = True
    return redirect(next_url, 303)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("access.login") if access().enabled else url_for("pages.journal"), 303)


def init_app(app):
    settings = app.extensions["sillon"]["settings"]
    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False,  # the gate decides which requests need it (not the API token's)
        WTF_CSRF_TIME_LIMIT=None,  # valid while the session lasts: a page left open still posts
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.get("SESSION_COOKIE_SECURE")),
        SESSION_COOKIE_NAME="sillon_session",
        # A sign-in lasts PERMANENT_SESSION_LIFETIME (31 days) from when it happened; the cookie is not
        # signed and sent again on every request.
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.session_interface = SessionInterface()
    app.extensions["sillon"]["access"] = Access(settings, app.config["SECRET_KEY"])
    csrf.init_app(app)
    app.register_blueprint(bp)
    app.before_request(gate)

    @app.errorhandler(CSRFError)
    def csrf_failed(exc):
        message = _("This form or request has no valid security token (CSRF: %(why)s). Reload the page and try "
                    "again; scripts send Authorization: Bearer <API token> instead.", why=exc.description)
        return _refuse(400, message)

    @app.context_processor
    def access_context():
        gate_state = access()
        return {"access_enabled": gate_state.enabled, "signed_in": gate_state.signed_in()}
