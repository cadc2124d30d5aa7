"""Album and artist images and links from Spotify, through spotipy (client credentials).

`SPOTIFY_API_URL` and `SPOTIFY_TOKEN_URL` are honoured by setting spotipy's own `prefix` and the
auth manager's `OAUTH_TOKEN_URL`. spotipy's retries are turned off: 429s are waited out by the
enrichment job (from Retry-After), visibly on the progress page. The token stays in memory, never
in a cache file.
"""
from __future__ import annotations

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler

from .errors import Retryable, SourceError

DEFAULT_API_URL = "https://api.spotify.com/v1/"
DEFAULT_TOKEN_URL = "https://accounts.spotify.com/api/token"


class SpotifySettingsError(SourceError):
    pass


def missing_settings(settings):
    return [n for n in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET") if not settings.get(n)]


def make_client(settings):
    auth = spotipy.SpotifyClientCredentials(client_id=settings["SPOTIFY_CLIENT_ID"],
                                            client_secret=settings["SPOTIFY_CLIENT_SECRET"],
                                            cache_handler=MemoryCacheHandler(), requests_timeout=20)
    auth.OAUTH_TOKEN_URL = settings.get("SPOTIFY_TOKEN_URL") or DEFAULT_TOKEN_URL
    # A plain session: spotipy's default one retries 429s itself and then loses their Retry-After.
    client = spotipy.Spotify(auth_manager=auth, requests_session=requests.Session(), requests_timeout=20)
    client.prefix = (settings.get("SPOTIFY_API_URL") or DEFAULT_API_URL).rstrip("/") + "/"
    return client


def _call(fn):
    try:
        return fn()
    except spotipy.SpotifyOauthError as exc:
        raise SpotifySettingsError(f"Spotify refused the client credentials ({exc.error or exc}). Check "
                                   "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.") from None
    except spotipy.SpotifyException as exc:
        if exc.http_status == 429 or (exc.http_status or 0) >= 500:
            wait = (exc.headers or {}).get("Retry-After") or (exc.headers or {}).get("retry-after")
            raise Retryable("rate limit" if exc.http_status == 429 else f"HTTP {exc.http_status}",
                            float(wait) if wait not in (None, "") else None) from None
        if exc.http_status in (401, 403):
            raise SpotifySettingsError(f"Spotify refused the request (HTTP {exc.http_status}).") from None
        raise SourceError(f"Spotify answered HTTP {exc.http_status}: {exc.msg}") from None
    except requests.RequestException as exc:
        raise Retryable(f"could not reach Spotify ({exc.__class__.__name__})") from None


def _quote(text):
    return text.replace('"', " ")


def _best_image(images):
    images = [i for i in images or [] if i.get("url")]
    return max(images, key=lambda i: i.get("width") or 0)["url"] if images else None


def find_album(client, artist, title):
    """{id, url, image_url, artist_id} of the best match, or None."""
    found = _call(lambda: client.search(q=f'album:"{_quote(title)}" artist:"{_quote(artist)}"', type="album", limit=5))
    items = (found.get("albums") or {}).get("items") or []
    if not items:
        return None
    wanted, who = title.casefold(), artist.casefold()

    def named(a):
        return a.get("name", "").casefold()

    by_artist = [a for a in items if any(x.get("name", "").casefold() == who for x in a.get("artists") or [])]
    # Exact title first, then an edition of it ("Abbey Road (Remastered 2009)"); a mere near miss
    # would link the wrong record, so nothing else is taken.
    best = next((a for a in by_artist + items if named(a) == wanted), None) or \
        next((a for a in by_artist if named(a).startswith(wanted + " (") or named(a).startswith(wanted + " -")), None)
    if best is None:
        return None
    artists = best.get("artists") or [{}]
    return {"id": best["id"], "url": (best.get("external_urls") or {}).get("spotify"),
            "image_url": _best_image(best.get("images")), "artist_id": artists[0].get("id")}


def artist_image(client, artist_id):
    data = _call(lambda: client.artist(artist_id))
    return _best_image(data.get("images")), (data.get("external_urls") or {}).get("spotify")
