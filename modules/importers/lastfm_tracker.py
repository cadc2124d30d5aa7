"""The live tracker: a long job that asks Last.fm for new listens every few minutes.

Each poll asks for what is newer than the newest stored listen, so listens made while the tracker
was stopped are caught up and nothing is stored twice. The listen playing now is shown, never
stored. Being a job, it runs once across every process (one job of a kind at a time), beats like
any job, and stops through cancellation.
"""
from __future__ import annotations

import dataclasses
import time

from ..sources import lastfm
from .lastfm_history import LastfmUnavailable, PageFetcher, newest_listen_bound, save_page

STEPS = (("connect", "Connect to Last.fm", 0.1), ("follow", "Follow new listens", 1.0))
MIN_INTERVAL = 10
ENABLED_KEY = "tracker.enabled"
LASTFM_NAMES = ("LASTFM_API_KEY", "LASTFM_API_SECRET", "LASTFM_USERNAME", "LASTFM_API_URL")
MAX_CATCH_UP_PAGES = 50  # a poll after a long stop fetches at most 10,000 listens; the next continues


def interval_seconds(settings):
    """TRACKER_INTERVAL_SECONDS as it stands now (saved on the settings page, or configured); never under 10 s."""
    _refresh(settings)
    return max(MIN_INTERVAL, int(settings["TRACKER_INTERVAL_SECONDS"]))


def _refresh(settings):
    refresh = getattr(settings, "refresh", None)  # the app's live settings; a plain dict in some tests
    if refresh is not None:
        refresh()


def follow_new_listens(ctx):
    tracker, s = ctx.tracker, ctx.settings
    for name in ("imported", "skipped", "polls"):
        tracker.incr(name, 0)
    tracker.start_step("connect", "Checking the Last.fm settings")
    network = lastfm.make_network(s)
    tracker.complete_step("connect", s["LASTFM_USERNAME"])
    tracker.start_step("follow", "Waiting for the first poll")
    state = {"imported": 0, "skipped": 0, "new_albums": 0, "batches": 0, "next_page": 0,
             **{k: v for k, v in ctx.checkpoint.items() if k in ("imported", "skipped", "new_albums")}}
    state.update(last_error=None, now_playing=None)
    credentials = tuple(s[name] for name in LASTFM_NAMES)
    while True:
        _refresh(s)  # a key or user saved on the settings page applies from this poll on
        if tuple(s[name] for name in LASTFM_NAMES) != credentials:
            network, credentials = lastfm.make_network(s), tuple(s[name] for name in LASTFM_NAMES)
        _poll(ctx, network, state)
        wait = interval_seconds(s)
        state["next_poll_at"] = time.time() + wait
        _record(ctx, state)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            ctx.check()  # cancellation (stop) is noticed within half a second
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))


def _poll(ctx, network, state):
    tracker = ctx.tracker
    window = {"from": newest_listen_bound(imports_only=False), "to": None}
    fetcher = PageFetcher(network, ctx.settings["LASTFM_USERNAME"], ctx, window)
    fetcher.patience = dataclasses.replace(fetcher.patience, tries=1)  # a failed poll is tried at the next interval
    state["last_poll_at"] = time.time()
    tracker.incr("polls")
    try:
        first = fetcher.fetch(1)
        pages = [first]
        if first.total_pages > MAX_CATCH_UP_PAGES:
            # A long catch-up: take the oldest pages of a window fixed now, so what is stored stays
            # contiguous and the next poll carries on from there.
            window["to"] = max((p.played_at for p in first.scrobbles), default=int(time.time()))
            oldest = first.total_pages
            pages = [fetcher.fetch(p) for p in range(oldest, oldest - MAX_CATCH_UP_PAGES, -1)]
        else:
            pages += [fetcher.fetch(p) for p in range(2, first.total_pages + 1)]
    except LastfmUnavailable as exc:
        state["last_error"] = exc.cause
        tracker.set_step_message("follow", f"Last poll failed ({exc.cause}); trying again at the next interval")
        return
    finally:
        fetcher.stopped = True
    now_playing = first.now_playing
    state["now_playing"] = _describe(now_playing) if now_playing else None
    before = state["imported"]
    pages.sort(key=lambda page: -page.page)
    for page in pages:  # oldest first, like the history import
        save_page(ctx, state, sorted(page.scrobbles, key=lambda p: p.played_at), page.page)
    newest = max((p for page in pages for p in page.scrobbles), key=lambda p: p.played_at, default=None)
    if newest is not None:
        state["last_track"] = {**_describe(newest), "played_at": newest.played_at}
    state["last_error"] = None
    added = state["imported"] - before
    playing = f"; now playing {now_playing.artist} — {now_playing.title}" if now_playing else ""
    tracker.set_step_message("follow", f"Last poll at {time.strftime('%H:%M:%S', time.gmtime(state['last_poll_at']))} UTC: "
                        f"{added} new listen{'s' if added != 1 else ''}{playing}")


def _describe(scrobble):
    return {"artist": scrobble.artist, "title": scrobble.title, "album": scrobble.album,
            "image_url": scrobble.image_url}


def _record(ctx, state):
    ctx.write(lambda conn: ctx.save_checkpoint(conn, {k: v for k, v in state.items() if k != "next_page"}))

