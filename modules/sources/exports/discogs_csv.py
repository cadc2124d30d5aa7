"""The Discogs collection CSV export (Collection > Export), read as a stream of collection items.

Header: `Catalog#,Artist,Title,Label,Format,Rating,Released,release_id,CollectionFolder,Date Added,
Collection Media Condition,Collection Sleeve Condition,Collection Notes` (columns found by name;
custom collection fields may follow). Quirks: several labels and catalog numbers are joined with
", "; formats are abbreviated ("2xLP, Album, RE", '7", EP') and several are joined with " + ";
homonyms carry " (N)"; an unknown year is "0"; blank rows (",,,,") occur.

The export has no instance id (one per owned copy in the API). Each item gets a synthetic negative
one, `-(release_id * 1000 + k)` where k is the copy's occurrence (1, 2, ...) of that release in the
file: two copies stay two items, a re-upload of the same export yields the same ids (so adds
nothing), and the ids can never collide with the API's positive instance ids.
"""
from __future__ import annotations

import csv
import re
from itertools import zip_longest

from ..errors import UnrecognizedFile
from .reading import FileError, RowError, TextReader, check_decoded

SOURCE = "discogs_csv"
MAX_COPIES = 999
REQUIRED = ("artist", "title", "release_id", "collectionfolder")

# The export's abbreviated format names -> the API's format names (`formats[].name`).
FORMAT_NAMES = {
    "lp": "Vinyl", "vinyl": "Vinyl", "cd": "CD", "cdr": "CDr", "cdv": "CDV", "sacd": "SACD", "hybrid": "Hybrid",
    "cass": "Cassette", "cassette": "Cassette", "box": "Box Set", "file": "File", "flexi": "Flexi-disc",
    "lathe": "Lathe Cut", "shellac": "Shellac", "acetate": "Acetate", "dvd": "DVD", "dvdr": "DVDr",
    "blu-ray": "Blu-ray", "vhs": "VHS", "md": "Minidisc", "8-trk": "8-Track Cartridge",
    "4-trk": "4-Track Cartridge", "reel": "Reel-To-Reel", "all media": "All Media", "dat": "DAT",
    "dcc": "DCC", "memory stick": "Memory Stick", "laserdisc": "Laserdisc", "betamax": "Betamax",
}
_SIZE = re.compile(r'^\d+(\.\d+)?"$')  # 12", 7", 10" are vinyl sizes
_QTY = re.compile(r"^(\d+)x(.+)$")
_HOMONYM = re.compile(r" \(\d+\)(?=$|\s*(?:,|&|/|\+|\bfeat\b|\bFeat\b|\bvs\b|\bVs\b|\band\b|\bwith\b))")
_DATE_ADDED = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})")
_YEAR = re.compile(r"^\s*(\d{4})")


def parse_formats(text):
    """'2xLP, Album, RE + CD' -> [{"name": "Vinyl", "qty": "2", "descriptions": ["LP", "Album", "RE"]},
    {"name": "CD", "qty": "1", "descriptions": []}] (the shape of the API's formats)."""
    formats = []
    for part in (text or "").split(" + "):
        tokens = [t.strip() for t in part.split(",") if t.strip()]
        if not tokens:
            continue
        first, qty = tokens[0], "1"
        m = _QTY.match(first)
        if m:
            qty, first = m.group(1), m.group(2).strip()
        if _SIZE.match(first) or first.lower() == "lp":
            formats.append({"name": "Vinyl", "qty": qty, "descriptions": [first, *tokens[1:]]})
        else:
            formats.append({"name": FORMAT_NAMES.get(first.lower(), first), "qty": qty, "descriptions": tokens[1:]})
    return formats


def parse_labels(labels, catnos):
    """'A, B (2)' and 'X1, Y2' -> [{"name": "A", "catno": "X1"}, {"name": "B (2)", "catno": "Y2"}]."""
    names = [n.strip() for n in (labels or "").split(", ") if n.strip()]
    numbers = [c.strip() for c in (catnos or "").split(", ") if c.strip()]
    if len(names) == 1 and len(numbers) > 1:  # one label, several catalog numbers: the API lists it again
        names = names * len(numbers)
    return [{"name": name, "catno": catno} for name, catno in zip_longest(names, numbers, fillvalue="") if name]


def strip_homonyms(name):
    """'Eat (2), Die Warzau' -> 'Eat, Die Warzau': Discogs' " (N)" disambiguation is not a name."""
    return _HOMONYM.sub("", name).strip()


def parse_year(text):
    m = _YEAR.match(text or "")
    year = int(m.group(1)) if m else 0
    return year if 1000 < year < 3000 else None


def parse_rating(text):
    text = (text or "").strip()
    return int(text) if text in {"1", "2", "3", "4", "5"} else None


def parse_date_added(text):
    text = (text or "").strip()
    m = _DATE_ADDED.match(text)
    return f"{m.group(1)}T{m.group(2)}" if m else (text[:40] or None)


class Reader(TextReader):
    """Iterates (line_number, item dict | RowError) over a Discogs collection CSV export.

    Raises UnrecognizedFile before the first item if the header lacks the collection columns."""

    source = SOURCE

    def _items(self, text):
        rows = csv.reader(text)
        copies = {}
        try:
            columns = None
            for row in rows:
                line = rows.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if columns is None:
                    columns = self._columns(row)
                    continue
                try:
                    yield line, self._item(columns, row, copies)
                except RowError as exc:
                    yield line, exc
        except csv.Error as exc:  # e.g. a field over csv's size limit: the rest cannot be split into rows
            yield rows.line_num + 1, FileError(f"unreadable CSV after line {rows.line_num} ({exc}); "
                                               "the rest could not be read")
            return
        if columns is None:
            raise UnrecognizedFile(f"{self.name} is empty")

    def _columns(self, header):
        columns = {cell.strip().lower(): i for i, cell in reversed(list(enumerate(header)))}
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise UnrecognizedFile(f"{self.name} is not a Discogs collection CSV export: its header lacks "
                                   f"{', '.join(missing)} (expected 'Catalog#,Artist,Title,Label,Format,Rating,"
                                   "Released,release_id,CollectionFolder,Date Added,...')")
        return columns

    @staticmethod
    def _item(columns, row, copies):
        for value in row:
            check_decoded(value)

        def cell(name):
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        release = cell("release_id")
        if not (release.isascii() and release.isdigit() and len(release) <= 12 and int(release) > 0):
            raise RowError(f"unreadable release_id {release!r}" if release else "no release_id")
        release_id = int(release)
        copy = copies.get(release_id, 0) + 1
        if copy > MAX_COPIES:
            raise RowError(f"more than {MAX_COPIES} copies of release {release_id}")
        copies[release_id] = copy
        return {
            "instance_id": -(release_id * 1000 + copy), "release_id": release_id, "copy": copy,
            "title": cell("title") or "Untitled", "artist": strip_homonyms(cell("artist")) or "Unknown artist",
            "year": parse_year(cell("released")), "formats": parse_formats(cell("format")),
            "labels": parse_labels(cell("label"), cell("catalog#")), "genres": [], "styles": [],
            "cover_url": None, "thumb_url": None, "date_added": parse_date_added(cell("date added")),
            "rating": parse_rating(cell("rating")), "folder_id": None, "folder_name": cell("collectionfolder") or None,
            "media_condition": cell("collection media condition") or None,
            "sleeve_condition": cell("collection sleeve condition") or None,
            "notes": cell("collection notes") or None, "source": SOURCE,
        }
