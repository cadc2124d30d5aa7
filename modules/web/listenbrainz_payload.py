"""Checking a ListenBrainz `submit-listens` body before anything is stored.

The rules follow ListenBrainz's own (listenbrainz-server, webserver/views/api_tools.py): the same
limits, the same required fields, the same leniency (a numeric string is a number, an empty MBID
is dropped). One thing differs on purpose: an error names the listen (`payload[3]`) and the field,
so a person reading a client's log knows what to fix. The first bad listen refuses the whole
request: nothing of it is stored.
"""
from __future__ import annotations

import json
import math
import re
import time
import uuid

from ..importers.scrobbles import Scrobble

LISTEN_TYPES = ("single", "playing_now", "import")
MAX_LISTEN_SIZE = 10240  # bytes of one listen's JSON
MAX_LISTENS_PER_REQUEST = 1000
MAX_PAYLOAD_SIZE = MAX_LISTEN_SIZE * MAX_LISTENS_PER_REQUEST
MIN_LISTENED_AT = 1033410600  # 2002-10-01, Last.fm's beginning: ListenBrainz refuses anything older
LISTENED_AT_SKEW = 3600  # a client's clock may be an hour ahead
MAX_TAGS, MAX_TAG_LENGTH = 50, 64
MAX_DURATION = 24 * 24 * 3600  # seconds: ListenBrainz's limit (24 days)
MAX_NAME_LENGTH = 512  # what the artists, albums and tracks tables hold
SINGLE_MBIDS = ("release_mbid", "recording_mbid", "release_group_mbid", "track_mbid")
LIST_MBIDS = ("artist_mbids", "work_mbids")
_SURROGATE = re.compile("[\ud800-\udfff]")


class PayloadRefused(Exception):
    """Why a submission is refused; `listen` (index) and `field` say where, when it is one listen's fault."""

    def __init__(self, message, listen=None, field=None):
        super().__init__(message)
        self.message, self.listen, self.field = message, listen, field

    def as_dict(self):
        body = {"code": 400, "error": self.message}
        if self.listen is not None:
            body["listen_index"] = self.listen
        if self.field is not None:
            body["field"] = self.field
        return body


def parse_submission(raw):
    """(listen_type, [Scrobble]) from the request body's bytes, or PayloadRefused."""
    if len(raw) > MAX_PAYLOAD_SIZE:
        raise PayloadRefused(f"Payload too large. Payload cannot exceed {MAX_PAYLOAD_SIZE} bytes.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadRefused(f"Cannot parse JSON document: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadRefused("Invalid JSON document submitted. Top level of JSON document should be a json object.")
    listen_type = data.get("listen_type")
    if listen_type not in LISTEN_TYPES:
        raise PayloadRefused("JSON document requires a valid listen_type key: single, playing_now or import.",
                             field="listen_type")
    payload = data.get("payload")
    if not isinstance(payload, list):
        raise PayloadRefused("The payload in the JSON document should be a list of listens.", field="payload")
    if not payload:
        raise PayloadRefused("JSON document does not contain any listens.", field="payload")
    if len(payload) > MAX_LISTENS_PER_REQUEST:
        raise PayloadRefused(f"Too many listens. You may not submit more than {MAX_LISTENS_PER_REQUEST} listens "
                             f"at once (this request has {len(payload):,}).", field="payload")
    if listen_type != "import" and len(payload) > 1:
        raise PayloadRefused(f"JSON document contains {len(payload)} listens for a {listen_type}. "
                             "It should contain only one.", field="payload")
    now = int(time.time())
    return listen_type, [_listen(item, i, len(payload), listen_type, now) for i, item in enumerate(payload)]


def _listen(item, index, count, listen_type, now):
    def refuse(field, why):
        where = f"Listen {index + 1} of {count} (payload[{index}])"
        raise PayloadRefused(f"{where}: {field + ' ' if field else ''}{why}", index, field or None)

    if not isinstance(item, dict):
        refuse("", "is not a JSON object.")
    size = len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_LISTEN_SIZE:
        refuse("", f"is {size:,} bytes long; a listen may not be larger than {MAX_LISTEN_SIZE:,} bytes.")
    _check_text(item, "", refuse)
    allowed = ("track_metadata",) if listen_type == "playing_now" else ("listened_at", "track_metadata")
    extra = sorted(set(item) - set(allowed))
    if extra:
        refuse(extra[0], f"is not allowed: a {listen_type} listen may only contain {' and '.join(allowed)}.")
    played_at = None
    if listen_type != "playing_now":
        played_at = _listened_at(item, now, refuse)
    meta = item.get("track_metadata")
    if not isinstance(meta, dict):
        refuse("track_metadata", "is missing or not a JSON object." if meta is None else "must be a JSON object.")
    artist = _name(meta, "artist_name", refuse, required=True)
    title = _name(meta, "track_name", refuse, required=True)
    album = _name(meta, "release_name", refuse, required=False)
    info = meta.get("additional_info")
    if info is not None and not isinstance(info, dict):
        refuse("track_metadata.additional_info", "must be a JSON object.")
    info = _additional_info(dict(info or {}), refuse)
    duration_ms = info.get("duration_ms") or (info["duration"] * 1000 if info.get("duration") else None)
    return Scrobble(played_at=played_at, artist=artist, title=title, album=album, duration_ms=duration_ms,
                    additional_info=info or None)


def _listened_at(item, now, refuse):
    value = item.get("listened_at")
    if value is None:
        refuse("listened_at", "is missing: single and import listens need it (Unix seconds).")
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value):
        seconds = math.floor(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    if seconds is None:
        refuse("listened_at", f"must be an integer (Unix seconds), not {_shown(value)}.")
    if seconds < MIN_LISTENED_AT:
        refuse("listened_at", f"is too low ({seconds}): it should be greater than {MIN_LISTENED_AT} (2002-10-01).")
    if seconds >= now + LISTENED_AT_SKEW:
        refuse("listened_at", f"is too high ({seconds}): it is more than an hour in the future.")
    return seconds


def _name(meta, key, refuse, required):
    field = f"track_metadata.{key}"
    value = meta.get(key)
    if value is None:
        if required:
            refuse(field, "is missing (a required string).")
        return None
    if not isinstance(value, str):
        refuse(field, f"must be a single string, not {_shown(value)}.")
    value = value.strip()
    if not value:
        if required:
            refuse(field, "is empty.")
        return None
    if len(value) > MAX_NAME_LENGTH:
        refuse(field, f"is {len(value):,} characters long; Sillon keeps names of at most {MAX_NAME_LENGTH}.")
    return value


def _additional_info(info, refuse):
    base = "track_metadata.additional_info"
    tags = info.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            refuse(f"{base}.tags", "must be a list of strings.")
        if len(tags) > MAX_TAGS:
            refuse(f"{base}.tags", f"may not contain more than {MAX_TAGS} items.")
        if any(len(t) > MAX_TAG_LENGTH for t in tags):
            refuse(f"{base}.tags", f"may not contain tags longer than {MAX_TAG_LENGTH} characters.")
    if "duration" in info and "duration_ms" in info:
        refuse(f"{base}.duration", "and duration_ms may not both be given.")
    for key, limit in (("duration", MAX_DURATION), ("duration_ms", MAX_DURATION * 1000)):
        if key in info:
            info[key] = _positive_int(info[key], f"{base}.{key}", limit, refuse)
    for key in SINGLE_MBIDS:
        if key in info:
            if not info[key]:
                del info[key]
            elif not _is_uuid(info[key]):
                refuse(f"{base}.{key}", f"is not a valid MBID: {_shown(info[key])}.")
    for key in LIST_MBIDS:
        if key in info:
            mbids = info[key]
            if not mbids:
                del info[key]
                continue
            if not isinstance(mbids, list):
                refuse(f"{base}.{key}", "must be a list of MBIDs.")
            mbids = [m for m in mbids if m]
            bad = next((m for m in mbids if not _is_uuid(m)), None)
            if bad is not None:
                refuse(f"{base}.{key}", f"holds an invalid MBID: {_shown(bad)}.")
            info[key] = mbids
    return info


def _positive_int(value, field, limit, refuse):
    # ListenBrainz takes numeric strings too ("240"): some scrobbling bridges send them.
    try:
        if isinstance(value, bool):
            raise TypeError
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        refuse(field, f"must be a positive integer, not {_shown(value)}.")
    if number <= 0:
        refuse(field, f"must be a positive integer, not {_shown(value)}.")
    if number > limit:
        refuse(field, f"is too large ({number}); the most allowed is {limit}.")
    return number


def _is_uuid(value):
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_text(value, path, refuse):
    """No NUL character and no lone surrogate anywhere: no database stores them."""
    if isinstance(value, str):
        if "\x00" in value:
            refuse(path or "", "contains a NUL character (\\u0000), which no database stores.")
        if not value.isascii() and _SURROGATE.search(value):
            refuse(path or "", "contains a broken UTF-16 surrogate (not valid Unicode text).")
    elif isinstance(value, dict):
        for key, inner in value.items():
            _check_text(key, path, refuse)
            _check_text(inner, f"{path}.{key}" if path else str(key), refuse)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _check_text(inner, f"{path}[{i}]", refuse)


def _shown(value):
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."
