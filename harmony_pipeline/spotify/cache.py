"""Every Spotify lookup of the pipeline through one response cache, so an answer one concern fetched serves
the others.

The answers are HTTP responses kept by requests-cache (harmony_pipeline.http_cache) with an expiry per
endpoint: albums (and their track pages) and artists for a week, tracks for a month, searches for a week,
playlist items for a day; a 404 for NOT_FOUND_TTL (raised again as SpotifyNotFound). Other errors are
never cached, and endpoints not named here (playlists, /me) are never cached. Within one run an answer is
asked once. After a rate limit or a refused authorisation the instance asks Spotify nothing more (until
the limit ends), so a run does not hammer a service that already said no.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Protocol


from harmony_pipeline import http_cache
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.service_errors import stops_asking
from harmony_pipeline.spotify.client import (
    NOT_FOUND_TTL,
    SpotifyApi,
    SpotifyError,
    SpotifyNotAuthorised,
    SpotifyNotFound,
    SpotifyRateLimited,
)

__all__ = ["NOT_FOUND_TTL", "SpotifyCache", "expiry_patterns"]

# Long enough for a retried or repeated run to cost nothing; short enough that corrections on Spotify
# (track lists of fresh releases, ISRCs, artist genres) reach later reads.
ALBUM_TTL = timedelta(days=7)
TRACK_TTL = timedelta(days=30)
ARTIST_TTL = timedelta(days=7)
SEARCH_TTL = timedelta(days=7)
PLAYLIST_TTL = timedelta(days=1)


def expiry_patterns(api_url: str) -> dict[re.Pattern[str], timedelta]:
    """requests-cache's per-URL expiry for the Spotify API at `api_url` (first match wins)."""
    base = re.escape(api_url if api_url.endswith("/") else api_url + "/")
    return {
        re.compile(base + r"albums/"): ALBUM_TTL,  # the album and its track pages
        re.compile(base + r"tracks/"): TRACK_TTL,
        re.compile(base + r"artists/[^/?]+(\?|$)"): ARTIST_TTL,  # not /artists/{id}/albums (watch checks)
        re.compile(base + r"search\?"): SEARCH_TTL,
        re.compile(base + r"playlists/[^/?]+/items"): PLAYLIST_TTL,
    }


class _ApiSource(Protocol):
    def get_api(self, cache: HttpCache | None = None) -> SpotifyApi: ...


class SpotifyCache:
    """Cached Spotify lookups of one run. `requests` counts requests made, `hits` answers from the cache.

    The API client is created on the first lookup; it asks for an access token only when an answer is
    not in the cache, so a run whose answers are all cached never talks to Spotify (nor needs credentials).
    """

    def __init__(self, spotify: _ApiSource, cache: HttpCache):
        self._spotify = spotify
        self.cache = cache
        self._api: SpotifyApi | None = None
        self._answers: dict[str, tuple[int, Any]] = {}  # key → (status, value), asked this run
        self._refusal: SpotifyError | None = None
        self.hits = 0

    def __enter__(self) -> SpotifyCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        pass  # the response cache writes each answer as it comes: nothing is left to save

    @property
    def requests(self) -> int:
        return 0 if self._api is None else self._api.requests_made

    @property
    def api(self) -> SpotifyApi:
        if self._api is None:
            self._api = self._spotify.get_api(self.cache)
        return self._api

    # --- lookups ---------------------------------------------------------------------------------
    def album(self, album_id: str) -> dict:
        """The full album object; `tracks.items` holds every simplified track and `tracks.next` is None."""

        def fetch(api: SpotifyApi) -> dict:
            album = api.album(album_id)
            items = api.album_tracks(album)  # follows `next` beyond the embedded page
            return {**album, "tracks": {**(album.get("tracks") or {}), "items": items, "next": None}}

        return self._lookup(f"albums/{album_id}", fetch)

    def track(self, track_id: str) -> dict:
        """The full track object (with its ISRC)."""
        return self._lookup(f"tracks/{track_id}", lambda api: api.track(track_id))

    def tracks(self, track_ids: list[str]) -> list[dict]:
        """Full track objects in the given order."""
        return [self.track(track_id) for track_id in track_ids]

    def artist(self, artist_id: str) -> dict:
        return self._lookup(f"artists/{artist_id}", lambda api: api.artist(artist_id))

    def search_tracks(self, query: str) -> list[dict]:
        return self._lookup(f"search/track?q={query}", lambda api: api.search_tracks(query))

    def playlist_items(self, playlist_id: str) -> list[dict]:
        return self._lookup(f"playlists/{playlist_id}/items", lambda api: list(api.playlist_items(playlist_id)))

    def disc_total(self, album_id: str) -> int:
        """How many discs the album has, from its cached track list."""
        items = self.album(album_id)["tracks"]["items"]
        return max((item.get("disc_number") or 1 for item in items), default=1)

    # --- internals -------------------------------------------------------------------------------
    def _lookup(self, key: str, fetch: Callable[[SpotifyApi], Any]) -> Any:
        if key in self._answers:
            self.hits += 1
        else:
            self._answers[key] = self._fetch(fetch)
        status, value = self._answers[key]
        if status == 404:
            raise SpotifyNotFound(f"Spotify 404: {key} not found (remembered)", 404)
        return value

    def _fetch(self, fetch: Callable[[SpotifyApi], Any]) -> tuple[int, Any]:
        self._raise_refusal()
        api = self.api
        before = api.requests_made
        try:
            value = fetch(api)
        except SpotifyNotFound:
            status, value = 404, None
        except SpotifyError as error:
            if stops_asking(error):
                self._refusal = error
            raise
        else:
            status = 200
        if api.requests_made == before:  # every response came from the cache
            self.hits += 1
        return status, value

    def _raise_refusal(self) -> None:
        refusal = self._refusal
        if isinstance(refusal, SpotifyRateLimited) and http_cache.now() < refusal.until:
            raise SpotifyRateLimited(refusal.until)
        if isinstance(refusal, SpotifyNotAuthorised):
            raise SpotifyNotAuthorised(str(refusal), refusal.status)
