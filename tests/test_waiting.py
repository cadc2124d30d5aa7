"""modules/waiting.py: the one rule for waiting and trying again (tenacity underneath)."""
from __future__ import annotations

import pytest

from modules.waiting import GaveUp, Patience, call_with_retries, wait_message


class Flaky(Exception):
    def __init__(self, wait=None):
        super().__init__("flaky")
        self.wait = wait


def failing(times, exc=Flaky):
    calls = []

    def call():
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise exc()
        return "ok"

    return call, calls


def reason(exc):
    return "service down" if isinstance(exc, Flaky) else None


def test_waits_double_up_to_the_longest_and_the_call_succeeds():
    call, calls = failing(4)
    shown = []
    patience = Patience(0.001, 0.004, tries=10)
    assert call_with_retries(call, patience, reason=reason, on_wait=lambda d, w, n: shown.append((n, d, w))) == "ok"
    assert calls == [1, 2, 3, 4, 5]
    assert shown == [(1, 0.001, "service down"), (2, 0.002, "service down"), (3, 0.004, "service down"),
                     (4, 0.004, "service down")]


def test_the_tries_end_a_burst_and_the_message_names_that_limit():
    call, calls = failing(100)
    with pytest.raises(GaveUp) as caught:
        call_with_retries(call, Patience(0.0, 0.0, tries=3, tries_setting="X_MAX_ATTEMPTS"), reason=reason)
    assert calls == [1, 2, 3] and caught.value.limit == "tries" and caught.value.tries == 3
    assert "gave up after 3 tries in a row" in str(caught.value) and "X_MAX_ATTEMPTS" in str(caught.value)
    assert isinstance(caught.value.last, Flaky)


def test_the_time_budget_ends_an_outage_with_a_last_try_at_its_end():
    call, calls = failing(10 ** 6)
    shown = []
    patience = Patience(0.01, 0.02, tries=10 ** 6, seconds=0.1, seconds_setting="X_OUTAGE_SECONDS")
    with pytest.raises(GaveUp) as caught:
        call_with_retries(call, patience, reason=reason, on_wait=lambda d, w, n: shown.append(d))
    assert caught.value.limit == "time" and "X_OUTAGE_SECONDS limit of 0.1 s" in str(caught.value)
    assert sum(shown) <= 0.1 + 1e-9 and shown[-1] <= 0.02  # the last wait is cut to what was left
    assert len(calls) == len(shown) + 1 < 10 ** 6


def test_the_service_asked_wait_is_kept_and_errors_that_waiting_cannot_fix_are_raised_at_once():
    call, calls = failing(1, exc=lambda: Flaky(wait=0.003))
    shown = []
    assert call_with_retries(call, Patience(1.0, 60.0, tries=5), reason=reason, hint=lambda e: e.wait,
                             on_wait=lambda d, w, n: shown.append(d)) == "ok"
    assert shown == [0.003]  # Retry-After, not the 1 s of the doubling rule
    call, calls = failing(5, exc=ValueError)
    with pytest.raises(ValueError):
        call_with_retries(call, Patience(0.0, 0.0, tries=5), reason=reason)
    assert calls == [1]


def test_a_check_that_raises_stops_a_wait_at_once():
    class Cancelled(Exception):
        pass

    call, calls = failing(10)
    checks = []

    def check():
        checks.append(1)
        if len(checks) > 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        call_with_retries(call, Patience(60.0, 60.0, tries=10), reason=reason, check=check)  # a 60 s wait
    assert calls == [1]  # no second try: the wait was stopped within its first slices


def test_the_message_says_what_is_waited_for_and_what_ends_it():
    assert wait_message(4, "Last.fm unreachable", 3, Patience(1, 60, 20, 600)) == \
        "Last.fm unreachable, waiting 4 s (try 3; gives up after 600 s of failures)"
    assert wait_message(0.25, "Discogs: rate limit", 2, Patience(1, 60, 8)) == \
        "Discogs: rate limit, waiting 0.2 s (try 2 of 8)"
