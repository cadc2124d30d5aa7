"""The person's Discogs collection through python3-discogs-client.

Only list calls are made: identity, the folder list, and folder 0's releases 100 a page. Every
field kept comes from the listing's `basic_information`, read from the raw data so the library
never fetches a release on its own.
"""
from __future__ import annotations

import json

import discogs_client
from discogs_client.exceptions import DiscogsAPIError, HTTPError
from discogs_client.fetchers import UserTokenRequestsFetcher

from .errors import Retryable, SourceError

DEFAULT_API_URL = "https://api.discogs.com"
PER_PAGE = 100
USER_AGENT = "Sillon/{version} +https://github.com/sillon-music/sillon"


class DiscogsSettingsError(SourceError):
    """The token or user is missing or refused."""


def missing_settings(settings):
    return [name for name in ("DISCOGS_TOKEN",) if not settings.get(name)]


class HeaderTokenFetcher(UserTokenRequestsFetcher):
    """The library's user-token fetcher, sending the token in the Authorization header (which Discogs
    accepts) instead of the `token` query parameter: URLs end up in debug logs and error messages."""

    def fetch(self, client, method, url, data=None, headers=None, json_format=True):
        data = json.dumps(data) if json_format and data else data
        headers = {**(headers or {}), "Authorization": f"Discogs token={self.user_token}"}
        resp = self.request(method, url, data=data, headers=headers)
        self.rate_limit = resp.headers.get("X-Discogs-Ratelimit")
        self.rate_limit_used = resp.headers.get("X-Discogs-Ratelimit-Used")
        self.rate_limit_remaining = resp.headers.get("X-Discogs-Ratelimit-Remaining")
        return resp.content, resp.status_code


def make_client(settings, version):
    missing = missing_settings(settings)
    if missing:
        raise DiscogsSettingsError(
            "Discogs is not configured: DISCOGS_TOKEN is missing. Create a personal access token at "
            "https://www.discogs.com/settings/developers and set it in the environment or in config.json "
            "(secrets.discogs.token).")
    client = discogs_client.Client(USER_AGENT.format(version=version), user_token=settings["DISCOGS_TOKEN"])
    client._fetcher = HeaderTokenFetcher(settings["DISCOGS_TOKEN"])
    client._base_url = (settings.get("DISCOGS_API_URL") or DEFAULT_API_URL).rstrip("/")
    client.backoff_enabled = False  # we wait out 429s ourselves, visibly, with a bound
    client.set_timeout(connect=10, read=60)  # the library waits forever by default
    return client


def _translate(exc):
    status = getattr(exc, "status_code", None)
    if status == 429:
        return Retryable("rate limit")
    if status is not None and status >= 500:
        return Retryable(f"HTTP {status}")
    if status in (401, 403):
        return DiscogsSettingsError(f"Discogs refused the token (HTTP {status}). Check DISCOGS_TOKEN: create a new "
                                    "personal access token at https://www.discogs.com/settings/developers.")
    if status == 404:
        return SourceError(f"Discogs does not know this user or folder ({exc}). Check DISCOGS_USERNAME.")
    return SourceError(f"Discogs answered an error: {exc}")


def call(fn):
    """Run one library call, turning Discogs' errors into Retryable or a message for the person."""
    try:
        return fn()
    except HTTPError as exc:
        raise _translate(exc) from None
    except DiscogsAPIError as exc:  # MalformedResponseError: an HTML error page, often a 502
        status = getattr(exc, "status_code", None) or 0
        if status >= 500 or status == 429:
            raise Retryable(f"HTTP {status}") from None
        raise SourceError(f"Discogs answered something unreadable: {exc}") from None
    except OSError as exc:  # connection refused, reset, timeout (requests' errors are OSErrors)
        raise Retryable(f"could not reach Discogs ({exc.__class__.__name__})") from None


def username(client, settings):
    """The configured user, or the token's own user (one identity call either way, which also checks the token)."""
    me = call(client.identity)
    name = call(lambda: me.username)
    return settings.get("DISCOGS_USERNAME") or name


def all_folder(client, user):
    """Folder 0 ("All") of the user's collection: one call for the folder list."""
    folders = call(lambda: client.user(user).collection_folders)
    for folder in folders:
        if folder.id == 0:
            return folder
    return folders[0]


def collection_listing(folder):
    """Folder 0's releases, 100 a page. Keep the one object: it caches page 1, fetched with the count."""
    releases = folder.releases
    releases.per_page = PER_PAGE
    # Oldest first: items added while a sync runs land at the end instead of shifting pages.
    return releases.sort("added", "asc")


def listing_pages(listing):
    """How many pages (fetches page 1 and keeps it)."""
    return call(lambda: listing.pages)


def listing_page(listing, page):
    """The raw items of one page: one call (none for page 1 once the count is known)."""
    return [item.data for item in call(lambda: listing.page(page))]


def forget_page(listing, page):
    """Drop a page the library cached, so a large collection is not held in memory whole."""
    listing._pages.pop(page, None)  # discogs_client keeps every page it fetched in this dict


def item_fields(data):
    """What a collection item keeps, all read from the listing (no call per item)."""
    info = data.get("basic_information") or {}
    artist = ""
    for a in info.get("artists") or []:
        artist += _strip_number(a.get("anv") or a.get("name", ""))
        join = (a.get("join") or "").strip()
        if join:
            artist += ", " if join == "," else f" {join} "
    artist = artist.strip() or "Unknown artist"
    return {
        "instance_id": int(data["instance_id"]), "release_id": int(data.get("id") or info.get("id")),
        "title": info.get("title") or "Untitled", "artist": artist,
        "year": info.get("year") or None, "formats": info.get("formats") or [],
        "labels": info.get("labels") or [], "genres": info.get("genres") or [], "styles": info.get("styles") or [],
        "cover_url": info.get("cover_image") or None, "thumb_url": info.get("thumb") or None,
        "date_added": data.get("date_added"), "rating": data.get("rating") or None,
        "folder_id": data.get("folder_id"), "source": "discogs",
    }


def _strip_number(name):
    # Discogs disambiguates homonyms as "Name (2)"; people do not call them that.
    if name.endswith(")") and " (" in name:
        head, _, tail = name.rpartition(" (")
        if tail[:-1].isdigit():
            return head
    return name
