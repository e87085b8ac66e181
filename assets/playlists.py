"""Spotify playlists synced into DuckDB, incrementally by snapshot id (group `sources`).

The steps live in harmony_pipeline.spotify.playlist_flow; these assets call them and describe the outcome.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.common import NETWORK_RETRY, activity_metadata, retry_on_short_rate_limit, row_count, table_preview
from harmony_pipeline.spotify.playlist_flow import (
    check_playlists,
    playlists_to_sync,
    save_playlists,
    sync_playlists,
)
from resources.database import HarmonyDatabase, PipelineSettings
from resources.spotify import SpotifyResource

OWNERS = ["team:sources"]


@asset(
    group_name="sources",
    retry_policy=NETWORK_RETRY,
    kinds={"spotify", "duckdb"},
    owners=OWNERS,
    tags={"concern": "spotify"},
    description="Playlists named in HARMONY_PLAYLISTS: name, owner, snapshot id, sync status.",
)
def spotify_playlists(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    database: HarmonyDatabase,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    if not pipeline.playlists:
        context.log.info("HARMONY_PLAYLISTS is empty: no playlist to sync")
        return MaterializeResult(metadata={"playlists": 0})
    api = spotify.get_api()
    with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
        checked = check_playlists(api, pipeline.playlists, context.log)
    rows = save_playlists(database, checked)
    preview = [{"playlist": r.get("name") or r["playlist_id"], "tracks": r.get("track_count"),
                "status": r["sync_status"], "reason": r.get("sync_status_reason")} for r in rows]
    return MaterializeResult(
        metadata={
            "playlists": len(rows),
            "spotify_requests": api.requests_made,
            "spotify_seconds": round(api.seconds_spent, 2),
            "to_sync": sum(1 for r in rows if r["sync_status"] == "stale"),
            "errors": sum(1 for r in rows if r["sync_status"] == "error"),
            "preview": table_preview(preview),
            **row_count(database, "spotify_playlists"),
            **activity_metadata(context, database),
        }
    )


@asset(
    group_name="sources",
    deps=[spotify_playlists],
    retry_policy=NETWORK_RETRY,
    kinds={"spotify", "duckdb"},
    owners=OWNERS,
    tags={"concern": "spotify"},
    description="Tracks of each synced playlist; removed tracks are marked with a timestamp, never deleted.",
)
def playlist_tracks(
    context: AssetExecutionContext, spotify: SpotifyResource, database: HarmonyDatabase
) -> MaterializeResult:
    to_sync = playlists_to_sync(database)
    if not to_sync:
        return MaterializeResult(metadata={"playlists_synced": 0, "spotify_requests": 0})
    api = spotify.get_api()
    with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
        report = sync_playlists(api, database, to_sync, context.log)
    with database.connect(read_only=True) as conn:
        present = conn.execute("SELECT count(*) FROM playlist_tracks WHERE removed_at IS NULL").fetchone()[0]
    return MaterializeResult(
        metadata={
            "playlists_synced": len(to_sync),
            "tracks_present": present,
            **report.totals,
            "spotify_requests": api.requests_made,
            "spotify_seconds": round(api.seconds_spent, 2),
            "changes": table_preview(report.changes),
            **row_count(database, "playlist_tracks"),
            **activity_metadata(context, database),
        }
    )


def wiring(settings, workers):
    """Playlist assets and the 15-minute sync schedule (which also acquires what the sync added)."""
    from dagster import AssetSelection, Definitions

    from sensors.schedules import playlist_sync_job, playlist_sync_schedule

    job = playlist_sync_job(
        AssetSelection.assets("library_scan", "wanted_tracks", "soulseek_matches", "downloads", "library_tracks"))
    return Definitions(assets=[spotify_playlists, playlist_tracks], jobs=[job],
                       schedules=[playlist_sync_schedule(job, workers.schedule_status)])
