"""Playlist files: extended M3U, XSPF and CSV, written from a playlist's kept names.

Sillon holds no audio files, so entries have no location: the names are what a player or a
playlist converter matches on.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote

XSPF_NS = "http://xspf.org/ns/0/"
CREATOR = "Sillon"
# Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def one_line(text):
    """Text with every kind of line break (CR, LF, U+2028, ...) turned into a space."""
    return " ".join(str(text or "").splitlines()).strip()


def entry_label(item):
    return f"{one_line(item['artist'])} - {one_line(item['title'])}"


def m3u(name, items):
    """Extended M3U (UTF-8): `#EXTINF:<seconds or -1>,Artist - Title`, then the same text as the
    entry line (a line starting with `#` would read as a comment, so such an entry gets `./`)."""
    lines = ["#EXTM3U", f"#PLAYLIST:{one_line(name)}"]
    for item in items:
        label = entry_label(item)
        duration = item.get("duration")
        lines.append(f"#EXTINF:{duration if duration is not None else -1},{label}")
        if item.get("album"):
            lines.append(f"#EXTALB:{one_line(item['album'])}")
        lines.append("./" + label if label.startswith("#") else label)
    return "\n".join(lines) + "\n"


def _xml_text(text):
    return _NOT_XML.sub("", str(text))


def xspf(name, items, created_at=None):
    """XSPF version 1 (UTF-8 bytes): playlist title and creator, a track per item with creator,
    title, album and duration in milliseconds, and no location."""
    # Unqualified tags under a default xmlns: what every XSPF reader expects (no ns0: prefixes).
    root = ET.Element("playlist", {"version": "1", "xmlns": XSPF_NS})
    ET.SubElement(root, "title").text = _xml_text(name)
    ET.SubElement(root, "creator").text = CREATOR
    if created_at is not None:
        stamp = datetime.fromtimestamp(created_at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        ET.SubElement(root, "date").text = stamp
    track_list = ET.SubElement(root, "trackList")
    for item in items:
        track = ET.SubElement(track_list, "track")
        ET.SubElement(track, "title").text = _xml_text(item["title"])
        ET.SubElement(track, "creator").text = _xml_text(item["artist"])
        if item.get("album"):
            ET.SubElement(track, "album").text = _xml_text(item["album"])
        if item.get("duration") is not None:
            ET.SubElement(track, "duration").text = str(int(item["duration"]) * 1000)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def csv_text(items):
    """CSV with header artist,title,album,duration (seconds; empty when unknown)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["artist", "title", "album", "duration"])
    for item in items:
        duration = item.get("duration")
        writer.writerow([item["artist"], item["title"], item.get("album") or "",
                         "" if duration is None else duration])
    return buf.getvalue()


_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f;]+')


def download_name(name, fallback):
    """(ASCII name, Unicode name) for a file named after a playlist: no path separators, quotes,
    control characters or line breaks; at most 100 characters; `fallback` when nothing is left."""
    text = _UNSAFE.sub(" ", one_line(name))
    text = " ".join(text.split()).strip(" .")[:100].strip(" .")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = " ".join(ascii_text.split()).strip(" .")
    return ascii_text or fallback, text or fallback


def content_disposition(name, fallback, extension):
    ascii_name, full_name = download_name(name, fallback)
    value = f'attachment; filename="{ascii_name}.{extension}"'
    if full_name != ascii_name:
        value += f"; filename*=UTF-8''{quote(full_name + '.' + extension, safe='')}"
    return value
