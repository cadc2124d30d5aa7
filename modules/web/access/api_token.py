"""The API token scripts send as `Authorization: Bearer <token>`.

Either the API_TOKEN setting, or one made by `flask token create`: shown once, and only its SHA-256
is kept (in the preferences table), so neither the database nor a page can give it back. A token
is 32 random bytes, so a plain hash is enough; a slow password hash would only slow every call.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from ... import preferences

HASH_KEY = "api_token_sha256"


def _digest(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create():
    """Make a new token (replacing the stored one) and return it: the only time it is seen."""
    token = secrets.token_urlsafe(32)
    preferences.put(HASH_KEY, _digest(token))
    return token


def revoke():
    """Forget the stored token: scripts using it get 401 from now on."""
    preferences.put(HASH_KEY, None)


def matches(given, configured=None):
    """True if `given` is the API_TOKEN setting or the stored token (constant-time comparisons)."""
    if not given:
        return False
    if configured and hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                          configured.encode("utf-8", "surrogatepass")):
        return True
    stored = preferences.get(HASH_KEY)
    return isinstance(stored, str) and hmac.compare_digest(_digest(given), stored)
