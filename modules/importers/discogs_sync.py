"""Discogs collection sync: add what is new, never delete or rewrite what is stored.

API calls: identity, the folder list, and one per page of 100 items; nothing per item. Items are
compared with what is stored through one set of instance ids (one owned copy each, so two copies
of a release are two items). Items gone from Discogs are listed in the result, not deleted.
A resumed or repeated sync reads the listing again from the start (a page costs one call, and the
set comparison makes every write idempotent), so a collection that changed meanwhile is still read
whole.
"""
from __future__ import annotations

import functools

import sqlalchemy as sa

from .. import VERSION
from ..db import db, insert_ignoring_conflicts
from ..models import CollectionItem
from ..names import name_key
from ..sources import discogs
from ..sources.errors import Retryable
from ..waiting import GaveUp, Patience, call_with_retries, tracker_waits
from .listens import ensure_albums

STEPS = (("connect", "Connect to Discogs", 0.2), ("read", "Read the collection", 4.0), ("finish", "Finish", 0.1))
GONE_LISTED = 100
items_t = CollectionItem.__table__


def sync_collection(ctx):
    tracker, s = ctx.tracker, ctx.settings
    limit = ctx.params.get("limit")
    for name in ("added", "skipped", "errors"):
        tracker.incr(name, 0)

    patience = Patience(s["DISCOGS_RETRY_BASE_SECONDS"], 60.0, s["DISCOGS_MAX_ATTEMPTS"],
                        tries_setting="DISCOGS_MAX_ATTEMPTS")

    def retrying(call):
        try:
            return call_with_retries(call, patience, on_wait=tracker_waits(tracker, patience), check=ctx.check,
                                     reason=lambda e: f"Discogs: {e.why}" if isinstance(e, Retryable) else None,
                                     hint=lambda e: e.wait)
        except GaveUp as exc:
            raise discogs.SourceError(f"{exc}. Everything added before is kept; start the sync again later.") from None

    tracker.start_step("connect", "Checking the Discogs token")
    client = discogs.make_client(s, VERSION)
    user = retrying(lambda: discogs.username(client, s))
    folder = retrying(lambda: discogs.all_folder(client, user))
    listing = discogs.collection_listing(folder)
    pages = retrying(lambda: discogs.listing_pages(listing))
    total = retrying(lambda: listing.count)
    tracker.complete_step("connect", f"{user}: {total:,} items in {pages:,} pages")

    tracker.start_step("read", f"0/{pages} pages read")
    tracker.set_total(total)
    known = set(db.session.execute(sa.select(CollectionItem.instance_id)).scalars())
    db.session.remove()
    seen, added, held = set(), 0, 0
    for page in range(1, pages + 1):
        raw = retrying(lambda page=page: discogs.listing_page(listing, page))
        discogs.forget_page(listing, page)
        new_rows, held_here = [], 0
        for data in raw:
            try:
                instance_id = int(data["instance_id"])
            except (KeyError, TypeError, ValueError):
                tracker.add_error("an item without an instance id", page=page)
                continue
            seen.add(instance_id)
            if instance_id in known:
                continue
            if limit and added + len(new_rows) >= int(limit):
                held_here += 1  # new, but past the limit: the next sync adds it
                continue
            try:
                new_rows.append(discogs.item_fields(data))
            except (KeyError, TypeError, ValueError) as exc:
                tracker.add_error(f"unreadable item ({exc.__class__.__name__}: {exc})", instance_id=instance_id)
            known.add(instance_id)
        created = ctx.write(functools.partial(_save, rows=new_rows)) if new_rows else 0
        added += created
        held += held_here
        tracker.advance(len(raw), added=created, skipped=len(raw) - len(new_rows) - held_here)
        tracker.set_step_message("read", f"{page}/{pages} pages read, {added:,} added")
        ctx.check()
    tracker.complete_step("read", f"{added:,} added")

    tracker.start_step("finish", "Summing up")
    stored = {row.instance_id: row for row in db.session.execute(
        sa.select(CollectionItem.instance_id, CollectionItem.artist, CollectionItem.title)
        .where(CollectionItem.source == "discogs"))}
    db.session.remove()
    gone_ids = sorted(set(stored) - seen)
    gone = [{"instance_id": i, "artist": stored[i].artist, "title": stored[i].title} for i in gone_ids[:GONE_LISTED]]
    counters = tracker.snapshot()["counters"]
    result = {"user": user, "total": total, "added": added, "skipped": counters.get("skipped", 0),
              "errors": counters.get("errors", 0), "gone_from_discogs": len(gone_ids), "gone": gone,
              "limit": limit, "held_by_limit": held}
    text = f"Added {added:,} new items; {result['skipped']:,} were already in your collection."
    if gone_ids:
        text += (f" {len(gone_ids):,} items are no longer on Discogs; they are kept here (listed in the result) "
                 "until you remove them.")
    if held:
        text += f" {held:,} more new items were left for the next sync (limit {int(limit):,})."
    result["message"] = text
    tracker.complete_step("finish")
    return result


def _adopt_uploaded(conn, rows):
    """Items first uploaded from a Discogs CSV export carry a negative stand-in instance id (the
    export has none). The sync takes them over, one per copy of the release, instead of adding the
    records twice; only the ids and what the export lacked (covers, folder) are filled in.
    Returns the rows still to insert and how many were taken over."""
    releases = {r["release_id"] for r in rows}
    stand_ins = {}
    for item_id, release_id in conn.execute(
            sa.select(items_t.c.id, items_t.c.release_id)
            .where(items_t.c.instance_id < 0, items_t.c.release_id.in_(releases))
            .order_by(items_t.c.instance_id.desc())):
        stand_ins.setdefault(release_id, []).append(item_id)
    if not stand_ins:
        return rows, 0
    remaining, adopted = [], 0
    for r in rows:
        ids = stand_ins.get(r["release_id"])
        if not ids:
            remaining.append(r)
            continue
        item_id = ids.pop(0)
        conn.execute(items_t.update().where(items_t.c.id == item_id).values(
            instance_id=r["instance_id"], source="discogs", folder_id=r["folder_id"],
            cover_url=sa.func.coalesce(items_t.c.cover_url, r["cover_url"]),
            thumb_url=sa.func.coalesce(items_t.c.thumb_url, r["thumb_url"])))
        adopted += 1
    return remaining, adopted


def _save(conn, rows):
    """Insert new items and link them to albums (created when missing), in the caller's transaction
    (tried again whole if the database is locked: it only reads and sets the rows' album ids)."""
    rows, adopted = _adopt_uploaded(conn, rows)  # counted with the added: new to the sync
    if not rows:
        return adopted
    album_ids, _ = ensure_albums(conn, [(r["artist"], r["title"], r["cover_url"]) for r in rows],
                                 image_source="discogs")
    for r in rows:
        r["album_id"] = album_ids[(name_key(r["artist"]), name_key(r["title"]))]
    return adopted + len(insert_ignoring_conflicts(conn, items_t, rows, returning=[items_t.c.id]))
