"""LRCLIB emulator over the sandbox catalog (api-contracts.md §3.1, §3.4).

One record per `Lyrics` in the catalog (a single sharing its album's recording shares the record;
the record names the first release the catalog made, the album). Records carry what a Spotify-based
uploader submits: the Spotify title, the track's artists joined with ", ", the album name.
Tracks with `lyrics=None` have no record at all.

Matching follows the server: names are compared after `prepare_input` (lower-case, accents removed,
punctuation to spaces, apostrophes dropped, whitespace collapsed); `/api/get` requires equality on
track and artist (and album when given) and, when `duration` is given, |duration − record| ≤ 2 s.
`/api/search` matches words (`q` anywhere; `track_name`/`album_name` as phrases in their fields,
`artist_name` words in the artist), returns at most 20 records and never filters by duration.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

from harmony_pipeline.sandbox.catalog import Catalog, Track
from harmony_pipeline.sandbox.server import Emulator, Request, Response, json_response

SEARCH_LIMIT = 20
DURATION_TOLERANCE_S = 2.0
_PUNCTUATION = re.compile(r"[`~!@#$%^&*()_|+\-=?;:\",.<>{}\[\]\\/]")
_APOSTROPHES = re.compile(r"['’]")


@lru_cache(maxsize=8192)
def prepare_input(text: str) -> str:
    """LRCLIB's normalisation of names before comparing them."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = _PUNCTUATION.sub(" ", text)
    text = _APOSTROPHES.sub("", text)
    return " ".join(text.lower().split())


def _error(status: int, name: str, message: str) -> Response:
    return json_response({"message": message, "name": name, "statusCode": status}, status)


def _contains_phrase(haystack: list[str], phrase: list[str]) -> bool:
    return any(haystack[i : i + len(phrase)] == phrase for i in range(len(haystack) - len(phrase) + 1))


class LrclibEmulator(Emulator):
    name = "lrclib"

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.catalog = catalog
        self.add_route("GET", "/api/get", self.get)
        self.add_route("GET", "/api/get-cached", self.get)
        self.add_route("GET", "/api/get/{lrclib_id}", self.get_by_id)
        self.add_route("GET", "/api/search", self.search)

    def error_response(self, status: int, message: str) -> Response:
        if status == 404:
            return _error(404, "TrackNotFound", "Failed to find specified track")
        if status >= 500:
            return _error(status, "UnknownError", "Something bad happened when processing your request")
        return _error(status, message.replace(" ", ""), message)

    # -- records ------------------------------------------------------------------------------
    def _record(self, track: Track) -> dict[str, Any]:
        lyrics = track.lyrics
        assert lyrics is not None
        artist_name = ", ".join(artist.name for artist in self.catalog.track_artists(track))
        return {
            "id": lyrics.lrclib_id,
            "name": track.name,
            "trackName": track.name,
            "artistName": artist_name,
            "albumName": self.catalog.albums[track.album_id].name,
            "duration": float(lyrics.duration_s),
            "instrumental": lyrics.kind == "instrumental",
            "plainLyrics": lyrics.plain,
            "syncedLyrics": lyrics.synced,
        }

    def _records(self) -> list[dict[str, Any]]:
        """Every record, ordered by id like the server's `ORDER BY tracks.id`."""
        with self.catalog.lock:
            by_id: dict[int, dict[str, Any]] = {}
            for track in self.catalog.tracks.values():
                if track.lyrics is not None and track.lyrics.lrclib_id not in by_id:
                    by_id[track.lyrics.lrclib_id] = self._record(track)
        return [by_id[key] for key in sorted(by_id)]

    # -- routes -------------------------------------------------------------------------------
    def get(self, request: Request) -> Response:
        """`/api/get` and `/api/get-cached`: the sandbox never consults external sources."""
        problems = [
            f"{name}: cannot be empty" for name in ("track_name", "artist_name") if not request.query.get(name)
        ]
        duration: float | None = None
        if "duration" in request.query:
            try:
                duration = float(request.query["duration"])
            except ValueError:
                return _error(400, "ValidationError", "duration: invalid float literal")
            if not 1.0 <= duration <= 3600.0:
                problems.append("duration: must be between 1 and 3600")
        if problems:
            return _error(400, "ValidationError", "\n".join(problems))
        track_name = prepare_input(request.query["track_name"])
        artist_name = prepare_input(request.query["artist_name"])
        album_name = prepare_input(request.query.get("album_name", "")) or None
        if not track_name or not artist_name:
            return _error(404, "TrackNotFound", "Failed to find specified track")
        for record in self._records():
            if prepare_input(record["trackName"]) != track_name or prepare_input(record["artistName"]) != artist_name:
                continue
            if album_name is not None and prepare_input(record["albumName"]) != album_name:
                continue
            if duration is not None and abs(record["duration"] - duration) > DURATION_TOLERANCE_S:
                continue
            return json_response(record)
        return _error(404, "TrackNotFound", "Failed to find specified track")

    def get_by_id(self, request: Request) -> Response:
        try:
            lrclib_id = int(request.params["lrclib_id"])
        except ValueError:
            return _error(400, "ValidationError", "id: invalid digit found in string")
        with self.catalog.lock:
            track = self.catalog.find_lyrics(lrclib_id)
            if track is None:
                return _error(404, "TrackNotFound", "Failed to find specified track")
            return json_response(self._record(track))

    def search(self, request: Request) -> Response:
        q = prepare_input(request.query.get("q", "")).split()
        track_name = prepare_input(request.query.get("track_name", "")).split()
        artist_name = prepare_input(request.query.get("artist_name", "")).split()
        album_name = prepare_input(request.query.get("album_name", "")).split()
        if not q and not track_name:
            return json_response([])
        results = []
        for record in self._records():
            title = prepare_input(record["trackName"]).split()
            artist = prepare_input(record["artistName"]).split()
            album = prepare_input(record["albumName"]).split()
            if q:
                matched = set(q) <= set(title + artist + album)
            else:
                matched = (
                    _contains_phrase(title, track_name)
                    and set(artist_name) <= set(artist)
                    and (not album_name or _contains_phrase(album, album_name))
                )
            if matched:
                results.append(record)
                if len(results) == SEARCH_LIMIT:
                    break
        return json_response(results)


def create_emulator(sandbox: Any) -> LrclibEmulator:
    """Sandbox plug-in hook (no options)."""
    return LrclibEmulator(sandbox.catalog)


def environment(sandbox: Any, base_url: str) -> dict[str, str]:
    """`LRCLIB_URL` (design.md §4): the base without `/api`, like https://lrclib.net."""
    return {"LRCLIB_URL": base_url}
