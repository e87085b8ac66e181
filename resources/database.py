"""The DuckDB file and the library folders as Dagster resources."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, InitResourceContext

from harmony_pipeline import storage
from harmony_pipeline.claims import process_token


class HarmonyDatabase(ConfigurableResource):
    """The embedded DuckDB file (HARMONY_DUCKDB_PATH). Open it only around SQL."""

    path: str

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Activity events recorded during this run carry its id (storage.record_activity), and the run
        # carries this process's token, so a sensor can tell when the process died (sensors/run_health.py).
        if context.run is None:  # direct invocation (tests of checks): no run to tag
            return
        storage.current_run_id.set(context.run.run_id)
        if context.instance is not None:
            context.instance.add_run_tags(context.run.run_id, {"harmony/process": process_token()})

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with storage.connect(Path(self.path), read_only=read_only) as conn:
            yield conn


class LibraryFolders(ConfigurableResource):
    """Where files live: the library, slskd's downloads (as seen here and by slskd), the data folder."""

    library_dir: str
    data_dir: str
    path_template: str
    downloads_dir: str | None = None
    remote_downloads_dir: str | None = None
    extra_library_dirs: list[str] = []  # scanned by library_scan, never written
    playlist_dir: str | None = None  # the .m3u8 files (None: <library>/Playlists)

    @property
    def library(self) -> Path:
        return Path(self.library_dir)

    @property
    def library_roots(self) -> list[Path]:
        return [self.library, *(Path(d) for d in self.extra_library_dirs)]

    @property
    def playlists(self) -> Path:
        return Path(self.playlist_dir) if self.playlist_dir else self.library / "Playlists"

    @property
    def quarantine(self) -> Path:
        return Path(self.data_dir) / "quarantine"

    @property
    def artwork_cache(self) -> Path:
        return Path(self.data_dir) / "artwork"


class PipelineSettings(ConfigurableResource):
    """The non-secret behaviour settings assets need (from harmony_pipeline.settings)."""

    playlists: list[str] = []
    watchlist: list[str] = []
    retry_max_attempts: int = 10
    retry_base_seconds: float = 60.0
    retry_jitter_pct: float = 0.2
    watchlist_interval: int = 86_400
    search_limit: int = 34
    search_window_seconds: int = 220
    artwork_max_bytes: int = 10_485_760
    artwork_min_edge: int = 1000
    quality: str | None = None  # HARMONY_QUALITY, validated by settings (harmony_pipeline/library/quality.py)
