"""The app's data: artists, albums, tracks, listens, collection items and jobs.

Times are stored as UTC Unix seconds (integers for listens, floats for jobs): exact, portable
across SQLite and PostgreSQL, and what Last.fm itself uses.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa

from .db import db


def utc_iso(seconds):
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


class Artist(db.Model):
    __tablename__ = "artists"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(512), nullable=False)
    name_key = sa.Column(sa.String(512), nullable=False, unique=True)
    image_url = sa.Column(sa.String(1024))
    spotify_id = sa.Column(sa.String(64))
    spotify_url = sa.Column(sa.String(1024))
    created_at = sa.Column(sa.Float, nullable=False, default=time.time)


class Album(db.Model):
    __tablename__ = "albums"
    __table_args__ = (sa.UniqueConstraint("artist_id", "title_key", name="uq_albums_artist_title"),)
    id = sa.Column(sa.Integer, primary_key=True)
    artist_id = sa.Column(sa.Integer, sa.ForeignKey("artists.id"), nullable=False)
    title = sa.Column(sa.String(512), nullable=False)
    title_key = sa.Column(sa.String(512), nullable=False)
    image_url = sa.Column(sa.String(1024))
    image_source = sa.Column(sa.String(16))  # lastfm, discogs, spotify
    spotify_id = sa.Column(sa.String(64))
    spotify_url = sa.Column(sa.String(1024))
    description = sa.Column(sa.Text)
    description_model = sa.Column(sa.String(128))
    description_language = sa.Column(sa.String(32))
    description_edited = sa.Column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    description_updated_at = sa.Column(sa.Float)
    needs_enrichment = sa.Column(sa.Boolean, nullable=False, default=True, server_default=sa.true())
    enriched_at = sa.Column(sa.Float)
    created_at = sa.Column(sa.Float, nullable=False, default=time.time)
    artist = db.relationship(Artist, lazy="joined")


class Track(db.Model):
    __tablename__ = "tracks"
    __table_args__ = (sa.UniqueConstraint("artist_id", "title_key", name="uq_tracks_artist_title"),)
    id = sa.Column(sa.Integer, primary_key=True)
    artist_id = sa.Column(sa.Integer, sa.ForeignKey("artists.id"), nullable=False)
    title = sa.Column(sa.String(512), nullable=False)
    title_key = sa.Column(sa.String(512), nullable=False)


class Listen(db.Model):
    """One play. Unique on (played_at, artist key, title key): two tracks in one second both stay."""
    __tablename__ = "listens"
    __table_args__ = (
        sa.UniqueConstraint("played_at", "artist_key", "title_key", name="uq_listens_play"),
        # The artist-filtered journal walks (artist_id, played_at, id) alone: a covering index.
        sa.Index("ix_listens_artist_played_id", "artist_id", "played_at", "id"),
        sa.Index("ix_listens_album_played", "album_id", "played_at"),  # analytics: plays of an album
        sa.Index("ix_listens_played_id", "played_at", "id"),  # the journal's order: deep pages by seek
    )
    id = sa.Column(sa.Integer, primary_key=True)
    played_at = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False, index=True)
    artist_key = sa.Column(sa.String(512), nullable=False)
    title_key = sa.Column(sa.String(512), nullable=False)
    artist_id = sa.Column(sa.Integer, sa.ForeignKey("artists.id"), nullable=False)
    album_id = sa.Column(sa.Integer, sa.ForeignKey("albums.id"))
    track_id = sa.Column(sa.Integer, sa.ForeignKey("tracks.id"), nullable=False)
    source = sa.Column(sa.String(32), nullable=False)
    job_id = sa.Column(sa.String(32))
    # What a scrobbling client sent beside the names (ListenBrainz `additional_info`); NULL otherwise.
    additional_info = sa.Column(sa.JSON(none_as_null=True))


class ListenCount(db.Model):
    """Listens per UTC bucket of `step` seconds (900, 3600 and 86400), kept by every writer of
    listens in the same transaction (importers/summaries.py). Quarter hours answer any time zone
    (half- and quarter-hour offsets, daylight-saving changes); hours and days are rollups of them."""
    __tablename__ = "listen_counts"
    step = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    bucket = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False)


class ArtistPlays(db.Model):
    """All-time listens of an artist and its first and last listen (importers/summaries.py)."""
    __tablename__ = "artist_plays"
    artist_id = sa.Column(sa.Integer, sa.ForeignKey("artists.id"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False, index=True)
    first_played_at = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False)
    last_played_at = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False)


class AlbumPlays(db.Model):
    """All-time listens of an album (importers/summaries.py)."""
    __tablename__ = "album_plays"
    album_id = sa.Column(sa.Integer, sa.ForeignKey("albums.id"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False, index=True)


class TrackPlays(db.Model):
    """All-time listens of a track (importers/summaries.py)."""
    __tablename__ = "track_plays"
    track_id = sa.Column(sa.Integer, sa.ForeignKey("tracks.id"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False, index=True)


class ArtistMonthPlays(db.Model):
    """Listens of an artist in one UTC calendar month (`month`: months since January 1970), kept
    with the totals (importers/summaries.py): a period's top lists add up its whole months and count
    only the cut edges from the listens. album_month_plays and track_month_plays likewise."""
    __tablename__ = "artist_month_plays"
    month = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    artist_id = sa.Column(sa.Integer, sa.ForeignKey("artists.id"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False)


class AlbumMonthPlays(db.Model):
    __tablename__ = "album_month_plays"
    month = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    album_id = sa.Column(sa.Integer, sa.ForeignKey("albums.id"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False)


class TrackMonthPlays(db.Model):
    __tablename__ = "track_month_plays"
    month = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    track_id = sa.Column(sa.Integer, sa.ForeignKey("tracks.id"), primary_key=True, autoincrement=False)
    plays = sa.Column(sa.Integer, nullable=False)


class ListenFeed(db.Model):
    """One row: the version every writer of listens bumps, and the track playing now
    (importers/listen_feed.py). `topic` names the feed in the progress store."""
    __tablename__ = "listen_feed"
    id = sa.Column(sa.Integer, primary_key=True)
    topic = sa.Column(sa.String(64), nullable=False)
    version = sa.Column(sa.Integer, nullable=False, default=0)
    # The version of the last change other than new listens (a deletion, a rebuild): see claim().
    rewritten = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    now_playing = sa.Column(sa.JSON(none_as_null=True))
    now_playing_until = sa.Column(sa.Float)


class CollectionItem(db.Model):
    """One owned copy of a release (Discogs instance id): two copies of a release are two items."""
    __tablename__ = "collection_items"
    id = sa.Column(sa.Integer, primary_key=True)
    instance_id = sa.Column(sa.BigInteger, nullable=False, unique=True)
    release_id = sa.Column(sa.BigInteger, nullable=False, index=True)
    album_id = sa.Column(sa.Integer, sa.ForeignKey("albums.id"))
    title = sa.Column(sa.String(512), nullable=False)
    artist = sa.Column(sa.String(512), nullable=False)
    year = sa.Column(sa.Integer)
    formats = sa.Column(sa.JSON)
    labels = sa.Column(sa.JSON)
    genres = sa.Column(sa.JSON)
    styles = sa.Column(sa.JSON)
    cover_url = sa.Column(sa.String(1024))
    thumb_url = sa.Column(sa.String(1024))
    date_added = sa.Column(sa.String(40))
    rating = sa.Column(sa.Integer)
    folder_id = sa.Column(sa.Integer)
    source = sa.Column(sa.String(32), nullable=False, default="discogs")
    created_at = sa.Column(sa.Float, nullable=False, default=time.time)


class Job(db.Model):
    """A long job's control record. Its live progress lives in the progress store.

    `active_kind` equals `kind` while the job is queued or running and is NULL otherwise; its
    unique constraint is what makes "one job of a kind at a time" hold across processes.
    """
    __tablename__ = "jobs"
    id = sa.Column(sa.String(32), primary_key=True)
    kind = sa.Column(sa.String(64), nullable=False, index=True)
    status = sa.Column(sa.String(16), nullable=False)
    active_kind = sa.Column(sa.String(64), unique=True)
    params = sa.Column(sa.JSON, nullable=False, default=dict)
    checkpoint = sa.Column(sa.JSON)
    result = sa.Column(sa.JSON)
    message = sa.Column(sa.Text)
    cancel_requested = sa.Column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    owner = sa.Column(sa.String(128))
    heartbeat_at = sa.Column(sa.Float)
    created_at = sa.Column(sa.Float, nullable=False, default=time.time)
    started_at = sa.Column(sa.Float)
    finished_at = sa.Column(sa.Float)
    # Grows with each hand-over to a runner (start, resume, takeover): only the runner, thread or
    # broker message of the current generation may write to the job (modules/jobs/lifecycle.py).
    generation = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    takeovers = sa.Column(sa.JSON)  # [{at, from, to, done, total, step}], oldest first
    takeover_streak = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")

    def as_dict(self):
        return {"id": self.id, "kind": self.kind, "status": self.status, "params": self.params,
                "result": self.result, "message": self.message, "takeovers": self.takeovers or [],
                "created_at": utc_iso(self.created_at), "started_at": utc_iso(self.started_at),
                "finished_at": utc_iso(self.finished_at),
                "duration_seconds": round(self.finished_at - self.started_at, 3)
                if self.finished_at and self.started_at else None}


class Preference(db.Model):
    """A setting changed from the app's pages (tracker interval, tracker on/off, ...)."""
    __tablename__ = "preferences"
    key = sa.Column(sa.String(128), primary_key=True)
    value = sa.Column(sa.JSON)
    updated_at = sa.Column(sa.Float, nullable=False, default=time.time, onupdate=time.time)


class StoredSetting(db.Model):
    """A setting saved on the settings page: JSON text, or a Fernet token for a secret."""
    __tablename__ = "stored_settings"
    name = sa.Column(sa.String(64), primary_key=True)
    value = sa.Column(sa.Text, nullable=False)
    encrypted = sa.Column(sa.Boolean, nullable=False, default=False)
    updated_at = sa.Column(sa.Float, nullable=False, default=time.time)


class SettingsVersion(db.Model):
    """One row whose number grows with every change of a stored setting: each process compares it
    with the one it loaded (one primary-key read) and reloads only when it moved."""
    __tablename__ = "settings_version"
    id = sa.Column(sa.Integer, primary_key=True)
    version = sa.Column(sa.Integer, nullable=False, default=0)


class Playlist(db.Model):
    """A saved playlist: made by a generator (`kind`, with the `params` it ran with) or by hand."""
    __tablename__ = "playlists"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(512), nullable=False)
    kind = sa.Column(sa.String(32), nullable=False)
    params = sa.Column(sa.JSON, nullable=False, default=dict)
    created_at = sa.Column(sa.Float, nullable=False, default=time.time)
    updated_at = sa.Column(sa.Float, nullable=False, default=time.time)


class PlaylistItem(db.Model):
    """One entry of a playlist. It keeps the names it was made with, so an export never depends on
    later changes to tracks or albums; the ids only link back when the rows still exist."""
    __tablename__ = "playlist_items"
    playlist_id = sa.Column(sa.Integer, sa.ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True)
    position = sa.Column(sa.Integer, primary_key=True)
    track_id = sa.Column(sa.Integer, sa.ForeignKey("tracks.id", ondelete="SET NULL"))
    artist = sa.Column(sa.String(512), nullable=False)
    title = sa.Column(sa.String(512), nullable=False)
    album = sa.Column(sa.String(512))
    album_id = sa.Column(sa.Integer, sa.ForeignKey("albums.id", ondelete="SET NULL"))
    duration = sa.Column(sa.Integer)  # seconds, when known
