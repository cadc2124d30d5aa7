"""The export parsers: each format's exact output on its hand-written fixture (from the formats'
documentation, with the edge rows), detection from content, encodings, clear errors, streaming."""
import calendar
import json
import shutil
import time
import tracemalloc

import pytest

from modules.sources.errors import UnrecognizedFile
from modules.sources.exports import discogs_csv, formats, lastfm_csv, listenbrainz, reading, spotify
from modules.sources.exports.formats import FileError, FormatInfo, Play, RowError, Skip
from tests.conftest import FIXTURES

EXPORTS = FIXTURES / "exports"
LB_JSONL = EXPORTS / "listenbrainz_zip" / "listens" / "2023" / "3.jsonl"
FIXTURE_KINDS = {
    "Streaming_History_Audio_2023.json": "spotify_extended",
    "endsong_0.json": "spotify_extended",
    "StreamingHistory_music_0.json": "spotify_account",
    "StreamingHistory_podcast_0.json": "spotify_account",
    "listenbrainz_zip/listens/2023/3.jsonl": "listenbrainz_jsonl",
    "listenbrainz_export.json": "listenbrainz_json",
    "discogs_collection.csv": "discogs_csv",
    "lastfm_simple.csv": "lastfm_csv",
    "lastfm_uts.csv": "lastfm_csv",
}


def utc(year, month, day, hour, minute, second):
    return calendar.timegm((year, month, day, hour, minute, second))


def read(path, name=None, **options):
    info = formats.detect_format(path, name or path.name)
    reader = formats.open_reader(path, info, **options)
    items = list(reader)
    assert reader.bytes_read == path.stat().st_size  # the progress measure ends at the file size
    return info, items


def spotify_play(start, artist, album, title, ms):
    return Play(start, artist, album, title, None, "spotify", ms)


# -- each format's exact output ----------------------------------------------------------------

def test_spotify_extended_history():
    info, items = read(EXPORTS / "Streaming_History_Audio_2023.json")
    assert info == FormatInfo("spotify_extended", "Spotify Extended Streaming History (JSON)", "utf-8-sig")
    assert items[:11] == [
        (1, spotify_play(utc(2023, 3, 25, 21, 0, 37), "Massive Attack", "Mezzanine", "Teardrop", 215000)),
        # ended 01:30:00Z after 184.4 s: started 01:26:55.6, rounded to 01:26:56; the EU clock change
        # at 01:00Z moves nothing, all times are UTC
        (2, spotify_play(utc(2023, 3, 26, 1, 26, 56), "Björk", "Homogenic", "Jóga", 184400)),
        (3, spotify_play(utc(2023, 10, 29, 0, 55, 0), "Massive Attack", "Mezzanine", "Angel", 240000)),
        (4, spotify_play(utc(2023, 10, 29, 1, 0, 0), "Massive Attack", "Mezzanine", "Inertia Creeps", 60000)),
        (5, spotify_play(utc(2023, 4, 1, 9, 56, 40), "Sigur Rós", "", "Untitled #3", 200000)),  # empty album
        (6, spotify_play(utc(2023, 4, 1, 10, 4, 30), "Aphex Twin", "Windowlicker", "Windowlicker", 30000)),
        (7, Skip("short_play")),  # 12 s
        (8, Skip("incognito")),
        (9, Skip("podcast")),
        (10, Skip("audiobook")),
        (11, Skip("no_metadata")),  # a local file: all metadata null
    ]
    assert items[11][0] == 12 and isinstance(items[11][1], RowError)
    assert str(items[11][1]) == "unreadable ts 'yesterday'"


def test_spotify_extended_older_endsong_file():
    _, items = read(EXPORTS / "endsong_0.json")
    assert items == [(1, spotify_play(utc(2016, 11, 5, 23, 56, 5), "Björk", "Post", "Hyperballad", 233000)),
                     (2, Skip("short_play"))]


def test_spotify_account_data():
    info, items = read(EXPORTS / "StreamingHistory_music_0.json")
    assert info.kind == "spotify_account"
    plays = [(n, item) for n, item in items if isinstance(item, Play)]
    assert plays == [
        (1, spotify_play(utc(2023, 1, 31, 23, 54, 46), "Portishead", "", "Sour Times", 254000)),
        (2, spotify_play(utc(2023, 3, 26, 1, 24, 48), "Björk", "", "Bachelorette", 312500)),  # 47.5 s rounds up
        (3, spotify_play(utc(2023, 10, 29, 0, 51, 9), "Massive Attack", "", "Protection", 471000)),
    ]
    assert [item for _, item in items[3:6]] == [Skip("short_play"), Skip("no_metadata"), Skip("no_metadata")]
    assert items[6][0] == 7 and str(items[6][1]) == "unreadable endTime '2023-13-02 18:25'"


def test_spotify_account_podcast_file_is_all_skips():
    _, items = read(EXPORTS / "StreamingHistory_podcast_0.json")
    assert items == [(1, Skip("podcast"))]


@pytest.mark.parametrize("minimum, kept", [(0, 4), (30_000, 3), (300_000, 2)])
def test_spotify_minimum_play_length_is_a_setting(minimum, kept):
    _, items = read(EXPORTS / "StreamingHistory_music_0.json", min_play_ms=minimum)
    plays = [item for _, item in items if isinstance(item, Play)]
    assert len(plays) == kept
    assert sum(item == Skip("short_play") for _, item in items) == 4 - kept
    if minimum == 0:  # 29.999 s ending 01:01 started 01:00:30.001
        assert plays[3] == spotify_play(utc(2023, 10, 29, 1, 0, 30), "Massive Attack", "", "Karmacoma", 29999)


def test_listenbrainz_jsonl_from_the_export_zip():
    info, items = read(LB_JSONL)
    assert info.kind == "listenbrainz_jsonl"
    lb = "listenbrainz"
    assert [(n, i) for n, i in items if isinstance(i, Play)] == [
        (1, Play(1679693052, "Massive Attack", "Mezzanine", "Teardrop", 330000, lb)),
        (2, Play(utc(2023, 3, 26, 1, 30, 0), "Björk", "Homogenic", "Jóga", 305000, lb)),  # float, floored
        (3, Play(utc(2023, 10, 29, 0, 59, 0), "Massive Attack", "Mezzanine", "Angel", None, lb)),
        (6, Play(utc(2023, 10, 29, 1, 1, 0), "Massive Attack", "Mezzanine", "Inertia Creeps", None, lb)),  # .999 floored
        (7, Play(utc(2023, 4, 1, 10, 0, 0), "Sigur Rós", "", "Untitled #3", None, lb)),  # release_name null
    ]
    errors = {n: str(i) for n, i in items if isinstance(i, RowError)}
    assert errors == {4: "not valid JSON (Expecting ',' delimiter)", 8: "no artist"}  # line 5 is blank


def test_listenbrainz_older_json_array():
    info, items = read(EXPORTS / "listenbrainz_export.json")
    assert info.kind == "listenbrainz_json"
    assert items[:3] == [(1, Play(1467413620, "Portishead", "Dummy", "Roads", None, "listenbrainz")),
                         (2, Play(1467413900, "Portishead", "Dummy", "Pedestal", 221000, "listenbrainz")),
                         (3, Play(1467414200, "Portishead", "Dummy", "Biscuit", None, "listenbrainz"))]
    assert items[3][0] == 4 and str(items[3][1]) == "no listened_at"


@pytest.mark.parametrize("value, expected", [
    (1700000000, 1700000000), (1700000000.999, 1700000000), ("1700000000", 1700000000),
    ("1700000000.5", 1700000000), ("2023-11-14T22:13:20Z", 1700000000), ("2023-11-14T23:13:20+01:00", 1700000000),
])
def test_listenbrainz_listened_at_forms(value, expected):
    assert listenbrainz.listened_at(value) == expected


@pytest.mark.parametrize("value", [None, True, "", "soon", float("nan"), float("inf"), -5, 0, 10**20, [1], {}])
def test_listenbrainz_bad_listened_at(value):
    with pytest.raises(RowError):
        listenbrainz.listened_at(value)


def test_discogs_collection_csv():
    info, items = read(EXPORTS / "discogs_collection.csv")
    assert info.kind == "discogs_csv"
    by_line = dict(items)
    assert by_line[2] == {
        "instance_id": -1186911001, "release_id": 1186911, "copy": 1, "title": "Mezzanine", "artist": "Massive Attack",
        "year": 1998, "formats": [{"name": "Vinyl", "qty": "2", "descriptions": ["LP", "Album", "RE", "180"]}],
        "labels": [{"name": "Circa", "catno": "WBRLP1"}, {"name": "Virgin", "catno": ""}], "genres": [], "styles": [],
        "cover_url": None, "thumb_url": None, "date_added": "2020-11-12T12:24:52", "rating": 5, "folder_id": None,
        "folder_name": "Uncategorized", "media_condition": "Near Mint (NM or M-)",
        "sleeve_condition": "Very Good Plus (VG+)", "notes": None, "source": "discogs_csv"}
    # the second copy of the same release is a second item, with its own synthetic instance id
    second = by_line[3]
    assert (second["instance_id"], second["copy"], second["folder_name"], second["rating"], second["notes"]) == (
        -1186911002, 2, "Shelf 2", None, "second copy, a gift")
    au_pairs = by_line[4]
    assert au_pairs["labels"] == [{"name": "021 Records", "catno": "- oto - 4"}, {"name": "Human Records (2)", "catno": "oto4"}]
    assert au_pairs["formats"] == [{"name": "Vinyl", "qty": "1", "descriptions": ['7"', "Single"]}]
    justice = by_line[5]
    assert (justice["artist"], justice["year"], justice["formats"]) == (
        "Justice", None, [{"name": "CD", "qty": "2", "descriptions": ["Album"]}])  # " (3)" dropped, year 0 unknown
    assert 6 not in by_line  # the blank row
    assert by_line[7]["formats"] == [
        {"name": "Box Set", "qty": "1", "descriptions": ["Comp", "Mono", "Ltd", "RE", "RM", "180"]},
        {"name": "Vinyl", "qty": "14", "descriptions": ["LP", "Album", "Mono"]}]
    assert by_line[8]["artist"] == "Eat, Die Warzau"
    assert isinstance(by_line[9], RowError) and str(by_line[9]) == "no release_id"


def test_discogs_reupload_gives_the_same_ids_and_copies_stay_distinct():
    first = [i["instance_id"] for _, i in read(EXPORTS / "discogs_collection.csv")[1] if isinstance(i, dict)]
    again = [i["instance_id"] for _, i in read(EXPORTS / "discogs_collection.csv")[1] if isinstance(i, dict)]
    assert first == again and len(set(first)) == len(first) and all(i < 0 for i in first)


def test_lastfm_csv_is_delegated_to_the_existing_parser():
    info, items = read(EXPORTS / "lastfm_simple.csv")
    assert (info.kind, info.layout) == ("lastfm_csv", lastfm_csv.SIMPLE)
    assert items[1] == (2, Play(utc(2023, 3, 26, 1, 26, 0), "Björk", "Homogenic", "Jóga", None, "lastfm_csv"))
    assert items[4] == (5, Play(utc(2023, 4, 1, 9, 56, 0), "Sigur Rós", "", "Untitled #3", None, "lastfm_csv"))
    assert items[5][0] == 6 and "now-playing" in str(items[5][1])
    info, items = read(EXPORTS / "lastfm_uts.csv")
    assert (info.kind, info.layout) == ("lastfm_csv", lastfm_csv.UTS)
    assert items[0] == (2, Play(utc(2023, 3, 26, 1, 26, 56), "Björk", "Homogenic", "Jóga", None, "lastfm_csv"))
    assert items[-1][0] == 5 and "now-playing" in str(items[-1][1])
    assert isinstance(items[-1][1], lastfm_csv.RowError)  # one RowError class for every reader


# -- detection from content ------------------------------------------------------------------

@pytest.mark.parametrize("fixture, kind", FIXTURE_KINDS.items())
def test_every_fixture_is_detected_from_its_content(fixture, kind):
    assert formats.detect_format(EXPORTS / fixture, fixture.rsplit("/", 1)[-1]).kind == kind


@pytest.mark.parametrize("fixture, misleading", [
    ("Streaming_History_Audio_2023.json", "StreamingHistory_music_0.json"),
    ("StreamingHistory_music_0.json", "endsong_3.json"),
    ("listenbrainz_zip/listens/2023/3.jsonl", "scrobbles.csv"),
    ("listenbrainz_export.json", "Streaming_History_Audio_2019.json"),
    ("discogs_collection.csv", "StreamingHistory0.json"),
    ("lastfm_simple.csv", "7.jsonl"),
    ("lastfm_uts.csv", "collection-20240101.csv"),
])
def test_content_wins_over_a_misleading_name(tmp_path, fixture, misleading):
    path = tmp_path / misleading
    shutil.copy(EXPORTS / fixture, path)
    assert formats.detect_format(path, misleading).kind == FIXTURE_KINDS[fixture]


@pytest.mark.parametrize("name, kind", [("StreamingHistory_podcast_0.json", "spotify_account"),
                                        ("StreamingHistory3.json", "spotify_account"),
                                        ("Streaming_History_Audio_2020.json", "spotify_extended"),
                                        ("endsong_7.json", "spotify_extended")])
def test_an_empty_array_is_known_by_its_name(tmp_path, name, kind):
    path = tmp_path / "upload"
    path.write_text("[]\n")
    info = formats.detect_format(path, name)
    assert info.kind == kind
    assert list(formats.open_reader(path, info)) == []


# -- encodings ----------------------------------------------------------------------------------

ENCODINGS = [
    ("utf-8-sig", lambda text: "\ufeff".encode() + text.encode("utf-8")),
    ("utf-16", lambda text: text.encode("utf-16")),  # with BOM, the way Windows writes "Unicode"
    ("utf-16", lambda text: b"\xfe\xff" + text.encode("utf-16-be")),
    ("utf-16-le", lambda text: text.encode("utf-16-le")),  # no BOM
    ("utf-16-be", lambda text: text.encode("utf-16-be")),
]


@pytest.mark.parametrize("fixture", [f for f, kind in FIXTURE_KINDS.items() if kind != "lastfm_csv"])
@pytest.mark.parametrize("codec, encode", ENCODINGS)
def test_bom_and_utf16_files_read_the_same(tmp_path, fixture, codec, encode):
    original = EXPORTS / fixture
    path = tmp_path / original.name
    path.write_bytes(encode(original.read_text(encoding="utf-8")))
    info, items = read(path)
    expected_info, expected = read(original)
    assert info.kind == expected_info.kind and info.encoding == codec
    assert [(n, repr(i)) for n, i in items] == [(n, repr(i)) for n, i in expected]


def test_utf8_bom_lastfm_csv(tmp_path):
    path = tmp_path / "scrobbles.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (EXPORTS / "lastfm_simple.csv").read_bytes())
    assert [repr(i) for i in read(path)[1]] == [repr(i) for i in read(EXPORTS / "lastfm_simple.csv")[1]]


UNDECODABLE = "undecodable bytes in this row (is the file really UTF-8?)"


def test_undecodable_bytes_make_their_row_an_error(tmp_path):
    path = tmp_path / "Streaming_History_Audio_2010.json"
    first, second = json.loads((EXPORTS / "endsong_0.json").read_text())
    first["master_metadata_album_artist_name"] = "@ARTIST@"
    second["ms_played"] = 60000
    data = json.dumps([first, second], ensure_ascii=False).encode()
    path.write_bytes(data.replace(b"@ARTIST@", "Björk".encode("latin-1")))  # one Latin-1 byte in the first row
    _, items = read(path)
    assert items[0][0] == 1 and isinstance(items[0][1], RowError) and str(items[0][1]) == UNDECODABLE
    assert items[1][1].artist == "Björk"  # the next row is fine


def test_a_lone_surrogate_escape_is_an_error_not_a_name(tmp_path):
    path = tmp_path / "1.jsonl"
    path.write_text('{"listened_at": 1700000000, "track_metadata": {"artist_name": "A\\udc80", "track_name": "T"}}\n')
    assert str(list(listenbrainz.JsonLinesReader(path))[0][1]) == UNDECODABLE


def test_undecodable_bytes_in_a_discogs_row(tmp_path):
    path = tmp_path / "collection.csv"
    lines = (EXPORTS / "discogs_collection.csv").read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], lines[1].replace(b"Mezzanine", b"Mezzan\xefne"), lines[3]]))
    items = read(path)[1]
    assert str(items[0][1]) == UNDECODABLE and items[1][1]["artist"] == "Au Pairs"


def test_utf16_csv_that_is_not_discogs_is_refused_clearly(tmp_path):
    path = tmp_path / "scrobbles.csv"
    path.write_bytes((EXPORTS / "lastfm_simple.csv").read_text().encode("utf-16"))
    with pytest.raises(UnrecognizedFile, match="UTF-16 text .* read as UTF-8"):
        formats.detect_format(path)


# -- clear errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "upload.json is empty"),
    (b"  \r\n\t", "upload.json is empty"),
    (b"\xef\xbb\xbf\n", "upload.json is empty"),
    (b"PK\x03\x04\x14\x00\x00\x00", "a zip archive"),
    (b"%PDF-1.7\n", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
    (b"\x00\x01\x02\x03binary\x00\x00", "binary data"),
    (b"[]", "an empty JSON array, and nothing tells which export it is"),
    (b"[1, 2, 3]", "a JSON array of int values"),
    (b'[{"name": "x", "plays": 3}]', "a JSON array of objects with the fields 'name', 'plays'"),
    (b'[{"ts": "2020-01-01T00:00:00Z", "ms_played": ', "not valid JSON"),
    (b'{"user_id": 1, "username": "someone"}\n', "user.json of a ListenBrainz export"),
    (b'{"recording_msid": "x", "recording_mbid": null, "score": 1, "created": 1}\n', "feedback or pinned"),
    (b'{"payload": {"listens": []}}', "a JSON object with the fields 'payload'"),
    (b"Catalog#,Artist,Title,Label,Format,Rating,Released,release_id,Notes\nX,A,T,L,LP,,2000,1,\n", "wantlist"),
    (b"name,email\nalice,alice@example.com\n", "neither JSON nor a known CSV"),
])
def test_unknown_files_are_refused_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "upload.json"
    path.write_bytes(content)
    with pytest.raises(UnrecognizedFile) as exc:
        formats.detect_format(path, "upload.json")
    assert message in str(exc.value)
    assert str(exc.value).startswith("upload.json ")
    if "empty" not in message:  # every refusal names the formats known
        assert "Known formats: Last.fm CSV" in str(exc.value) and "Discogs collection CSV" in str(exc.value)


def test_a_broken_first_jsonl_line_does_not_hide_the_listens(tmp_path):
    path = tmp_path / "4.jsonl"
    path.write_text('{"listened_at": 17\n' + LB_JSONL.read_text())
    assert formats.detect_format(path).kind == "listenbrainz_jsonl"


def test_a_cut_json_array_keeps_its_rows_then_ends_with_a_file_error(tmp_path):
    text = (EXPORTS / "Streaming_History_Audio_2023.json").read_text()
    path = tmp_path / "Streaming_History_Audio_2023.json"
    path.write_text(text[: text.index('"ts": "2023-04-01T10:05:00Z"') + 10])
    _, items = read(path)
    assert [n for n, i in items if isinstance(i, Play)] == [1, 2, 3, 4, 5]
    assert items[-1][0] == 6 and isinstance(items[-1][1], FileError)
    assert "the file ends inside item 6 (was it cut short?)" in str(items[-1][1])
    path.write_text(text[: text.index('"ts": "2023-04-01T10:05:00Z"') - 10])  # cut between items
    assert "ends inside the JSON array, after item 5" in str(read(path)[1][-1][1])


@pytest.mark.parametrize("tail, message", [
    ("] trailing", "unexpected text after the end of the JSON array"),
    ("} {", "expected ',' or ']' after item 1"),
])
def test_malformed_json_array_ends_with_a_file_error(tmp_path, tail, message):
    path = tmp_path / "endsong_1.json"
    row = json.loads((EXPORTS / "endsong_0.json").read_text())[0]
    path.write_text("[" + json.dumps(row) + tail)
    items = list(spotify.ExtendedReader(path))
    assert isinstance(items[0][1], Play)
    assert isinstance(items[-1][1], FileError) and message in str(items[-1][1])


def test_a_deeply_nested_item_is_an_error_not_a_memory_spike(tmp_path):
    path = tmp_path / "endsong_1.json"
    path.write_bytes(b"[" + b"[" * 200_000 + b"]" * 200_000 + b"]")
    tracemalloc.start()
    try:
        items = list(spotify.ExtendedReader(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(items[0][1], FileError) and "nested too deeply" in str(items[0][1])
    assert peak < 20 * 2**20


def test_an_item_larger_than_the_limit_is_a_file_error(tmp_path):
    path = tmp_path / "endsong_1.json"
    path.write_text('[{"ts": "' + "x" * (formats.MAX_ITEM_CHARS * 2) + '"}]')
    items = list(spotify.ExtendedReader(path))
    assert len(items) == 1 and isinstance(items[0][1], FileError) and "larger than 1 MiB" in str(items[0][1])


def test_an_overlong_jsonl_line_is_a_row_error_and_reading_goes_on(tmp_path):
    path = tmp_path / "1.jsonl"
    good = LB_JSONL.read_text().splitlines()[0]
    path.write_text(good + "\n" + '{"x": "' + "y" * (formats.MAX_ITEM_CHARS * 2) + '"}\n' + good + "\n")
    items = list(listenbrainz.JsonLinesReader(path))
    assert [n for n, _ in items] == [1, 2, 3]
    assert isinstance(items[0][1], Play) and isinstance(items[2][1], Play)
    assert str(items[1][1]) == "line longer than 1 MiB"


@pytest.mark.parametrize("row, message", [
    ([], "expected an object, found list"),
    ({"ts": "2020-01-01T00:00:00Z", "ms_played": "lots", "master_metadata_track_name": "T",
      "master_metadata_album_artist_name": "A"}, "unreadable ms_played 'lots'"),
    ({"ts": "2020-01-01T00:00:00Z", "ms_played": -1, "master_metadata_track_name": "T",
      "master_metadata_album_artist_name": "A"}, "negative ms_played"),
    ({"ts": "1960-01-01T00:00:00Z", "ms_played": 60000, "master_metadata_track_name": "T",
      "master_metadata_album_artist_name": "A"}, "impossible date"),
    ({"ts": "2020-01-01T00:00:00Z", "ms_played": 60000, "master_metadata_track_name": ["T"],
      "master_metadata_album_artist_name": "A"}, "expected a text value, found list"),
])
def test_spotify_rows_that_cannot_be_read(row, message):
    with pytest.raises(RowError, match=message):
        spotify.ExtendedReader("unused").row(row)


def test_discogs_reader_refuses_a_file_without_the_collection_header(tmp_path):
    path = tmp_path / "collection.csv"
    path.write_text("artist,title\nA,T\n")
    with pytest.raises(UnrecognizedFile, match="lacks release_id, collectionfolder"):
        list(discogs_csv.Reader(path))


def test_json_reader_refuses_a_file_that_is_not_an_array(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"ts": 1}')
    with pytest.raises(UnrecognizedFile, match="x.json is not a JSON array"):
        list(spotify.ExtendedReader(path))


def test_open_reader_refuses_unknown_options_and_kinds():
    info = FormatInfo("spotify_extended", "x")
    with pytest.raises(TypeError):
        formats.open_reader(EXPORTS / "endsong_0.json", info, colour="blue")
    with pytest.raises(ValueError):
        formats.open_reader(EXPORTS / "endsong_0.json", FormatInfo("vinyl_rip", "x"))


# -- the JSON array splitter against json.load, across chunk boundaries ---------------------------

@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 4096])
def test_json_array_items_are_cut_right_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(reading, "CHUNK_CHARS", chunk)  # the readers read it there
    values = [{"a": [1, 2, {"b": "]},["}], "c": "é\u2028\\\""}, 12345678901234567890, -1.5e-3, "x", None, True,
              [], {}, 0, 7, [[[]]], "\U0001f3b5", "\\ud83c\\udfb5 escaped"]
    path = tmp_path / "values.json"
    path.write_text(" \n[ " + " ,\n\t".join(json.dumps(v, ensure_ascii=False) for v in values) + "  ]\n\n",
                    encoding="utf-8")
    reader = formats.ArrayItemsReader(path)
    reader.row = lambda value: value
    assert [v for _, v in reader] == json.loads(path.read_text(encoding="utf-8"))


# -- streaming ------------------------------------------------------------------------------------

def test_a_50_mb_spotify_history_is_read_in_flat_memory(tmp_path):
    path = tmp_path / "Streaming_History_Audio_2015-2024_0.json"
    template = json.loads((EXPORTS / "Streaming_History_Audio_2023.json").read_text())[0]
    with open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        i = 0
        while out.tell() < 50 * 2**20:
            row = dict(template, master_metadata_track_name=f"Track {i}", ms_played=31000 + i % 200000,
                       ts=f"2020-{i % 12 + 1:02d}-{i % 28 + 1:02d}T{i % 24:02d}:{i % 60:02d}:{i % 60:02d}Z")
            out.write(("  " if i == 0 else ", ") + json.dumps(row, indent=2) + "\n")
            i += 1
        out.write("]\n")
    size = path.stat().st_size
    info = formats.detect_format(path)
    reader = formats.open_reader(path, info)
    tracemalloc.start()
    try:
        count, started = 0, time.perf_counter()
        for _, item in reader:
            assert isinstance(item, Play)
            count += 1
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    path.unlink()  # pytest keeps the last runs' tmp dirs: not 50 MB of them
    assert count == i and reader.bytes_read == size >= 50 * 2**20
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    print(f"{count:,} plays, {size / 2**20:.0f} MiB in {elapsed:.2f} s under tracemalloc, peak {peak / 2**20:.2f} MiB")


# -- the Last.fm parser's own crashes are contained by the wrapper --------------------------------

def test_an_impossible_uts_is_a_row_error_and_the_rest_is_read(tmp_path):
    path = tmp_path / "scrobbles.csv"
    header = "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
    path.write_text(header + "1679794016,x,Björk,,Homogenic,,Jóga,\n1e999,x,A,,B,,C,\n1679794016,x,D,,E,,F,\n")
    items = list(formats.LastfmReader(path, lastfm_csv.UTS))
    assert isinstance(items[0][1], Play)
    assert items[1][0] == 3 and isinstance(items[1][1], RowError) and not isinstance(items[1][1], FileError)
    assert isinstance(items[2][1], Play) and items[2][1].artist == "D"


@pytest.mark.parametrize("reader", [lambda p: formats.LastfmReader(p, lastfm_csv.SIMPLE), discogs_csv.Reader])
def test_a_csv_field_over_the_csv_size_limit_is_a_file_error(tmp_path, reader):
    path = tmp_path / "big.csv"
    header = (EXPORTS / "discogs_collection.csv").read_text().splitlines()[0]
    path.write_text(header + "\n" + 'A,B,"' + "x" * 200_000 + '",01 Jan 2020 00:00\n')
    items = list(reader(path))
    assert isinstance(items[-1][1], FileError) and "field larger than field limit" in str(items[-1][1])


def test_bare_carriage_returns_are_refused_not_a_crash(tmp_path):
    path = tmp_path / "scrobbles.csv"
    path.write_bytes(b"Portishead,Dummy,Roads,01 Jan 2020 00:00\rTricky,Maxinquaye,Overcome,01 Jan 2020 00:05\r")
    with pytest.raises(UnrecognizedFile, match="cannot split into rows"):
        formats.detect_format(path)
