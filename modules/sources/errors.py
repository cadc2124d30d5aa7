"""Errors raised at the edge, each worded for the person who will read it."""


class SourceError(Exception):
    """Base: str(exc) is a complete message for a person."""


class UnrecognizedFile(SourceError):
    """The file is not in any format this importer reads; nothing was written."""
