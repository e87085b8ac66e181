"""What the user wants: demand from every source table merged into wanted tracks.

Each source (playlist tracks, backfilled FREE-ingest items, new watchlist releases) is one SQL query
returning DEMAND_COLUMNS; a source whose table does not exist yet is skipped. A track is identified by
its ISRC, or else by a normalised artist + title + duration key, so the same recording demanded by two
sources is one wanted track.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEMAND_COLUMNS = (
    "spotify_track_id", "isrc", "title", "artist", "artists", "album", "album_id", "album_artist",
    "track_number", "disc_number", "album_total_tracks", "release_date", "duration_ms", "source",
)
DURATION_BUCKET_MS = 5000


@dataclass(frozen=True)
class DemandSource:
    name: str
    table: str
    sql: str  # returns DEMAND_COLUMNS


DEMAND_SOURCES: list[DemandSource] = [
    DemandSource(
        "playlists",
        "playlist_tracks",
        "SELECT spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, "
        "track_number, disc_number, album_total_tracks, release_date, duration_ms, "
        "'playlist:' || playlist_id AS source FROM playlist_tracks WHERE removed_at IS NULL",
    ),
    DemandSource(
        "free_ingest",
        "backfilled_tracks",
        "SELECT spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, "
        "track_number, disc_number, album_total_tracks, release_date, duration_ms, "
        "'free_ingest' AS source FROM backfilled_tracks WHERE status = 'matched'",
    ),
    DemandSource(
        "watchlist",
        "artist_release_tracks",
        "SELECT spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, "
        "track_number, disc_number, album_total_tracks, release_date, duration_ms, "
        "'watchlist:' || artist_id AS source FROM artist_release_tracks WHERE acquire",
    ),
]


def normalise(text: str | None) -> str:
    """Case-, accent- and punctuation-insensitive form for identity keys."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", stripped).strip()


def wanted_key(isrc: str | None, artist: str, title: str, duration_ms: int | None) -> str:
    if isrc and isrc.strip():
        return "isrc:" + isrc.strip().upper()
    bucket = round((duration_ms or 0) / DURATION_BUCKET_MS)
    return f"key:{normalise(artist)}|{normalise(title)}|{bucket}"


def merge_demand(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Demand rows grouped by wanted key; sources merged, the richest row's metadata kept."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = wanted_key(row.get("isrc"), row["artist"], row["title"], row.get("duration_ms"))
        current = merged.get(key)
        if current is None:
            merged[key] = {**{c: row.get(c) for c in DEMAND_COLUMNS if c != "source"},
                           "wanted_key": key, "sources": [row["source"]]}
            continue
        if row["source"] not in current["sources"]:
            current["sources"].append(row["source"])
        for column in DEMAND_COLUMNS:
            if column != "source" and current.get(column) in (None, "", []) and row.get(column):
                current[column] = row[column]
    for entry in merged.values():
        entry["sources"].sort()
    return merged


def library_keys(library_rows: Iterable[dict[str, Any]]) -> set[str]:
    """Keys under which tracks already in the library are known (ISRC and artist/title/duration)."""
    keys: set[str] = set()
    for row in library_rows:
        keys.add(row["wanted_key"])
        if row.get("isrc"):
            keys.add(wanted_key(row["isrc"], "", "", None))
        duration_ms = int(row["duration_s"] * 1000) if row.get("duration_s") else None
        keys.add(wanted_key(None, row["artist"], row["title"], duration_ms))
    return keys


def in_library(entry: dict[str, Any], keys: set[str]) -> bool:
    if entry["wanted_key"] in keys:
        return True
    plain = wanted_key(None, entry["artist"], entry["title"], entry.get("duration_ms"))
    return plain in keys
