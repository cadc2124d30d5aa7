"""Timeline buckets (day, week, month) and the journal's filters, on real imported listens."""
from datetime import date

import pytest

from modules.web import timeline
from tests.conftest import upload, wait_for_job

ROWS = [  # 2024-01-29 is a Monday
    ("A", "X", "t1", "28 Jan 2024 23:59"), ("A", "X", "t2", "29 Jan 2024 00:00"),
    ("B", "Y", "t3", "04 Feb 2024 12:00"), ("B", "Y", "t4", "05 Feb 2024 12:00"),
    ("C", "Z", "t5", "01 Apr 2024 08:00"),
]


@pytest.fixture
def loaded(app, client):
    content = "\n".join(",".join(r) for r in ROWS).encode()
    wait_for_job(app, upload(client, ("t.csv", content)).get_json()["job_id"])
    return app


def test_series_by_unit_fills_gaps(loaded):
    with loaded.app_context():
        months = timeline.series("month")
        weeks = timeline.series("week")
        days = timeline.series("day")
    assert months == [(date(2024, 1, 1), 2), (date(2024, 2, 1), 2), (date(2024, 3, 1), 0), (date(2024, 4, 1), 1)]
    assert weeks[:3] == [(date(2024, 1, 22), 1), (date(2024, 1, 29), 2), (date(2024, 2, 5), 1)]
    assert sum(n for _, n in weeks) == 5 and weeks[-1] == (date(2024, 4, 1), 1)
    assert days[0] == (date(2024, 1, 28), 1) and len(days) == 65  # 28 Jan to 1 Apr, every day


def test_series_rejects_unknown_unit_and_handles_empty(app):
    with app.app_context():
        assert timeline.series("day") == []
        with pytest.raises(ValueError):
            timeline.series("year")


def test_timeline_page(loaded, client):
    page = client.get("/timeline?unit=month").get_data(as_text=True)
    assert 'data-total="5"' in page and page.count('class="bar-col"') == 4
    assert 'data-date="2024-03-01" data-count="0"' in page
    nonsense = client.get("/timeline?unit=nonsense")  # an unknown unit shows months, not an error
    assert nonsense.status_code == 200
    shown = nonsense.get_data(as_text=True)
    assert 'aria-current="true">Months' in shown and 'data-total="5"' in shown and shown.count('class="bar-col"') == 4


def test_empty_timeline_leads_to_import(client):
    assert "No listens yet" in client.get("/timeline").get_data(as_text=True)


def test_journal_filters(loaded, client):
    page = client.get("/journal?artist=b").get_data(as_text=True)
    assert 'data-total="2"' in page and "t3" in page and "t1" not in page
    page = client.get("/journal?from=2024-01-29&to=2024-02-04").get_data(as_text=True)
    assert 'data-total="2"' in page
    page = client.get("/journal?artist=nobody").get_data(as_text=True)
    assert 'data-total="0"' in page and "match these filters" in page
    page = client.get("/journal?from=garbage").get_data(as_text=True)
    assert "unreadable date" in page
