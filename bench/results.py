"""Where a bench's figures go: bench/results/<name>.json, committed, rendered by the docs.

Every bench calls `write_results` once at the end of its run, which overwrites its file. A results file holds
when, where and how the figures were measured, the tables a person reads (docs/performance.md shows
them through mkdocs_hooks.py), and the raw figures the bench measured (`run_all.py` reads its target
flags there).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"


def table(columns, rows, title=None):
    """One table of a results file: its column names and rows of already formatted cells."""
    return {"title": title, "columns": list(columns), "rows": [[str(c) for c in row] for row in rows]}


def command():
    """The command line that ran this bench, as a person would type it from the project root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join([".venv/bin/python", str(shown), *sys.argv[1:]])


def machine():
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def write_results(name, figures, tables, notes=()):
    """Write bench/results/<name>.json and return its path."""
    doc = {"bench": name, "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": machine(), "command": command(), "tables": list(tables), "notes": list(notes),
           "figures": figures}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {os.path.relpath(path, ROOT)}")
    return path
