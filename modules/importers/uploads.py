"""Upload-and-watch: every export file of one upload, read and saved in parallel, into one tracker.

Steps: read (open archives, detect each file's format from its content, parse it once to count its
rows; bytes are the measure), save (rows written in batches, each committed with its checkpoint;
rows are the measure), finish. Each file has its substep in both steps. Files run in a small pool
of threads (greenlets under gevent) that share the tracker's atomic counters; writes go through
one lock, since the database takes one writer at a time and the same-play check must see what
the other files just wrote. A file that cannot be read fails its own substep and the others go on.
"""
from __future__ import annotations

import csv
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import current_app

from ..db import db, insert_ignoring_conflicts
from ..models import CollectionItem
from ..names import name_key
from ..sources.errors import SourceError, UnrecognizedFile
from ..sources.exports import archives, formats
from . import listen_feed
from .listens import IdCache, ensure_albums, write_plays

STEPS = (("read", "Read files", 1.0), ("save", "Save", 4.0), ("finish", "Finish", 0.2))
READ_YIELD_ROWS = 2000
SKIP_COUNTERS = {reason: f"skipped_{reason}" for reason in formats.SKIP_REASONS}
SKIP_LABELS = {"short_play": "short plays", "incognito": "incognito plays", "podcast": "podcast episodes",
               "audiobook": "audiobook chapters", "no_metadata": "rows without track or artist"}


class UploadFailed(SourceError):
    pass


def errors_path(instance_path, job_id):
    return os.path.join(instance_path, "job_errors", f"{job_id}.csv")


class ErrorLog:
    """Every unreadable row of the job, appended to a CSV the job page offers for download."""

    def __init__(self, path, resume):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fresh = not (resume and os.path.exists(path))
        self._fh = open(path, "w" if fresh else "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._lock = threading.Lock()
        if fresh:
            self._writer.writerow(["file", "line", "error"])

    def add(self, file, line, message):
        with self._lock:
            self._writer.writerow([file, line, message])

    def close(self):
        self._fh.close()


def _in_app(fn):
    """`fn` run inside this app's context, as pool threads start without one."""
    app = current_app._get_current_object()

    def run(arg):
        with app.app_context():
            try:
                return fn(arg)
            finally:
                db.session.remove()
    return run


def _expand(ctx, files):
    """The uploaded files with every zip replaced by its members; a bad archive is a failed file."""
    out = []
    limit = ctx.settings["MAX_UNZIPPED_MB"] * 1024 * 1024
    for f in files:
        if not archives.is_zip(f["path"]):
            out.append(dict(f))
            continue
        dest = f["path"] + ".d"
        try:
            members = ctx.checkpoint.get("members", {}).get(f["path"])
            if members is None or not all(os.path.exists(p) for _, p in members):
                members = archives.expand(f["path"], dest, f["name"], limit)
            out.extend({"path": p, "name": n, "archive": f["name"]} for n, p in members)
            ctx.checkpoint.setdefault("members", {})[f["path"]] = members
        except UnrecognizedFile as exc:
            out.append({**f, "failed": str(exc)})
    return out


def import_uploaded_files(ctx):
    tracker, s = ctx.tracker, ctx.settings
    resume = bool(ctx.checkpoint)
    state = {"files": {}, "new_albums": 0, **ctx.checkpoint}
    for name in ("imported", "skipped", "errors"):  # a resumed job carries its counts on
        tracker.incr(name, sum(f.get(name, 0) for f in state["files"].values()))

    tracker.start_step("read", "Opening the files")
    files = _expand(ctx, ctx.params.get("files", []))
    state["members"] = ctx.checkpoint.get("members", {})  # a resumed job reuses what it unpacked
    tracker.set_total(sum(os.path.getsize(f["path"]) for f in files if "failed" not in f))
    for i, f in enumerate(files):
        tracker.start_substep("read", f"read-{i}", f["name"], "waiting")
    workers = max(1, min(s["UPLOAD_WORKERS"], len(files)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload-read") as pool:
        list(pool.map(_in_app(lambda pair: _read_one(ctx, *pair)), enumerate(files)))
    readable = [i for i, f in enumerate(files) if "failed" not in f]
    if not readable:
        reasons = "; ".join(f["failed"] for f in files) or "no file was uploaded"
        tracker.error_step("read", "No file could be read")
        raise UnrecognizedFile(f"Nothing was imported: {reasons}")
    tracker.complete_step("read", f"{sum(files[i]['rows'] for i in readable):,} rows in {len(readable)} of "
                                  f"{len(files)} file(s)")

    tracker.start_step("save", "Saving")
    tracker.set_total(sum(files[i]["rows"] for i in readable))
    for i in readable:
        tracker.start_substep("save", f"save-{i}", files[i]["name"], "waiting", total=files[i]["rows"])
    for i, f in enumerate(files):
        if "failed" in f:
            tracker.start_substep("save", f"save-{i}", f["name"])
            tracker.skip_substep("save", f"save-{i}", "not read")
    elsewhere = getattr(ctx, "save_files_elsewhere", None)  # JOB_RUNNER=celery: a Celery group (jobs/)
    parts = elsewhere(ctx, state, files, readable) if elsewhere is not None else None
    if parts is not None:
        state["files"] = parts
        state["new_albums"] = sum(p.get("new_albums", 0) for p in parts.values())
        for i in readable:
            if parts.get(str(i), {}).get("status") == "failed":
                files[i]["failed"] = parts[str(i)]["failed"]
    else:
        errors = ErrorLog(errors_path(ctx.settings["INSTANCE_PATH"], ctx.job_id), resume)
        write_lock = threading.Lock()
        ctx.ids = IdCache()  # shared by the files' writers, under the write lock
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload-save") as pool:
                list(pool.map(_in_app(lambda i: _save_one(ctx, state, files, i, errors, write_lock)), readable))
        finally:
            errors.close()
    tracker.complete_step("save")

    tracker.start_step("finish", "Summing up")
    counters = tracker.snapshot()["counters"]
    outcomes = [_outcome(f, state["files"].get(str(i), {})) for i, f in enumerate(files)]
    failed = [o for o in outcomes if o["status"] == "error"]
    result = {"files": outcomes, "imported": counters.get("imported", 0), "skipped": counters.get("skipped", 0),
              "errors": counters.get("errors", 0), "albums_to_enrich": state["new_albums"],
              "collection_added": sum(o.get("collection_added", 0) for o in outcomes),
              "skip_reasons": {r: counters[c] for r, c in SKIP_COUNTERS.items() if counters.get(c)},
              "outcome": "completed_with_errors" if failed else "completed",
              "errors_csv": counters.get("errors", 0) > 0}
    text = f"Imported {result['imported']:,} listens; {result['skipped']:,} skipped"
    if result["skip_reasons"]:
        text += " (" + ", ".join(f"{n:,} {SKIP_LABELS.get(r, r)}" for r, n in result["skip_reasons"].items()) + ")"
    text += f"; {result['errors']:,} rows could not be read."
    if result["collection_added"]:
        text += f" {result['collection_added']:,} records added to your collection."
    if failed:
        text = (f"Completed with errors: {len(failed)} of {len(files)} files could not be read "
                f"({'; '.join(o['name'] for o in failed)}). " + text)
    result["message"] = text
    if not failed:
        upload_dir = ctx.params.get("upload_dir")
        if upload_dir:
            shutil.rmtree(upload_dir, ignore_errors=True)
    tracker.complete_step("finish")
    return result


def _read_one(ctx, i, f):
    """Detect the format and count the rows of one file (bytes as the measure)."""
    tracker, sub = ctx.tracker, f"read-{i}"
    if "failed" in f:
        tracker.error_substep("read", sub, f["failed"])
        return
    tracker.update_substep("read", sub, message="detecting the format")
    try:
        info = formats.detect_format(f["path"], f["name"])
        reader = formats.open_reader(f["path"], info, min_play_ms=ctx.settings["MIN_PLAY_SECONDS"] * 1000,
                                     name=f["name"])
        rows, seen = 0, 0
        for rows, _ in enumerate(reader, 1):
            ctx.give_way()
            if rows % READ_YIELD_ROWS == 0:
                tracker.advance(reader.bytes_read - seen)
                seen = reader.bytes_read
                tracker.update_substep("read", sub, done=seen, total=os.path.getsize(f["path"]),
                                       message=f"{rows:,} rows")
                ctx.check()
        tracker.advance(reader.bytes_read - seen)
    except UnrecognizedFile as exc:
        f["failed"] = str(exc)
        tracker.error_substep("read", sub, str(exc))
        return
    f["kind"], f["format"], f["rows"] = info.kind, info.description, rows
    f["info"] = info
    tracker.complete_substep("read", sub, f"{rows:,} rows · {info.description}")


def _save_one(ctx, state, files, i, errors, write_lock):
    """Save one file's rows in batches, in this process (its substep on the job's own tracker)."""
    f, tracker, sub = files[i], ctx.tracker, f"save-{i}"
    done_before = state["files"].get(str(i), {}).get("rows_done", 0)
    tracker.update_substep("save", sub, done=done_before, message=saving_message(done_before))
    if done_before:
        tracker.advance(done_before)

    def commit(batch, rows_done):
        _save_batch(ctx, state, i, f, batch, rows_done, write_lock)

    broken = save_rows(ctx, f, tracker, sub, done_before, errors, commit)
    kept = state["files"].get(str(i), {})
    if broken:
        f["failed"] = broken_message(broken, kept)
        tracker.error_substep("save", sub, f["failed"])
    else:
        tracker.complete_substep("save", sub, saved_message(kept))


def saving_message(done_before):
    """A save substep's message while it saves; true for as long as it saves."""
    return f"saving (resumed after {done_before:,} rows)" if done_before else "saving"


def broken_message(broken, kept):
    return f"{broken}. The {kept.get('imported', 0):,} rows before it were kept."


def saved_message(kept):
    return (f"{kept.get('imported', 0):,} imported, {kept.get('skipped', 0):,} skipped, "
            f"{kept.get('errors', 0):,} errors")


def save_rows(ctx, f, report, sub, done_before, errors, commit):
    """Read file `f` from row `done_before` on and hand its rows to `commit(batch, rows_done)` in
    batches. `report` is the tracker (or, for a part of a Celery group, what stands in for it).
    Returns where the file broke off ("name, line N: why") or None."""
    batch_size = ctx.settings["IMPORT_BATCH_SIZE"]
    reader = formats.open_reader(f["path"], f["info"], min_play_ms=ctx.settings["MIN_PLAY_SECONDS"] * 1000,
                                 name=f["name"])
    batch, done, broken = [], 0, None
    for done, (line, item) in enumerate(reader, 1):
        ctx.give_way()
        if done <= done_before:
            continue
        if isinstance(item, formats.FileError):
            broken = f"{f['name']}, line {line}: {item}"
            report.add_error(str(item), file=f["name"], line=line)
            errors.add(f["name"], line, str(item))
            batch.append(("error", None))
            break
        if isinstance(item, formats.RowError):
            report.add_error(str(item), file=f["name"], line=line)
            errors.add(f["name"], line, str(item))
            batch.append(("error", None))
        elif isinstance(item, formats.Skip):
            batch.append(("skip", item.reason))
        else:
            batch.append(("row", item))
        if len(batch) >= ctx.batch_rows(batch_size):
            commit(batch, done)
            report.update_substep("save", sub, done=done)
            batch = []
    if batch:
        commit(batch, done)
    report.update_substep("save", sub, done=done)
    return broken


def write_batch(conn, job_id, f, batch, ids):
    """Write one batch's rows in the caller's transaction; returns the counts to add to the file's."""
    plays = [item for kind, item in batch if kind == "row"]
    skips = [reason for kind, reason in batch if kind == "skip"]
    counts = {"imported": 0, "skipped": len(skips), "errors": sum(1 for kind, _ in batch if kind == "error"),
              "collection_added": 0, "new_albums": 0}
    if f["kind"] == "discogs_csv":
        counts["collection_added"] = _save_collection_rows(conn, plays)
        counts["skipped"] += len(plays) - counts["collection_added"]
    elif plays:
        by_source = {}
        for p in plays:
            by_source.setdefault(p.source or f["kind"], []).append(p)
        for source, group in by_source.items():
            outcome = write_plays(conn, group, source=source, job_id=job_id, cache=ids)
            counts["feed"] = outcome.feed  # the last one is the newest: it is what journals follow
            counts["imported"] += outcome.imported
            counts["skipped"] += outcome.skipped
            counts["new_albums"] += outcome.new_albums
    return counts, skips


def file_state(before, counts, rows_done):
    """A file's checkpoint entry after one more batch."""
    return {**before, "rows_done": rows_done,
            **{k: before.get(k, 0) + counts[k] for k in ("imported", "skipped", "errors", "collection_added")}}


def announce_batch(store, f, counts):
    """After a batch's commit: tell open journals when it added listens."""
    if counts["imported"]:
        listen_feed.announce(store, counts.get("feed"), imported=counts["imported"], source=f["kind"])


def report_batch(report, batch, counts, skips):
    named = {SKIP_COUNTERS[r]: skips.count(r) for r in set(skips) if r in SKIP_COUNTERS}
    report.advance(len(batch), imported=counts["imported"], skipped=counts["skipped"], **named)


def _save_batch(ctx, state, i, f, batch, rows_done, write_lock):
    """Write one batch and its checkpoint in one transaction (under the job's write lock)."""

    def work(conn):  # one transaction, tried again whole if the database is locked
        counts, skips = write_batch(conn, ctx.job_id, f, batch, ctx.ids)
        files_state = {**state["files"], str(i): file_state(state["files"].get(str(i), {}), counts, rows_done)}
        new_state = {**state, "files": files_state, "new_albums": state["new_albums"] + counts["new_albums"]}
        ctx.save_checkpoint(conn, new_state)
        return counts, skips, new_state

    with write_lock:
        counts, skips, new_state = ctx.write(work)
        state.update(new_state)
    announce_batch(ctx.store, f, counts)
    report_batch(ctx.tracker, batch, counts, skips)
    ctx.check()


def _save_collection_rows(conn, rows):
    """Discogs CSV rows into the collection, under the sync's rules: add what is new, rewrite nothing."""
    if not rows:
        return 0
    items = CollectionItem.__table__
    album_ids, _ = ensure_albums(conn, [(r["artist"], r["title"], None) for r in rows], image_source=None)
    values = []
    for r in rows:
        values.append({**{k: r.get(k) for k in ("instance_id", "release_id", "title", "artist", "year", "formats",
                                                 "labels", "genres", "styles", "date_added", "rating")},
                       "album_id": album_ids[(name_key(r["artist"]), name_key(r["title"]))],
                       "source": "discogs_csv", "folder_id": None})
    return len(insert_ignoring_conflicts(conn, items, values, returning=[items.c.id]))


def _outcome(f, kept):
    out = {"name": f["name"], "format": f.get("format"), "rows": f.get("rows", 0),
           "imported": kept.get("imported", 0), "skipped": kept.get("skipped", 0), "errors": kept.get("errors", 0),
           "status": "error" if "failed" in f else "completed"}
    if kept.get("collection_added"):
        out["collection_added"] = kept["collection_added"]
    if "failed" in f:
        out["error"] = f["failed"]
    return out
