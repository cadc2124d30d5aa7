"""The one rule every export reader follows for text: bytes that do not decode fail their row only.

Readers decode with the UNDECODABLE error handler, which turns such bytes into a lone surrogate
(no valid text holds one); every name a reader keeps goes through `check_decoded`, which makes
the row a RowError ("undecodable bytes"), counted and sampled like any unreadable row.
"""
from __future__ import annotations

import codecs
import re

UNDECODABLE = "sillon-undecodable"
_SURROGATE = re.compile("[\ud800-\udfff]")


class RowError(ValueError):
    """A row that cannot be read; the reader yields it and goes on with the next row."""


def _mark_undecodable(exc):
    if isinstance(exc, UnicodeDecodeError):
        return "\udcff", exc.end
    raise exc


codecs.register_error(UNDECODABLE, _mark_undecodable)


def check_decoded(text):
    """RowError if `text` holds undecodable bytes (or a lone surrogate from a JSON escape)."""
    if not text.isascii() and _SURROGATE.search(text):
        raise RowError("undecodable bytes in this row (is the file really UTF-8?)")
    return text
