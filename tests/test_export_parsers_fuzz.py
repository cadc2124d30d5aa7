"""Property tests: whatever bytes arrive, detection and every reader end cleanly.

The only outcomes allowed: detect_format returns a FormatInfo or raises UnrecognizedFile; a reader
raises UnrecognizedFile before its first item, or yields Play / Skip / RowError (and dicts for the
Discogs reader), a FileError only as its last item, and ends with bytes_read at most the file size.
"""
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modules.sources.errors import UnrecognizedFile
from modules.sources.exports import formats, lastfm_csv, reading
from modules.sources.exports.formats import FileError, FormatInfo, Play, RowError, Skip
from tests.conftest import FIXTURES

EXPORTS = FIXTURES / "exports"
FIXTURE_FILES = sorted(p for p in EXPORTS.rglob("*") if p.is_file())
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FORCED = [FormatInfo("spotify_extended", ""), FormatInfo("spotify_account", ""),
          FormatInfo("listenbrainz_jsonl", ""), FormatInfo("listenbrainz_json", ""), FormatInfo("discogs_csv", ""),
          FormatInfo("lastfm_csv", "", layout=lastfm_csv.SIMPLE), FormatInfo("lastfm_csv", "", layout=lastfm_csv.UTS),
          FormatInfo("lastfm_csv", "")]  # no layout: the Last.fm reader detects it
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1"]


def check_reader(path, info):
    """Read the whole file with the reader for `info`; only clean outcomes allowed."""
    encoding = formats.sniff_encoding(path.read_bytes()[:formats.SNIFF_BYTES])
    info = FormatInfo(info.kind, info.description, encoding, info.layout) if info.description == "" else info
    try:
        reader = formats.open_reader(path, info)
    except UnrecognizedFile:  # the Last.fm reader detects when it has no layout
        return
    items, started = [], False
    try:
        for position, item in reader:
            started = True
            items.append((position, item))
    except UnrecognizedFile:
        assert not started, "UnrecognizedFile after items were yielded"
        return
    for index, (position, item) in enumerate(items):
        assert isinstance(position, int) and position >= 1
        if isinstance(item, Play):
            assert type(item.played_at) is int and 0 < item.played_at <= formats.MAX_TIMESTAMP
            assert isinstance(item.artist, str) and item.artist and isinstance(item.title, str) and item.title
            assert isinstance(item.album, str)
            for text in (item.artist, item.album, item.title):
                text.encode("utf-8")  # storable: no undecodable bytes, no lone surrogates
            assert item.duration_ms is None or type(item.duration_ms) is int
            assert item.source in {"spotify", "listenbrainz", "lastfm_csv"}
        elif isinstance(item, Skip):
            assert item.reason in formats.SKIP_REASONS
        elif isinstance(item, dict):
            assert info.kind == "discogs_csv" and item["instance_id"] < 0 and item["release_id"] > 0
            json.dumps(item, ensure_ascii=False).encode("utf-8")
        else:
            assert isinstance(item, RowError), f"unexpected item {item!r}"
            str(item).encode("utf-8")  # a message that can be shown, stored and downloaded
            if isinstance(item, FileError):
                assert index == len(items) - 1, "a FileError must be the last item"
    assert 0 <= reader.bytes_read <= path.stat().st_size


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check_everything(workdir, content):
    """detect_format, the detected reader, and every reader forced on the content."""
    fd, name = tempfile.mkstemp(dir=workdir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        try:
            info = formats.detect_format(path, "upload.bin")
        except UnrecognizedFile as exc:
            assert str(exc).startswith("upload.bin ")
        else:
            assert info.kind in formats.KINDS and info.description
            check_reader(path, info)
        for forced in FORCED:
            check_reader(path, forced)
    finally:
        path.unlink()


@SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(workdir, content):
    check_everything(workdir, content)


JSONISH = st.lists(st.one_of(
    st.sampled_from(['[', ']', '{', '}', ',', ':', '"', '\\', ' ', '\n', '\r\n', '\t', 'null', 'true', 'false', '-',
                     '0', '1e999', '1.5', '1700000000', '1700000000.5', 'NaN', '"ts"', '"ms_played"', '"endTime"',
                     '"msPlayed"', '"listened_at"', '"track_metadata"', '"artist_name"', '"track_name"',
                     '"master_metadata_track_name"', '"master_metadata_album_artist_name"', '"incognito_mode"',
                     '"2023-03-26T01:30:00Z"', '"2023-01-31 23:59"', '"\\ud800"', '"\\u0000"', '\x00', '\ufeff',
                     'Catalog#,Artist,Title,Label,Format,Rating,Released,release_id,CollectionFolder\n',
                     'uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n', '09 Jun 2008 17:16']),
    st.text(max_size=8)), max_size=80).map("".join)


@SETTINGS
@given(JSONISH, st.sampled_from(ENCODINGS))
def test_arbitrary_json_ish_text(workdir, text, encoding):
    check_everything(workdir, text.encode(encoding, errors="replace"))


def json_values(floats):
    return st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | floats | st.text(max_size=12),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
        max_leaves=12)


JSON_VALUES = json_values(st.floats())  # NaN and infinities too: json.dumps writes them, json.loads reads them
FIELDS = ["ts", "ms_played", "master_metadata_track_name", "master_metadata_album_artist_name",
          "master_metadata_album_album_name", "episode_name", "spotify_episode_uri", "audiobook_title",
          "incognito_mode", "endTime", "msPlayed", "artistName", "trackName", "podcastName", "listened_at",
          "track_metadata", "artist_name", "track_name", "release_name", "additional_info", "duration_ms", "duration"]
PLAUSIBLE = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | st.sampled_from(
    ["2023-03-26T01:30:00Z", "2023-01-31 23:59", 1679794200, 1679794200.5, 184400, "Björk", "", None, True]),
    max_size=10)
PLAUSIBLE_LISTEN = st.builds(lambda outer, meta: {**outer, "track_metadata": meta}, PLAUSIBLE, PLAUSIBLE | JSON_VALUES)


@SETTINGS
@given(st.lists(PLAUSIBLE | PLAUSIBLE_LISTEN | JSON_VALUES, max_size=8), st.booleans(), st.sampled_from(ENCODINGS[:4]))
def test_structurally_valid_json_with_arbitrary_values(workdir, rows, as_lines, encoding):
    if as_lines:
        text = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False, indent=1)
    check_everything(workdir, text.encode(encoding, errors="surrogatepass" if "16" in encoding else "replace"))


@SETTINGS
@given(st.sampled_from(FIXTURE_FILES), st.data())
def test_truncated_and_corrupted_fixtures(workdir, fixture, data):
    content = bytearray(fixture.read_bytes())
    cut = data.draw(st.integers(min_value=0, max_value=len(content)), label="cut")
    content = content[:cut]
    for _ in range(data.draw(st.integers(min_value=0, max_value=4), label="flips")):
        if content:
            at = data.draw(st.integers(min_value=0, max_value=len(content) - 1))
            content[at] = data.draw(st.integers(min_value=0, max_value=255))
    if data.draw(st.booleans(), label="utf-16"):
        content = bytes(content).decode("utf-8", errors="replace").encode("utf-16")
    check_everything(workdir, bytes(content))


@SETTINGS
@given(st.lists(json_values(st.floats(allow_nan=False)), max_size=12), st.sampled_from([" ", "\n", "\r\n  ", ""]),
       st.integers(min_value=1, max_value=40))
def test_json_array_splitter_agrees_with_json_load(workdir, values, spacing, chunk):
    """Any array of JSON values, any whitespace, any window size: the same items as json.loads."""
    text = "[" + spacing + ("," + spacing).join(json.dumps(v) for v in values) + spacing + "]"
    fd, name = tempfile.mkstemp(dir=workdir)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        saved, reading.CHUNK_CHARS = reading.CHUNK_CHARS, chunk
        try:
            reader = formats.ArrayItemsReader(path)
            reader.row = lambda value: value
            got = [value for _, value in reader]
        finally:
            reading.CHUNK_CHARS = saved
        assert got == json.loads(text)
    finally:
        path.unlink()


# --------------------------------------------------------------------------- whole uploads, through the app
# A file the app rejects (no format recognised, a broken or hostile zip) leaves the database exactly as it
# was: no listen, artist, album, track or record half-written. A file it accepts changes it by what the job
# reports, no more. No upload ends with an unexpected error.

UPLOAD_SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_UPLOAD_EXAMPLES", "40")), deadline=None,
                           database=None, suppress_health_check=list(HealthCheck))
TABLES = ("listens", "artists", "albums", "tracks", "collection_items")


def database_state(app):
    import sqlalchemy as sa

    from modules.db import db

    with app.app_context():
        try:
            counts = {t: db.session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}
            rows = db.session.execute(sa.text(
                "SELECT played_at, artist_key, title_key, source, artist_id, album_id, track_id FROM listens "
                "ORDER BY played_at, artist_key, title_key")).all()
        finally:
            db.session.remove()
    return counts, [tuple(r) for r in rows]


@pytest.fixture
def seeded_app(tmp_path, migrated_template):
    """An app whose database already holds listens (so "unchanged" means something)."""
    from tests.conftest import make_app, upload, wait_for_job

    application = make_app(tmp_path / "instance", migrated_template)
    r = upload(application.test_client(), ("lastfm_simple.csv", (FIXTURES / "lastfm_simple.csv").read_bytes()))
    assert wait_for_job(application, r.get_json()["job_id"])["status"] == "completed"
    yield application
    with application.app_context():
        from modules.db import db
        db.engine.dispose()


def zip_of(members, compression):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return buf.getvalue()


MEMBER_NAMES = st.sampled_from(["listens/2023/1.jsonl", "Streaming_History_Audio_2023.json", "endsong_0.json",
                                "a.csv", "../../escape.csv", "/abs.json", "dir/", "x" * 300, "été.json"])
UPLOADED = st.one_of(
    st.binary(max_size=2000),
    JSONISH.map(lambda text: text.encode("utf-8", errors="replace")),
    st.builds(zip_of, st.lists(st.tuples(MEMBER_NAMES, st.binary(max_size=500) | JSONISH), max_size=4),
              st.sampled_from([0, 8])),  # ZIP_STORED, ZIP_DEFLATED
    st.builds(lambda body, cut: zip_of([("listens.json", body)], 8)[:cut], st.binary(max_size=300),
              st.integers(min_value=0, max_value=200)),  # a zip cut short
    st.just(zip_of([("bomb.json", b"[" + b" " * 5_000_000 + b"]")], 8)),  # compressed about 1000:1
    # Last.fm CSV lines, some readable, some not: accepted, with row errors
    st.lists(st.one_of(st.builds("Fuzz Artist {},Fuzz Album,Fuzz Track {},0{} Jun 2008 17:1{}\n".format,
                                 st.integers(0, 3), st.integers(0, 50), st.integers(1, 9), st.integers(0, 9)),
                       st.text(max_size=30).map(lambda t: t + "\n")), min_size=1, max_size=12)
    .map(lambda lines: "".join(lines).encode("utf-8", errors="replace")),
)
UPLOAD_NAMES = st.sampled_from(["export.csv", "history.json", "listens.zip", "upload", "../../etc/passwd",
                                "Streaming_History_Audio_2023.json"])


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zips with a member twice, on purpose
@UPLOAD_SETTINGS
@given(files=st.lists(st.tuples(UPLOAD_NAMES, UPLOADED), min_size=1, max_size=3))
def test_a_rejected_upload_writes_nothing_and_an_accepted_one_only_what_it_reports(seeded_app, files):
    from tests.conftest import upload, wait_for_job

    before_counts, before_rows = database_state(seeded_app)
    r = upload(seeded_app.test_client(), *files)
    if r.status_code == 409:  # the previous example's job has not quite ended
        wait_for_job(seeded_app, r.get_json()["job_id"])
        r = upload(seeded_app.test_client(), *files)
    assert r.status_code in (202, 400), r.get_data(as_text=True)
    after_counts, after_rows = (before_counts, before_rows)
    if r.status_code == 202:
        snap = wait_for_job(seeded_app, r.get_json()["job_id"], timeout=60)
        assert snap["status"] in ("completed", "error"), snap
        assert not (snap["message"] or "").startswith("Unexpected error"), snap["message"]
        after_counts, after_rows = database_state(seeded_app)
        event(f"job {snap['status']}")
        if snap["status"] == "error":  # rejected: not one row written
            assert (snap["result"] or {}).get("resumable") is False, snap
            assert "Nothing was imported" in snap["message"], snap["message"]
            assert (after_counts, after_rows) == (before_counts, before_rows)
            return
        imported = snap["result"]["imported"]
        assert after_counts["listens"] == before_counts["listens"] + imported
        assert set(before_rows) <= set(after_rows)  # nothing stored before was rewritten or removed
    else:
        event("refused at once (400)")
        assert r.get_json()["error"]
        assert database_state(seeded_app) == (before_counts, before_rows)
