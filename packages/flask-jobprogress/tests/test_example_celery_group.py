"""examples/celery_group: files checked by a Celery group with real workers on a real Redis
(JOBPROGRESS_TEST_REDIS_URL), on a queue and a prefix of this test's own, followed live by a Flask
app on the same Redis store."""
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from flask import Flask
from flask_jobprogress import JobProgress

RUN = Path(__file__).resolve().parent.parent / "examples" / "celery_group" / "run.py"


def write_files(tmp_path):
    paths = []
    for i, bad_rows in enumerate(([5, 80], [], [10, 20, 30]), start=1):
        path = tmp_path / f"ledger{i}.csv"
        path.write_text("name,amount\n" + "".join(
            f"item{r},{'n/a' if r in bad_rows else r}\n" for r in range(150)))
        paths.append(path)
    return paths


def events_of(text):
    blocks = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not block.startswith(":"))
        if "event" in fields:
            blocks.append({"event": fields["event"], "id": int(fields["id"]), "data": json.loads(fields["data"])})
    return blocks


def test_a_celery_group_reports_into_one_shared_progress(tmp_path, redis_url, prefix):
    files = write_files(tmp_path)
    env = {**os.environ, "EXAMPLE_REDIS_URL": redis_url, "EXAMPLE_PREFIX": prefix,
           "EXAMPLE_QUEUE": f"jobprogress-test-{uuid.uuid4().hex}"}
    proc = subprocess.Popen([sys.executable, str(RUN), *map(str, files), "--workers", "2", "--timeout", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("job "), first + proc.stdout.read()
        job_id = first.split()[1]
        # A web app on the same store follows the job from its other process, to the end.
        web = Flask(__name__)
        web.config.update(JOBPROGRESS_STORE="redis", JOBPROGRESS_REDIS_URL=redis_url, JOBPROGRESS_REDIS_PREFIX=prefix)
        JobProgress(web)
        client = web.test_client()
        deadline = time.monotonic() + 60
        while client.get(f"/jobs/{job_id}").status_code == 404:  # its first publish is on its way
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the job was never published"
            time.sleep(0.05)
        events = events_of(client.get(f"/jobs/{job_id}/events").get_data(as_text=True))
        output = proc.stdout.read()
        assert proc.wait(120) == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and events[-1]["event"] == "done" and events[-1]["data"]["status"] == "completed"
    final = client.get(f"/jobs/{job_id}").json
    assert final["status"] == "completed" and final["done"] == final["total"] == 450
    assert final["counters"] == {"valid": 445, "errors": 5} and final["errors_total"] == 5
    assert final["result"] == {"files": 3, "rows": 450, "valid": 445, "errors": 5}
    assert sorted((e["file"], e["line"]) for e in final["errors_sample"]) == [
        ("ledger1.csv", 7), ("ledger1.csv", 82), ("ledger3.csv", 12), ("ledger3.csv", 22), ("ledger3.csv", 32)]
    check = final["steps"][1]
    assert [(s["name"], s["status"]) for s in check["substeps"]] == [
        ("ledger1.csv", "completed"), ("ledger2.csv", "completed"), ("ledger3.csv", "completed")]
    assert check["substeps"][2]["message"] == "150 rows, sum %g" % (sum(range(150)) - 10 - 20 - 30)
    # The counts only grow in the stream (how many steps it shows depends on the workers' speed).
    valid_seen = [e["data"]["counters"].get("valid", 0) for e in events if e["event"] == "progress"]
    assert valid_seen == sorted(valid_seen) and valid_seen[-1] == 445
    assert "completed 100.0%  450/450 rows  valid 445  errors 5  Checked" in output
