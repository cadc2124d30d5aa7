"""The kinds of job the app runs: what code, which steps, where the page goes when done."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..importers import diagnostics, discogs_sync, enrichment, lastfm_history, lastfm_tracker, uploads


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
    "lastfm_history": JobKind("lastfm_history", "Last.fm history import", lastfm_history.import_lastfm_history,
                              lastfm_history.STEPS, "/journal"),
    "lastfm_tracker": JobKind("lastfm_tracker", "Live tracker", lastfm_tracker.follow_new_listens,
                              lastfm_tracker.STEPS, None),
    "discogs_sync": JobKind("discogs_sync", "Discogs collection sync", discogs_sync.sync_collection,
                            discogs_sync.STEPS, "/collection"),
    "enrich": JobKind("enrich", "Enrichment", enrichment.enrich_albums, enrichment.STEPS, "/collection"),
    "progress_check": JobKind("progress_check", "Live progress check", diagnostics.run_progress_check,
                              diagnostics.STEPS, None),
}


def get_kind(name):
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}") from None
