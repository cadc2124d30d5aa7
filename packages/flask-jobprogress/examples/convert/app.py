"""Example: a file converter with a seven-step pipeline, followed live in the browser.

    python examples/convert/app.py            # then open http://127.0.0.1:5000/

Upload CSV files; each is converted to JSON Lines and the results are packed into one zip. The job
runs in a thread started by the upload's route; its page shows the steps, a substep per file in the
per-file steps, the counters (rows, bad rows) with sample errors, and goes to the result page at
the end. EXAMPLE_STEP_SECONDS (default 0.3) slows each file's steps down enough to be watched.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from flask import Flask, abort, redirect, render_template_string, request, send_file, url_for
from flask_jobprogress import Cancelled, JobProgress

STEPS = [("receive", "Receive files", 1), ("detect", "Detect encoding", 1), ("parse", "Parse rows", 3),
         ("validate", "Validate rows", 2), ("convert", "Convert to JSON Lines", 3), ("pack", "Pack the zip", 1),
         ("clean", "Clean up", 1)]
PER_FILE = ("detect", "parse", "validate", "convert")  # one substep per file in these steps

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Convert CSV files</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; }
  [data-part="bar"] { background: #ddd; height: 1rem; border-radius: .5rem; overflow: hidden; }
  [data-part="bar-fill"] { background: #2a7; height: 100%; width: 0; transition: width .2s; }
  .step-completed > .step-head { color: #2a7; } .step-error > .step-head { color: #c33; }
  .substeps { font-size: .9em; } .visually-hidden { position: absolute; left: -9999px; }
</style></head><body>
{% if job_id %}
<h1>Converting</h1>
<section id="job" data-jobprogress
  data-status-url="{{ url_for('jobprogress.snapshot', job_id=job_id) }}"
  data-events-url="{{ url_for('jobprogress.events', job_id=job_id) }}"
  data-cancel-url="{{ url_for('jobprogress.cancel', job_id=job_id) }}">
  <script type="application/json">{{ snapshot|tojson }}</script>
  <div data-part="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100"><div data-part="bar-fill"></div></div>
  <p data-part="status-text" aria-live="off"></p>
  <p data-part="announce" aria-live="polite" class="visually-hidden"></p>
  <dl>
    <dt>Progress</dt><dd data-part="stat-done"></dd><dt>Elapsed</dt><dd data-part="stat-elapsed"></dd>
    <dt>Rate</dt><dd data-part="stat-rate"></dd><dt>Left</dt><dd data-part="stat-eta"></dd>
  </dl>
  <dl data-part="counters"></dl>
  <ol data-part="steps"></ol>
  <div data-part="errors-box" hidden><h2>Errors</h2><ul data-part="errors"></ul><p data-part="errors-note"></p></div>
  <button type="button" data-part="cancel-button">Cancel</button>
  <a data-part="result-link" hidden>The result</a>
</section>
<script src="{{ url_for('jobprogress.static', filename='jobprogress.js') }}"></script>
{% else %}
<h1>Convert CSV files to JSON Lines</h1>
<form method="post" action="{{ url_for('start') }}" enctype="multipart/form-data">
  <input type="file" name="files" accept=".csv,text/csv" multiple required>
  <button>Convert</button>
</form>
{% endif %}
</body></html>
"""

RESULT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Converted</title></head><body>
<h1>Converted {{ result.files }} files</h1>
<p id="summary">{{ result.rows }} rows converted, {{ result.bad_rows }} bad rows left out.</p>
<p><a id="download" href="{{ url_for('download', job_id=job_id) }}">Download the zip</a></p>
<p><a href="{{ url_for('index') }}">Convert more</a></p>
</body></html>
"""


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(OUTPUT_DIR=tempfile.mkdtemp(prefix="convert-example-"),
                      STEP_SECONDS=float(os.environ.get("EXAMPLE_STEP_SECONDS", "0.3")),
                      MAX_CONTENT_LENGTH=20 * 1024 * 1024)
    app.config.update(config or {})
    progress = JobProgress(app)

    @app.get("/")
    def index():
        return render_template_string(PAGE, job_id=None)

    @app.post("/convert")
    def start():
        files = [(f.filename or "unnamed.csv", f.read()) for f in request.files.getlist("files") if f.filename]
        if not files:
            return render_template_string(PAGE, job_id=None), 400
        tracker = progress.tracker("convert", STEPS)
        progress.run_in_thread(tracker, convert, files, Path(app.config["OUTPUT_DIR"]), app.config["STEP_SECONDS"],
                               url_for("result", job_id=tracker.id))
        return redirect(url_for("job", job_id=tracker.id), 303)

    @app.get("/jobs/<job_id>/page")
    def job(job_id):
        snapshot = progress.store.get(job_id)
        if snapshot is None:
            abort(404)
        return render_template_string(PAGE, job_id=job_id, snapshot=snapshot)

    @app.get("/results/<job_id>")
    def result(job_id):
        snapshot = progress.store.get(job_id)
        if snapshot is None or snapshot["status"] != "completed":
            abort(404)
        return render_template_string(RESULT, job_id=job_id, result=snapshot["result"])

    @app.get("/results/<job_id>/download")
    def download(job_id):
        path = Path(app.config["OUTPUT_DIR"]) / f"{job_id}.zip"
        if not path.exists():
            abort(404)
        return send_file(path, as_attachment=True, download_name="converted.zip")

    return app


def convert(tracker, files, output_dir, pause, result_url):
    """The job: seven steps; per-file steps have a substep per file; bad rows are counted and sampled."""
    def check():
        if tracker.cancel_requested:
            raise Cancelled("Stopped at your request: nothing was written")

    tracker.start_step("receive", f"{len(files)} files")
    for name, data in files:
        tracker.set_step_message("receive", f"{name}: {len(data):,} bytes")
    tracker.complete_step("receive")

    texts, tables, lines = {}, {}, {}
    for step in PER_FILE:
        tracker.start_step(step)
        if step in ("validate", "convert"):
            tracker.set_total(sum(len(tables[name]) for name, _ in files if name in tables))
        for name, data in files:
            sub = f"{step}:{name}"
            tracker.start_substep(step, sub, name)
            check()
            time.sleep(pause)
            if step == "detect":
                texts[name], encoding = decode(data)
                tracker.complete_substep(step, sub, encoding)
            elif step == "parse":
                tables[name] = list(csv.DictReader(io.StringIO(texts[name])))
                tracker.complete_substep(step, sub, f"{len(tables[name])} rows")
            elif step == "validate":
                good = []
                for line, row in enumerate(tables[name], start=2):
                    if None in row or any(v is None for v in row.values()):
                        tracker.add_error("the row has more or fewer fields than the header", file=name, line=line)
                    else:
                        good.append(row)
                    tracker.advance()
                tables[name] = good
                tracker.complete_substep(step, sub, f"{len(good)} good rows")
            else:
                total = len(tables[name])
                out = []
                for i, row in enumerate(tables[name], start=1):
                    out.append(json.dumps(row, ensure_ascii=False))
                    tracker.advance(rows=1)
                    if i % 50 == 0:
                        tracker.update_substep(step, sub, done=i, total=total)
                lines[name] = out
                tracker.complete_substep(step, sub, f"{total} lines")
        tracker.complete_step(step)

    tracker.start_step("pack")
    check()
    output_dir.mkdir(parents=True, exist_ok=True)
    target, partial = output_dir / f"{tracker.id}.zip", output_dir / f"{tracker.id}.zip.part"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, out in lines.items():
            archive.writestr(Path(name).stem + ".jsonl", "\n".join(out) + "\n")
    tracker.complete_step("pack", f"{partial.stat().st_size:,} bytes")
    tracker.start_step("clean")
    partial.replace(target)  # the zip appears whole or not at all
    tracker.complete_step("clean")
    counters = tracker.counters
    tracker.complete(result={"files": len(files), "rows": counters.get("rows", 0),
                             "bad_rows": counters.get("errors", 0)},
                     redirect_url=result_url, message="Converted")


def decode(data):
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    create_app().run("127.0.0.1", port, threaded=True)
