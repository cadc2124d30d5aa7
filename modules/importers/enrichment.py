"""Enrichment, its own job: images and links from Spotify, covers from Last.fm, descriptions from AI.

Works on albums from every source that still miss something a configured provider can give.
What was done stays done: a second run only asks for what is still missing, and a description
the person wrote is never overwritten. Per album and provider, a lookup is recorded even when it
found nothing (`spotify_id = ""`, `image_source = "none"`), so it is not asked again every run.
A provider that fails for an album counts an error and the job moves on; a 429 is waited out.
"""
from __future__ import annotations

import time

import sqlalchemy as sa

from ..db import db
from ..models import Album, Artist, CollectionItem
from ..sources import ai, lastfm, spotify
from ..sources.errors import Retryable, SourceError
from ..waiting import GaveUp, Patience, call_with_retries, tracker_waits

STEPS = (("select", "Choose albums", 0.2), ("enrich", "Enrich albums", 5.0), ("finish", "Finish", 0.1))
PROVIDERS = (("spotify", "Spotify images and links"), ("lastfm", "Last.fm covers"), ("ai", "AI descriptions"))
def description_language(settings):
    """AI_LANGUAGE as it stands (saved on the settings page, or configured)."""
    return settings["AI_LANGUAGE"] or "English"


def _needs(album, provider):
    if provider == "spotify":
        return album.spotify_id is None
    if provider == "lastfm":
        return not album.image_url and album.image_source != "none"
    return not album.description and not album.description_edited


def _clients(ctx):
    """{provider: client or None}, and why each missing one is off."""
    s, clients, off = ctx.settings, {}, {}
    if spotify.missing_settings(s):
        off["spotify"] = f"Spotify is not configured ({', '.join(spotify.missing_settings(s))} missing): skipped."
    else:
        clients["spotify"] = spotify.make_client(s)
    if lastfm.missing_settings(s):
        off["lastfm"] = f"Last.fm is not configured ({', '.join(lastfm.missing_settings(s))} missing): skipped."
    else:
        clients["lastfm"] = lastfm.make_network(s)
    if ai.missing_settings(s):
        off["ai"] = f"AI descriptions are not configured ({', '.join(ai.missing_settings(s))} missing): skipped."
    else:
        clients["ai"] = ai.make_client(s)
    return clients, off


def enrich_albums(ctx):
    tracker, s = ctx.tracker, ctx.settings
    limit = ctx.params.get("limit")
    for name in ("enriched", "errors", "skipped"):
        tracker.incr(name, 0)

    tracker.start_step("select", "Choosing albums that miss something")
    clients, off = _clients(ctx)
    language = description_language(s)
    owned = sa.exists().where(CollectionItem.album_id == Album.id)
    candidates = db.session.execute(
        sa.select(Album).order_by(owned.desc(), Album.id)).scalars().all()
    todo = [a.id for a in candidates if any(_needs(a, p) for p in clients)]
    if limit:
        todo = todo[:int(limit)]
    plan = {p: [a.id for a in candidates if a.id in set(todo) and _needs(a, p)] for p in clients}
    db.session.remove()
    tracker.complete_step("select", f"{len(todo):,} albums to enrich")

    tracker.start_step("enrich", f"0/{len(todo)} albums")
    tracker.set_total(len(todo))
    for provider, name in PROVIDERS:
        if provider in off:
            tracker.start_substep("enrich", provider, name, off[provider])
            tracker.skip_substep("enrich", provider, off[provider])
        else:
            tracker.start_substep("enrich", provider, name, total=len(plan[provider]))
    done_per = {p: 0 for p in clients}
    broken = {}  # provider -> message, when its settings were refused: stop asking it
    for index, album_id in enumerate(todo, 1):
        album = db.session.get(Album, album_id)
        artist = db.session.get(Artist, album.artist_id)
        changed = False
        for provider, _ in PROVIDERS:
            if provider not in clients or album_id not in plan[provider]:
                continue
            done_per[provider] += 1
            if provider in broken:
                continue
            if not _needs(album, provider):  # an earlier provider gave it already
                tracker.update_substep("enrich", provider, done=done_per[provider])
                continue
            try:
                changed |= _enrich_one(ctx, provider, clients[provider], album, artist, s, language)
                db.session.commit()  # what a provider gave is kept even if the next one fails
            except (spotify.SpotifySettingsError, ai.AISettingsError, lastfm.LastfmSettingsError) as exc:
                broken[provider] = str(exc)
                tracker.error_substep("enrich", provider, str(exc))
                tracker.add_error(str(exc), provider=provider)
            except (SourceError, GaveUp) as exc:
                tracker.add_error(str(exc), provider=provider, album=f"{artist.name} — {album.title}")
            if provider not in broken:
                tracker.update_substep("enrich", provider, done=done_per[provider])
        album.needs_enrichment = any(_needs(album, p) for p in clients)
        album.enriched_at = time.time()
        db.session.commit()
        db.session.remove()
        tracker.advance(1, enriched=1 if changed else 0, skipped=0 if changed else 1)
        tracker.set_step_message("enrich", f"{index}/{len(todo)} albums")
        ctx.check()
    for provider in clients:
        if provider not in broken:
            tracker.complete_substep("enrich", provider, f"{done_per[provider]:,} albums")
    tracker.complete_step("enrich")

    tracker.start_step("finish", "Summing up")
    counters = tracker.snapshot()["counters"]
    result = {"albums": len(todo), "enriched": counters.get("enriched", 0), "errors": counters.get("errors", 0),
              "providers": {p: ("off: " + off[p]) if p in off else ("failed: " + broken[p]) if p in broken else "on"
                            for p, _ in PROVIDERS}}
    result["message"] = (f"Enriched {result['enriched']:,} of {len(todo):,} albums; {result['errors']:,} errors."
                         + ("" if not off else " " + " ".join(off.values())))
    tracker.complete_step("finish")
    return result


def _enrich_one(ctx, provider, client, album, artist, s, language):
    """Ask one provider for what this album misses; True if something was stored."""
    tracker = ctx.tracker

    patience = Patience(s["ENRICH_RETRY_BASE_SECONDS"], 60.0, s["ENRICH_MAX_ATTEMPTS"], tries_setting="ENRICH_MAX_ATTEMPTS")

    def retrying(call, service):
        return call_with_retries(call, patience, on_wait=tracker_waits(tracker, patience), check=ctx.check,
                                 reason=lambda e: f"{service}: {e.why}" if isinstance(e, Retryable) else None,
                                 hint=lambda e: e.wait)

    if provider == "spotify":
        match = retrying(lambda: spotify.find_album(client, artist.name, album.title), "Spotify")
        if match is None:
            album.spotify_id = ""  # looked up, not found
            return False
        if match["artist_id"] and not artist.spotify_id:  # before marking the album looked up
            image, url = retrying(lambda: spotify.artist_image(client, match["artist_id"]), "Spotify")
            artist.image_url, artist.spotify_id, artist.spotify_url = image, match["artist_id"], url
        album.spotify_id, album.spotify_url = match["id"], match["url"]
        if match["image_url"] and not album.image_url:
            album.image_url, album.image_source = match["image_url"], "spotify"
        return True
    if provider == "lastfm":
        try:
            image = retrying(lambda: _lastfm(lambda: lastfm.album_image(client, artist.name, album.title)), "Last.fm")
        except lastfm.LastfmFatalError:
            image = None
        if image and not album.image_url:
            album.image_url, album.image_source = image, "lastfm"
            return True
        if not album.image_url:
            album.image_source = "none"
        return False
    year = db.session.execute(sa.select(sa.func.min(CollectionItem.year))
                              .where(CollectionItem.album_id == album.id)).scalar()
    text = retrying(lambda: ai.describe_album(client, s["AI_MODEL"], artist.name, album.title, year, language),
                    "AI")
    db.session.refresh(album)  # the person may have written one while the model was writing
    if album.description_edited:
        return False
    album.description, album.description_model = text, s["AI_MODEL"]
    album.description_language, album.description_updated_at = language, time.time()
    return True


def _lastfm(call):
    try:
        return call()
    except lastfm.LastfmTemporaryError as exc:
        raise Retryable(str(exc)) from None
