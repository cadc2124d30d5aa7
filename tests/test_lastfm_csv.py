"""The Last.fm CSV parser: both layouts, edge rows, and files that are not such a CSV."""
import calendar

import pytest

from modules.sources.errors import UnrecognizedFile
from modules.sources.exports import lastfm_csv
from tests.conftest import FIXTURES


def rows(path):
    return list(lastfm_csv.Reader(path))


def test_simple_layout_parses_dates_as_utc():
    parsed = rows(FIXTURES / "lastfm_simple.csv")
    assert lastfm_csv.detect(FIXTURES / "lastfm_simple.csv") == lastfm_csv.SIMPLE
    line, first = parsed[0]
    assert line == 1
    assert first.played_at == calendar.timegm((2008, 6, 9, 17, 16, 0))
    assert (first.artist, first.album, first.title) == ("Radiohead", "OK Computer", "Paranoid Android")
    assert parsed[2][1].artist == "Björk"
    assert parsed[3][1].artist == "Nick Cave & The Bad Seeds"
    assert parsed[4][1].album == ""  # an empty album is kept empty, not an error


def test_uts_layout_and_its_edge_rows():
    assert lastfm_csv.detect(FIXTURES / "lastfm_uts.csv") == lastfm_csv.UTS
    parsed = rows(FIXTURES / "lastfm_uts.csv")
    good = [p for _, p in parsed if isinstance(p, lastfm_csv.Play)]
    bad = {line: str(p) for line, p in parsed if isinstance(p, lastfm_csv.RowError)}
    assert [p.title for p in good] == ["Teardrop", "Angel", "Inertia Creeps", "Gyroscope"]
    assert good[0].played_at == good[1].played_at == 1700000000  # two tracks in one second
    assert "now-playing" in bad[5]
    assert "unreadable timestamp" in bad[6]
    assert "no artist" in bad[7]


UNDECODABLE = "undecodable bytes in this row (is the file really UTF-8?)"


def test_bom_crlf_and_undecodable_bytes(tmp_path):
    """A BOM and CRLF are read; a row with bytes that are not UTF-8 is a row error, as in every format."""
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeffSigur Rós,Ágætis byrjun,Svefn-g-englar,01 Jan 2001 00:00\r\n".encode()
                     + b"Caf\xe9 Tacuba,Re,La Ingrata,02 Jan 2001 10:30\r\n"
                     + "Café Tacuba,Re,Chilanga Banda,02 Jan 2001 10:35\r\n".encode())
    parsed = rows(path)
    assert parsed[0][1].artist == "Sigur Rós"
    assert parsed[1][0] == 2 and isinstance(parsed[1][1], lastfm_csv.RowError)
    assert str(parsed[1][1]) == UNDECODABLE
    assert parsed[2][1].artist == "Café Tacuba" and parsed[2][1].title == "Chilanga Banda"  # the next row is fine


def test_an_upload_counts_undecodable_rows_as_row_errors(client):
    """Through the app: the bad row is counted and sampled with its line; the rest is imported."""
    from tests.conftest import upload, wait_for_job

    header = b"uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
    good = [f"{1700000000 + i},x,Artist {i},,Album,,Track {i},\n".encode() for i in range(4)]
    bad = b"1700000100,x,Bj\xf6rk,,Homogenic,,J\xf3ga,\n"  # Latin-1, not UTF-8
    r = upload(client, ("scrobbles.csv", header + good[0] + good[1] + bad + good[2] + good[3]))
    assert r.status_code == 202, r.get_json()
    snap = wait_for_job(client.application, r.get_json()["job_id"])
    assert snap["status"] == "completed", snap["message"]
    assert snap["result"]["imported"] == 4 and snap["result"]["errors"] == 1, snap["result"]
    sample = snap["errors_sample"]
    assert sample == [{"message": UNDECODABLE, "file": "scrobbles.csv", "line": 4}], sample


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary"),
    (b"name,email\nalice,alice@example.com\nbob,bob@example.com\n", "not a Last.fm CSV"),
    (b"just some words\nwithout any structure\n", "not a Last.fm CSV"),
])
def test_files_that_are_not_lastfm_csv_are_refused(tmp_path, content, message):
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    with pytest.raises(UnrecognizedFile, match=message):
        lastfm_csv.detect(path, "upload.bin")


@pytest.mark.parametrize("text, expected", [
    ("09 Jun 2008 17:16", (2008, 6, 9, 17, 16, 0)),
    ("1 Dec 2019, 23:59", (2019, 12, 1, 23, 59, 0)),
    ("31 Mar 2024 01:30:15", (2024, 3, 31, 1, 30, 15)),
])
def test_simple_dates(text, expected):
    assert lastfm_csv.parse_simple_date(text) == calendar.timegm(expected)


@pytest.mark.parametrize("text", ["", "2008-06-09", "31 Feb 2008 10:00", "09 Foo 2008 17:16"])
def test_bad_simple_dates(text):
    with pytest.raises(lastfm_csv.RowError):
        lastfm_csv.parse_simple_date(text)
