"""Analytics queries on a real database (SQLite, then PostgreSQL in the second pass) with a
hand-built dataset; every expected answer is computed again here, listen by listen, with zoneinfo,
not with the module's bucketing. Also the JSON API's shapes, bad parameters and the page."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from modules.web import analytics
from tests.conftest import make_app

PARIS = ZoneInfo("Europe/Paris")


def at(tz, *parts):
    """UTC seconds of a local wall-clock time."""
    return int(datetime(*parts, tzinfo=tz).timestamp())


def utc(*parts):
    return at(UTC, *parts)


# (played_at, artist, album or None, track). Names chosen so ties order by name, case ignored.
LISTENS = [
    (at(PARIS, 2024, 3, 5, 20, 0), "Alpha", "First", "a1"),
    (at(PARIS, 2024, 6, 5, 20, 0), "Alpha", "First", "a1"),
    (at(PARIS, 2024, 6, 6, 21, 0), "Alpha", "First", "a2"),
    (at(PARIS, 2024, 2, 1, 0, 30), "beta", "Second", "b1"),   # 2024-01-31 23:30 UTC: February in Paris
    (at(PARIS, 2024, 5, 1, 8, 0), "beta", "Second", "b1"),
    (at(PARIS, 2024, 5, 2, 8, 0), "beta", "Second", "b1"),
    (at(PARIS, 2024, 7, 1, 12, 0), "Gamma", None, "g1"),
    (at(PARIS, 2024, 7, 2, 12, 0), "Gamma", None, "g1"),
    (at(PARIS, 2024, 1, 1, 0, 30), "Delta", "Fourth", "d1"),  # 2023-12-31 23:30 UTC: 2024 in Paris
    (at(PARIS, 2025, 1, 1, 0, 10), "Delta", "Fourth", "d1"),  # 2024-12-31 23:10 UTC: 2025 in Paris
    (at(PARIS, 2023, 12, 31, 23, 59), "Epsilon", "Fifth", "e1"),
]
# (artist, album title, year): two copies of Unheard, one of First; Second and Fourth not owned.
SHELF = [("Alpha", "First", 1999), ("Alpha", "Unheard", 2001), ("Alpha", "Unheard", 2003), ("Omega", "Silent", 1980)]


def seed(app, listens, shelf=()):
    """Write artists, albums, tracks, listens and collection items straight into the database."""
    from modules.db import db
    from modules.models import Album, Artist, CollectionItem, Listen, Track

    artists, albums, tracks = {}, {}, {}

    def artist_id(name):
        return artists.setdefault(name.lower(), (len(artists) + 1, name))[0]

    def album_id(artist, title):
        return albums.setdefault((artist.lower(), title.lower()), (len(albums) + 1, artist_id(artist), title))[0]

    def track_id(artist, title):
        return tracks.setdefault((artist.lower(), title.lower()), (len(tracks) + 1, artist_id(artist), title))[0]

    listen_rows = [{"played_at": ts, "artist_key": artist.lower(), "title_key": track.lower(),
                    "artist_id": artist_id(artist), "album_id": album_id(artist, album) if album else None,
                    "track_id": track_id(artist, track), "source": "test"} for ts, artist, album, track in listens]
    item_rows = [{"instance_id": n, "release_id": n, "album_id": album_id(artist, title), "title": title,
                  "artist": artist, "year": year} for n, (artist, title, year) in enumerate(shelf, 1)]
    tables = [(Artist, [{"id": i, "name": n, "name_key": k} for k, (i, n) in artists.items()]),
              (Album, [{"id": i, "artist_id": a, "title": t, "title_key": t.lower()} for i, a, t in albums.values()]),
              (Track, [{"id": i, "artist_id": a, "title": t, "title_key": t.lower()} for i, a, t in tracks.values()]),
              (Listen, listen_rows), (CollectionItem, item_rows)]
    with app.app_context():
        from modules.importers import summaries
        for model, rows in tables:
            if rows:
                db.session.execute(sa.insert(model), rows)
                if db.engine.dialect.name == "postgresql" and "id" in rows[0]:  # ids given: move the sequence on
                    db.session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{model.__tablename__}', 'id'),"
                                               f" (SELECT max(id) FROM {model.__tablename__}))"))
        summaries.rebuild(db.session.connection())  # the listens went in by hand, not by write_plays
        db.session.commit()
    return {name: i for name, (i, _) in artists.items()}, {k[1]: v[0] for k, v in albums.items()}


@pytest.fixture
def paris_app(tmp_path, migrated_template):
    application = make_app(tmp_path / "instance", migrated_template, environ={"TIMEZONE": "Europe/Paris"})
    yield application
    with application.app_context():
        from modules.db import db
        db.engine.dispose()


@pytest.fixture
def loaded(paris_app):
    seed(paris_app, LISTENS, SHELF)
    return paris_app


def expected_top(listens, tz, year, key, limit=None):
    """(rank, name, plays) by competition ranking, ties by name ignoring case: counted one listen at a time."""
    counts = Counter(key(row) for row in listens
                     if datetime.fromtimestamp(row[0], tz).year == year and key(row) is not None)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))[:limit]
    out = []
    for index, (name, plays) in enumerate(ordered, 1):
        rank = out[-1][0] if out and out[-1][2] == plays else index
        out.append((rank, name, plays))
    return out


# ----------------------------------------------------------------------------- periods


def test_periods_are_bounded_in_the_persons_time_zone():
    now = at(PARIS, 2024, 3, 31, 12, 0)  # summer time began that night
    assert analytics.parse_period("7d", PARIS, now) == analytics.Period("7d", now - 7 * 86400, None)
    assert analytics.parse_period("30d", PARIS, now).start == now - 30 * 86400
    assert analytics.parse_period("12m", PARIS, now).start == utc(2023, 3, 31, 10, 0)  # noon, UTC+2 then too
    assert analytics.parse_period("12m", PARIS, at(PARIS, 2024, 2, 29, 9, 0)).start == utc(2023, 2, 28, 8, 0)
    year = analytics.parse_period("2024", PARIS, now)
    assert (year.start, year.end) == (utc(2023, 12, 31, 23, 0), utc(2024, 12, 31, 23, 0))
    assert analytics.parse_period("all", PARIS, now) == analytics.Period("all", None, None)
    assert analytics.parse_period(None, PARIS, now).key == analytics.DEFAULT_PERIOD
    for bad in ("week", "1969", "20245", "-7d", "7"):
        with pytest.raises(analytics.BadParameter, match="Unknown period"):
            analytics.parse_period(bad, PARIS, now)


def test_limit_and_period_are_checked_by_the_api_schema():
    """The API's declared parameters: limit's bounds, and the period pattern, which must accept
    exactly what parse_period reads."""
    from modules.web.analytics_api import PanelQuery

    query = PanelQuery()
    assert query.load({})["limit"] == analytics.DEFAULT_LIMIT and query.load({"limit": "100"})["limit"] == 100
    assert query.load({"limit": ""})["limit"] == analytics.DEFAULT_LIMIT  # blank is the default
    for bad in ("0", "101", "ten", "2.5"):
        assert "limit" in query.validate({"limit": bad})
    for bad in ("week", "1969", "3000", "20245", "-7d", "7"):
        assert "period" in query.validate({"period": bad}), bad
        with pytest.raises(analytics.BadParameter):
            analytics.parse_period(bad, PARIS)
    for good in ("7d", "30D", " 12m ", "ALL", "1970", "2999"):
        assert not query.validate({"period": good}), good
        analytics.parse_period(good, PARIS)


def test_timezone_setting_is_validated(tmp_path, migrated_template):
    with pytest.raises(RuntimeError, match="TIMEZONE.*Mars/Olympus.*not a time zone"):
        make_app(tmp_path / "bad", migrated_template, environ={"TIMEZONE": "Mars/Olympus"})
    app = make_app(tmp_path / "default", migrated_template)
    assert app.extensions["sillon"]["settings"]["TIMEZONE"] == "UTC"


# ----------------------------------------------------------------------------- top lists


def test_top_lists_with_ties_and_local_year_bounds(loaded):
    with loaded.app_context():
        period = analytics.parse_period("2024", PARIS)
        artists = analytics.top("artists", period)
        albums = analytics.top("albums", period)
        tracks = analytics.top("tracks", period, limit=3)
        two = analytics.top("artists", period, limit=2)
        in_2023 = analytics.top("artists", analytics.parse_period("2023", PARIS))
        in_2023_utc = analytics.top("artists", analytics.parse_period("2023", ZoneInfo("UTC")))
    # written out once by hand ...
    assert [(a["rank"], a["name"], a["plays"]) for a in artists] == [
        (1, "Alpha", 3), (1, "beta", 3), (3, "Gamma", 2), (4, "Delta", 1)]
    # ... and computed again from the listens
    assert [(a["rank"], a["name"], a["plays"]) for a in artists] == expected_top(LISTENS, PARIS, 2024, lambda r: r[1])
    assert [(a["rank"], a["title"], a["plays"]) for a in albums] == expected_top(LISTENS, PARIS, 2024, lambda r: r[2])
    assert [a["artist"] for a in albums] == ["Alpha", "beta", "Delta"]
    assert [(t["rank"], t["title"], t["plays"]) for t in tracks] == expected_top(LISTENS, PARIS, 2024, lambda r: r[3], 3)
    assert [(t["title"], t["artist"]) for t in tracks] == [("b1", "beta"), ("a1", "Alpha"), ("g1", "Gamma")]
    assert [a["name"] for a in two] == ["Alpha", "beta"]
    assert [a["name"] for a in in_2023] == ["Epsilon"]          # Delta's first play is 2024 in Paris ...
    assert sorted(a["name"] for a in in_2023_utc) == ["Delta", "Epsilon"]  # ... and 2023 in UTC


def test_rolling_periods_end_now(paris_app):
    import time

    now = int(time.time())
    rows = [(now - 60, "Recent", None, "r"), (now - 6 * 86400, "Recent", None, "r"),
            (now - 8 * 86400, "Older", None, "o"), (now - 8 * 86400 + 1, "Older", None, "o2"),
            (now - 40 * 86400, "Oldest", None, "x")]
    seed(paris_app, rows)
    with paris_app.app_context():
        week = analytics.top("artists", analytics.parse_period("7d", PARIS))
        month = analytics.top("artists", analytics.parse_period("30d", PARIS))
        ever = analytics.top("artists", analytics.parse_period("all", PARIS))
    assert [(a["name"], a["plays"]) for a in week] == [("Recent", 2)]
    assert [(a["name"], a["plays"]) for a in month] == [("Older", 2), ("Recent", 2)]
    assert [a["name"] for a in ever] == ["Older", "Recent", "Oldest"]


# ----------------------------------------------------------------------------- heatmap


DST_LISTENS = [  # Paris: summer time from 2024-03-31 01:00 UTC to 2024-10-27 01:00 UTC
    (utc(2024, 3, 30, 9, 30), "A", None, "t"),   # Saturday 10:30 (UTC+1)
    (utc(2024, 3, 31, 0, 59), "A", None, "t"),   # Sunday 01:59 (UTC+1)
    (utc(2024, 3, 31, 1, 0), "A", None, "t2"),   # Sunday 03:00 (UTC+2): there is no 02:00 that day
    (utc(2024, 3, 31, 9, 30), "A", None, "t"),   # Sunday 11:30 (UTC+2)
    (utc(2024, 10, 27, 0, 30), "A", None, "t"),  # Sunday 02:30 summer time ...
    (utc(2024, 10, 27, 1, 30), "A", None, "t"),  # ... and Sunday 02:30 again, winter time
    (utc(2024, 10, 28, 22, 15), "A", None, "t"),  # Monday 23:15 (UTC+1)
]


def expected_cells(listens, tz):
    counts = Counter()
    for ts, *_ in listens:
        local = datetime.fromtimestamp(ts, tz)
        counts[(local.weekday(), local.hour)] += 1
    return [[counts[(d, h)] for h in range(24)] for d in range(7)]


def test_heatmap_buckets_hours_across_dst(paris_app):
    seed(paris_app, DST_LISTENS)
    with paris_app.app_context():
        everything = analytics.parse_period("all", PARIS)
        cells = analytics.heatmap(PARIS, everything)
        in_utc = analytics.heatmap(ZoneInfo("UTC"), everything)
    sun, sat, mon = 6, 5, 0
    assert cells["cells"][sat][10] == 1 and cells["cells"][sun][1] == 1 and cells["cells"][sun][3] == 1
    assert cells["cells"][sun][2] == 2 and cells["cells"][sun][11] == 1 and cells["cells"][mon][23] == 1
    assert cells["cells"] == expected_cells(DST_LISTENS, PARIS)
    assert cells["total"] == len(DST_LISTENS) and cells["max"] == 2
    assert in_utc["cells"] == expected_cells(DST_LISTENS, ZoneInfo("UTC"))
    assert in_utc["cells"][sun][0] == 2 and in_utc["cells"][sun][1] == 2  # 00:30/00:59 and 01:00/01:30 UTC


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns"])
def test_heatmap_in_zones_with_half_and_quarter_hour_offsets(paris_app, zone):
    tz = ZoneInfo(zone)
    # Every 7 minutes over a day, and around Lord Howe's and St John's DST changes (half-hour steps).
    start = utc(2024, 4, 6, 12, 0)
    rows = [(start + i * 420, "A", None, f"t{i}") for i in range(220)]
    rows += [(utc(2024, 11, 3, 3, 0) + i * 600, "A", None, f"n{i}") for i in range(40)]
    seed(paris_app, rows)
    with paris_app.app_context():
        cells = analytics.heatmap(tz, analytics.parse_period("all", tz))
    assert cells["cells"] == expected_cells(rows, tz)


# ----------------------------------------------------------------------------- streaks


STREAK_LISTENS = [
    (at(PARIS, 2024, 1, 30, 10, 0), "A", None, "t"), (at(PARIS, 2024, 1, 31, 22, 0), "A", None, "t"),
    (at(PARIS, 2024, 2, 1, 9, 0), "A", None, "t"), (at(PARIS, 2024, 2, 1, 9, 5), "A", None, "u"),
    (at(PARIS, 2024, 2, 2, 23, 30), "A", None, "t"),
    (at(PARIS, 2024, 2, 3, 0, 30), "A", None, "t"),   # 2024-02-02 23:30 UTC: a fifth day in Paris only
    (at(PARIS, 2024, 2, 10, 8, 0), "A", None, "t"), (at(PARIS, 2024, 2, 11, 8, 0), "A", None, "t"),
    (at(PARIS, 2023, 12, 1, 8, 0), "A", None, "t"),
]


def expected_longest(listens, tz):
    """(days, first, last) walking the calendar one day at a time; the earliest run wins a tie."""
    days = {datetime.fromtimestamp(ts, tz).date() for ts, *_ in listens}
    best, run_start, day = (0, None, None), None, min(days)
    while day <= max(days) + timedelta(days=1):
        if day in days:
            run_start = run_start or day
        elif run_start:
            length = (day - run_start).days
            if length > best[0]:
                best = (length, run_start, day - timedelta(days=1))
            run_start = None
        day += timedelta(days=1)
    return best


def test_streaks_across_a_month_boundary(paris_app):
    seed(paris_app, STREAK_LISTENS)
    with paris_app.app_context():
        paris = analytics.streaks(PARIS, now=at(PARIS, 2024, 2, 11, 15, 0))
        in_utc = analytics.streaks(ZoneInfo("UTC"), now=at(PARIS, 2024, 2, 11, 15, 0))
        yesterday = analytics.streaks(PARIS, now=at(PARIS, 2024, 2, 12, 23, 0))
        broken = analytics.streaks(PARIS, now=at(PARIS, 2024, 2, 13, 0, 5))
    assert paris["longest"] == {"days": 5, "start": "2024-01-30", "end": "2024-02-03"}
    days, first, last = expected_longest(STREAK_LISTENS, PARIS)
    assert paris["longest"] == {"days": days, "start": first.isoformat(), "end": last.isoformat()}
    days, first, last = expected_longest(STREAK_LISTENS, ZoneInfo("UTC"))
    assert in_utc["longest"] == {"days": days, "start": first.isoformat(), "end": last.isoformat()} \
        and days == 4
    assert paris["current"] == {"days": 2, "start": "2024-02-10", "end": "2024-02-11"}
    assert yesterday["current"] == paris["current"]  # today has no listen yet: the run still counts
    assert broken["current"] == {"days": 0, "start": None, "end": None}
    assert paris["days_with_listens"] == len({datetime.fromtimestamp(ts, PARIS).date() for ts, *_ in STREAK_LISTENS})


def test_longest_streak_tie_keeps_the_earliest(paris_app):
    rows = [(at(PARIS, 2024, 1, d, 12, 0), "A", None, "t") for d in (1, 2, 5, 6)]
    seed(paris_app, rows)
    with paris_app.app_context():
        result = analytics.streaks(PARIS, now=at(PARIS, 2024, 3, 1, 12, 0))
    assert result["longest"] == {"days": 2, "start": "2024-01-01", "end": "2024-01-02"}


# ----------------------------------------------------------------------------- discoveries


def test_artists_discovered_per_month(loaded):
    with loaded.app_context():
        paris = analytics.discoveries(PARIS)
        in_utc = analytics.discoveries(ZoneInfo("UTC"))

    def expected(tz):
        firsts = {}
        for ts, artist, *_ in LISTENS:
            firsts[artist] = min(firsts.get(artist, ts), ts)
        return Counter(datetime.fromtimestamp(ts, tz).strftime("%Y-%m") for ts in firsts.values())

    for result, tz in ((paris, PARIS), (in_utc, ZoneInfo("UTC"))):
        counts = expected(tz)
        assert {m["month"]: m["artists"] for m in result["months"] if m["artists"]} == dict(counts)
        assert result["total"] == 5
        months = [m["month"] for m in result["months"]]
        assert months[0] == min(counts) and months[-1] == max(counts) and len(months) == len(set(months))
    # Paris: Epsilon in 2023-12, Delta in 2024-01, beta in 2024-02, Alpha in 2024-03, Gamma in 2024-07
    assert [(m["month"], m["artists"]) for m in paris["months"]] == [
        ("2023-12", 1), ("2024-01", 1), ("2024-02", 1), ("2024-03", 1), ("2024-04", 0), ("2024-05", 0),
        ("2024-06", 0), ("2024-07", 1)]
    assert [(m["month"], m["artists"]) for m in in_utc["months"][:2]] == [("2023-12", 2), ("2024-01", 1)]


# ----------------------------------------------------------------------------- shelf and listening


def test_owned_never_played(loaded):
    with loaded.app_context():
        result = analytics.unplayed()
        one = analytics.unplayed(limit=1)
    assert result["owned_albums"] == 3 and result["total"] == 2
    assert [(i["artist"], i["title"], i["copies"], i["year"]) for i in result["items"]] == [
        ("Alpha", "Unheard", 2, 2003), ("Omega", "Silent", 1, 1980)]
    assert len(one["items"]) == 1 and one["total"] == 2


def test_most_played_albums_not_owned(loaded):
    with loaded.app_context():
        ever = analytics.top("albums", analytics.parse_period("all", PARIS), not_owned=True)
        in_2024 = analytics.top("albums", analytics.parse_period("2024", PARIS), not_owned=True)
    owned = {title for _, title, _ in SHELF}
    counts = Counter(album for _, _, album, _ in LISTENS if album and album not in owned)
    assert [(a["title"], a["plays"]) for a in ever] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(a["rank"], a["title"], a["plays"]) for a in in_2024] == [(1, "Second", 3), (2, "Fourth", 1)]


def test_owned_listening_over_time(loaded):
    with loaded.app_context():
        result = analytics.owned_over_time(PARIS)
    owned = {title for _, title, _ in SHELF}
    plays, owned_plays = Counter(), Counter()
    for ts, _, album, _ in LISTENS:
        month = datetime.fromtimestamp(ts, PARIS).strftime("%Y-%m")
        plays[month] += 1
        owned_plays[month] += album in owned
    by_month = {m["month"]: (m["plays"], m["owned_plays"]) for m in result["months"]}
    assert {k: v for k, v in by_month.items() if v[0]} == {m: (plays[m], owned_plays[m]) for m in plays}
    assert by_month["2024-06"] == (2, 2) and by_month["2024-04"] == (0, 0)
    assert result["plays"] == len(LISTENS) and result["owned_plays"] == 3
    assert [m["month"] for m in result["months"]][0] == "2023-12" and result["months"][-1]["month"] == "2025-01"


def test_empty_database_gives_empty_panels(paris_app):
    with paris_app.app_context():
        everything = analytics.parse_period("all", PARIS)
        assert analytics.top("artists", everything) == []
        assert analytics.heatmap(PARIS, everything)["total"] == 0
        assert analytics.streaks(PARIS)["longest"]["days"] == 0
        assert analytics.discoveries(PARIS) == {"months": [], "total": 0}
        assert analytics.unplayed() == {"owned_albums": 0, "total": 0, "items": []}
        assert analytics.owned_over_time(PARIS)["months"] == []


# ----------------------------------------------------------------------------- the API and the page


def test_api_shapes(loaded):
    client = loaded.test_client()
    for panel in analytics.PANELS:
        response = client.get(f"/api/v1/analytics/{panel}?period=2024&limit=5")
        assert response.status_code == 200, (panel, response.get_json())
        body = response.get_json()
        assert body["panel"] == panel and body["timezone"] == "Europe/Paris"
        assert ("period" in body) == (panel in analytics.PERIOD_PANELS)
    body = client.get("/api/v1/analytics/top-artists?period=2024&limit=2").get_json()
    assert body["period"] == {"key": "2024", "label": "2024", "start": "2023-12-31T23:00:00Z",
                              "end": "2024-12-31T23:00:00Z"}
    assert body["items"] == [{"rank": 1, "id": 1, "name": "Alpha", "plays": 3},
                             {"rank": 1, "id": 2, "name": "beta", "plays": 3}]
    albums = client.get("/api/v1/analytics/top-albums?period=2024").get_json()["items"]
    assert set(albums[0]) == {"rank", "id", "title", "artist", "plays"}
    heat = client.get("/api/v1/analytics/heatmap?period=all").get_json()
    assert len(heat["cells"]) == 7 and all(len(row) == 24 for row in heat["cells"]) and heat["total"] == len(LISTENS)
    streaks = client.get("/api/v1/analytics/streaks").get_json()
    assert set(streaks) >= {"longest", "current", "days_with_listens"}
    discoveries = client.get("/api/v1/analytics/discoveries").get_json()
    assert set(discoveries["months"][0]) == {"month", "artists"} and discoveries["total"] == 5
    unplayed = client.get("/api/v1/analytics/shelf-unplayed").get_json()
    assert unplayed["total"] == 2 and set(unplayed["items"][0]) == {"id", "title", "artist", "copies", "year"}
    over = client.get("/api/v1/analytics/shelf-over-time").get_json()
    assert set(over["months"][0]) == {"month", "plays", "owned_plays"}


@pytest.mark.parametrize("query, message", [
    ("period=fortnight", "Unknown period 'fortnight': use 7d, 30d, 12m, all or a year"),
    ("period=1969", "Unknown period '1969'"),
    ("limit=0", "limit must be a whole number from 1 to 100, not '0'"),
    ("limit=many", "limit must be a whole number from 1 to 100, not 'many'"),
    ("limit=1000", "limit must be a whole number from 1 to 100"),
])
def test_api_bad_parameters_are_400_with_a_message(loaded, query, message):
    response = loaded.test_client().get(f"/api/v1/analytics/top-artists?{query}")
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_api_unknown_panel(loaded):
    response = loaded.test_client().get("/api/v1/analytics/favourite-colour")
    assert response.status_code == 404
    assert "No analytics panel 'favourite-colour'" in response.get_json()["error"]
    assert "top-artists" in response.get_json()["error"]


def test_page_with_data(loaded):
    client = loaded.test_client()
    page = client.get("/analytics?period=2024").get_data(as_text=True)
    for canvas in ("chart-top-artists", "chart-discoveries", "chart-over-time"):
        assert f'id="{canvas}"' in page
    assert 'id="heatmap" data-total="9"' in page  # 2024 in Paris: 9 of the 11 listens
    assert 'value="2024" selected' in page and 'value="2025"' in page and 'value="2023"' in page
    assert 'id="streak-longest"' in page and 'id="unplayed-summary" data-total="2"' in page
    assert "Europe/Paris" in page and "analytics-empty" not in page
    assert 'href="/analytics" aria-current="page"' in page
    assert "vendor/chart.js-4.5.1/chart.umd.min.js" in page


def test_page_bad_period_says_so_and_shows_the_default(loaded):
    response = loaded.test_client().get("/analytics?period=<b>soon</b>")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="analytics-error"' in page
    assert "&lt;b&gt;soon&lt;/b&gt;" in page and "<b>soon</b>" not in page
    assert 'id="chart-top-artists"' in page


def test_page_empty_state_leads_to_import(paris_app):
    page = paris_app.test_client().get("/analytics").get_data(as_text=True)
    assert 'id="analytics-empty"' in page and "/settings#upload-form" in page
    assert "<canvas" not in page and "chart.umd.min.js" not in page


def test_names_stay_text(paris_app):
    evil = "<img src=x onerror=alert(1)></script>"
    seed(paris_app, [(utc(2024, 5, 1, 12, 0), evil, evil, evil)], [(evil, evil, 2000), (evil, "Other", None)])
    page = paris_app.test_client().get("/analytics?period=all").get_data(as_text=True)
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\\u003cimg src=x onerror=alert(1)\\u003e\\u003c/script\\u003e" in page  # in the charts' JSON


def test_nothing_is_counted_twice_for_one_listen_a_second(paris_app):
    # Two different tracks in the same second are two listens (the model's unique key allows it).
    ts = utc(2024, 5, 1, 12, 0)
    seed(paris_app, [(ts, "A", None, "one"), (ts, "A", None, "two")])
    with paris_app.app_context():
        assert analytics.heatmap(PARIS, analytics.parse_period("all", PARIS))["total"] == 2
        assert analytics.streaks(PARIS, now=ts)["current"] == {"days": 1, "start": "2024-05-01", "end": "2024-05-01"}


def test_month_helpers():
    assert analytics.months_between("2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert analytics.month_key((date(2024, 2, 29) - analytics.EPOCH).days * 86400 + 3600) == "2024-02"


# ----------------------------------------------------------------------------- kept between versions


def test_kept_figures_follow_new_listens_then_a_deletion(loaded, monkeypatch):
    """All-time streaks, heat map, shelf chart and discoveries are kept per listen_feed version and
    brought forward by adding the listens stored since (an import's every batch is a version); a
    deletion makes them computed again. Each step against the listens, counted here one by one."""
    import types

    from modules.db import db
    from modules.importers.listens import forget_listens, write_plays
    from modules.models import Listen

    computed = Counter()
    for name in ("_local_counts", "_first_listens"):
        real = getattr(analytics, name)
        monkeypatch.setattr(analytics, name, lambda *a, _real=real, _name=name: (computed.update([_name]),
                                                                                 _real(*a))[1])
    every = list(LISTENS)

    def figures():
        with loaded.app_context():
            got = {"streaks": analytics.streaks(PARIS, now=at(PARIS, 2025, 1, 1, 12, 0)),
                   "discoveries": {m["month"]: m["artists"] for m in analytics.discoveries(PARIS)["months"]
                                   if m["artists"]},
                   "heatmap": analytics.heatmap(PARIS, analytics.parse_period("all", PARIS))["cells"],
                   "plays": {m["month"]: m["plays"] for m in analytics.owned_over_time(PARIS)["months"] if m["plays"]}}
            db.session.rollback()
        firsts = {}
        for ts, artist, *_ in every:
            firsts[artist.lower()] = min(firsts.get(artist.lower(), ts), ts)
        days, first, last = expected_longest(every, PARIS)
        assert got["streaks"]["longest"] == {"days": days, "start": first.isoformat(), "end": last.isoformat()}
        assert got["streaks"]["days_with_listens"] == len({datetime.fromtimestamp(ts, PARIS).date() for ts, *_ in every})
        assert got["discoveries"] == dict(Counter(datetime.fromtimestamp(ts, PARIS).strftime("%Y-%m")
                                                  for ts in firsts.values()))
        assert got["heatmap"] == expected_cells(every, PARIS)
        assert got["plays"] == dict(Counter(datetime.fromtimestamp(ts, PARIS).strftime("%Y-%m") for ts, *_ in every))

    def write(plays):
        with loaded.app_context():
            write_plays(db.session.connection(), [types.SimpleNamespace(played_at=t, artist=a, album=b, title=s)
                                                  for t, a, b, s in plays], "lastfm")
            db.session.commit()
        every.extend(plays)

    figures()
    assert computed == {"_local_counts": 2, "_first_listens": 1}  # days and hours of the week, firsts
    # Earlier than Alpha's first listen (its discovery moves from March to January 2024), a new
    # artist, and listens that lengthen a run of days, across the change to summer time.
    write([(at(PARIS, 2024, 1, 2, 9, 0), "Alpha", "First", "a1"), (at(PARIS, 2024, 3, 31, 1, 30), "Zeta", None, "z"),
           (at(PARIS, 2024, 3, 31, 3, 30), "Zeta", None, "z"), (at(PARIS, 2024, 4, 1, 0, 15), "Zeta", None, "z2")])
    figures()
    write([(at(PARIS, 2024, 4, 2, 23, 59), "beta", "Second", "b9")])
    figures()
    assert computed == {"_local_counts": 2, "_first_listens": 1}  # brought forward, not computed again

    with loaded.app_context():  # Alpha's January listen goes: its discovery is back in March
        gone, _ = forget_listens(db.session.connection(), Listen.played_at == at(PARIS, 2024, 1, 2, 9, 0))
        db.session.commit()
    assert gone == 1
    every.remove((at(PARIS, 2024, 1, 2, 9, 0), "Alpha", "First", "a1"))
    figures()
    assert computed == {"_local_counts": 4, "_first_listens": 2}
