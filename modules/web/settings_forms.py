"""The settings page's connection forms: Last.fm, Discogs, Spotify, the AI endpoint, and the general
settings. Saving runs the service's connection test with the values about to be saved, through the
real client library; a refused test saves nothing unless the person chooses "Save anyway".

Secrets are write-only: the page shows whether one is saved (with Replace and Remove), never its
value, and a field the environment sets is read-only there (the environment wins).
"""
from __future__ import annotations

from flask import current_app

import config

from ..stored_settings import SettingRefused
from . import connections
from .i18n import gettext as _
from .i18n import lazy_gettext as _l

# group -> (title, service whose test runs on save or None, fields)
GROUPS = {
    "lastfm": (_l("Last.fm"), "lastfm", ("LASTFM_API_KEY", "LASTFM_API_SECRET", "LASTFM_USERNAME")),
    "discogs": (_l("Discogs"), "discogs", ("DISCOGS_TOKEN", "DISCOGS_USERNAME")),
    "spotify": (_l("Spotify"), "spotify", ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET")),
    "ai": (_l("AI endpoint"), "ai", ("AI_API_URL", "AI_API_KEY", "AI_MODEL", "AI_LANGUAGE")),
    "general": (_l("Tracker, time zone and scrobbling"), None,
                ("TRACKER_INTERVAL_SECONDS", "TIMEZONE", "SCROBBLE_USERNAME")),
}
LABELS = {
    "LASTFM_API_KEY": _l("API key"), "LASTFM_API_SECRET": _l("Shared secret"), "LASTFM_USERNAME": _l("User name"),
    "DISCOGS_TOKEN": _l("Personal access token"), "DISCOGS_USERNAME": _l("User name (default: the token's own)"),
    "SPOTIFY_CLIENT_ID": _l("Client ID"), "SPOTIFY_CLIENT_SECRET": _l("Client secret"),
    "AI_API_URL": _l("Endpoint URL"), "AI_API_KEY": _l("API key"), "AI_MODEL": _l("Model"),
    "AI_LANGUAGE": _l("Descriptions in"), "TRACKER_INTERVAL_SECONDS": _l("Live tracker: every (seconds)"),
    "TIMEZONE": _l("Time zone of the analytics"), "SCROBBLE_USERNAME": _l("Scrobble user name (ListenBrainz API)"),
}
SOURCE_LABELS = {config.ENVIRONMENT: _l("from the environment (it wins: change it there)"),
                 config.SAVED: _l("saved in the app"), config.CONFIG_FILE: _l("from config.json"),
                 config.DEFAULT: _l("default")}


def live():
    return current_app.extensions["sillon"]["settings"]


def field_states(group):
    """What the page shows of each field of `group` (a secret's value never)."""
    s = live()
    rows = []
    for name in GROUPS[group][2]:
        secret = name in config.SECRET_SETTINGS
        value = s[name]
        rows.append({"name": name, "label": str(LABELS[name]), "secret": secret, "locked": s.locked(name),
                     "is_set": value not in (None, ""), "value": None if secret else ("" if value is None else value),
                     "source": s.source(name), "source_label": str(SOURCE_LABELS[s.source(name)]),
                     "lost": name in s.lost_secrets,
                     "type": "number" if name == "TRACKER_INTERVAL_SECONDS" else "url" if name == "AI_API_URL"
                     else "text"})
    return rows


def forms():
    return [{"group": g, "title": str(title), "service": service, "fields": field_states(g)}
            for g, (title, service, _names) in GROUPS.items()]


def _changes(group, form):
    """The changes the submitted form asks for: a typed secret replaces, Remove removes, an untouched
    secret stays; a text field that differs from the value in use is saved (emptied: removed)."""
    s, removing, changes = live(), set(form.getlist("remove")), {}
    for name in GROUPS[group][2]:
        if s.locked(name):
            continue
        given = (form.get(name) or "").strip()
        if name in config.SECRET_SETTINGS:
            if name in removing:
                changes[name] = None
            elif given:
                changes[name] = given
        elif name in form and given != ("" if s[name] is None else str(s[name])):
            changes[name] = given or None
    return changes


def save(group, form):
    """Check, test and save what a connection form asks for: (HTTP status, answer)."""
    _title, service, _names = GROUPS[group]
    changes = _changes(group, form)
    try:
        live().check(changes)
    except SettingRefused as exc:
        return 400, {"ok": False, "problems": exc.problems,
                     "message": _("Nothing was saved: %(why)s", why=" ".join(exc.problems.values()))}
    tested = None
    if service and any(v is not None for v in changes.values()):
        ok, message = connections.check(service, live().candidate(changes))
        tested = {"ok": ok, "message": message}
        if ok is False and not form.get("save_anyway"):
            return 400, {"ok": False, "tested": tested, "can_save_anyway": True,
                         "message": _("Not saved: the test failed. %(answer)s", answer=message)}
    live().save(changes)
    if tested and tested["ok"] is not None:
        connections.record(service, tested["ok"], tested["message"])
    if not changes:
        message = _("Nothing changed.")
    elif tested and tested["ok"] is False:
        message = _("Saved anyway. The test said: %(answer)s", answer=tested["message"])
    elif tested:
        message = _("Saved. %(answer)s", answer=tested["message"])
    else:
        message = _("Saved.")
    return 200, {"ok": True, "tested": tested, "message": message, "saved": sorted(changes)}
