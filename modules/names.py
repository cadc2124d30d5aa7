"""Name keys: how two spellings of one artist or title are recognised as the same."""
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def name_key(name):
    """Casefolded, NFKC-normalised, whitespace-collapsed form used in unique keys."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    return _SPACES.sub(" ", text).strip()
