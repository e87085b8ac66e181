"""The playlist sync's steps over the Spotify client and DuckDB: check every configured playlist (one request
when its snapshot is unchanged), decide each one's sync status, and read and store the items of the stale ones,
one transaction per playlist so a failure later loses nothing synced.

Rate limits that lift soon, outages and 5xx answers escape to the caller (the step retries); a refusal or a
long rate limit stops the checks and leaves the remaining playlists for the next sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.service_errors import escapes_item, stops_asking
from harmony_pipeline.spotify.liked_songs import is_liked, liked_playlist_row
from harmony_pipeline.spotify.playlist_sync import PlaylistTrack, diff_playlist, sync_status, tracks_from_items
from harmony_pipeline.spotify.client import SpotifyError, SpotifyForbidden

FORBIDDEN_REASON = "not owned by the authorised user"
PLAYLIST_COLUMNS = (
    "playlist_id", "name", "owner_id", "owner_name", "collaborative", "public", "snapshot_id",
    "items_snapshot_id", "track_count", "sync_status", "sync_status_reason", "synced_at", "checked_at",
)
TRACK_FIELDS = (
    "spotify_track_id", "position", "isrc", "title", "artist", "album", "album_id", "album_artist", "track_number",
    "disc_number", "album_total_tracks", "release_date", "duration_ms", "added_at",
)


def error_row(playlist_id: str, now: datetime, reason: str) -> dict:
    return {"playlist_id": playlist_id, "sync_status": "error", "sync_status_reason": reason, "checked_at": now}


def playlist_row(playlist: Mapping[str, Any], playlist_id: str, now: datetime) -> dict:
    """The checked columns of one GET /playlists/{id} answer."""
    owner = playlist.get("owner") or {}
    page = playlist.get("items") or playlist.get("tracks") or {}
    return {"playlist_id": playlist_id, "name": playlist.get("name"), "owner_id": owner.get("id"),
            "owner_name": owner.get("display_name"), "collaborative": bool(playlist.get("collaborative")),
            "public": playlist.get("public"), "snapshot_id": playlist.get("snapshot_id"),
            "track_count": page.get("total"), "checked_at": now}


def check_playlists(api, playlist_ids: Sequence[str], log) -> list[dict]:
    """One checked row per playlist: its name, owner and snapshot id, or the error that stopped its check."""
    checked = []
    for index, playlist_id in enumerate(playlist_ids):
        now = storage.utcnow()
        try:
            if is_liked(playlist_id):  # snapshot-less: the first page of /me/tracks stands in for one
                checked.append(liked_playlist_row(api.saved_tracks_page(), now))
                continue
            playlist = api.playlist(playlist_id)  # the one request an unchanged playlist costs
        except SpotifyError as error:
            if escapes_item(error):
                raise  # a 5xx, an outage or a limit that lifts soon: the step retries
            if stops_asking(error):  # asking for the others would prolong the limit or repeat the refusal
                log.warning(f"{error}; {len(playlist_ids) - index} playlists left for the next sync")
                return checked + [error_row(pid, now, str(error)) for pid in playlist_ids[index:]]
            log.warning(f"playlist {playlist_id}: {error}")
            checked.append(error_row(playlist_id, now, str(error)))
            continue
        checked.append(playlist_row(playlist, playlist_id, now))
    return checked


def playlist_rows(checked: Sequence[dict], previous: Mapping[str, dict]) -> list[dict]:
    """spotify_playlists rows of the checked playlists, their sync status decided against the stored rows."""
    rows = []
    for row in checked:
        before = previous.get(row["playlist_id"], {})
        if row.get("sync_status") == "error":
            rows.append({column: row.get(column, before.get(column)) for column in PLAYLIST_COLUMNS})
            continue
        if before.get("sync_status") == "forbidden" and before.get("snapshot_id") == row["snapshot_id"]:
            status, reason = "forbidden", FORBIDDEN_REASON  # not retried until the playlist changes
        elif row["snapshot_id"] and row["snapshot_id"] == before.get("items_snapshot_id"):
            status, reason = sync_status(
                snapshot_id=row["snapshot_id"], previous_snapshot_id=before.get("snapshot_id"), items_read=False)
        else:
            status, reason = "stale", "snapshot_changed" if before else "never_synced"
        synced_at = row["checked_at"] if status == "fresh" else before.get("synced_at")
        full = {**row, "items_snapshot_id": before.get("items_snapshot_id"), "sync_status": status,
                "sync_status_reason": reason, "synced_at": synced_at}
        rows.append({column: full.get(column) for column in PLAYLIST_COLUMNS})
    return rows


def save_playlists(database, checked: Sequence[dict]) -> list[dict]:
    """Decide and store the checked playlists' rows in one transaction; returns them."""
    with database.connect() as conn, storage.transaction(conn):
        previous = {row["playlist_id"]: row for row in storage.fetch_dicts(conn, "SELECT * FROM spotify_playlists")}
        rows = playlist_rows(checked, previous)
        storage.upsert(conn, "spotify_playlists", rows, key=["playlist_id"])
        storage.record_activity(conn, "playlists_checked", {"playlists": len(rows)})
    return rows


# --- the items of stale playlists ----------------------------------------------------------------------
@dataclass
class SyncReport:
    totals: dict[str, int] = field(
        default_factory=lambda: {"added": 0, "removed": 0, "revived": 0, "kept": 0, "skipped_items": 0})
    changes: list[dict] = field(default_factory=list)  # {playlist, change, track}


def playlists_to_sync(database) -> list[dict]:
    with database.connect(read_only=True) as conn:
        return storage.fetch_dicts(
            conn,
            "SELECT playlist_id, name, snapshot_id FROM spotify_playlists "
            "WHERE sync_status = 'stale' AND snapshot_id IS NOT NULL "
            "AND snapshot_id IS DISTINCT FROM items_snapshot_id ORDER BY playlist_id",
        )


def track_columns(track: PlaylistTrack) -> dict:
    return {**{name: getattr(track, name) for name in TRACK_FIELDS}, "artists": list(track.artists)}


def set_status(database, playlist_id: str, status: str, reason: str) -> None:
    """The playlist's status and its activity event together (one transaction: a kill leaves neither)."""
    with database.connect() as conn, storage.transaction(conn):
        conn.execute(
            "UPDATE spotify_playlists SET sync_status = ?, sync_status_reason = ? WHERE playlist_id = ?",
            [status, reason, playlist_id],
        )
        storage.record_activity(conn, "sync_failed", {"playlist": playlist_id, "status": status, "reason": reason})


def store_playlist_tracks(database, playlist_id: str, label: str, tracks: list[PlaylistTrack]):
    """The playlist's tracks compared with the stored ones and written in one transaction; the diff."""
    now = storage.utcnow()
    with database.connect() as conn, storage.transaction(conn):
        stored = dict(conn.execute(
            "SELECT spotify_track_id, removed_at IS NOT NULL FROM playlist_tracks WHERE playlist_id = ?",
            [playlist_id]).fetchall())
        diff = diff_playlist(stored, [t.spotify_track_id for t in tracks])
        rows = [{"playlist_id": playlist_id, **track_columns(t), "first_seen_at": now, "removed_at": None}
                for t in tracks]
        storage.upsert(conn, "playlist_tracks", rows, key=["playlist_id", "spotify_track_id"], keep=["first_seen_at"])
        if diff.removed:
            conn.execute(
                "UPDATE playlist_tracks SET removed_at = ? WHERE playlist_id = ? AND removed_at IS NULL "
                "AND spotify_track_id IN (SELECT unnest(?))",
                [now, playlist_id, diff.removed],
            )
        conn.execute(
            "UPDATE spotify_playlists SET items_snapshot_id = snapshot_id, sync_status = 'fresh', "
            "sync_status_reason = ?, synced_at = ?, track_count = ? WHERE playlist_id = ?",
            ["snapshot_changed" if stored else "synced_recently", now, len(tracks), playlist_id],
        )
        storage.record_activity(conn, "sync_completed", {
            "playlist": label, "added": len(diff.added), "removed": len(diff.removed), "revived": len(diff.revived)})
    return diff


def sync_playlists(api, database, to_sync: Sequence[dict], log) -> SyncReport:
    """Read and store the items of each stale playlist; a refused playlist is marked and skipped."""
    report = SyncReport()
    with database.connect() as conn:
        storage.record_activity(conn, "sync_started", {"playlists": [p["name"] or p["playlist_id"] for p in to_sync]})
    for playlist in to_sync:
        playlist_id = playlist["playlist_id"]
        label = playlist["name"] or playlist_id
        try:
            items = list(api.pages(api.saved_tracks_page()) if is_liked(playlist_id)
                         else api.playlist_items(playlist_id))
        except SpotifyForbidden:
            log.warning(f"playlist {label}: {FORBIDDEN_REASON} (403); not retried")
            set_status(database, playlist_id, "forbidden", FORBIDDEN_REASON)
            continue
        except SpotifyError as error:
            if escapes_item(error):
                raise
            set_status(database, playlist_id, "error", str(error))
            if stops_asking(error):
                log.warning(f"{error}; the remaining playlists wait for the next sync")
                break
            log.warning(f"playlist {label}: {error}")
            continue
        tracks, skipped = tracks_from_items(items)
        report.totals["skipped_items"] += skipped
        diff = store_playlist_tracks(database, playlist_id, label, tracks)
        for name in ("added", "removed", "revived", "kept"):
            report.totals[name] += len(getattr(diff, name))
        titles = {t.spotify_track_id: f"{t.artist} – {t.title}" for t in tracks}
        report.changes += [{"playlist": label, "change": change, "track": titles.get(t, t)}
                           for change in ("added", "revived", "removed") for t in getattr(diff, change)]
    return report
