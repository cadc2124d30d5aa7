"""Waiting out an outside service: bounded retries with a doubling delay, shown on the progress page."""
from __future__ import annotations

import time

from ..sources.errors import Retryable


def wait_message(delay, why, attempt, attempts):
    """What a job shows while it waits: "waiting 4 s — Last.fm unreachable, attempt 3 of 10"."""
    seconds = f"{delay:.0f}" if delay >= 1 else f"{delay:.1f}"
    return f"waiting {seconds} s — {why}, attempt {attempt} of {attempts}"


class GaveUp(Exception):
    def __init__(self, why, attempts, waited):
        super().__init__(f"{why} (after {attempts} tries over {waited:.0f} s)")
        self.why = why


def call_with_retries(call, tracker, *, service, base_delay=1.0, max_delay=60.0, max_attempts=8,
                      should_stop=lambda: False):
    """Run `call()`; on Retryable wait (Retry-After, else base * 2**n) and try again, at most
    `max_attempts` times. While waiting the job's message says what it waits for."""
    started = time.monotonic()
    for attempt in range(1, max_attempts + 1):
        try:
            return call()
        except Retryable as exc:
            if attempt == max_attempts:
                raise GaveUp(f"{service}: {exc.why}", attempt, time.monotonic() - started) from None
            delay = exc.wait if exc.wait is not None else base_delay * 2 ** (attempt - 1)
            delay = max(0.0, min(delay, max_delay))
            tracker.incr("retries")
            tracker.set_message(wait_message(delay, f"{service}: {exc.why}", attempt, max_attempts))
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
    raise AssertionError("unreachable")
