"""The outside services as the settings page shows them: configured or not (names of missing
settings, never a value), when they last worked (the last completed job that used them, or the last
successful connection test), and a connection test: one cheap real call through the real client
library, with a short timeout, whose outcome is kept as a preference."""
from __future__ import annotations

import time
from dataclasses import dataclass

import openai
import sqlalchemy as sa
from flask import current_app

from .. import preferences
from ..db import db
from ..models import Job, utc_iso
from ..sources import ai, discogs, lastfm, spotify
from ..sources.errors import Retryable, SourceError
from .i18n import gettext as _
from .i18n import lazy_gettext as _l

TIMEOUT_SECONDS = 10
SECRET_NAMES = ("LASTFM_API_KEY", "LASTFM_API_SECRET", "DISCOGS_TOKEN", "SPOTIFY_CLIENT_SECRET", "AI_API_KEY",
                "SECRET_KEY")


class CheckFailed(Exception):
    """The service did not answer as it should; the message says why, for the person."""


def _lastfm(settings):
    try:
        network = lastfm.make_network(settings)
        count = lastfm.fetch_playcount(network, settings["LASTFM_USERNAME"])
        # A profile that hides its listens answers user.getInfo but not the listens an import reads.
        lastfm.fetch_recent_page(network, settings["LASTFM_USERNAME"], 1, limit=1)
    except (lastfm.LastfmSettingsError, lastfm.LastfmFatalError, lastfm.LastfmTemporaryError) as exc:
        raise CheckFailed(str(exc)) from None
    return _("Last.fm answers for %(user)s (%(count)s listens there).", user=settings["LASTFM_USERNAME"],
             count=f"{count:,}")


def _discogs(settings):
    client = discogs.make_client(settings, current_app.config["SILLON_VERSION"])
    client.set_timeout(connect=TIMEOUT_SECONDS, read=TIMEOUT_SECONDS)
    try:
        me = discogs.call(client.identity)
        name = discogs.call(lambda: me.username)
    except (SourceError, Retryable) as exc:
        raise CheckFailed(_("Discogs did not answer as it should: %(why)s", why=exc)) from None
    return _("Discogs knows this token: it belongs to %(user)s.", user=name)


def _spotify(settings):
    client = spotify.make_client(settings)
    client.requests_timeout = client.auth_manager.requests_timeout = TIMEOUT_SECONDS
    try:
        spotify.find_album(client, "Radiohead", "OK Computer")
    except (SourceError, Retryable) as exc:
        raise CheckFailed(_("Spotify did not answer as it should: %(why)s", why=exc)) from None
    return _("Spotify accepts the client credentials and answers searches.")


def _ai(settings):
    client = ai.make_client(settings).with_options(timeout=TIMEOUT_SECONDS)
    try:
        models = [m.id for m in client.models.list()]
    except openai.AuthenticationError:
        raise CheckFailed(_("The AI endpoint refused the key (401). Check AI_API_KEY.")) from None
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise CheckFailed(_("Could not reach the AI endpoint at AI_API_URL.")) from None
    except openai.APIStatusError as exc:
        raise CheckFailed(_("The AI endpoint answered HTTP %(status)s.", status=exc.status_code)) from None
    if settings["AI_MODEL"] in models:
        return _("The AI endpoint answers and offers the model %(model)s.", model=settings["AI_MODEL"])
    return _("The AI endpoint answers, but does not list the model %(model)s (some endpoints list only a few).",
             model=settings["AI_MODEL"])


@dataclass(frozen=True)
class Service:
    name: str
    label: str
    missing: callable
    kinds: tuple  # jobs whose completion shows the service worked
    check: callable
    anchor: str  # the settings card that uses it


SERVICES = {
    "lastfm": Service("lastfm", "Last.fm", lastfm.missing_settings, ("lastfm_history", "lastfm_tracker"), _lastfm,
                      "lastfm-card"),
    "discogs": Service("discogs", "Discogs", discogs.missing_settings, ("discogs_sync",), _discogs, "discogs-card"),
    "spotify": Service("spotify", "Spotify", spotify.missing_settings, ("enrich",), _spotify, "enrich-card"),
    "ai": Service("ai", _l("AI endpoint"), ai.missing_settings, ("enrich",), _ai, "enrich-card"),
}


def _settings():
    return current_app.extensions["sillon"]["settings"]


def _key(name):
    return f"service_test.{name}"


def scrub(text, settings):
    """`text` with every configured secret value blotted out (library messages may quote a URL or key)."""
    text = str(text)
    for name in SECRET_NAMES:
        value = settings.get(name)
        if value and len(str(value)) >= 3:
            text = text.replace(str(value), "•••")
    return text


def check(name, settings):
    """Run the service's check with `settings` (the saved ones, or those about to be): (ok, message).

    ok is None when settings are missing (the message names them). Nothing is kept.
    """
    service = SERVICES[name]
    missing = service.missing(settings)
    if missing:
        return None, _("%(service)s is not configured: %(names)s missing. Enter them in its form on the settings "
                       "page.", service=service.label, names=", ".join(missing))
    try:
        ok, message = True, service.check(settings)
    except CheckFailed as exc:
        ok, message = False, str(exc)
    except Exception as exc:  # noqa: BLE001 - any library failure is the person's answer, not a 500
        ok, message = False, _("The test failed: %(why)s", why=f"{exc.__class__.__name__}: {exc}")
    return ok, scrub(message, settings)


def record(name, ok, message):
    """Keep a test's outcome with its time, for the settings page."""
    previous = preferences.get(_key(name)) or {}
    now = time.time()
    preferences.put(_key(name), {"ok": ok, "message": message, "at": now,
                                 "last_ok_at": now if ok else previous.get("last_ok_at")})


def run_test(name):
    """Run the service's check now with the settings in use; returns (ok, message) and keeps the outcome."""
    ok, message = check(name, _settings())
    if ok is not None:
        record(name, ok, message)
    return ok, message


def states():
    """What the settings page shows of each service."""
    settings = _settings()
    rows = []
    for service in SERVICES.values():
        tested = preferences.get(_key(service.name)) or {}
        job_at = db.session.execute(sa.select(sa.func.max(Job.finished_at))
                                    .where(Job.kind.in_(service.kinds), Job.status == "completed")).scalar()
        candidates = [(t, src) for t, src in ((job_at, "job"), (tested.get("last_ok_at"), "test")) if t]
        last_success, source = max(candidates) if candidates else (None, None)
        rows.append({"name": service.name, "label": str(service.label), "missing": service.missing(settings),
                     "anchor": service.anchor, "last_success": last_success, "last_success_iso": utc_iso(last_success), "last_success_source": source,
                     "last_test": tested or None})
    return rows
