"""Run every bench/bench_*.py in turn (`make bench`) and print a summary.

Each bench is a plain script run with this interpreter; it prints its own tables and writes
bench/results/<name>.json. The summary lists, per bench, how long it took, its results file and
every target it reports (`target_met`, `*_ok` and `final_state_published` flags in that file).
A missed target is reported, not treated as a failure: this exits non-zero only when a bench
crashed or timed out without writing fresh results.

    .venv/bin/python bench/run_all.py            # every bench
    .venv/bin/python bench/run_all.py sse        # only bench/bench_sse.py

bench_soak.py runs for 30 minutes: it only runs when named (`run_all.py soak`). bench_db_lock.py
(pages during a 20 s SQLite lock, about a minute) runs with the others.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ON_REQUEST = {"soak"}  # too long for `make bench`: run when named
ROOT = BENCH.parent
RESULTS = BENCH / "results"
TIMEOUT_SECONDS = 600  # each bench aims at under ~3 minutes; this only stops one that hangs


def targets(data, path=""):
    """(dotted path, met?) for every target flag in a results document."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else key
            if isinstance(value, bool) and (key == "target_met" or key.endswith("_ok")
                                            or key == "final_state_published"):
                found.append((where, value))
            else:
                found.extend(targets(value, where))
    return found


def run(script):
    name = script.stem.removeprefix("bench_")
    result_file = RESULTS / f"{name}.json"
    print(f"\n===== {script.name} " + "=" * max(0, 60 - len(script.name)), flush=True)
    started, wall = time.time(), time.monotonic()
    try:
        code = subprocess.run([sys.executable, str(script)], cwd=ROOT, timeout=TIMEOUT_SECONDS).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    seconds = time.monotonic() - wall
    fresh = result_file.exists() and result_file.stat().st_mtime >= started
    flags = []
    if fresh:
        try:
            flags = targets(json.loads(result_file.read_text()))
        except ValueError:
            fresh = False
    failed = not fresh and code != 0
    return {"bench": script.name, "exit": code, "seconds": round(seconds, 1), "failed": failed,
            "results": str(result_file.relative_to(ROOT)) if fresh else None, "targets": flags}


def main(argv=None):
    wanted = set(argv if argv is not None else sys.argv[1:])
    scripts = [s for s in sorted(BENCH.glob("bench_*.py"))
               if (not wanted and s.stem.removeprefix("bench_") not in ON_REQUEST)
               or s.stem.removeprefix("bench_") in wanted or s.name in wanted]
    if not scripts:
        print(f"no bench matches {sorted(wanted)}; have: "
              + ", ".join(s.name for s in sorted(BENCH.glob("bench_*.py"))))
        return 2
    runs = [run(s) for s in scripts]

    print("\n===== summary " + "=" * 52)
    for r in runs:
        state = "FAILED" if r["failed"] else "ran"
        print(f"{r['bench']:<22} {state:<7} exit {r['exit']!s:<8} {r['seconds']:>6.1f} s   "
              f"{r['results'] or 'no fresh results'}")
        for where, met in r["targets"]:
            print(f"    {'met   ' if met else 'MISSED'}  {where}")
    missed = sum(1 for r in runs for _, met in r["targets"] if not met)
    failed = [r["bench"] for r in runs if r["failed"]]
    print(f"\n{len(runs)} bench(es), {missed} target(s) missed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
