"""Import a person's Last.fm history through the API, resumably, several requests in flight.

The window's end is fixed when the job first starts and kept in the checkpoint, so listens made
during the import neither shift pages nor appear twice. Pages are fetched oldest first, so what
is stored is always a contiguous stretch of history up to the newest stored listen: an
incremental import after a crash (even without resuming) leaves no gap. A few fetchers run ahead
of the writer within Last.fm's rate (5 requests a second); the writer commits each page with its
checkpoint, in page order.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from ..db import db
from ..models import Job, Listen
from ..sources import lastfm
from ..sources.errors import SourceError
from ..waiting import GaveUp, Patience, call_with_retries, wait_message
from . import listen_feed
from .listens import IdCache, write_plays

STEPS = (("connect", "Connect to Last.fm", 0.2), ("count", "Count listens", 0.2),
         ("fetch", "Fetch and save batches", 5.0), ("finish", "Finish", 0.1))
SOURCE = "lastfm"
HISTORY_SOURCES = ("lastfm", "lastfm_csv")  # the same history, uploaded or fetched
# Last.fm stamps a scrobble with the time its track started, and scrobbles often arrive minutes
# after that. A window ending an hour ago is one no new scrobble lands in while pages are read by
# number (a listen landing inside would shift the pages and lose one); the last hour comes with
# the next import or the live tracker.
LATE_SCROBBLE_MARGIN = 3600


class LastfmUnavailable(SourceError):
    """Last.fm kept failing past the retries; `cause` is the last failure, short."""

    def __init__(self, message, cause=None):
        super().__init__(message)
        self.cause = cause or message


def newest_stored_listen(imports_only):
    """The newest Last.fm listen stored. With `imports_only`, only listens from the history itself
    count (an uploaded Last.fm export or a history import), not the tracker's: a history import
    that stopped half-way is then carried on from where its own stored stretch ends."""
    query = sa.select(sa.func.max(Listen.played_at))
    if imports_only:
        from_imports = sa.select(Job.id).where(Job.kind == "lastfm_history")
        query = query.where(sa.or_(Listen.source == "lastfm_csv", Listen.job_id.in_(from_imports)))
    else:
        query = query.where(Listen.source.in_(HISTORY_SOURCES))
    return db.session.execute(query).scalar()


class PageFetcher:
    """Fetches pages with bounded retries; shared pacing keeps every fetcher within Last.fm's rate."""

    def __init__(self, network, username, ctx, window):
        s = ctx.settings
        self.network, self.username, self.ctx, self.window = network, username, ctx, window
        self.pacer = lastfm.RequestPacer(s["LASTFM_REQUESTS_PER_SECOND"])
        # The outage budget decides how long a failing request is waited out; the tries only
        # bound a burst of quick failures (see docs/faults.md).
        self.patience = Patience(s["LASTFM_RETRY_BASE_SECONDS"], s["LASTFM_RETRY_MAX_SECONDS"],
                                 s["LASTFM_MAX_ATTEMPTS"], s["LASTFM_OUTAGE_SECONDS"],
                                 tries_setting="LASTFM_MAX_ATTEMPTS", seconds_setting="LASTFM_OUTAGE_SECONDS")
        self.stopped = False

    def fetch(self, page):
        return self._with_retries(lambda: lastfm.fetch_recent_page(
            self.network, self.username, page, self.window["from"], self.window["to"]))

    def playcount(self):
        return self._with_retries(lambda: lastfm.fetch_playcount(self.network, self.username))

    def _check(self):
        if self.stopped:
            raise LastfmUnavailable("stopped")
        self.ctx.check()  # a cancel is heard even while Last.fm is being waited out

    def _with_retries(self, request):
        def attempt():
            self._check()
            self.pacer.acquire()
            return request()

        def show(delay, why, tries):
            if why == "Last.fm rate limit":
                self.pacer.pause(delay)  # every fetcher backs off, not just this one
            self.ctx.tracker.incr("retries")
            self.ctx.tracker.set_message(wait_message(delay, why, tries, self.patience))

        try:
            return call_with_retries(attempt, self.patience, reason=_temporary_reason, on_wait=show,
                                     check=self._check)
        except GaveUp as exc:
            raise LastfmUnavailable(
                f"Last.fm kept failing ({exc.last}); {exc.ended}. "
                "Everything fetched before is saved; resume the job to continue where it stopped.",
                cause=str(exc.last)) from None


def _temporary_reason(exc):
    """Why a Last.fm failure may pass with waiting (None: it will not)."""
    if not isinstance(exc, lastfm.LastfmTemporaryError):
        return None
    if exc.rate_limited:
        return "Last.fm rate limit"
    if exc.unreachable:
        return "Last.fm unreachable"
    return f"Last.fm error {exc.code or 'unreadable answer'}"


def import_lastfm_history(ctx):
    tracker, params, s = ctx.tracker, ctx.params, ctx.settings
    state = {"imported": 0, "skipped": 0, "errors": 0, "new_albums": 0, "batches": 0, **ctx.checkpoint}
    for name in ("imported", "skipped", "errors"):
        tracker.incr(name, state[name])

    tracker.start_step("connect", "Checking the Last.fm settings")
    network = lastfm.make_network(s)
    username = s["LASTFM_USERNAME"]
    window = state.get("window")
    fetcher = PageFetcher(network, username, ctx, window or {"from": None, "to": None})
    playcount = state.get("playcount")
    if playcount is None:
        playcount = fetcher.playcount()
    tracker.complete_step("connect", f"{username}: {playcount:,} scrobbles on Last.fm")

    tracker.start_step("count", "Counting listens to fetch")
    if window is None:
        time_from = params.get("from")
        if time_from is None and params.get("incremental", True):
            time_from = newest_listen_bound(imports_only=True)
        window = {"from": time_from, "to": int(params.get("to") or time.time() - LATE_SCROBBLE_MARGIN)}
        fetcher.window = window
        first = fetcher.fetch(1)
        window.update(total_pages=first.total_pages, total=first.total)
        state.update(window=window, playcount=playcount, next_page=first.total_pages)
        _checkpoint(ctx, state)
    limit = params.get("limit")
    to_fetch = window["total"] if not limit else min(window["total"], int(limit))
    total_batches = _pages_needed(window, limit)
    tracker.incr("total_batches", total_batches)
    tracker.complete_step("count", f"{to_fetch:,} listens in {total_batches:,} batches of {lastfm.PAGE_SIZE}")

    ctx.ids = IdCache()  # one writer: the job's own thread
    tracker.start_step("fetch", batches_message(state["batches"], total_batches))
    tracker.set_total(to_fetch)
    tracker.advance(min(state["imported"] + state["skipped"], to_fetch))
    _fetch_and_save(ctx, state, fetcher, limit, total_batches)
    tracker.complete_step("fetch", f"{state['batches']}/{total_batches} batches")

    tracker.start_step("finish", "Summing up")
    result = {"total_scrobbles": playcount, "window_total": window["total"], "imported": state["imported"],
              "skipped": state["skipped"], "errors": state["errors"], "albums_to_enrich": state["new_albums"],
              "batches": state["batches"], "total_batches": total_batches,
              "window": {"from": window["from"], "to": window["to"]}}
    result["held"] = _history_listens_held()
    result["message"] = _summary(result, params)
    tracker.complete_step("finish")
    return result


def newest_listen_bound(imports_only):
    """Where an incremental fetch starts: one second before the newest stored listen.

    Last.fm's docs say only "after this time" for `from`; starting a second early is right
    whether the bound is inclusive or not, and the unique key skips what is already stored.
    """
    try:
        newest = newest_stored_listen(imports_only)
    finally:
        db.session.remove()
    return None if newest is None else newest - 1


def _history_listens_held():
    try:
        return db.session.execute(sa.select(sa.func.count()).select_from(Listen)
                                  .where(Listen.source.in_(HISTORY_SOURCES))).scalar()
    finally:
        db.session.remove()


def _pages_needed(window, limit):
    if not window["total"]:
        return 0
    if not limit:
        return window["total_pages"]
    # Oldest first: the last page holds total % 200 listens (or a full page).
    last_page_rows = window["total"] - (window["total_pages"] - 1) * lastfm.PAGE_SIZE
    if limit <= last_page_rows:
        return 1
    return min(window["total_pages"], 1 + -(-(limit - last_page_rows) // lastfm.PAGE_SIZE))


def batches_message(saved, total_batches):
    """The fetch step's message: how many batches are saved (the `batches` counter says the same)."""
    return f"batch {saved}/{total_batches} saved"


def _fetch_and_save(ctx, state, fetcher, limit, total_batches):
    tracker = ctx.tracker
    in_flight = max(1, ctx.settings["LASTFM_CONCURRENCY"])
    first_page = state["next_page"]
    last_page = max(1, fetcher.window["total_pages"] - total_batches + 1)
    pages = list(range(first_page, last_page - 1, -1)) if first_page >= 1 else []
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="lastfm-fetch")
    pending = {}
    try:
        queue = iter(pages)
        for page in pages:
            # Keep `in_flight` requests going ahead of the writer (bounded, so memory stays flat).
            while len(pending) < in_flight * 2:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending[nxt] = pool.submit(fetcher.fetch, nxt)
            result = pending.pop(page).result()
            scrobbles = sorted(result.scrobbles, key=lambda p: p.played_at)
            if limit:
                room = int(limit) - (state["imported"] + state["skipped"])
                scrobbles = scrobbles[:max(room, 0)]
            save_page(ctx, state, scrobbles, page)
            tracker.set_step_message("fetch", batches_message(state["batches"], total_batches))
            ctx.check()
            if limit and state["imported"] + state["skipped"] >= int(limit):
                break
    finally:
        fetcher.stopped = True
        for future in pending.values():
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def save_page(ctx, state, scrobbles, page):
    """Write one page of scrobbles and the checkpoint after it in one transaction, and count it on the
    tracker (the history import and the live tracker both save pages this way)."""
    def work(conn):  # one transaction, tried again whole if the database is locked
        outcome = write_plays(conn, scrobbles, source=SOURCE, job_id=ctx.job_id, cache=ctx.ids)
        new_state = {**state, "imported": state["imported"] + outcome.imported,
                     "skipped": state["skipped"] + outcome.skipped,
                     "new_albums": state["new_albums"] + outcome.new_albums,
                     "batches": state["batches"] + 1, "next_page": page - 1}
        ctx.save_checkpoint(conn, new_state)
        return outcome, new_state

    outcome, new_state = ctx.write(work)
    state.update(new_state)
    if outcome.imported:
        listen_feed.announce(ctx.store, outcome.feed, imported=outcome.imported, source=SOURCE)
    ctx.tracker.advance(len(scrobbles), imported=outcome.imported, skipped=outcome.skipped, batches=1)


def _checkpoint(ctx, state):
    ctx.write(lambda conn: ctx.save_checkpoint(conn, dict(state)))


def _summary(r, params):
    """What was done, and why Last.fm's play count and what is stored may differ."""
    text = f"Imported {r['imported']:,} new listen{'' if r['imported'] == 1 else 's'} from Last.fm"
    if r["skipped"]:
        text += f"; {r['skipped']:,} already stored were skipped"
    if r["errors"]:
        text += f"; {r['errors']:,} could not be read"
    text += f". Your library holds {r['held']:,} Last.fm listens; Last.fm counts {r['total_scrobbles']:,} scrobbles."
    if r["held"] != r["total_scrobbles"]:
        why = []
        if params.get("limit"):
            why.append(f"this import was limited to {int(params['limit']):,} listens")
        if params.get("from") is not None or params.get("to") is not None:
            why.append("this import asked only for a date range")
        if r["held"] > r["total_scrobbles"]:
            why.append("some stored listens came from CSV exports and are no longer listed by Last.fm")
        else:
            why.append("listens of the last hour (Last.fm may still be receiving them) come with the next "
                       "import or the live tracker, the track playing now is stored once it has played, and "
                       "Last.fm counts some plays it does not list")
        text += " The difference: " + "; ".join(why) + "."
    if r["albums_to_enrich"]:
        text += f" {r['albums_to_enrich']:,} new albums are waiting for enrichment."
    return text
