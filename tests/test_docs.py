"""The docs: generated pages list what the code and the benchmarks hold; the README leads into them.

`make test` also builds the whole site with `mkdocs build --strict` (broken links and anchors fail);
these tests check what a strict build cannot: that the generated tables are complete.
"""
import json
import re
from pathlib import Path

import config
import mkdocs_hooks
from bench import results as bench_results

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ROW = re.compile(r"^\| `([A-Z_]+)`(?: \(secret\))? \| ([^|]*) \| ([^|]*) \| ([^|]*) \|", re.M)


def generated_settings_rows():
    page = mkdocs_hooks.expand((DOCS / "settings.md").read_text(encoding="utf-8"))
    return {name: (path.strip(), kind.strip(), default.strip()) for name, path, kind, default in ROW.findall(page)}


def test_settings_page_lists_every_setting_with_its_path_and_default():
    rows = generated_settings_rows()
    assert set(rows) == set(config.SETTINGS), set(config.SETTINGS) ^ set(rows)
    for name, (json_path, default, _convert, _doc) in config.SETTINGS.items():
        path, _kind, shown = rows[name]
        assert path == (f"`secrets.{json_path}`" if json_path else ""), name
        assert shown == mkdocs_hooks.shown_default(default), name
    assert rows["TRACKER_AUTOSTART"][1:] == ("true / false", "`true`")
    assert rows["SSE_HEARTBEAT_SECONDS"][2] == "`15`"
    assert rows["LASTFM_API_KEY"][0] == "`secrets.lastfm.api_key`"


def test_settings_page_marks_every_secret():
    page = mkdocs_hooks.settings_table()
    for name in config.SECRET_SETTINGS & set(config.SETTINGS):
        assert f"| `{name}` (secret) |" in page, name


def test_no_setting_is_documented_by_hand():
    source = (DOCS / "settings.md").read_text(encoding="utf-8")
    assert mkdocs_hooks.SETTINGS_MARKER in source
    assert not [name for name, *_ in ROW.findall(source) if name in config.SETTINGS]


def test_every_server_variable_of_gunicorn_conf_is_documented():
    names = re.findall(r'os\.environ\.get\("([A-Z_]+)"', (ROOT / "gunicorn.conf.py").read_text())
    source = (DOCS / "settings.md").read_text(encoding="utf-8")
    assert names and [n for n in names if f"`{n}`" not in source] == []


def test_performance_page_shows_a_results_file_for_every_bench():
    source = (DOCS / "performance.md").read_text(encoding="utf-8")
    shown = set(mkdocs_hooks.BENCH_MARKER.findall(source))
    benches = {p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py")}
    assert benches <= shown, benches - shown
    for name in shown:
        doc = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text(encoding="utf-8"))
        assert doc["measured_at"] and doc["command"].startswith(".venv/bin/python bench/"), name
        assert doc["tables"] and all(t["rows"] for t in doc["tables"]), name
    page = mkdocs_hooks.expand(source)
    assert "<!-- bench-results" not in page and "No results yet" not in page
    assert "| `advance()` from 4 threads, vs a bare lock-protected counter | 0.63x" in page


def test_a_bench_run_overwrites_its_results_file_and_the_page_shows_it(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_results, "RESULTS_DIR", tmp_path)
    for p95 in ("1.0 ms", "2.5 ms | spiky"):
        bench_results.write_results("demo", {"p95_ms": p95, "target_met": True},
                            [bench_results.table(["measure", "p95"], [["one stream", p95]], title="Latency")],
                            notes=["A note."])
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert doc["figures"] == {"p95_ms": "2.5 ms | spiky", "target_met": True}
    assert doc["machine"]["cpus"] and doc["command"].startswith(".venv/bin/python ")
    section = mkdocs_hooks.bench_results("demo", tmp_path)
    assert "**Latency**\n\n| measure | p95 |\n|---|---|\n| one stream | 2.5 ms \\| spiky |" in section
    assert section.startswith(f"*Measured {doc['measured_at']} on ") and section.endswith("A note.")
    assert "No results yet" in mkdocs_hooks.bench_results("missing", tmp_path)


def test_readme_first_screen_leads_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme and "APP_PASSWORD" in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 10
    assert [link for link in links if not (ROOT / link).is_file()] == []
    assert len(readme.splitlines()) < 60
