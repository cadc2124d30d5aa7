"""The kinds of job the app runs: what code, which steps, where the page goes when done."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..importers import diagnostics, uploads


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    run: Callable
    steps: tuple
    redirect_url: str | None = None


KINDS = {
    "upload_import": JobKind("upload_import", "Import uploaded files", uploads.import_uploaded_files,
                             uploads.STEPS, "/journal"),
    "progress_check": JobKind("progress_check", "Live progress check", diagnostics.run_progress_check,
                              diagnostics.STEPS, None),
}


def get_kind(name):
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}") from None
