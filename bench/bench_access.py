"""What the access gate costs a request.

One app per variant on a copy of one migrated SQLite database, requests through Flask's test client
(in process: the gate's cost is not drowned in socket time), `GET /api/v1/jobs` (a small query) and
`POST /api/v1/services/ai/language` (a write), each variant measured ROUNDS times interleaved, the
fastest round reported (on a shared machine the others mostly measure the neighbours), as a ratio to
the same request with no password (the baseline):

- open: no APP_PASSWORD, a script without cookies (no CSRF check) - the baseline;
- open + CSRF: no password, a browser's session cookie and X-CSRFToken (checked);
- session: APP_PASSWORD, signed in, X-CSRFToken on the write;
- API_TOKEN: APP_PASSWORD, `Authorization: Bearer` matching the setting;
- stored token: APP_PASSWORD, `Authorization: Bearer` of a `flask token create` token (one query).

Also the time one sign-in takes (werkzeug's password hash, on purpose slow), for information.
Target: a gated request (session or token) costs at most 2x the open one. Most of what a signed-in
request adds is Flask opening its signed session cookie (an HMAC check); the gate itself is a few
dictionary look-ups and, for a stored token, one primary-key query.

Run: .venv/bin/python bench/bench_access.py   (writes bench/results/access.json)
"""
from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import results as bench_results  # noqa: E402 - bench/results.py

REQUESTS = 400
ROUNDS = 9
TARGET = 2.0
PASSWORD = "bench password"
TOKEN = "fake-bench-token-0123456789abcdef"


def environ(instance, **extra):
    return {"SILLON_CONFIG": str(instance / "absent.json"), "INSTANCE_PATH": str(instance), **extra}


def make(work, template, **extra):
    from app import create_app

    instance = Path(tempfile.mkdtemp(prefix="instance-", dir=work))
    shutil.copy(template, instance / "sillon.db")
    return create_app({"ENVIRON": environ(instance, **extra)})


def page_token(client, path="/login"):
    """The CSRF token a page carries in its meta tag (and the form field of the login page)."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def variants(work, template):
    """name -> (client, headers for GET, headers for POST)."""
    out = {}
    app = make(work, template)
    out["open"] = (app.test_client(use_cookies=False), {}, {})
    client = app.test_client()
    out["open + CSRF"] = (client, {}, {"X-CSRFToken": page_token(client, "/journal")})
    locked = make(work, template, APP_PASSWORD=PASSWORD, API_TOKEN=TOKEN)
    client = locked.test_client()
    client.post("/login", data={"password": PASSWORD, "csrf_token": page_token(client)})
    out["session"] = (client, {}, {"X-CSRFToken": page_token(client, "/journal")})
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    out["API_TOKEN"] = (locked.test_client(use_cookies=False), bearer, bearer)
    stored = locked.test_cli_runner().invoke(args=["token", "create"]).output.strip().splitlines()[-1]
    bearer = {"Authorization": f"Bearer {stored}"}
    out["stored token"] = (locked.test_client(use_cookies=False), bearer, bearer)
    return out, (app, locked)


def measure(client, method, headers):
    started = time.perf_counter()
    for _ in range(REQUESTS):
        if method == "GET":
            resp = client.get("/api/v1/jobs", headers=headers)
        else:
            resp = client.post("/api/v1/services/ai/language?language=English", headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"{method} answered {resp.status_code}: {resp.get_data(as_text=True)[:200]}")
    return (time.perf_counter() - started) / REQUESTS


def main():
    from flask_migrate import upgrade

    from app import create_app

    logging.getLogger("alembic").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-access-"))
    results = {"requests": REQUESTS, "rounds": ROUNDS, "target_ratio": TARGET,
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg_before": os.getloadavg()}
    apps = ()
    try:
        template = work / "template"
        template.mkdir()
        app = create_app({"ENVIRON": environ(template)})
        with app.app_context():
            upgrade()
            from modules.db import db
            db.engine.dispose()  # SQLite's write-ahead log folds into the file before it is copied
        logging.getLogger("alembic").setLevel(logging.WARNING)
        clients, apps = variants(work, template / "sillon.db")
        timings = {(name, method): [] for name in clients for method in ("GET", "POST")}
        for _ in range(ROUNDS):
            for (name, method), samples in timings.items():
                client, get_headers, post_headers = clients[name]
                samples.append(measure(client, method, get_headers if method == "GET" else post_headers))
        locked = apps[1]
        client = locked.test_client()
        field = page_token(client)
        started = time.perf_counter()
        for _ in range(5):
            client.post("/login", data={"password": PASSWORD, "csrf_token": field})
        sign_in = (time.perf_counter() - started) / 5
    finally:
        for application in apps:
            with application.app_context():
                from modules.db import db
                db.engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    table = {}
    for method in ("GET", "POST"):
        base = min(timings[("open", method)])
        for name in clients:
            best, median = min(timings[(name, method)]), statistics.median(timings[(name, method)])
            table[f"{name} {method}"] = {"us_per_request": round(best * 1e6, 1), "ratio": round(best / base, 3),
                                         "median_us": round(median * 1e6, 1)}
    gated = [v["ratio"] for k, v in table.items() if k.split(" ")[0] in ("session", "API_TOKEN", "stored")]
    results.update(table=table, sign_in_ms=round(sign_in * 1000, 1), worst_gated_ratio=max(gated),
                   target_met=max(gated) <= TARGET, loadavg_after=os.getloadavg())
    print(f"{'variant':<22}{'µs/request':>12}{'ratio':>8}{'median µs':>12}")
    for name, row in table.items():
        print(f"{name:<22}{row['us_per_request']:>12.1f}{row['ratio']:>8.2f}x{row['median_us']:>12.1f}")
    print(f"one sign-in (password hash check): {results['sign_in_ms']:.1f} ms")
    print(f"worst gated ratio {results['worst_gated_ratio']:.2f}x (target at most {TARGET}x): "
          f"{'met' if results['target_met'] else 'MISSED'}")
    print(f"load average before / after: {results['loadavg_before'][0]:.2f} / {results['loadavg_after'][0]:.2f}")
    bench_results.write_results("access", results, result_tables(results),
                                notes=[f"One sign-in (werkzeug's scrypt password check) took {results['sign_in_ms']:.0f} ms."])
    return 0


LABELS = {"open": "no password, a script (baseline)",
          "open + CSRF": "no password, a browser (session cookie, CSRF checked on POST)",
          "session": "signed in (session; CSRF on POST)", "API_TOKEN": "`API_TOKEN`",
          "stored token": "stored token (`flask token create`: one query)"}


def result_tables(results):
    """The table docs/performance.md shows for this run: the fastest round as a ratio to the baseline."""
    table = results["table"]

    def shown(name, method):
        row = table[f"{name} {method}"]
        return f"{row['ratio']:.2f}x ({row['us_per_request'] / 1000:.2f} ms)" if name == "open" else f"{row['ratio']:.2f}x"

    rows = [[label, shown(name, "GET"), shown(name, "POST"), "" if name.startswith("open") else f"at most {TARGET:g}x"]
            for name, label in LABELS.items()]
    return [bench_results.table(["request", "GET `/api/v1/jobs`", "POST `/api/v1/services/ai/language`", "target"], rows)]


if __name__ == "__main__":
    sys.exit(main())
