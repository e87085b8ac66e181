"""Every Spotify lookup of the pipeline through one cache, so an answer one concern fetched serves the others.

Answers live in `http_cache` under service 'spotify' with keys shaped like the API paths:
`albums/{id}` (the full album with ALL its simplified tracks, paging followed, so track lists and disc
counts come from it), `tracks/{id}`, `artists/{id}`, `search/track?q=…` and `playlists/{id}/items`.
A 404 is remembered for NOT_FOUND_TTL and raised again as SpotifyNotFound; other errors are never cached.
After a rate limit or a refused authorisation the instance asks Spotify nothing more (until the limit
ends), so a run does not hammer a service that already said no.

New answers are buffered and written by `save()` (also on leaving a `with` block, errors included), in
the caller's transaction when it passes a connection: a DuckDB write costs far more than a read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any

import duckdb

from harmony_pipeline.http_cache import HttpCache
from resources.spotify import (
    SpotifyApi,
    SpotifyError,
    SpotifyNotAuthorised,
    SpotifyNotFound,
    SpotifyRateLimited,
    SpotifyResource,
)

SERVICE = "spotify"
# Long enough for a retried or repeated run to cost nothing; short enough that corrections on Spotify
# (track lists of fresh releases, ISRCs, artist genres) reach later reads.
ALBUM_TTL = timedelta(days=7)
TRACK_TTL = timedelta(days=30)
ARTIST_TTL = timedelta(days=7)
SEARCH_TTL = timedelta(days=7)
PLAYLIST_TTL = timedelta(days=1)
NOT_FOUND_TTL = timedelta(days=1)


class SpotifyCache:
    """Cached Spotify lookups of one run. `requests` counts requests made, `hits` answers from the cache.

    The API client is created on the first cache miss, so a run whose answers are all cached never
    talks to Spotify (nor needs credentials).
    """

    def __init__(self, spotify: SpotifyResource, cache: HttpCache):
        self._spotify = spotify
        self.cache = cache
        self._api: SpotifyApi | None = None
        self._requests_before = 0
        self._answers: dict[str, tuple[int, Any]] = {}  # key → (status, value), read or fetched this run
        self._not_stored: set[str] = set()  # keys the cache was asked for and did not have
        self._unsaved: list[dict] = []
        self._refusal: SpotifyError | None = None
        self.hits = 0

    def __enter__(self) -> SpotifyCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.save()  # what was fetched before an error is kept

    @property
    def requests(self) -> int:
        return 0 if self._api is None else self._api.requests_made - self._requests_before

    @property
    def unsaved(self) -> int:
        """Answers fetched and not written yet."""
        return len(self._unsaved)

    @property
    def api(self) -> SpotifyApi:
        if self._api is None:
            self._api = self._spotify.get_api()
            self._requests_before = self._api.requests_made
        return self._api

    # --- lookups ---------------------------------------------------------------------------------
    def album(self, album_id: str) -> dict:
        """The full album object; `tracks.items` holds every simplified track and `tracks.next` is None."""

        def fetch(api: SpotifyApi) -> dict:
            album = api.album(album_id)
            items = api.album_tracks(album)  # follows `next` beyond the embedded page
            return {**album, "tracks": {**(album.get("tracks") or {}), "items": items, "next": None}}

        return self._lookup(f"albums/{album_id}", ALBUM_TTL, fetch)

    def track(self, track_id: str) -> dict:
        """The full track object (with its ISRC)."""
        return self._lookup(f"tracks/{track_id}", TRACK_TTL, lambda api: api.track(track_id))

    def tracks(self, track_ids: list[str]) -> list[dict]:
        """Full track objects in the given order: the cache is read once for all, the rest one request each."""
        self._read([f"tracks/{track_id}" for track_id in track_ids])
        return [self.track(track_id) for track_id in track_ids]

    def artist(self, artist_id: str) -> dict:
        return self._lookup(f"artists/{artist_id}", ARTIST_TTL, lambda api: api.artist(artist_id))

    def search_tracks(self, query: str) -> list[dict]:
        return self._lookup(f"search/track?q={query}", SEARCH_TTL, lambda api: api.search_tracks(query))

    def playlist_items(self, playlist_id: str) -> list[dict]:
        return self._lookup(f"playlists/{playlist_id}/items", PLAYLIST_TTL,
                            lambda api: list(api.playlist_items(playlist_id)))

    def disc_total(self, album_id: str) -> int:
        """How many discs the album has, from its cached track list."""
        items = self.album(album_id)["tracks"]["items"]
        return max((item.get("disc_number") or 1 for item in items), default=1)

    # --- storage ---------------------------------------------------------------------------------
    def save(self, conn: duckdb.DuckDBPyConnection | None = None) -> None:
        """Write the answers fetched since the last save; in `conn`'s transaction when given."""
        entries, self._unsaved = self._unsaved, []
        self.cache.put_entries(entries, conn)

    def _read(self, keys: list[str]) -> None:
        unknown = [key for key in keys if key not in self._answers and key not in self._not_stored]
        found = self.cache.get_many(SERVICE, unknown)
        for key, cached in found.items():
            self._answers[key] = (cached.status, cached.json())
        self._not_stored.update(key for key in unknown if key not in found)

    def _lookup(self, key: str, ttl: timedelta, fetch: Callable[[SpotifyApi], Any]) -> Any:
        self._read([key])
        if key in self._answers:
            self.hits += 1
        else:
            self._answers[key] = self._fetch(key, ttl, fetch)
        status, value = self._answers[key]
        if status == 404:
            raise SpotifyNotFound(f"Spotify 404: {key} not found (remembered)", 404)
        return value

    def _fetch(self, key: str, ttl: timedelta, fetch: Callable[[SpotifyApi], Any]) -> tuple[int, Any]:
        self._raise_refusal()
        try:
            value = fetch(self.api)
        except SpotifyNotFound:
            self._unsaved.append(self.cache.entry(SERVICE, key, 404, None, NOT_FOUND_TTL))
            return 404, None
        except (SpotifyRateLimited, SpotifyNotAuthorised) as error:
            self._refusal = error
            raise
        self._unsaved.append(self.cache.entry(SERVICE, key, 200, json.dumps(value, ensure_ascii=False), ttl))
        return 200, value

    def _raise_refusal(self) -> None:
        refusal = self._refusal
        if isinstance(refusal, SpotifyRateLimited) and self.cache.now() < refusal.until:
            raise SpotifyRateLimited(refusal.until)
        if isinstance(refusal, SpotifyNotAuthorised):
            raise SpotifyNotAuthorised(str(refusal), refusal.status)
