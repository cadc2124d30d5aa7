"""The app's layers hold: import-linter's contracts (.importlinter) pass, and catch a wrong import when
one is added; no module takes another module's private (underscore) names. Why: docs/design-layers.md."""
from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The private names rule. A name is private when it starts with "_" and is not a dunder (__version__,
# __name__ are the language's, open to all). A module may use its own private names, and may reach
# private attributes of objects (a library's documented `_get_current_object`, a client's `_base_url`),
# but never take a private name from another module: not `from x import _name` (relative or not), not
# `import x._mod`, not `x._name` where x is a module it imported. A top-level module named with an
# underscore (`_thread`) is a distribution's own name, not one taken from another module.
SCANNED = ["modules", "app.py", "config.py", "scripts", "bench"]

# Allowed for now, exactly these (none today): code being rewritten by another branch. Each is listed
# once per (file, name); an entry no longer found fails too, so the list only shrinks.
ALLOWED_FOR_NOW: set[tuple[str, str]] = set()
# A library's private names, each for good, with the reason: the library is pinned in requirements.txt,
# so a change of its insides shows in this repository's tests, not in production.
LIBRARY_PRIVATES = {
    ("modules/sources/lastfm.py", "pylast._Request"): "pylast has no public call for a raw API method "
                                                     "(the pages' totals, now playing)",
}


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name_of(path):
    """The dotted name a file is imported as (bench's scripts import each other by bare name)."""
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "bench":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_module(dotted):
    """True if `dotted` names a module or package: this repository's, else an installed one."""
    parts = dotted.split(".")
    for base in (ROOT, ROOT / "bench"):
        target = base.joinpath(*parts)
        if target.with_suffix(".py").is_file() or (target / "__init__.py").is_file():
            return True
        if (base / parts[0]).is_dir() or (base / f"{parts[0]}.py").is_file():
            return False  # this repository's name, and no such module in it
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def private_names_taken(source, module, is_package=False, is_module=is_module):
    """(line, "from.module._name") for each private name `module`'s source takes from another module."""
    tree = ast.parse(source)
    found, modules_bound, from_bound = [], {}, {}

    def resolve(node):
        """The dotted module a `from` refers to (relative ones resolved from `module`)."""
        if not node.level:
            return node.module or ""
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found += [(node.lineno, ".".join(parts[:i + 1])) for i, part in enumerate(parts)
                          if i and is_private(part)][:1]
                if alias.asname:
                    modules_bound[alias.asname] = alias.name
                else:
                    modules_bound[parts[0]] = parts[0]
        elif isinstance(node, ast.ImportFrom):
            origin = resolve(node)
            for alias in node.names:
                if is_private(alias.name):
                    found.append((node.lineno, f"{origin}.{alias.name}".lstrip(".")))
                elif alias.name != "*":  # a module, or any other object: decided when it matters
                    from_bound[alias.asname or alias.name] = f"{origin}.{alias.name}"

    def module_of(expr):
        if isinstance(expr, ast.Name):
            if expr.id in modules_bound:
                return modules_bound[expr.id]
            candidate = from_bound.get(expr.id)
            return candidate if candidate and is_module(candidate) else None
        if isinstance(expr, ast.Attribute):
            parent = module_of(expr.value)
            if parent and is_module(f"{parent}.{expr.attr}"):
                return f"{parent}.{expr.attr}"
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = module_of(node.value)
            if owner:
                found.append((node.lineno, f"{owner}.{node.attr}"))
    return sorted(set(found))


def scanned_files():
    for entry in SCANNED:
        path = ROOT / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def lint_imports(cwd):
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)}, timeout=120)


# ----------------------------------------------------------------------------- import-linter


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


BREAKS = {
    "sources import nothing of the app": ("modules/sources/lastfm.py", "from ..models import Listen\n"),
    "Imports point one way": ("modules/importers/listens.py", "from ..web import i18n\n"),
    "No import cycle": ("modules/web/timeline.py", "from . import pages\n"),  # pages already imports timeline
}


@pytest.mark.parametrize("contract", BREAKS)
def test_a_wrong_import_breaks_a_contract(tmp_path, contract):
    """The contracts bite: the same tree with one wrong import added fails, naming the contract broken."""
    shutil.copytree(ROOT / "modules", tmp_path / "modules", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    assert lint_imports(tmp_path).returncode == 0
    path, line = BREAKS[contract]
    target = tmp_path / path
    target.write_text(target.read_text() + "\n" + line)
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken, result.stdout


def test_a_loose_module_at_the_root_must_be_given_a_layer(tmp_path):
    shutil.copytree(ROOT / "modules", tmp_path / "modules", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    (tmp_path / "modules" / "helpers.py").write_text('"""A grab bag."""\n')
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "modules.helpers" in result.stdout, result.stdout


# ----------------------------------------------------------------------------- private names


def test_no_module_takes_another_modules_private_names():
    taken = set()
    for path in scanned_files():
        name = module_name_of(path)
        for line, what in private_names_taken(path.read_text(), name, path.name == "__init__.py"):
            taken.add((str(path.relative_to(ROOT)), what, line))
    found = {(path, what) for path, what, _line in taken}
    allowed = ALLOWED_FOR_NOW | set(LIBRARY_PRIVATES)
    unexpected = sorted(t for t in taken if (t[0], t[1]) not in allowed)
    assert not unexpected, "private names taken from another module (file, name, line):\n" + "\n".join(map(str, unexpected))
    assert allowed <= found, f"no longer found, remove from the allowed lists: {sorted(allowed - found)}"


def local_modules(dotted):
    return dotted in {"pkg", "pkg.store", "pkg.tracker", "os", "os.path"}


@pytest.mark.parametrize(("source", "expected"), [
    ("from .tracker import _Step\n", [(1, "pkg.tracker._Step")]),
    ("from pkg.tracker import _Step as Step\n", [(1, "pkg.tracker._Step")]),
    ("from . import _\n", [(1, "pkg._")]),
    ("from .. import _x\n", [(1, "_x")]),  # from above the root: still another module's
    ("import pkg._impl\n", [(1, "pkg._impl")]),
    ("from . import tracker\ntracker._steps.clear()\n", [(2, "pkg.tracker._steps")]),
    ("import pkg.tracker\npkg.tracker._version\n", [(2, "pkg.tracker._version")]),
    ("import os.path as p\np._joinrealpath\n", [(2, "os.path._joinrealpath")]),
    # Allowed: dunders, own names, private attributes of objects, a private local alias.
    ("from pkg import __version__\nimport pkg\npkg.__file__\n", []),
    ("def _own():\n    pass\n_own()\n", []),
    ("from pkg.store import Store\nStore()._rows\nself._x\n", []),
    ("from flask_babel import gettext as _\n_('x')\n", []),
    ("import _thread\n", []),
])
def test_the_private_name_rule(source, expected):
    assert private_names_taken(source, "pkg.store", is_module=local_modules) == expected
