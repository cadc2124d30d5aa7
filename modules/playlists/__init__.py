"""Playlists made from the listening history and the record shelf, saved, edited and written as files.

generators.py makes them, store.py checks input and saves and edits them, formats.py writes M3U,
XSPF and CSV from a playlist's kept names. The pages and the API are modules/web/playlists.py.
"""
from . import formats, store
from .generators import DAY, GENERATORS, Generator, NothingFound, Param, PlaylistError, generate, track_item

__all__ = ["DAY", "GENERATORS", "Generator", "NothingFound", "Param", "PlaylistError", "formats", "generate", "store",
           "track_item"]
