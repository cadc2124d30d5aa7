"""Opening zip archives people upload (a ListenBrainz export, a Spotify "my_spotify_data.zip").

Checked before anything is extracted: the number of members, their declared total size and each
member's compression ratio. Extraction then streams each member with a running byte count, since
a zip's declared sizes can lie. Member names are never used as paths.
"""
from __future__ import annotations

import os
import re
import zipfile

from ..errors import UnrecognizedFile

MAX_MEMBERS = 10_000
MAX_RATIO = 200  # text exports compress well (~10-30x); far more than this is a bomb
CHUNK = 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_zip(path):
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _wanted(info):
    name = info.filename.replace("\\", "/")
    base = name.rsplit("/", 1)[-1]
    return not (info.is_dir() or name.startswith("__MACOSX/") or base.startswith(".") or not base)


def expand(path, dest_dir, name, max_total_bytes):
    """Extract the members of the zip at `path` into `dest_dir`; returns [(display name, path)].

    Raises UnrecognizedFile (nothing extracted is kept) for a broken archive or a zip bomb.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnrecognizedFile(f"{name} is not a readable zip archive ({exc})") from None
    with archive:
        members = [i for i in archive.infolist() if _wanted(i)]
        if len(members) > MAX_MEMBERS:
            raise UnrecognizedFile(f"{name} holds {len(members):,} files; at most {MAX_MEMBERS:,} are read")
        declared = sum(i.file_size for i in members)
        if declared > max_total_bytes:
            raise UnrecognizedFile(f"{name} would unpack to {declared / 1e6:,.0f} MB, over the limit of "
                                   f"{max_total_bytes / 1e6:,.0f} MB (setting MAX_UNZIPPED_MB); nothing was imported")
        for info in members:
            if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
                raise UnrecognizedFile(f"{name} looks like a zip bomb ({info.filename} is compressed "
                                       f"{info.file_size / info.compress_size:,.0f} to 1); nothing was imported")
        os.makedirs(dest_dir, exist_ok=True)
        extracted, written = [], 0
        try:
            for index, info in enumerate(members):
                display = info.filename.replace("\\", "/")
                target = os.path.join(dest_dir, f"{index:05d}-{_SAFE.sub('_', display.rsplit('/', 1)[-1])[:100]}")
                with archive.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > max_total_bytes:  # the declared sizes lied
                            raise UnrecognizedFile(f"{name} unpacks to more than the {max_total_bytes / 1e6:,.0f} MB "
                                                   "limit (setting MAX_UNZIPPED_MB); nothing was imported")
                        out.write(chunk)
                extracted.append((f"{name}/{display}", target))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
            _remove(extracted, target)
            raise UnrecognizedFile(f"{name} could not be unpacked ({exc.__class__.__name__}: {exc})") from None
        except UnrecognizedFile:
            _remove(extracted, target)
            raise
        return extracted


def _remove(extracted, last):
    for _, path in extracted:
        try:
            os.remove(path)
        except OSError:
            pass
    try:
        os.remove(last)
    except OSError:
        pass
