"""Schedules: the playlist sync every 15 minutes, the nightly enrichment retry."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

PLAYLIST_SYNC_CRON = "*/15 * * * *"


def playlist_sync_job(acquisition_selection: AssetSelection):
    """Sync playlists, then take their tracks through acquisition in the same run."""
    return define_asset_job(
        "playlist_sync_job",
        selection=AssetSelection.assets("spotify_playlists", "playlist_tracks") | acquisition_selection,
        description="Sync Spotify playlists and acquire their new tracks.",
    )


def playlist_sync_schedule(job, status: DefaultScheduleStatus) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="playlist_sync_schedule",
        job=job,
        cron_schedule=PLAYLIST_SYNC_CRON,
        default_status=status,
        description="Playlist sync every 15 minutes (one Spotify request per unchanged playlist).",
    )
