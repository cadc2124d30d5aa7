"""Playlists made from the listening history and the record shelf.

Three generators: this month's top (or the last 30 days'), forgotten favourites (played a lot, not
for a year) and a walk through owned records never played. Each takes a few parameters with
defaults and raises NothingFound, with a message and a link, when it has nothing to offer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

# Flask-Babel's own gettext, not web's: domain code must not import the web layer, and messages
# raised deep in a generator carry values (%(day)s) that a bare message key would have to send up
# separately. Flask-Babel already does the right thing in each place: in a request, the person's
# language (web/i18n.py chooses it); in a script or a test, no translations, so plain English.
from flask_babel import gettext as _

from ..db import db
from ..models import Album, Artist, CollectionItem, Listen, Track
from ..names import name_key

DAY = 86400


def N_(text):  # noqa: N802 - the name pybabel extracts; translated where shown (templates: _(label))
    return text


class PlaylistError(ValueError):
    """Input that cannot be used, with the message to show the person."""


class NothingFound(Exception):
    """A generator found nothing to put in a playlist: why, and where to go next."""

    def __init__(self, message, link_endpoint, link_text):
        super().__init__(message)
        self.message, self.link_endpoint, self.link_text = message, link_endpoint, link_text


@dataclass(frozen=True)
class Param:
    name: str
    label: object
    default: object
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple = ()  # (value, label) pairs for a choice

    def parse(self, raw):
        if raw is None or raw == "":
            return self.default
        if self.choices:
            values = [value for value, _label in self.choices]
            if raw not in values:
                raise PlaylistError(_("%(name)s must be one of: %(values)s", name=self.name, values=", ".join(values)))
            return raw
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise PlaylistError(_("%(name)s must be a whole number", name=self.name))
        try:
            value = int(raw.strip()) if isinstance(raw, str) else raw
        except ValueError:
            raise PlaylistError(_("%(name)s must be a whole number", name=self.name)) from None
        if not self.minimum <= value <= self.maximum:
            raise PlaylistError(_("%(name)s must be between %(low)s and %(high)s",
                                  name=self.name, low=self.minimum, high=self.maximum))
        return value


@dataclass(frozen=True)
class Generator:
    kind: str
    title: object
    description: object
    params: tuple = field(default_factory=tuple)
    run: object = None

    def parse(self, raw, strict=True):
        """Parameters with defaults filled in; unknown names are refused when `strict` (the API)."""
        raw = dict(raw or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(raw) - known)
        if strict and unknown:
            raise PlaylistError(_("unknown parameter %(names)s for %(kind)s; known: %(known)s",
                                  names=", ".join(unknown), kind=self.kind, known=", ".join(sorted(known))))
        return {p.name: p.parse(raw.get(p.name)) for p in self.params}


# ----------------------------------------------------------------------------- shared queries


def _no_listens():
    if db.session.execute(sa.select(Listen.id).limit(1)).first() is None:
        raise NothingFound(_("You have no listens yet: import your Last.fm history first."),
                           "pages.settings", _("Import your history"))


def _ranked_tracks(where, having=(), limit=50):
    """[(track_id, plays, last played)] by plays, then the latest play, then id (stable on any database)."""
    plays = sa.func.count().label("plays")
    last = sa.func.max(Listen.played_at).label("last")
    query = (sa.select(Listen.track_id, plays, last).where(*where).group_by(Listen.track_id)
             .order_by(plays.desc(), last.desc(), Listen.track_id).limit(limit))
    if having:
        query = query.having(*having)
    return db.session.execute(query).all()


def _track_items(ranked, where=()):
    """Playlist items for ranked track ids: names from the track, album of its latest play with one."""
    ids = [row[0] for row in ranked]
    if not ids:
        return []
    names = {tid: (title, artist) for tid, title, artist in db.session.execute(
        sa.select(Track.id, Track.title, Artist.name).join(Artist, Artist.id == Track.artist_id)
        .where(Track.id.in_(ids)))}
    latest = {}  # track id -> (played_at, listen id, album id) of its latest play with an album
    for tid, played_at, listen_id, album_id in db.session.execute(
            sa.select(Listen.track_id, Listen.played_at, Listen.id, Listen.album_id)
            .where(Listen.track_id.in_(ids), Listen.album_id.is_not(None), *where)):
        if tid not in latest or (played_at, listen_id) > latest[tid][:2]:
            latest[tid] = (played_at, listen_id, album_id)
    titles = dict(db.session.execute(sa.select(Album.id, Album.title)
                                     .where(Album.id.in_({v[2] for v in latest.values()}))).all()) if latest else {}
    albums = {tid: (v[2], titles[v[2]]) for tid, v in latest.items()}
    items = []
    for tid in ids:
        title, artist = names[tid]
        album_id, album = albums.get(tid, (None, None))
        items.append({"track_id": tid, "artist": artist, "title": title, "album": album, "album_id": album_id,
                      "duration": None})
    return items


def _month_name(moment):
    try:
        from flask_babel import format_date

        return format_date(moment, "MMMM y")
    except (ImportError, RuntimeError, KeyError):
        return moment.strftime("%B %Y")


# ----------------------------------------------------------------------------- generators


def this_month_top(params, now):
    """The most played tracks of the current UTC calendar month (or of the last 30 days)."""
    _no_listens()
    moment = datetime.fromtimestamp(now, UTC)
    if params["period"] == "month":
        start = int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())
        name = _("This month's top: %(month)s", month=_month_name(moment))
    else:
        start = int(now) - 30 * DAY
        name = _("Top of the last 30 days (to %(day)s)", day=moment.strftime("%Y-%m-%d"))
    where = (Listen.played_at >= start, Listen.played_at <= now)
    ranked = _ranked_tracks(where, limit=params["count"])
    if not ranked:
        since = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
        if params["period"] == "month":
            message = _("No listens this month yet (since %(day)s): try the last 30 days, or import your "
                        "recent listens.", day=since)
        else:
            message = _("No listens in the last 30 days (since %(day)s): import your recent listens.", day=since)
        raise NothingFound(message, "pages.settings", _("Import your history"))
    return name, _track_items(ranked, where)


def forgotten_favourites(params, now):
    """Tracks played at least `min_plays` times, none of them in the last `away_days` days."""
    _no_listens()
    cutoff = int(now) - params["away_days"] * DAY
    plays, last = sa.func.count(), sa.func.max(Listen.played_at)
    ranked = _ranked_tracks((), having=(plays >= params["min_plays"], last < cutoff), limit=params["count"])
    if not ranked:
        raise NothingFound(_("No track has %(plays)s plays or more without a play in the last %(days)s days: "
                             "try fewer plays or fewer days.", plays=params["min_plays"], days=params["away_days"]),
                           "pages.journal", _("See your journal"))
    return _("Forgotten favourites"), _track_items(ranked)


UNPLAYED_ORDERS = {
    "added": lambda r: _added(r["date_added"]),
    "artist": lambda r: (name_key(r["artist"]), r["year"] or 0, name_key(r["title"])),
    "year": lambda r: (r["year"] or 9999, name_key(r["artist"])),
}


def _added(value):
    try:  # Discogs dates carry local offsets: compare instants, not strings
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return float("inf")  # unknown: after the dated records


def unplayed_records(params, now):
    """One item per owned record whose album has no listens: the record itself, as the shelf names it.

    The collection stores no track lists, and a track of the same artist from another record would
    lead away from the record, so the item's title is the record's title and it has no track id.
    Several copies of one album are one item.
    """
    del now
    if db.session.execute(sa.select(CollectionItem.id).limit(1)).first() is None:
        raise NothingFound(_("Your record shelf is empty: sync your Discogs collection first."),
                           "pages.settings", _("Sync your collection"))
    # listens.album_id has no index: an anti-join against the played albums, gathered in one pass,
    # instead of a search of the listens per record (seconds on a large history).
    played = sa.select(Listen.album_id).where(Listen.album_id.is_not(None)).distinct().subquery()
    rows = db.session.execute(
        sa.select(CollectionItem.id, CollectionItem.album_id, CollectionItem.artist, CollectionItem.title,
                  CollectionItem.year, CollectionItem.date_added)
        .outerjoin(played, played.c.album_id == CollectionItem.album_id).where(played.c.album_id.is_(None))
        .order_by(CollectionItem.id)).mappings().all()
    order = UNPLAYED_ORDERS[params["order"]]
    records, seen = [], set()
    for row in sorted(rows, key=lambda r: (order(r), r["id"])):  # several copies: the first in order stands
        key = row["album_id"] or (name_key(row["artist"]), name_key(row["title"]))
        if key not in seen:
            seen.add(key)
            records.append(row)
    if not records:
        raise NothingFound(_("Every record on your shelf has been played at least once."),
                           "pages.collection", _("See your collection"))
    items = [{"track_id": None, "artist": r["artist"], "title": r["title"], "album": r["title"],
              "album_id": r["album_id"], "duration": None} for r in records[:params["count"]]]
    return _("Owned records never played"), items


def _count(default):
    return Param("count", N_("Tracks"), default, 1, 500)


GENERATORS = {g.kind: g for g in (
    Generator("this_month_top", N_("This month's top"),
              N_("Your most played tracks of the current month, or of the last 30 days."),
              (_count(25), Param("period", N_("Period"), "month",
                                 choices=(("month", N_("This calendar month")), ("30days", N_("The last 30 days"))))),
              this_month_top),
    Generator("forgotten_favourites", N_("Forgotten favourites"),
              N_("Tracks you played a lot, but not for a long while; the most played first."),
              (_count(50), Param("min_plays", N_("At least this many plays"), 10, 1, 1_000_000),
               Param("away_days", N_("Not played for this many days"), 365, 1, 36_500)),
              forgotten_favourites),
    Generator("unplayed_records", N_("A walk through records never played"),
              N_("Records on your shelf you have never listened to: one entry per record."),
              (Param("count", N_("Records"), 30, 1, 500),
               Param("order", N_("Order"), "added", choices=(("added", N_("Longest on the shelf first")),
                                                              ("artist", N_("Artist A to Z")),
                                                              ("year", N_("Oldest release first"))))),
              unplayed_records),
)}


def generate(kind, raw_params=None, now=None, strict=True):
    """Run a generator: (name, items, parameters used). Raises PlaylistError or NothingFound."""
    generator = GENERATORS.get(kind)
    if generator is None:
        raise PlaylistError(_("kind must be one of: %(kinds)s", kinds=", ".join(GENERATORS)))
    params = generator.parse(raw_params, strict=strict)
    name, items = generator.run(params, time.time() if now is None else now)
    return name, items, params


def track_item(track_id):
    """An item for a known track, with the album of its latest play; None if there is no such track."""
    if db.session.get(Track, track_id) is None:
        return None
    return _track_items([(track_id,)])[0]
