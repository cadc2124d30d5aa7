"""The upload-and-watch import: files a person uploaded, read, then saved in batches.

Steps: read (detect each file's format and parse it, bytes as the measure), save (rows written
in batches, each committed with its checkpoint), finish (summary, clean-up).
A file in no known format ends the job before anything is written.
"""
from __future__ import annotations

import os
import shutil

from ..db import db
from ..sources.errors import UnrecognizedFile
from ..sources.exports import lastfm_csv
from .listens import write_plays

STEPS = (("read", "Read files", 1.0), ("save", "Save listens", 4.0), ("finish", "Finish", 0.2))
READ_YIELD_ROWS = 2000


def import_uploaded_files(ctx):
    tracker, files = ctx.tracker, ctx.params.get("files", [])
    batch_size = ctx.settings["IMPORT_BATCH_SIZE"]
    # What earlier runs of this job committed (a resumed job carries its counts on).
    state = {"files": {}, "new_albums": 0, "imported": 0, "skipped": 0, "errors": 0, **ctx.checkpoint}
    for name in ("imported", "skipped", "errors"):
        tracker.incr(name, state[name])

    # read: detect every file first, so a file in no known format changes nothing at all.
    tracker.start_step("read", f"Reading {len(files)} file(s)")
    tracker.set_total(sum(os.path.getsize(f["path"]) for f in files))
    rows_per_file, layouts = [], []
    for i, f in enumerate(files):
        sub = f"read-{i}"
        tracker.start_substep("read", sub, f["name"], "Detecting format")
        try:
            layout = lastfm_csv.detect(f["path"], f["name"])
        except UnrecognizedFile as exc:
            tracker.error_substep("read", sub, str(exc))
            tracker.error_step("read", str(exc))
            raise UnrecognizedFile(f"{exc}. Nothing was imported.") from None
        reader = lastfm_csv.Reader(f["path"], layout)
        count, seen_bytes = 0, 0
        for count, _ in enumerate(reader, 1):
            if count % READ_YIELD_ROWS == 0:
                tracker.advance(reader.bytes_read - seen_bytes)
                seen_bytes = reader.bytes_read
                tracker.update_substep("read", sub, done=count, message=f"{count:,} rows")
                ctx.check()
        tracker.advance(reader.bytes_read - seen_bytes)
        rows_per_file.append(count)
        layouts.append(layout)
        tracker.complete_substep("read", sub, f"{count:,} rows ({_layout_name(layout)})")
    tracker.complete_step("read", f"{sum(rows_per_file):,} rows in {len(files)} file(s)")

    # save: batches, each committed with its checkpoint; a resumed job skips what was saved.
    tracker.start_step("save", "Saving listens")
    tracker.set_total(sum(rows_per_file))
    for i, f in enumerate(files):
        sub = f"save-{i}"
        already = state["files"].get(str(i), 0)
        tracker.start_substep("save", sub, f["name"], total=rows_per_file[i])
        if already:
            tracker.advance(already)
            tracker.update_substep("save", sub, done=already, message="resumed")
        batch, done = [], 0
        for done, (line, item) in enumerate(lastfm_csv.Reader(f["path"], layouts[i]), 1):
            if done <= already:
                continue
            if isinstance(item, lastfm_csv.RowError):
                tracker.add_error(str(item), file=f["name"], line=line)
                batch.append(None)
            else:
                batch.append(item)
            if len(batch) >= batch_size:
                _save_batch(ctx, state, batch, i, done)
                tracker.update_substep("save", sub, done=done)
                batch = []
        if batch:
            _save_batch(ctx, state, batch, i, done)
        tracker.update_substep("save", sub, done=done)
        tracker.complete_substep("save", sub, f"{done:,} rows")
    tracker.complete_step("save")

    tracker.start_step("finish", "Summing up")
    result = {"files": [{"name": f["name"], "rows": n, "format": _layout_name(layout)}
                        for f, n, layout in zip(files, rows_per_file, layouts, strict=False)],
              "imported": state["imported"], "skipped": state["skipped"], "errors": state["errors"],
              "albums_to_enrich": state["new_albums"]}
    result["message"] = (f"Imported {result['imported']:,} listens; {result['skipped']:,} already there; "
                         f"{result['errors']:,} rows could not be read.")
    upload_dir = ctx.params.get("upload_dir")
    if upload_dir:
        shutil.rmtree(upload_dir, ignore_errors=True)
    tracker.complete_step("finish")
    return result


def _save_batch(ctx, state, batch, file_index, rows_done):
    """Write one batch and its checkpoint in one transaction; `batch` holds None for unreadable rows."""
    plays = [p for p in batch if p is not None]
    with db.engine.begin() as conn:
        outcome = write_plays(conn, plays, source="lastfm_csv", job_id=ctx.job_id)
        new_state = {**state, "files": {**state["files"], str(file_index): rows_done},
                     "new_albums": state["new_albums"] + outcome.new_albums,
                     "imported": state["imported"] + outcome.imported,
                     "skipped": state["skipped"] + outcome.skipped,
                     "errors": state["errors"] + len(batch) - len(plays)}
        ctx.save_checkpoint(conn, new_state)
    state.update(new_state)
    # counted only once committed, so the counters never claim more than the database holds
    ctx.tracker.advance(len(batch), imported=outcome.imported, skipped=outcome.skipped)
    ctx.check()


def _layout_name(layout):
    return {lastfm_csv.SIMPLE: "Last.fm CSV (artist, album, track, date)",
            lastfm_csv.UTS: "Last.fm CSV (uts header)"}.get(layout, layout)
