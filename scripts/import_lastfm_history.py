#!/usr/bin/env python3
"""Start a Last.fm history import on a running Sillon server and follow it live in the terminal.

    scripts/import_lastfm_history.py [limit] [--no-skip-existing] [--url http://localhost:8000]

Prints a progress bar from the job's event stream, then the summary; exits 1 if the job fails.
With APP_PASSWORD set on the server, export SILLON_API_TOKEN (from `flask token create`).
Needs only `requests`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import requests


def auth_headers():
    """`Authorization: Bearer` from SILLON_API_TOKEN, when set (needed once the server has a password)."""
    token = os.environ.get("SILLON_API_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def events(url, timeout=60):
    """Yield (event, data) from a Server-Sent Events URL until the server closes it."""
    with requests.get(url, stream=True, timeout=(10, timeout), headers={"Accept": "text/event-stream", **auth_headers()}) as resp:
        resp.raise_for_status()
        event, data = None, []
        for line in resp.iter_lines(decode_unicode=True):
            if line == "":
                if data:
                    yield event or "message", json.loads("\n".join(data))
                event, data = None, []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())


def bar_line(snap, width=30):
    pct = snap.get("overall_progress") or 0
    filled = int(width * pct / 100)
    c = snap.get("counters", {})
    eta = snap.get("eta_seconds")
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}%  batch {c.get('batches', 0)}/"
            f"{c.get('total_batches', 0)}  imported {c.get('imported', 0):,}  skipped {c.get('skipped', 0):,}  "
            f"errors {c.get('errors', 0):,}  {snap.get('rate') or 0:,.0f}/s"
            + (f"  ETA {eta:.0f}s" if eta else "") + f"  {snap.get('message', '')[:40]:<40}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("limit", nargs="?", type=int, help="import at most this many listens")
    parser.add_argument("--no-skip-existing", action="store_true",
                        help="re-read the whole history instead of only what is newer than the newest stored listen")
    parser.add_argument("--url", default="http://localhost:8000", help="the Sillon server (default %(default)s)")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    params = {"skip_existing": "false" if args.no_skip_existing else "true"}
    if args.limit:
        params["limit"] = args.limit
    started = time.monotonic()
    try:
        resp = requests.post(f"{base}/api/v1/services/lastfm/import-history", params=params, timeout=60,
                             headers=auth_headers())
    except requests.RequestException as exc:
        print(f"Cannot reach Sillon at {base}: {exc}", file=sys.stderr)
        return 2
    body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else {}
    if resp.status_code == 401:
        print(f"Sillon asks for a sign-in: {body.get('error')} Set SILLON_API_TOKEN.", file=sys.stderr)
        return 1
    if resp.status_code == 409:
        print(f"An import is already running; following it ({body.get('job_id')}).")
    elif resp.status_code != 202:
        print(f"Could not start the import: {body.get('error') or resp.text}", file=sys.stderr)
        return 1
    snap = {}
    while True:
        try:
            for event, data in events(base + body["events_url"]):
                if event == "progress":
                    snap = data
                    print(bar_line(snap), end="", flush=True)
                elif event == "done":
                    break
            break
        except requests.RequestException:
            time.sleep(1)  # the stream dropped: reconnect and carry on
    snap = requests.get(base + body["status_url"], timeout=30, headers=auth_headers()).json()
    print()
    result = snap.get("result") or {}
    counters = snap.get("counters", {})
    print(f"{snap['status']}: {snap.get('message', '')}")
    print(f"  duration         {time.monotonic() - started:.1f} s")
    for label, value in (("imported", counters.get("imported", 0)), ("skipped", counters.get("skipped", 0)),
                         ("errors", counters.get("errors", 0)),
                         ("albums to enrich", result.get("albums_to_enrich", 0)),
                         ("total scrobbles", result.get("total_scrobbles", 0))):
        print(f"  {label:<16} {value:,}")
    return 0 if snap["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
