"""The kinds of job the app runs: what code, which steps, where the page goes when done."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..importers import uploads


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
}


def get_kind(name):
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}") from None
