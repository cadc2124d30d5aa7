"""The ListenBrainz API at the host's root (/1/...), so players and scrobblers can send listens here.

Shapes, status codes and error bodies follow ListenBrainz (`{"code": 400, "error": "..."}`), so its
client libraries and the players that speak it work unchanged; clients join `/1/...` onto the base
URL, and some drop any path, hence the root. Only the app's API token authenticates it (sent as
`Authorization: Token <token>`, or `?token=`): no session cookie, so no CSRF either. The access
gate still applies its first rule: without APP_PASSWORD, this machine only.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from ..db import db
from ..importers import listen_feed, scrobbles
from ..importers.listens import KnownIds
from ..models import Album, Artist, Listen, Track
from .access import access, api_token
from .listenbrainz_payload import MAX_PAYLOAD_SIZE, PayloadRefused, parse_submission

bp = Blueprint("listenbrainz", __name__, url_prefix="/1")
DEFAULT_COUNT, MAX_COUNT = 25, 100
MAX_TIMESTAMP = 2 ** 53  # larger numbers are no time (and overflow a database integer)


class LBError(Exception):
    """An answer in ListenBrainz's error shape."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


@bp.record_once
def _keep_known_ids(state):
    # Ids of artists, albums and tracks already stored, for every submission this app receives.
    state.app.extensions["sillon"]["scrobble_ids"] = KnownIds()


@bp.errorhandler(LBError)
def lb_error(exc):
    return jsonify({"code": exc.status, "error": exc.message}), exc.status


@bp.errorhandler(PayloadRefused)
def payload_refused(exc):
    return jsonify(exc.as_dict()), 400


def user_name():
    """The name clients use for the one person of this Sillon: SCROBBLE_USERNAME, else the Last.fm user."""
    settings = current_app.extensions["sillon"]["settings"]
    return settings.get("SCROBBLE_USERNAME") or settings.get("LASTFM_USERNAME") or "sillon"


def _given_token():
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return request.args.get("token") or None


def _token_is_valid(token):
    return api_token.matches(token, access().api_token)


@bp.before_request
def require_token():
    if request.endpoint == "listenbrainz.validate_token":
        return None  # it answers whether the token is valid, as ListenBrainz does
    token = _given_token()
    if token is None:
        raise LBError(401, "You need to provide an Authorization header (Authorization: Token <Sillon's API "
                           "token>; make one with `flask token create`).")
    if not _token_is_valid(token):
        raise LBError(401, "Invalid authorization token. Use Sillon's API token (API_TOKEN, or one made with "
                           "`flask token create`).")
    return None


@bp.get("/validate-token")
def validate_token():
    token = _given_token()
    if not token:
        raise LBError(400, "You need to provide an Authorization token.")
    if not _token_is_valid(token):
        return jsonify({"code": 200, "message": "Token invalid.", "valid": False})
    return jsonify({"code": 200, "message": "Token valid.", "valid": True, "user_name": user_name()})


@bp.post("/submit-listens")
def submit_listens():
    declared = request.content_length or 0
    if declared > MAX_PAYLOAD_SIZE:  # refused before reading it
        raise PayloadRefused(f"Payload too large. Payload cannot exceed {MAX_PAYLOAD_SIZE} bytes.")
    listen_type, listens = parse_submission(request.get_data(cache=False))
    store = current_app.extensions["sillon"]["progress_store"]
    client = _client(listens)
    try:
        if listen_type == "playing_now":
            scrobbles.set_now_playing(listens[0], store=store, client=client)
        else:
            scrobbles.save_listens(listens, store=store, client=client, record_import=listen_type == "import",
                                   known_ids=current_app.extensions["sillon"]["scrobble_ids"])
    except scrobbles.DatabaseBusy as exc:
        raise LBError(503, f"Cannot store listens right now: {exc}. Nothing of this request was stored; "
                           "try again later.") from None
    return jsonify({"status": "ok"})


def _client(listens):
    """Who sent the listens: the submission client they name, else the User-Agent."""
    info = listens[0].additional_info or {}
    name = info.get("submission_client") or info.get("media_player")
    if isinstance(name, str) and name.strip():
        version = info.get("submission_client_version")
        return (name.strip() + (f" {version}" if isinstance(version, str) and version else ""))[:120]
    return (request.headers.get("User-Agent") or "").strip()[:120] or None


def _check_user(name):
    if name.casefold() != user_name().casefold():
        raise LBError(404, f"Cannot find user: {name}")


def _int_arg(name, default=None):
    value = request.args.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise LBError(400, f"Invalid {name} argument: {value}") from None
    if abs(number) > MAX_TIMESTAMP:
        raise LBError(400, f"Invalid {name} argument: {value}")
    return number


@bp.get("/user/<user>/listens")
def get_listens(user):
    _check_user(user)
    min_ts, max_ts = _int_arg("min_ts"), _int_arg("max_ts")
    if min_ts is not None and max_ts is not None and max_ts <= min_ts:
        raise LBError(400, "max_ts should be greater than min_ts")
    count = _int_arg("count", DEFAULT_COUNT)
    if count < 0:
        raise LBError(400, "Number of items requested should be positive")
    count = min(count, MAX_COUNT)
    query = (sa.select(Listen.id, Listen.played_at, Artist.name, Track.title, Album.title, Listen.additional_info)
             .join(Artist, Artist.id == Listen.artist_id).join(Track, Track.id == Listen.track_id)
             .outerjoin(Album, Album.id == Listen.album_id))
    if min_ts is not None:
        query = query.where(Listen.played_at > min_ts)
    if max_ts is not None:
        query = query.where(Listen.played_at < max_ts)
    # From min_ts alone, the listens just after it (paging forward), as ListenBrainz does; always
    # answered newest first.
    forward = min_ts is not None and max_ts is None
    order = (Listen.played_at.asc(), Listen.id.asc()) if forward else (Listen.played_at.desc(), Listen.id.desc())
    rows = db.session.execute(query.order_by(*order).limit(count)).all()
    if forward:
        rows.reverse()
    name = user_name()
    oldest, latest = db.session.execute(sa.select(sa.func.min(Listen.played_at), sa.func.max(Listen.played_at))).one()
    listens = [{"listened_at": r[1], "user_name": name, "recording_msid": None,
                "track_metadata": _track_metadata(r[2], r[3], r[4], r[5])} for r in rows]
    return jsonify({"payload": {"count": len(listens), "listens": listens, "user_id": name,
                                "latest_listen_ts": latest or 0, "oldest_listen_ts": oldest or 0}})


def _track_metadata(artist, title, album, info):
    meta = {"artist_name": artist, "track_name": title, "additional_info": dict(info or {})}
    if album:
        meta["release_name"] = album
    return meta


@bp.get("/user/<user>/playing-now")
def get_playing_now(user):
    _check_user(user)
    playing = listen_feed.now_playing(db.session.connection())
    listens = []
    if playing:
        listens = [{"playing_now": True, "user_name": user_name(),
                    "track_metadata": _track_metadata(playing["artist"], playing["title"], playing.get("album"),
                                                      playing.get("additional_info"))}]
    return jsonify({"payload": {"count": len(listens), "user_id": user_name(), "playing_now": True,
                                "listens": listens}})


@bp.get("/user/<user>/listen-count")
def get_listen_count(user):
    _check_user(user)
    count = db.session.execute(sa.select(sa.func.count()).select_from(Listen)).scalar()
    return jsonify({"payload": {"count": count}})


@bp.route("/<path:_rest>", methods=["GET", "POST"])
def unknown(_rest):
    raise LBError(404, "Sillon answers the ListenBrainz API's submit-listens, validate-token and "
                       "user/<name>/listens, playing-now and listen-count; not this.")
