"""What the user wants: demand from every source table merged into wanted tracks.

Each source (playlist tracks, backfilled FREE-ingest items, new watchlist releases) is one SQL query
returning DEMAND_COLUMNS; a source whose table does not exist yet is skipped. A track is identified by
its ISRC, or else by a normalised artist + title + duration key, so the same recording demanded by two
sources is one wanted track (a second length of the same name, e.g. a radio edit, stays separate).
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
SAME_RECORDING_MS = 10_000  # two demands of one artist + title further apart than this are two versions


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


def wanted_key(isrc: str | None, artist: str, title: str, duration_ms: int | None = None) -> str:
    """`isrc:<ISRC>`, else `key:<artist>|<title>`; merge_demand adds `|<seconds>` for a second version."""
    if isrc and isrc.strip():
        return "isrc:" + isrc.strip().upper()
    return f"key:{normalise(artist)}|{normalise(title)}"


def _far_apart(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and abs(a - b) > SAME_RECORDING_MS


def merge_demand(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Demand rows grouped by wanted key; sources merged, the richest row's metadata kept."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = wanted_key(row.get("isrc"), row["artist"], row["title"])
        if key.startswith("key:") and key in merged and _far_apart(merged[key].get("duration_ms"), row.get("duration_ms")):
            key = f"{key}|{round(row['duration_ms'] / 1000)}"  # same name, another length: another version
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
        keys.add(wanted_key(None, row["artist"], row["title"]))
    return keys


def in_library(entry: dict[str, Any], keys: set[str]) -> bool:
    """Known by its key, its ISRC, or (for a track without ISRC) its artist + title."""
    if entry["wanted_key"] in keys:
        return True
    return not entry.get("isrc") and wanted_key(None, entry["artist"], entry["title"]) in keys
