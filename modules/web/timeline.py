"""Listens per day, week or month, for the timeline chart."""
from __future__ import annotations

from datetime import date, timedelta

from ..db import db
from ..importers import summaries

UNITS = ("day", "week", "month")
DAY = 86400


def daily_counts(start=None, end=None):
    """{date: listens} for each UTC day that has listens, from the day summaries (exact at any bound:
    importers/summaries.buckets)."""
    counted = summaries.buckets(db.session.connection(), summaries.DAY, start, end)
    return {date(1970, 1, 1) + timedelta(days=int(d)): n for d, n in counted.items() if n}


def bucket_start(day, unit):
    if unit == "week":
        return day - timedelta(days=day.weekday())  # weeks start on Monday
    if unit == "month":
        return day.replace(day=1)
    return day


def _next(start, unit):
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def series(unit="month", start=None, end=None):
    """[(bucket start date, listens)] with empty buckets filled in, oldest first."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}")
    counts = daily_counts(start, end)
    if not counts:
        return []
    buckets = {}
    for day, n in counts.items():
        key = bucket_start(day, unit)
        buckets[key] = buckets.get(key, 0) + n
    first, last = min(buckets), max(buckets)
    out, cursor = [], first
    while cursor <= last:
        out.append((cursor, buckets.get(cursor, 0)))
        cursor = _next(cursor, unit)
    return out


def label(day, unit):
    if unit == "month":
        return day.strftime("%b %Y")
    if unit == "week":
        return "Week of " + day.strftime("%d %b %Y")
    return day.strftime("%a %d %b %Y")
