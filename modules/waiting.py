"""Waiting out what may pass (a service down, a rate limit, a locked database): one rule for every retry.

A `Patience` says how long to keep trying: the waits double from `first_wait` to `longest_wait`;
`seconds` of trying decide when an outage is too long, and `tries` only bound a burst of quick
failures. `call_with_retries` applies it with tenacity, and names the limit that ended the trying.
Waits are slept in short slices through `time.sleep` (a greenlet switch under gevent, so a
server keeps answering) and call `check()` between slices, so a cancel stops a wait at once.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import tenacity

SLICE = 0.1  # longest sleep between two cancel checks


@dataclass(frozen=True)
class Patience:
    first_wait: float
    longest_wait: float
    tries: int
    seconds: float = math.inf
    tries_setting: str = ""  # named in the message when that limit ends the trying
    seconds_setting: str = ""

    def delay(self, attempt, hint=None):
        """The wait after failed try number `attempt`: the service's hint (Retry-After) or a doubling one."""
        if hint is not None:
            return max(0.0, float(hint))
        return max(0.0, min(self.first_wait * 2 ** (attempt - 1), self.longest_wait))


def seconds_text(seconds):
    return f"{seconds:.0f}" if seconds >= 1 else f"{seconds:.1f}"


def wait_message(delay, why, attempt, patience):
    """What a job shows while it waits: "Last.fm unreachable, waiting 4 s (try 3; gives up after 600 s)"."""
    if math.isfinite(patience.seconds):
        limit = f"try {attempt}; gives up after {seconds_text(patience.seconds)} s of failures"
    else:
        limit = f"try {attempt} of {patience.tries}"
    return f"{why}, waiting {seconds_text(delay)} s ({limit})"


def tracker_waits(tracker, patience, counter="retries"):
    """An `on_wait` that counts each wait on a job's tracker and shows it as the job's message."""

    def show(delay, why, attempt):
        tracker.incr(counter)
        tracker.set_message(wait_message(delay, why, attempt, patience))

    return show


class GaveUp(Exception):
    """The trying ended: `limit` is "tries" or "time"; `last` is the last failure."""

    def __init__(self, why, tries, waited, limit, patience, last=None):
        self.why, self.tries, self.waited, self.limit, self.last = why, tries, waited, limit, last
        if limit == "time":
            ended = (f"gave up after {waited:.0f} s of failures and {tries} tries (the "
                     f"{patience.seconds_setting or 'time'} limit of {seconds_text(patience.seconds)} s)")
        else:
            ended = f"gave up after {tries} tries in a row over {waited:.0f} s (the {patience.tries_setting or 'tries'} limit)"
        self.ended = ended
        super().__init__(f"{why}; {ended}")


def call_with_retries(call, patience, *, reason, on_wait=None, check=None, hint=None):
    """Return `call()`, trying again while `reason(exc)` names why a failure may pass.

    `on_wait(delay, why, attempt)` shows each wait; `check()` runs between slices of a wait (it
    raises to stop, e.g. JobCancelled); `hint(exc)` is the wait the service asked for, if any.
    Raises GaveUp (its `last` is the last failure) once `patience` runs out; other errors at once.
    """
    why_of = {}

    def retryable(exc):
        why = reason(exc)
        if why is None:
            return False
        why_of["why"] = why
        return True

    def wait(state):
        exc = state.outcome.exception()
        delay = patience.delay(state.attempt_number, hint(exc) if hint else None)
        left = patience.seconds - state.seconds_since_start
        # A computed wait is cut so the last try falls at the budget's end; a wait the service
        # asked for is not (trying earlier would only be refused): the budget then ends it.
        if delay > left and not (hint and hint(exc) is not None):
            delay = max(left, 0.0)
        return delay

    def stop(state):
        if state.attempt_number >= patience.tries:
            why_of["limit"] = "tries"
            return True
        if state.seconds_since_start + state.upcoming_sleep > patience.seconds or \
                state.seconds_since_start >= patience.seconds:
            why_of["limit"] = "time"
            return True
        return False

    def show(state):
        if on_wait is not None:
            on_wait(state.upcoming_sleep, why_of["why"], state.attempt_number)

    def give_up(state):
        last = state.outcome.exception()
        raise GaveUp(why_of["why"], state.attempt_number, state.seconds_since_start, why_of["limit"],
                     patience, last) from last

    def sleep(seconds):
        deadline = time.monotonic() + seconds
        while True:
            if check is not None:
                check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(SLICE, left))

    retrying = tenacity.Retrying(retry=tenacity.retry_if_exception(retryable), wait=wait, stop=stop,
                                 before_sleep=show, sleep=sleep, retry_error_callback=give_up)
    return retrying(call)
