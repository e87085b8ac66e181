"""Spotify playlists synced into DuckDB, incrementally by snapshot id (group `sources`)."""


from datetime import datetime

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, retry_on_short_rate_limit, activity_metadata, markdown_table
from harmony_pipeline import storage
from harmony_pipeline.spotify.liked_songs import is_liked, liked_playlist_row
from harmony_pipeline.service_errors import escapes_item
from harmony_pipeline.spotify.playlist_sync import diff_playlist, sync_status, tracks_from_items
from resources.database import HarmonyDatabase, PipelineSettings
from resources.spotify import (
    SpotifyError,
    SpotifyForbidden,
    SpotifyNotAuthorised,
    SpotifyRateLimited,
    SpotifyResource,
)

FORBIDDEN_REASON = "not owned by the authorised user"
PLAYLIST_COLUMNS = (
    "playlist_id", "name", "owner_id", "owner_name", "collaborative", "public", "snapshot_id",
    "items_snapshot_id", "track_count", "sync_status", "sync_status_reason", "synced_at", "checked_at",
)


@asset(
    group_name="sources",
    retry_policy=NETWORK_RETRY,
    description="Playlists named in HARMONY_PLAYLISTS: name, owner, snapshot id, sync status.",
)
def spotify_playlists(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    database: HarmonyDatabase,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    playlist_ids = pipeline.playlists
    if not playlist_ids:
        context.log.info("HARMONY_PLAYLISTS is empty: no playlist to sync")
        return MaterializeResult(metadata={"playlists": 0})
    api = spotify.get_api()
    checked = []
    with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
        for index, playlist_id in enumerate(playlist_ids):
            now = storage.utcnow()
            try:
                if is_liked(playlist_id):  # snapshot-less: the first page of /me/tracks stands in for one
                    checked.append(liked_playlist_row(api.saved_tracks_page(), now))
                    continue
                playlist = api.playlist(playlist_id)  # the one request an unchanged playlist costs
            except (SpotifyRateLimited, SpotifyNotAuthorised) as error:
                if escapes_item(error):
                    raise  # lifts soon: the step waits it out and retries
                # Asking again for the other playlists would only prolong the limit or repeat the refusal.
                context.log.warning(f"{error}; {len(playlist_ids) - index} playlists left for the next sync")
                checked += [_error_row(pid, now, str(error)) for pid in playlist_ids[index:]]
                break
            except SpotifyError as error:
                if escapes_item(error):
                    raise  # a 5xx or an outage: the step's retry policy tries again
                context.log.warning(f"playlist {playlist_id}: {error}")
                checked.append(_error_row(playlist_id, now, str(error)))
                continue
            owner = playlist.get("owner") or {}
            page = playlist.get("items") or playlist.get("tracks") or {}
            checked.append(
                {
                    "playlist_id": playlist_id,
                    "name": playlist.get("name"),
                    "owner_id": owner.get("id"),
                    "owner_name": owner.get("display_name"),
                    "collaborative": bool(playlist.get("collaborative")),
                    "public": playlist.get("public"),
                    "snapshot_id": playlist.get("snapshot_id"),
                    "track_count": page.get("total"),
                    "checked_at": now,
                }
            )

    with database.connect() as conn, storage.transaction(conn):
        previous = {
            row["playlist_id"]: row
            for row in storage.fetch_dicts(conn, "SELECT * FROM spotify_playlists")
        }
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
                    snapshot_id=row["snapshot_id"], previous_snapshot_id=before.get("snapshot_id"),
                    items_read=False,
                )
            else:
                status, reason = "stale", "snapshot_changed" if before else "never_synced"
            synced_at = row["checked_at"] if status == "fresh" else before.get("synced_at")
            full = {**row, "items_snapshot_id": before.get("items_snapshot_id"), "sync_status": status,
                    "sync_status_reason": reason, "synced_at": synced_at}
            rows.append({column: full.get(column) for column in PLAYLIST_COLUMNS})
        storage.upsert(conn, "spotify_playlists", rows, key=["playlist_id"])
        storage.record_activity(conn, "playlists_checked", {"playlists": len(rows)})

    preview = [
        {"playlist": r.get("name") or r["playlist_id"], "tracks": r.get("track_count"),
         "status": r["sync_status"], "reason": r.get("sync_status_reason")}
        for r in rows
    ]
    return MaterializeResult(
        metadata={
            "playlists": len(rows),
            "spotify_requests": api.requests_made,
            "spotify_seconds": round(api.seconds_spent, 2),
            "to_sync": sum(1 for r in rows if r["sync_status"] == "stale"),
            "errors": sum(1 for r in rows if r["sync_status"] == "error"),
            "preview": MetadataValue.md(markdown_table(preview)),
            **activity_metadata(context, database),
        }
    )


def _error_row(playlist_id: str, now: datetime, reason: str) -> dict:
    return {"playlist_id": playlist_id, "sync_status": "error", "sync_status_reason": reason,
            "checked_at": now}


@asset(
    group_name="sources",
    deps=[spotify_playlists],
    retry_policy=NETWORK_RETRY,
    description="Tracks of each synced playlist; removed tracks are marked with a timestamp, never deleted.",
)
def playlist_tracks(
    context: AssetExecutionContext, spotify: SpotifyResource, database: HarmonyDatabase
) -> MaterializeResult:
    with database.connect(read_only=True) as conn:
        to_sync = storage.fetch_dicts(
            conn,
            "SELECT playlist_id, name, snapshot_id FROM spotify_playlists "
            "WHERE sync_status = 'stale' AND snapshot_id IS NOT NULL "
            "AND snapshot_id IS DISTINCT FROM items_snapshot_id ORDER BY playlist_id",
        )
    if not to_sync:
        return MaterializeResult(metadata={"playlists_synced": 0, "spotify_requests": 0})
    api = spotify.get_api()
    with database.connect() as conn:
        storage.record_activity(conn, "sync_started", {"playlists": [p["name"] or p["playlist_id"] for p in to_sync]})
    totals = {"added": 0, "removed": 0, "revived": 0, "kept": 0, "skipped_items": 0}
    changes: list[dict] = []
    with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
        for playlist in to_sync:
            playlist_id = playlist["playlist_id"]
            label = playlist["name"] or playlist_id
            try:
                items = list(api.pages(api.saved_tracks_page()) if is_liked(playlist_id)
                             else api.playlist_items(playlist_id))
            except SpotifyForbidden:
                context.log.warning(f"playlist {label}: {FORBIDDEN_REASON} (403); not retried")
                _set_status(database, playlist_id, "forbidden", FORBIDDEN_REASON)
                continue
            except (SpotifyRateLimited, SpotifyNotAuthorised) as error:
                if escapes_item(error):
                    raise
                context.log.warning(f"{error}; the remaining playlists wait for the next sync")
                _set_status(database, playlist_id, "error", str(error))
                break
            except SpotifyError as error:
                if escapes_item(error):
                    raise
                context.log.warning(f"playlist {label}: {error}")
                _set_status(database, playlist_id, "error", str(error))
                continue
            tracks, skipped = tracks_from_items(items)
            totals["skipped_items"] += skipped
            now = storage.utcnow()
            with database.connect() as conn, storage.transaction(conn):
                stored = dict(
                    conn.execute(
                        "SELECT spotify_track_id, removed_at IS NOT NULL FROM playlist_tracks WHERE playlist_id = ?",
                        [playlist_id],
                    ).fetchall()
                )
                diff = diff_playlist(stored, [t.spotify_track_id for t in tracks])
                rows = [
                    {"playlist_id": playlist_id, **_track_columns(t), "first_seen_at": now, "removed_at": None}
                    for t in tracks
                ]
                storage.upsert(conn, "playlist_tracks", rows, key=["playlist_id", "spotify_track_id"],
                               keep=["first_seen_at"])
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
                storage.record_activity(
                    conn, "sync_completed",
                    {"playlist": label, "added": len(diff.added), "removed": len(diff.removed),
                     "revived": len(diff.revived)},
                )
            for name in ("added", "removed", "revived", "kept"):
                totals[name] += len(getattr(diff, name))
            titles = {t.spotify_track_id: f"{t.artist} – {t.title}" for t in tracks}
            changes += [{"playlist": label, "change": "added", "track": titles[t]} for t in diff.added]
            changes += [{"playlist": label, "change": "revived", "track": titles[t]} for t in diff.revived]
            changes += [{"playlist": label, "change": "removed", "track": t} for t in diff.removed]

    with database.connect(read_only=True) as conn:
        present = conn.execute("SELECT count(*) FROM playlist_tracks WHERE removed_at IS NULL").fetchone()[0]
    return MaterializeResult(
        metadata={
            "playlists_synced": len(to_sync),
            "tracks_present": present,
            **totals,
            "spotify_requests": api.requests_made,
            "spotify_seconds": round(api.seconds_spent, 2),
            "changes": MetadataValue.md(markdown_table(changes[:50]) if changes else "no changes"),
            **activity_metadata(context, database),
        }
    )


def _set_status(database: HarmonyDatabase, playlist_id: str, status: str, reason: str) -> None:
    with database.connect() as conn:
        conn.execute(
            "UPDATE spotify_playlists SET sync_status = ?, sync_status_reason = ? WHERE playlist_id = ?",
            [status, reason, playlist_id],
        )
        storage.record_activity(conn, "sync_failed", {"playlist": playlist_id, "status": status,
                                                      "reason": reason})


def _track_columns(track) -> dict:
    return {
        "spotify_track_id": track.spotify_track_id,
        "position": track.position,
        "isrc": track.isrc,
        "title": track.title,
        "artist": track.artist,
        "artists": list(track.artists),
        "album": track.album,
        "album_id": track.album_id,
        "album_artist": track.album_artist,
        "track_number": track.track_number,
        "disc_number": track.disc_number,
        "album_total_tracks": track.album_total_tracks,
        "release_date": track.release_date,
        "duration_ms": track.duration_ms,
        "added_at": track.added_at,
    }


def wiring(settings, workers):
    """Playlist assets and the 15-minute sync schedule (which also acquires what the sync added)."""
    from dagster import AssetSelection, Definitions

    from sensors.schedules import playlist_sync_job, playlist_sync_schedule

    job = playlist_sync_job(
        AssetSelection.assets("library_scan", "wanted_tracks", "soulseek_matches", "downloads", "library_tracks"))
    return Definitions(assets=[spotify_playlists, playlist_tracks], jobs=[job],
                       schedules=[playlist_sync_schedule(job, workers.schedule_status)])
