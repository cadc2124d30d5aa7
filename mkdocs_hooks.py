"""MkDocs hooks (mkdocs.yml `hooks:`): the pages whose tables come from the code and the benchmarks.

A page holds a marker where a generated table goes:
- `<!-- settings-table -->`: every setting of `config.SETTINGS` (docs/settings.md);
- `<!-- bench-results NAME -->`: the figures of `bench/results/NAME.json`, written by
  `bench/bench_NAME.py` through `bench/results.py` (docs/performance.md).
Generated at build time, so no hand-written copy of either can drift from its source.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # mkdocs runs from its own script directory; config.py lives here
    sys.path.insert(0, str(ROOT))

import config as sillon_config  # noqa: E402 - `config` is also the name MkDocs gives its own

RESULTS_DIR = ROOT / "bench" / "results"
SETTINGS_MARKER = "<!-- settings-table -->"
BENCH_MARKER = re.compile(r"<!-- bench-results ([a-z0-9_-]+) -->")
TYPES = {str: "text", int: "whole number", float: "number"}
log = logging.getLogger("mkdocs.hooks.sillon")


def cell(text):
    """Text safe inside one cell of a Markdown table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def shown_default(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def setting_type(convert, default):
    if isinstance(default, bool):
        return "true / false"
    return TYPES.get(convert, "text")


def settings_table(settings=None):
    """The Markdown table of every setting: name, config.json path, type, default, description."""
    settings = sillon_config.SETTINGS if settings is None else settings
    lines = ["| Setting | config.json | Type | Default | What it does |", "|---|---|---|---|---|"]
    for name, (json_path, default, convert, description) in settings.items():
        secret = " (secret)" if name in sillon_config.SECRET_SETTINGS else ""
        path = f"`secrets.{json_path}`" if json_path else ""
        page = "Settings page: " if name in sillon_config.APP_SETTINGS else ""
        lines.append(f"| `{name}`{secret} | {path} | {setting_type(convert, default)} | {shown_default(default)} "
                     f"| {page}{cell(description)} |")
    return "\n".join(lines)


def results_table(table):
    columns = table["columns"]
    lines = []
    if table.get("title"):
        lines += [f"**{table['title']}**", ""]
    lines += ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in table["rows"]:
        row = list(row) + [""] * (len(columns) - len(row))
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def measured_line(doc):
    """When, where and how the figures of one results file were measured."""
    machine = doc.get("machine") or {}
    where = [f"{machine['cpus']} CPUs" if machine.get("cpus") else None, machine.get("platform"),
             f"Python {machine['python']}" if machine.get("python") else None]
    where = ", ".join(w for w in where if w)
    line = f"Measured {doc.get('measured_at', 'at an unknown date')}" + (f" on {where}" if where else "")
    if machine.get("loadavg"):
        line += f", load average {machine['loadavg'][0]:.1f} at the end"
    if machine.get("note"):
        line += f" ({machine['note']})"
    return f"*{line}; command: `{doc.get('command', '?')}`.*"


def bench_results(name, results_dir=None):
    """The Markdown for bench/results/NAME.json: how it was measured, its tables, its notes."""
    path = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("%s is missing: run `.venv/bin/python bench/run_all.py %s`", path, name)
        return f"*No results yet: run `.venv/bin/python bench/run_all.py {name}`.*"
    except ValueError as exc:
        log.warning("%s is not valid JSON (%s)", path, exc)
        return f"*`bench/results/{name}.json` could not be read.*"
    blocks = [measured_line(doc)]
    blocks += [results_table(t) for t in doc.get("tables", [])]
    blocks += list(doc.get("notes", []))
    return "\n\n".join(blocks)


def expand(markdown, results_dir=None):
    """A page's Markdown with every marker replaced by its generated table."""
    markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    return BENCH_MARKER.sub(lambda m: bench_results(m.group(1), results_dir), markdown)


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - MkDocs' hook signature
    return expand(markdown)
