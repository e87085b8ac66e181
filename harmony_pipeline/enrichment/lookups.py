"""Spotify album/artist and MusicBrainz lookups shared by the enrichment assets of one run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from datetime import datetime

from harmony_pipeline.enrichment.credits import choose_recording, choose_release
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.service_errors import retry_wait
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.enrichment.musicbrainz import MusicBrainzClient
from harmony_pipeline.spotify.client import SpotifyNotAuthorised, SpotifyNotFound, SpotifyRateLimited


class Lookups:
    """Spotify album/artist and MusicBrainz lookups of one run, every answer through the response cache
    (Spotify's through the shared lookup cache, so albums the watchlist or acquisition read cost nothing).

    When Spotify cannot answer (not authorised, or rate-limited until a given time) nothing is cached
    and Spotify is not asked again in this run (until the limit ends); `take_spotify_gap()` tells the
    caller that what it built lacks Spotify's part, so it is saved to be completed by a later run.
    """

    def __init__(self, cache: HttpCache, spotify: Any, musicbrainz: MusicBrainzClient, log):
        self.cache = cache
        self.spotify = SpotifyCache(spotify, cache)
        self.musicbrainz = musicbrainz
        self.log = log
        self.spotify_unavailable: str | None = None
        self.rate_limited_until: datetime | None = None
        self.spotify_gap: str | None = None  # why a Spotify answer was missing since take_spotify_gap()

    @property
    def spotify_requests(self) -> int:
        return self.spotify.requests

    def take_spotify_gap(self) -> str | None:
        """Why a Spotify answer was missing since the last call (None: every answer was there); resets."""
        gap, self.spotify_gap = self.spotify_gap, None
        return gap

    def _spotify(self, lookup: Callable[[str], dict], spotify_id: str) -> dict | None:
        try:
            return lookup(spotify_id)
        except SpotifyNotFound:
            return None
        except SpotifyNotAuthorised as error:  # not cached: with credentials, a later run will ask
            if not self.spotify_unavailable:
                self.spotify_unavailable = str(error)
                self.log.warning(f"Spotify unavailable, enriching without it: {error}")
            self.spotify_gap = f"Spotify unavailable: {error}"
        except SpotifyRateLimited as error:  # not cached either: asked again once the limit has passed
            if retry_wait(error) is not None:
                raise  # lifts soon: the step waits and retries instead of tagging without Spotify
            if error.until != self.rate_limited_until:
                self.rate_limited_until = error.until
                self.log.warning(f"{error}; enriching without Spotify until then")
            self.spotify_gap = str(error)
        return None

    def spotify_album(self, album_id: str | None) -> dict | None:
        """The full album with every track (all pages)."""
        return self._spotify(self.spotify.album, album_id) if album_id else None

    def spotify_artist(self, artist_id: str) -> dict | None:
        return self._spotify(self.spotify.artist, artist_id)

    def musicbrainz_match(self, row: dict, upc: str | None) -> tuple[dict | None, dict | None]:
        """(recording, release) of the track's ISRC that fit its artist, length and album; None when unknown."""
        lookup = self.musicbrainz.isrc(row["isrc"]) if row.get("isrc") else None
        if not lookup:
            return None, None
        recording = choose_recording(lookup, row.get("duration_ms"), row["artist"])
        if recording is None:
            return None, None
        return recording, choose_release(recording, row.get("release_date"), upc)


def album_upc(album: dict | None) -> str | None:
    return ((album or {}).get("external_ids") or {}).get("upc")

