"""Reading the record shelf back: items with their albums, searched, filtered and sorted."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..db import db
from ..models import Album, Artist, CollectionItem, Listen
from ..names import name_key


def _added(item):
    try:  # Discogs dates carry local offsets: compare instants, not strings
        return datetime.fromisoformat(item["date_added"]).timestamp()
    except (TypeError, ValueError):
        return 0.0


SORTS = {
    "added": (_added, True),
    "artist": (lambda i: (name_key(i["artist"]), i["year"] or 0), False),
    "title": (lambda i: name_key(i["title"]), False),
    "year": (lambda i: i["year"] or 0, True),
    "plays": (lambda i: i["listens"], True),
}


def _items():
    plays = (sa.select(Listen.album_id, sa.func.count().label("n")).group_by(Listen.album_id).subquery())
    rows = db.session.execute(
        sa.select(CollectionItem, Album.image_url, Album.spotify_url, Album.description, sa.func.coalesce(plays.c.n, 0))
        .outerjoin(Album, Album.id == CollectionItem.album_id)
        .outerjoin(plays, plays.c.album_id == CollectionItem.album_id)).all()
    out = []
    for item, image, spotify, description, listens in rows:
        out.append({
            "id": item.id, "album_id": item.album_id, "instance_id": item.instance_id, "release_id": item.release_id,
            "title": item.title, "artist": item.artist, "year": item.year, "formats": item.formats or [],
            "format_names": sorted({f.get("name") for f in item.formats or [] if f.get("name")}),
            "labels": item.labels or [], "genres": item.genres or [], "styles": item.styles or [],
            "cover_url": item.cover_url, "thumb_url": item.thumb_url, "image_url": image or item.cover_url,
            "spotify_url": spotify, "has_description": bool(description), "date_added": item.date_added,
            "rating": item.rating, "source": item.source, "listens": listens,
        })
    return out


def facets(items):
    return {"formats": sorted({f for i in items for f in i["format_names"]}),
            "genres": sorted({g for i in items for g in i["genres"]}),
            "decades": sorted({(i["year"] // 10) * 10 for i in items if i["year"]})}


def search(q=None, fmt=None, genre=None, decade=None, sort="added", page=1, page_size=48):
    """(total, items of the page, facets of the whole shelf)."""
    items = _items()
    all_facets = facets(items)
    if q:
        key = name_key(q)
        items = [i for i in items if key in name_key(i["artist"]) or key in name_key(i["title"])]
    if fmt:
        items = [i for i in items if fmt in i["format_names"]]
    if genre:
        items = [i for i in items if genre in i["genres"] or genre in i["styles"]]
    if decade:
        items = [i for i in items if i["year"] and (i["year"] // 10) * 10 == int(decade)]
    key, reverse = SORTS.get(sort, SORTS["added"])
    items.sort(key=key, reverse=reverse)
    start = (page - 1) * page_size
    return len(items), items[start:start + page_size], all_facets


def album_detail(album_id):
    album = db.session.get(Album, album_id)
    if album is None:
        return None
    copies = db.session.execute(sa.select(CollectionItem).where(CollectionItem.album_id == album_id)).scalars().all()
    listens = db.session.execute(
        sa.select(Listen.played_at, Listen.source).where(Listen.album_id == album_id)
        .order_by(Listen.played_at.desc()).limit(200)).all()
    count = db.session.execute(sa.select(sa.func.count()).where(Listen.album_id == album_id)).scalar()
    artist = db.session.get(Artist, album.artist_id)
    return {"album": album, "artist": artist, "copies": copies, "listens": listens, "listen_count": count}
