"""One play, one listen: the cross-source rule of importers/listens.py on a real database."""
from dataclasses import dataclass

import sqlalchemy as sa

from modules.db import db
from modules.importers.listens import same_play_window, write_plays
from modules.models import Listen


@dataclass
class P:
    played_at: int
    artist: str
    title: str
    album: str = ""
    duration_ms: int | None = None


T = 1_700_000_000


def write(app, plays, source):
    with app.app_context(), db.engine.begin() as conn:
        return write_plays(conn, plays, source)


def stored(app):
    with app.app_context():
        return db.session.execute(sa.select(Listen.played_at, Listen.source).order_by(Listen.played_at)).all()


def test_window_follows_track_length():
    assert same_play_window(None) == 120
    assert same_play_window(20_000) == 30  # short tracks: at least 30 s
    assert same_play_window(300_000) == 150  # half of a 5-minute track
    assert same_play_window(3_600_000) == 240  # at most 4 minutes


def test_same_play_from_another_source_is_stored_once(app):
    write(app, [P(T, "Massive Attack", "Teardrop")], "lastfm")
    # Spotify says the play started 7 s later (its start is computed from the end time)
    outcome = write(app, [P(T + 7, "massive attack", "TEARDROP", duration_ms=330_000)], "spotify")
    assert (outcome.imported, outcome.skipped, outcome.cross_source) == (0, 1, 1)
    assert stored(app) == [(T, "lastfm")]


def test_real_repeat_plays_stay_separate(app):
    write(app, [P(T, "Massive Attack", "Teardrop")], "lastfm")
    # played again right after it ended (5:30 later): another play, from any source
    outcome = write(app, [P(T + 330, "Massive Attack", "Teardrop", duration_ms=330_000)], "spotify")
    assert outcome.imported == 1
    # and plays from one source are never merged, however close
    outcome = write(app, [P(T + 60, "Massive Attack", "Teardrop")], "lastfm")
    assert outcome.imported == 1
    assert [s for _, s in stored(app)] == ["lastfm", "lastfm", "spotify"]


def test_other_tracks_in_the_window_are_kept(app):
    write(app, [P(T, "Massive Attack", "Teardrop")], "lastfm")
    outcome = write(app, [P(T + 3, "Massive Attack", "Angel", duration_ms=380_000),
                          P(T + 5, "Portishead", "Teardrop", duration_ms=200_000)], "spotify")
    assert outcome.imported == 2


def test_window_edges(app):
    write(app, [P(T, "A", "B")], "lastfm")
    assert write(app, [P(T + 150, "A", "B", duration_ms=300_000)], "spotify").skipped == 1  # at the edge
    assert write(app, [P(T - 151, "A", "B", duration_ms=300_000)], "listenbrainz").imported == 1  # just past
