"""Errors raised at the edge, each worded for the person who will read it."""


class SourceError(Exception):
    """Base: str(exc) is a complete message for a person."""


class UnrecognizedFile(SourceError):
    """The file is not in any format this importer reads; nothing was written."""

    resumable = False  # the same file would fail the same way


class Retryable(Exception):
    """A call that may succeed later (rate limit, 5xx, network); `wait` is the service's Retry-After."""

    def __init__(self, why, wait=None):
        super().__init__(why)
        self.why = why
        self.wait = wait
