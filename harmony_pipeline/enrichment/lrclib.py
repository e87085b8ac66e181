"""LRCLIB (api-contracts.md §3.1): lyrics records by signature, and search.

No authentication and no published rate limit; a descriptive User-Agent is sent anyway. `get-cached`
never consults external sources (fast), `get` may (slow), `search` returns at most 20 records and does
not filter by duration. Every answer, misses (404) included, goes through the response cache.
"""

from __future__ import annotations

from datetime import timedelta

from harmony_pipeline.http_cache import CachedJsonClient

MIN_DURATION_S, MAX_DURATION_S = 1, 3600  # LRCLIB answers 400 outside this range
# Every answer, with or without records, is kept less than the 7-day lyrics miss cool-down
# (assets/enrichment.py MISS_COOLDOWN): a track retried after a miss asks LRCLIB afresh instead of
# re-reading a search answer (records, none of them fitting) cached by the run that missed.
ANSWER_TTL = timedelta(days=6)


def _signature(track_name: str, artist_name: str, album_name: str | None, duration_s: float | None) -> dict:
    params: dict[str, str | int] = {"track_name": track_name, "artist_name": artist_name}
    if album_name:
        params["album_name"] = album_name
    if duration_s is not None and MIN_DURATION_S <= round(duration_s) <= MAX_DURATION_S:
        params["duration"] = round(duration_s)
    return params


class LrclibClient(CachedJsonClient):
    service = "lrclib"

    def get_cached(self, track_name: str, artist_name: str, album_name: str | None = None,
                   duration_s: float | None = None) -> dict | None:
        """The record matching the signature from LRCLIB's own database only; None on a miss."""
        return self.get_json("/api/get-cached", _signature(track_name, artist_name, album_name, duration_s))

    def get(self, track_name: str, artist_name: str, album_name: str | None = None,
            duration_s: float | None = None) -> dict | None:
        """As `get_cached`, but LRCLIB may also ask its external sources."""
        return self.get_json("/api/get", _signature(track_name, artist_name, album_name, duration_s))

    def search(self, track_name: str, artist_name: str | None = None) -> list[dict]:
        params = {"track_name": track_name}
        if artist_name:
            params["artist_name"] = artist_name
        return self.get_json("/api/search", params) or []
