"""packages/flask-jobprogress is a distribution of its own: it installs into a fresh virtualenv with
only its declared dependencies, imports nothing of Sillon, and runs a job there."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "packages" / "flask-jobprogress"

# A tiny app in the new virtualenv, run from an empty folder (no Sillon module on its path): a job
# in a thread, its snapshot over HTTP, its event stream to the end, each store importable.
SCRIPT = textwrap.dedent('''
    import sys, time
    from flask import Flask
    import flask_jobprogress
    from flask_jobprogress import JobProgress, DatabaseStore, RedisStore, PartReport, GroupFollower

    app = Flask("demo")
    progress = JobProgress(app)

    def work(tracker):
        tracker.start_step("count")
        tracker.set_total(3)
        for _ in range(3):
            tracker.advance(counted=1)
        tracker.complete(result={"n": 3}, redirect_url="/done")

    with app.app_context():
        tracker = progress.tracker("demo", [("count", "Count")])
        progress.run_in_thread(tracker, work)
    client = app.test_client()
    deadline = time.monotonic() + 30
    while client.get(f"/jobs/{tracker.id}").json["status"] != "completed":
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    stream = client.get(f"/jobs/{tracker.id}/events").get_data(as_text=True)
    assert "event: done" in stream and '"redirect_url":"/done"' in stream, stream
    print(flask_jobprogress.__version__, client.get(f"/jobs/{tracker.id}").json["counters"])
    sillon = sorted(m for m in sys.modules if m.split(".")[0] in ("modules", "app", "config"))
    assert not sillon, sillon
''')


def run(*args, cwd, timeout=240):
    result = subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_package_declares_its_dependencies():
    meta = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "flask-jobprogress" and meta["version"] == "0.1.0"
    assert meta["dependencies"] == ["Flask>=3.0"]
    assert set(meta["optional-dependencies"]) == {"sqlalchemy", "redis"}
    assert (PACKAGE / "LICENSE").read_text().startswith("MIT License")
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    assert "./packages/flask-jobprogress[sqlalchemy,redis]" in requirements


def test_the_package_names_nothing_of_the_app():
    for path in (PACKAGE / "src").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".js"):
            text = path.read_text().lower()
            for word in ("sillon", "listen ", "listens", "last.fm", "lastfm", "scrobbl", "from modules", "import modules"):
                assert word not in text, f"{path.relative_to(ROOT)} says {word!r}"


def test_it_installs_into_a_fresh_virtualenv_with_only_its_dependencies(tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # The package alone (it is built in isolation with its declared build backend), then only the
    # dependencies it declares, at the versions Sillon pins (so this runs from pip's cache or index).
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", PACKAGE, cwd=tmp_path)
    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    deps = [f"Flask=={pins['Flask']}", f"SQLAlchemy=={pins['SQLAlchemy']}", f"redis=={pins['redis']}"]
    run(python, "-m", "pip", "install", "--quiet", *deps, cwd=tmp_path)
    run(python, "-m", "pip", "check", cwd=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "demo.py").write_text(SCRIPT)
    out = run(python, "-I", "demo.py", cwd=empty)
    assert out.strip() == "0.1.0 {'counted': 3}"
    installed = run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path).lower()
    names = {line.split("==")[0] for line in installed.split()}
    assert "flask-jobprogress" in names and not names & {"celery", "psycopg", "flask-sqlalchemy", "gevent"}
