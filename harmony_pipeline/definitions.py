"""The code location: `harmony_pipeline.definitions:defs`.

Flags decide what is loaded: ENABLE_ARTWORK / ENABLE_LYRICS add the artwork / lyrics assets, and
HARMONY_DISABLE_WORKERS=1 loads every sensor and schedule STOPPED. One `wiring_summary` line is logged.
"""

from __future__ import annotations

import logging
import os

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    in_process_executor,
)

from assets import acquisition, playlists
from harmony_pipeline.settings import Settings, load_settings
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.slskd import SlskdResource
from resources.spotify import SpotifyResource
from sensors.schedules import playlist_sync_job, playlist_sync_schedule

log = logging.getLogger("harmony_pipeline")
if not log.handlers:  # the summary must show in `dagster dev` output and code-server logs
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)


def _secret(name: str):
    """Secrets reach resources as EnvVar, so Dagster never shows or stores their values."""
    return EnvVar(name) if os.environ.get(name, "").strip() else None


def build_resources(settings: Settings) -> dict:
    return {
        "database": HarmonyDatabase(path=str(settings.duckdb_path)),
        "pipeline": PipelineSettings(
            playlists=list(settings.playlists),
            watchlist=list(settings.watchlist),
            retry_max_attempts=settings.retry_max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_jitter_pct=settings.retry_jitter_pct,
            download_wait_seconds=settings.download_wait_seconds,
            watchlist_interval=settings.watchlist_interval,
            search_limit=settings.slskd_search_limit.searches,
            search_window_seconds=settings.slskd_search_limit.window_seconds,
            artwork_max_bytes=settings.artwork_max_bytes,
            artwork_min_edge=settings.artwork_min_edge,
        ),
        "folders": LibraryFolders(
            library_dir=str(settings.library_dir),
            data_dir=str(settings.data_dir),
            path_template=settings.path_template,
            downloads_dir=str(settings.slskd_downloads_dir) if settings.slskd_downloads_dir else None,
            remote_downloads_dir=settings.slskd_remote_downloads_dir,
        ),
        "spotify": SpotifyResource(
            client_id=_secret("SPOTIFY_CLIENT_ID"),
            client_secret=_secret("SPOTIFY_CLIENT_SECRET"),
            refresh_token=_secret("SPOTIFY_REFRESH_TOKEN"),
            api_url=settings.spotify_api_url,
            token_url=settings.spotify_token_url,
            auth_url=settings.spotify_auth_url,
            redirect_uri=settings.spotify_redirect_uri,
            token_cache_path=str(settings.token_cache_path),
        ),
        "slskd": SlskdResource(url=settings.slskd_url, api_key=_secret("SLSKD_API_KEY")),
    }


def build_definitions(settings: Settings) -> Definitions:
    schedule_status = DefaultScheduleStatus.STOPPED if settings.disable_workers else DefaultScheduleStatus.RUNNING
    sensor_status = DefaultSensorStatus.STOPPED if settings.disable_workers else DefaultSensorStatus.RUNNING
    del sensor_status  # sensors arrive with acquisition, ingest and watchlist

    acquisition_assets = [acquisition.wanted_tracks, acquisition.soulseek_matches, acquisition.downloads,
                          acquisition.library_tracks]
    assets = [playlists.spotify_playlists, playlists.playlist_tracks, *acquisition_assets]
    asset_checks: list = []
    sync_job = playlist_sync_job(AssetSelection.assets(*acquisition_assets))
    schedules = [playlist_sync_schedule(sync_job, schedule_status)]
    sensors: list = []

    defs = Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=[sync_job],
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(settings),
        executor=in_process_executor,
    )
    log.info(wiring_summary(assets, sensors, schedules, settings))
    return defs


def wiring_summary(assets: list, sensors: list, schedules: list, settings: Settings) -> str:
    asset_names = sorted(key.to_user_string() for a in assets for key in a.keys)
    state = "stopped" if settings.disable_workers else "running"
    return (
        f"wiring_summary assets=[{', '.join(asset_names)}] "
        f"sensors=[{', '.join(sorted(s.name for s in sensors))}] "
        f"schedules=[{', '.join(sorted(s.name for s in schedules))}] "
        f"workers={state} ENABLE_ARTWORK={settings.enable_artwork} ENABLE_LYRICS={settings.enable_lyrics}"
    )


defs = build_definitions(load_settings())
