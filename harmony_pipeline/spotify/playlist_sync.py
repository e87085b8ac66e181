"""Playlist sync logic without Dagster: item parsing, the diff against what DuckDB holds, sync status.

A playlist is read with one request when its snapshot_id is unchanged; otherwise every item is read
and compared with the stored tracks: new ones are added, missing ones are marked removed (never
deleted), returning ones are revived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

STALE_AFTER = timedelta(hours=2)  # the original's PLAYLIST_SYNC_STALE_AFTER_HOURS


@dataclass(frozen=True)
class PlaylistTrack:
    spotify_track_id: str
    position: int
    title: str
    artist: str
    artists: tuple[str, ...]
    album: str | None
    album_id: str | None
    album_artist: str | None
    isrc: str | None
    track_number: int | None
    disc_number: int | None
    album_total_tracks: int | None
    release_date: str | None
    duration_ms: int | None
    added_at: str | None


@dataclass
class PlaylistDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.revived)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _names(people: Any) -> list[str]:
    """The names of a list of artist objects; anything malformed in it is left out."""
    return [p["name"] for p in people if isinstance(p, dict) and _text(p.get("name"))] \
        if isinstance(people, list) else []


def track_from_item(item: dict[str, Any], position: int) -> PlaylistTrack | None:
    """One playlist item as a track, or None for local files, episodes, unavailable items and answers
    too malformed to name a track (a field of the wrong type reads as absent).

    The 2026 API puts the track under `item`; older answers use `track`.
    """
    item = _dict(item)
    track = item.get("item") if item.get("item") is not None else item.get("track")
    if not isinstance(track, dict):
        return None
    if item.get("is_local") or track.get("is_local") or not _text(track.get("id")):
        return None
    if track.get("type", "track") != "track":
        return None
    artists = tuple(_names(track.get("artists")))
    album = _dict(track.get("album"))
    album_artists = _names(album.get("artists"))
    return PlaylistTrack(
        spotify_track_id=track["id"],
        position=position,
        title=_text(track.get("name")) or "",
        artist=artists[0] if artists else "",
        artists=artists,
        album=_text(album.get("name")),
        album_id=_text(album.get("id")),
        album_artist=album_artists[0] if album_artists else (artists[0] if artists else None),
        isrc=_text(_dict(track.get("external_ids")).get("isrc")),
        track_number=_number(track.get("track_number")),
        disc_number=_number(track.get("disc_number")),
        album_total_tracks=_number(album.get("total_tracks")),
        release_date=_text(album.get("release_date")),
        duration_ms=_number(track.get("duration_ms")),
        added_at=_text(item.get("added_at")),
    )


def tracks_from_items(items: list[dict[str, Any]]) -> tuple[list[PlaylistTrack], int]:
    """Parsed tracks (first occurrence of each id wins) and the number of items skipped."""
    tracks: list[PlaylistTrack] = []
    seen: set[str] = set()
    skipped = 0
    for position, item in enumerate(items):
        track = track_from_item(item, position)
        if track is None:
            skipped += 1
            continue
        if track.spotify_track_id in seen:
            continue
        seen.add(track.spotify_track_id)
        tracks.append(track)
    return tracks, skipped


def diff_playlist(stored: dict[str, bool], current_ids: list[str]) -> PlaylistDiff:
    """Compare stored tracks ({track id: currently removed?}) with the ids now in the playlist."""
    diff = PlaylistDiff()
    current = set(current_ids)
    for track_id in current_ids:
        if track_id not in stored:
            diff.added.append(track_id)
        elif stored[track_id]:
            diff.revived.append(track_id)
        else:
            diff.kept.append(track_id)
    diff.removed = sorted(t for t, removed in stored.items() if not removed and t not in current)
    return diff


def sync_status(
    *, snapshot_id: str | None, previous_snapshot_id: str | None, items_read: bool
) -> tuple[str, str]:
    """(status, reason) right after a successful check (reference §3.4).

    A check that confirms the snapshot is current counts as a sync; a playlist without a snapshot id
    cannot be confirmed and stays stale.
    """
    if not snapshot_id:
        return "stale", "missing_snapshot"
    if items_read and previous_snapshot_id is not None and snapshot_id != previous_snapshot_id:
        return "fresh", "snapshot_changed"
    return "fresh", "synced_recently"


def is_stale(synced_at: datetime | None, now: datetime, stale_after: timedelta = STALE_AFTER) -> bool:
    """A playlist not confirmed for longer than `stale_after` is stale (the sync is not running)."""
    return synced_at is None or now - synced_at > stale_after
