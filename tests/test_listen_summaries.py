"""Every figure a page shows, read from the listen summaries, equals a direct count over the listens:
after an upload, an import, a resumed import (the same plays sent again), scrobbles and deletions,
on generated histories around daylight-saving changes, in zones with whole-hour (Europe/Paris,
America/New_York) and half-hour (Asia/Kolkata) offsets. SQLite, then PostgreSQL in the second pass.

The expected figures are computed here from the listens rows, one listen at a time with zoneinfo,
or by the plain OFFSET/COUNT query over the listens; never from the summaries.
"""
from __future__ import annotations

import json
import random
import types
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.conftest import make_app, upload, wait_for_job

TOKEN = "lb-test-token-summaries-0123"
# Lord Howe Island moves by half an hour at 15:00 or 15:30 UTC: hours do not answer it, quarter hours do.
ZONES = ("Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
NOW = int(datetime(2024, 11, 3, 12, 34, 56, tzinfo=UTC).timestamp())  # the day New York left summer time
# Daylight-saving changes of 2024 (UTC): Paris 31 March and 27 October, New York 10 March and 3 November,
# Lord Howe 6 April and 5 October.
CHANGES = [datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC),
           datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC),
           datetime(2024, 4, 6, 15, tzinfo=UTC), datetime(2024, 10, 5, 15, 30, tzinfo=UTC)]


def history(seed, n, artists=12, prefix="Artist"):
    """Plays (played_at, artist, album or None, title): Zipf-like artists and tracks, many around the
    daylight-saving changes and on bucket edges (a multiple of 900 seconds, and one second before)."""
    rng = random.Random(seed)
    start, end = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp()), NOW
    plays = set()
    while len(plays) < n:
        kind = rng.random()
        if kind < 0.4:
            ts = int(rng.choice(CHANGES).timestamp()) + rng.randint(-40 * 3600, 40 * 3600)
        elif kind < 0.55:
            ts = rng.randint(start, end) // 900 * 900 - rng.choice((0, 1))
        else:
            ts = rng.randint(start, end)
        a = min(int(rng.paretovariate(1.2)), artists)
        t = min(int(rng.paretovariate(1.1)), 9)
        album = None if t % 4 == 0 else f"{prefix} {a} album {t % 3}"
        plays.add((ts, f"{prefix} {a}", album, f"Song {t}"))
    return sorted(plays)


def lastfm_csv(plays):
    lines = ["uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid"]
    for ts, artist, album, title in plays:
        lines.append(f"{ts},x,{artist},,{album or ''},,{title},")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(params=ZONES)
def zone_app(request, tmp_path, migrated_template):
    application = make_app(tmp_path / "instance", migrated_template,
                           environ={"TIMEZONE": request.param, "API_TOKEN": TOKEN})
    yield application
    with application.app_context():
        from modules.db import db
        db.engine.dispose()


# ----------------------------------------------------------------------------- the comparison


def listens(app):
    from modules.db import db
    from modules.models import Listen
    with app.app_context():
        return db.session.execute(sa.select(Listen.played_at, Listen.artist_id, Listen.album_id,
                                            Listen.track_id)).all()


def expected_heatmap(rows, tz, start, end):
    cells = [[0] * 24 for _ in range(7)]
    for row in rows:
        if (start is None or row.played_at >= start) and (end is None or row.played_at < end):
            local = datetime.fromtimestamp(row.played_at, tz)
            cells[local.weekday()][local.hour] += 1
    return cells


def expected_longest(days):
    best, run, previous = 0, 0, None
    for day in sorted(days):
        run = run + 1 if previous is not None and day - previous == timedelta(days=1) else 1
        best, previous = max(best, run), day
    return best


def direct_page(db, page, size, start=None, end=None, artist=None):
    """The journal's page by OFFSET and COUNT over the listens: what the pages showed before."""
    from modules.models import Artist, Listen, Track
    from modules.names import name_key
    where = []
    if start is not None:
        where.append(Listen.played_at >= start)
    if end is not None:
        where.append(Listen.played_at < end)
    if artist:
        where.append(Listen.artist_id.in_(sa.select(Artist.id).where(Artist.name_key.contains(name_key(artist)))))
    total = db.session.execute(sa.select(sa.func.count()).select_from(Listen).where(*where)).scalar()
    rows = db.session.execute(
        sa.select(Listen.played_at, Artist.name, Track.title).join(Artist, Artist.id == Listen.artist_id)
        .join(Track, Track.id == Listen.track_id).where(*where)
        .order_by(Listen.played_at.desc(), Listen.id.desc()).limit(size).offset((page - 1) * size)).all()
    return total, [(datetime.fromtimestamp(r[0], UTC).isoformat().replace("+00:00", "Z"), r[1], r[2]) for r in rows]


def assert_exact(app):
    """Every figure of the analytics, timeline, journal and listens API against the listens."""
    from modules.db import db
    from modules.importers import summaries
    from modules.models import (
        AlbumMonthPlays,
        AlbumPlays,
        ArtistMonthPlays,
        ArtistPlays,
        ListenCount,
        TrackMonthPlays,
        TrackPlays,
    )
    from modules.web import analytics, listens_query, timeline

    rows = listens(app)
    tz = ZoneInfo(app.extensions["sillon"]["settings"]["TIMEZONE"])
    with app.app_context():
        # The tables themselves.
        per_bucket = Counter((step, r.played_at // step) for r in rows for step in summaries.STEPS)
        assert dict(Counter({(c.step, c.bucket): c.plays for c in db.session.execute(sa.select(ListenCount.__table__))})) \
            == dict(per_bucket)
        firsts = {}
        for r in rows:
            lo, hi = firsts.get(r.artist_id, (r.played_at, r.played_at))
            firsts[r.artist_id] = (min(lo, r.played_at), max(hi, r.played_at))
        assert {a.artist_id: (a.plays, a.first_played_at, a.last_played_at)
                for a in db.session.execute(sa.select(ArtistPlays.__table__))} == {
            k: (n, *firsts[k]) for k, n in Counter(r.artist_id for r in rows).items()}
        assert dict(db.session.execute(sa.select(AlbumPlays.album_id, AlbumPlays.plays)).all()) == dict(
            Counter(r.album_id for r in rows if r.album_id is not None))
        assert dict(db.session.execute(sa.select(TrackPlays.track_id, TrackPlays.plays)).all()) == dict(
            Counter(r.track_id for r in rows))
        # Per UTC calendar month, counted here with the calendar.
        for model, column in ((ArtistMonthPlays, 1), (AlbumMonthPlays, 2), (TrackMonthPlays, 3)):
            key = model.__table__.c[("artist_id", "album_id", "track_id")[column - 1]]
            months = Counter()
            for r in rows:
                if r[column] is not None:
                    moment = datetime.fromtimestamp(r.played_at, UTC)
                    months[((moment.year - 1970) * 12 + moment.month - 1, r[column])] += 1
            assert {(m, k): n for m, k, n in db.session.execute(sa.select(model.month, key, model.plays))} == dict(months)

        # Analytics: every period, with bounds at odd seconds as well as on bucket edges.
        periods = [analytics.parse_period(key, tz, NOW) for key in ("7d", "30d", "12m", "all", "2023", "2024")]
        periods.append(analytics.Period("odd", NOW - 400 * 86400 + 7, NOW - 33 * 86400 - 13))
        periods.append(analytics.Period("edges", NOW // 900 * 900 - 200 * 86400, NOW // 3600 * 3600))
        # UTC month bounds, and a span inside one month; the local years above cut a month by hours.
        periods.append(analytics.Period("months", summaries.month_start(650), summaries.month_start(652)))
        periods.append(analytics.Period("in a month", summaries.month_start(650) + 2 * 86400 + 5,
                                        summaries.month_start(650) + 20 * 86400 - 3))
        periods.append(analytics.Period("most of a month", summaries.month_start(650) + 3 * 86400 + 1,
                                        summaries.month_start(651)))
        for period in periods:
            db.session.rollback()
            analytics.g.pop("analytics_buckets", None)
            analytics.g.pop("analytics_local", None)
            heat = analytics.heatmap(tz, period)
            want = expected_heatmap(rows, tz, period.start, period.end)
            assert heat["cells"] == want, period
            assert heat["total"] == sum(map(sum, want))
            # Every period's top lists against the GROUP BY over the period's listens (the rows the
            # month summaries replace), whole and cut at 3 (ties at the cut), and the plays counted here.
            if period.start is not None:
                for kind, column in (("artists", 1), ("albums", 2), ("tracks", 3)):
                    every = analytics.top(kind, period, 1000)
                    assert every == analytics.top_from_listens(kind, period, 1000, False), (period, kind)
                    assert analytics.top(kind, period, 3) == analytics.top_from_listens(kind, period, 3, False)
                    counted = Counter(r[column] for r in rows if r[column] is not None and r.played_at >= period.start
                                      and (period.end is None or r.played_at < period.end))
                    assert [i["plays"] for i in every] == sorted(counted.values(), reverse=True)
                assert analytics.top("albums", period, 4, not_owned=True) == \
                    analytics.top_from_listens("albums", period, 4, True)
            # All time comes from the totals: against the count over the listens (a period that
            # starts before any listen), every limit (ties at the cut), and the plays one by one.
            if period.start is None:
                direct = analytics.Period("direct", -10 ** 10, None)
                for kind in ("artists", "albums", "tracks"):
                    for limit in (1, 3, 5, 1000):
                        assert analytics.top(kind, period, limit) == analytics.top(kind, direct, limit)
                    assert analytics.top("albums", period, 4, not_owned=True) == \
                        analytics.top("albums", direct, 4, not_owned=True)
                for kind, column in (("artists", 1), ("albums", 2), ("tracks", 3)):
                    counted = Counter(r[column] for r in rows if r[column] is not None)
                    assert [i["plays"] for i in analytics.top(kind, period, 1000)] == sorted(counted.values(),
                                                                                           reverse=True)
        analytics.g.pop("analytics_buckets", None)
        analytics.g.pop("analytics_local", None)
        days = {datetime.fromtimestamp(r.played_at, tz).date() for r in rows}
        streaks = analytics.streaks(tz, now=NOW)
        assert streaks["days_with_listens"] == len(days)
        assert streaks["longest"]["days"] == expected_longest(days)
        months = Counter(datetime.fromtimestamp(lo, tz).strftime("%Y-%m") for lo, _hi in firsts.values())
        found = analytics.discoveries(tz)
        assert {m["month"]: m["artists"] for m in found["months"] if m["artists"]} == dict(months)
        per_month = Counter(datetime.fromtimestamp(r.played_at, tz).strftime("%Y-%m") for r in rows)
        assert {m["month"]: m["plays"] for m in analytics.owned_over_time(tz)["months"] if m["plays"]} \
            == dict(per_month)

        # Timeline (UTC days, as before) for every unit.
        utc_days = Counter(date(1970, 1, 1) + timedelta(days=r.played_at // 86400) for r in rows)
        for unit in timeline.UNITS:
            want = Counter()
            for day, n in utc_days.items():
                want[timeline.bucket_start(day, unit)] += n
            assert {d: n for d, n in timeline.series(unit) if n} == dict(want)

        # Journal and listens API: totals and pages, first, deep, last and past the end, filtered.
        size = 7
        first, last = min(r.played_at for r in rows), max(r.played_at for r in rows)
        middle = (first + last) // 2
        filters = [{}, {"start": middle - 86400 * 30 + 17, "end": middle + 5}, {"start": middle},
                   {"end": middle}, {"artist": "artist 1"}, {"artist": "artist 2", "start": first + 901},
                   {"artist": "artist 1", "start": middle - 86400 * 90, "end": middle + 3},
                   {"artist": "nobody"}]
        shipped = listens_query.MERGED_ARTISTS
        try:
            # An artist filter merges the walks of a few artists' indexes, or sorts many artists'
            # listens in the database (MERGED_ARTISTS = 0 takes that way for every filter).
            for merged, f in [(shipped, f) for f in filters] + [(0, f) for f in filters if "artist" in f]:
                listens_query.MERGED_ARTISTS = merged
                db.session.rollback()
                total, _ = direct_page(db, 1, size, **f)
                pages = max(1, -(-total // size))
                for page in sorted({1, 2, pages // 2, pages - 1, pages, pages + 1} - {0}):
                    got_total, items = listens_query.page(page=page, page_size=size, **f)
                    assert (got_total, [(i["played_at"], i["artist"], i["title"]) for i in items]) == \
                        direct_page(db, page, size, **f), (merged, f, page)
        finally:
            listens_query.MERGED_ARTISTS = shipped
        db.session.rollback()
        total, _ = direct_page(db, 1, 50)
    client = app.test_client()
    deep = max(1, total // 50)
    answer = client.get(f"/api/v1/listens?page={deep}&page_size=50").get_json()
    with app.app_context():
        assert answer["total"] == total
        assert [(i["played_at"], i["artist"], i["title"]) for i in answer["items"]] == direct_page(db, deep, 50)[1]
    assert f"{total:,}".replace(",", "") in client.get("/analytics?period=all").get_data(as_text=True) \
        .replace(",", "").replace("\u202f", "").replace("\xa0", "")


# ----------------------------------------------------------------------------- each way in


def write(app, plays, source="lastfm"):
    from modules.db import db
    from modules.importers.listens import write_plays
    with app.app_context():
        result = write_plays(db.session.connection(),
                             [types.SimpleNamespace(played_at=t, artist=a, album=b, title=s) for t, a, b, s in plays],
                             source)
        db.session.commit()
    return result


def test_every_way_in_and_out_keeps_every_figure_exact(zone_app):
    app, client = zone_app, zone_app.test_client()
    uploaded = history(1, 450)
    job = upload(client, ("scrobbles.csv", lastfm_csv(uploaded))).get_json()["job_id"]
    wait_for_job(app, job)
    assert len(listens(app)) == len(uploaded)
    assert_exact(app)

    # An import (the Last.fm API's path) in batches, then the same batches again: a resumed job
    # sends again what its last checkpoint had not recorded, and nothing may count twice.
    imported = history(2, 300, prefix="Imported")
    for start in range(0, len(imported), 120):
        write(app, imported[start:start + 120])
    again = write(app, imported[100:260])
    assert again.imported == 0 and again.skipped == 160
    assert len(listens(app)) == len(uploaded) + len(imported)
    # The same upload again: every row is already there.
    wait_for_job(app, upload(client, ("again.csv", lastfm_csv(uploaded[:200]))).get_json()["job_id"])
    assert len(listens(app)) == len(uploaded) + len(imported)
    assert_exact(app)

    # Scrobbles through the ListenBrainz API, a backlog and single listens.
    scrobbled = history(3, 60, artists=4, prefix="Scrobbled")
    payload = [{"listened_at": t, "track_metadata": {"artist_name": a, "track_name": s,
                                                     **({"release_name": b} if b else {})}}
               for t, a, b, s in scrobbled]
    headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"}
    assert client.post("/1/submit-listens", data=json.dumps({"listen_type": "import", "payload": payload[:50]}),
                       headers=headers).status_code == 200
    for one in payload[50:]:
        assert client.post("/1/submit-listens", data=json.dumps({"listen_type": "single", "payload": [one]}),
                           headers=headers).status_code == 200
    assert len(listens(app)) == len(uploaded) + len(imported) + len(scrobbled)
    assert_exact(app)

    # Deletions: one artist's listens, then a span across a daylight-saving change.
    from modules.db import db
    from modules.importers.listens import forget_listens
    from modules.models import Artist, Listen
    with app.app_context():
        artist_id = db.session.execute(sa.select(Artist.id).where(Artist.name_key == "artist 2")).scalar()
        gone, _feed = forget_listens(db.session.connection(), Listen.artist_id == artist_id)
        db.session.commit()
        assert gone > 0
        span = (int(CHANGES[1].timestamp()) - 20 * 3600 + 11, int(CHANGES[3].timestamp()) + 3 * 3600 - 7)
        gone, _feed = forget_listens(db.session.connection(), Listen.played_at.between(*span))
        db.session.commit()
        assert gone > 0
    assert_exact(app)
    # And written again after the deletion, through the same path: back to exact.
    write(app, uploaded[:100], source="lastfm_csv")
    assert_exact(app)


def test_rebuild_gives_what_the_writes_kept(zone_app):
    """The migration's (and hand-inserting tests') rebuild equals the running summaries."""
    from modules.db import db
    from modules.importers import summaries
    from modules.models import AlbumPlays, ArtistPlays, ListenCount, TrackPlays
    app = zone_app
    for start, chunk in enumerate((history(4, 200), history(5, 120, prefix="Other"))):
        write(app, chunk, source=("lastfm", "spotify")[start])

    def snapshot():
        with app.app_context():
            return [sorted(tuple(r) for r in db.session.execute(sa.select(model.__table__)).all())
                    for model in (ListenCount, ArtistPlays, AlbumPlays, TrackPlays)]
    kept = snapshot()
    assert kept[0]
    with app.app_context():
        summaries.rebuild(db.session.connection())
        db.session.commit()
    assert snapshot() == kept
    assert_exact(app)


def test_an_empty_history_shows_zeros(zone_app):
    from modules.web import listens_query, timeline
    with zone_app.app_context():
        assert listens_query.page(page=3, page_size=10) == (0, [])
        assert listens_query.page(page=1, page_size=10, artist="x") == (0, [])
        assert timeline.series("day") == []
    assert zone_app.test_client().get("/api/v1/listens?page=2").get_json()["total"] == 0


def test_the_migration_counts_the_listens_already_stored(zone_app):
    """Listens imported before migration 0007 are in its summaries once it has run."""
    from flask_migrate import downgrade, upgrade

    from modules.db import db
    app = zone_app
    write(app, history(6, 250))
    with app.app_context():
        downgrade(revision="0006")
        assert "listen_counts" not in sa.inspect(db.engine).get_table_names()
        upgrade()
        db.engine.dispose()
    assert_exact(app)
