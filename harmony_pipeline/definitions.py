"""The code location: `harmony_pipeline.definitions:defs`.

Each concern (playlists, ingest, watchlist, acquisition, enrichment, operations checks) contributes its
assets, checks, sensors and schedules as a `Definitions` from a `wiring(settings, workers)` function (see
harmony_pipeline/wiring.py); `Definitions.merge` combines them and raises on a clashing resource key. Flags decide what is loaded: ENABLE_ARTWORK / ENABLE_LYRICS add the
artwork / lyrics assets, and HARMONY_DISABLE_WORKERS=1 loads every sensor and schedule STOPPED.
One `wiring_summary` line is logged at load.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

from dagster import Definitions, EnvVar, in_process_executor

from harmony_pipeline.settings import Settings, load_settings
from harmony_pipeline.wiring import Workers
from resources.acoustid import AcoustIdResource
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.musicbrainz import MusicBrainzResource
from resources.slskd import SlskdResource
from resources.spotify import SpotifyResource

from assets import acquisition, checks, enrichment, ingest, library, playlists, watchlist

CONCERN_MODULES = (playlists, ingest, watchlist, acquisition, enrichment, library, checks)

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
            watchlist_interval=settings.watchlist_interval,
            search_limit=settings.slskd_search_limit.searches,
            search_window_seconds=settings.slskd_search_limit.window_seconds,
            artwork_max_bytes=settings.artwork_max_bytes,
            artwork_min_edge=settings.artwork_min_edge,
            quality=settings.quality,
        ),
        "folders": LibraryFolders(
            library_dir=str(settings.library_dir),
            data_dir=str(settings.data_dir),
            path_template=settings.path_template,
            downloads_dir=str(settings.slskd_downloads_dir) if settings.slskd_downloads_dir else None,
            remote_downloads_dir=settings.slskd_remote_downloads_dir,
            extra_library_dirs=[str(d) for d in settings.extra_library_dirs],
            playlist_dir=str(settings.playlist_files_dir),
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
        # MusicBrainz serves enrichment (credits) and acquisition (ISRC → recordings for verification).
        "musicbrainz": MusicBrainzResource(url=settings.musicbrainz_url),
        "acoustid": AcoustIdResource(url=settings.acoustid_url, api_key=_secret("ACOUSTID_API_KEY")),
    }


@lru_cache(maxsize=8)
def collect_wiring(settings: Settings) -> Definitions:
    """Every concern's Definitions for these settings merged with the shared resources and executor,
    built once per process and settings (wiring reads nothing but its settings): the module's `defs`,
    `harmony status` and tests share it. Read it only. `Definitions.merge` raises
    DagsterInvariantViolationError when two parts bring different resources under one key."""
    workers = Workers(disabled=settings.disable_workers)
    shared = Definitions(resources=build_resources(settings), executor=in_process_executor)
    return Definitions.merge(shared, *(module.wiring(settings, workers) for module in CONCERN_MODULES))


def build_definitions(settings: Settings) -> Definitions:
    defs = collect_wiring(settings)
    log.info(wiring_summary(defs, settings))
    return defs


def wiring_summary(wiring: Definitions, settings: Settings) -> str:
    asset_names = sorted(key.to_user_string() for a in wiring.assets for key in a.keys)
    state = "stopped" if settings.disable_workers else "running"
    return (
        f"wiring_summary assets=[{', '.join(asset_names)}] "
        f"sensors=[{', '.join(sorted(s.name for s in wiring.sensors))}] "
        f"schedules=[{', '.join(sorted(s.name for s in wiring.schedules))}] "
        f"workers={state} ENABLE_ARTWORK={settings.enable_artwork} ENABLE_LYRICS={settings.enable_lyrics}"
    )


defs = build_definitions(load_settings())
