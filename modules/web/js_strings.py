"""The words the pages' scripts show, translated on the server and handed to them as JSON
(<script type="application/json" id="i18n"> in base.html): static/js never holds English text of
its own beyond a fallback."""
from __future__ import annotations

from .i18n import lazy_gettext as _l
from .job_history import STATUS_LABELS, STEP_NAMES

STRINGS = {
    "duration.hours": _l("%(h)s h %(m)s min"),
    "duration.minutes": _l("%(m)s min %(s)s s"),
    "duration.seconds": _l("%(s)s s"),
    # The progress bar as a screen reader reads it.
    "progress.valuetext": _l("%(pct)s %%"),
    "progress.valuetext_rows": _l("%(pct)s %% — %(done)s of %(total)s"),
    "progress.rate": _l("%(rate)s /s"),
    "progress.line": _l("line %(line)s"),
    "progress.errors_shown": _l("Showing %(shown)s of %(total)s."),
    "progress.cancelling": _l("Cancelling…"),
    "progress.resume_failed": _l("Could not resume"),
    # A running job whose worker missed two beats (snapshot's stalled_seconds).
    "progress.stalled": _l("Stalled: no news from the worker for %(seconds)s s"),
    "step.pending": _l("pending"), "step.in_progress": _l("in progress"), "step.skipped": _l("skipped"),
    "counter.imported": _l("imported"), "counter.skipped": _l("skipped"), "counter.errors": _l("errors"),
    "counter.added": _l("added"), "counter.enriched": _l("enriched"), "counter.updates": _l("updates"),
    "counter.batches": _l("batches"), "counter.polls": _l("polls"),
    "counter.skipped_short_play": _l("short plays"), "counter.skipped_incognito": _l("incognito plays"),
    "counter.skipped_podcast": _l("podcast episodes"), "counter.skipped_audiobook": _l("audiobook chapters"),
    "counter.skipped_no_metadata": _l("rows without track or artist"),
    "settings.job_failed": _l("The job could not start."),
    "settings.no_answer": _l("Sillon did not answer; try again."),
    "settings.saved": _l("Saved."),
    "settings.testing": _l("Testing with the service…"),
    "settings.unreachable": _l("Sillon did not answer. Nothing was saved; try again."),
    "settings.checking": _l("Checking…"),
    "tracker.running": _l("running"),
    "tracker.stopped": _l("stopped"),
    "tracker.interval_saved": _l("Interval saved: every %(seconds)s s."),
}

def translated():
    """Every string in the current locale, keyed for static/js."""
    strings = {f"status.{k}": str(v) for k, v in STATUS_LABELS.items()}
    strings.update({k: str(v) for k, v in STRINGS.items()})
    strings["status.in_progress"] = strings.pop("step.in_progress")
    strings["status.pending"] = strings.pop("step.pending")
    strings["status.skipped"] = strings.pop("step.skipped")
    strings.update({f"stepname.{name}": str(text) for name, text in STEP_NAMES.items()})
    return strings
