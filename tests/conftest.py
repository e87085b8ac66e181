"""Shared fixtures: the sandbox on loopback, an environment pointing the pipeline at it inside a temporary
folder, and a real (temporary) Dagster instance using the repository's dagster.yaml settings."""

from __future__ import annotations

import os
from contextlib import contextmanager
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harmony_pipeline.sandbox import Sandbox  # noqa: E402

# Variables the pipeline reads; cleared in every test so the developer's shell cannot leak in.
PIPELINE_VARIABLES = (
    "HARMONY_DATA_DIR", "HARMONY_DUCKDB_PATH", "HARMONY_LIBRARY_DIR", "HARMONY_INBOX_DIR",
    "HARMONY_PATH_TEMPLATE", "HARMONY_PLAYLISTS", "HARMONY_WATCHLIST", "SPOTIFY_CLIENT_ID",
    "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI", "SPOTIFY_REFRESH_TOKEN", "SPOTIFY_AUTH_URL",
    "SPOTIFY_API_URL", "SPOTIFY_TOKEN_URL", "SLSKD_URL", "SLSKD_API_KEY", "SLSKD_DOWNLOADS_DIR",
    "SLSKD_REMOTE_DOWNLOADS_DIR", "LRCLIB_URL", "MUSICBRAINZ_URL", "COVERART_URL", "ENABLE_ARTWORK",
    "ENABLE_LYRICS", "ARTWORK_MAX_BYTES", "ARTWORK_MIN_EDGE", "HARMONY_DISABLE_WORKERS",
    "RETRY_MAX_ATTEMPTS", "RETRY_BASE_SECONDS", "RETRY_JITTER_PCT", "WATCHLIST_INTERVAL",
    "HARMONY_DOWNLOAD_WAIT_SECONDS", "HARMONY_SENSOR_INTERVAL_SECONDS", "SLSKD_SEARCH_LIMIT", "DAGSTER_HOME",
    "ACOUSTID_URL", "ACOUSTID_API_KEY", "HARMONY_EXTRA_LIBRARY_DIRS", "HARMONY_PLAYLIST_DIR", "HARMONY_QUALITY",
    "HARMONY_DATABASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PIPELINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox") as running:
        yield running


def pipeline_environment(sandbox: Sandbox, root: Path, **overrides: str) -> dict[str, str]:
    """The environment a user would set, pointing at the sandbox, with short waits for tests."""
    env = {
        **sandbox.env,
        "HARMONY_DATA_DIR": str(root / "data"),
        "HARMONY_LIBRARY_DIR": str(root / "library"),
        "RETRY_BASE_SECONDS": "0.05",
        "RETRY_JITTER_PCT": "0.2",
        "HARMONY_SENSOR_INTERVAL_SECONDS": "5",
        "SLSKD_SEARCH_LIMIT": "1000/60",
    }
    env.update(overrides)
    return env


@pytest.fixture
def harmony_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = pipeline_environment(sandbox, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path):
    from dagster import DagsterInstance

    with DagsterInstance.get() as dagster_instance:
        yield dagster_instance


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    """os.environ plus `env`, for `dagster` subprocesses."""
    return {**os.environ, **env}


def materialize_assets(names: list[str], instance, raise_on_error: bool = True):
    """Materialize the named assets of the real definitions (settings from the environment)."""
    from dagster import materialize

    from harmony_pipeline.definitions import collect_wiring
    from harmony_pipeline.settings import load_settings

    wiring = collect_wiring(load_settings())
    return materialize(wiring.assets, resources=wiring.resources, instance=instance, selection=names,
                       raise_on_error=raise_on_error)


def settle_acquisition(instance, max_runs: int = 12, timeout: float = 120.0) -> int:
    """Run what download_transfer_sensor would request, until no acquisition work is left or in flight.

    Uses the sensor's own work detection and asset selection; waits (without a run) while transfers
    are on slskd or a retry's backoff is running. Returns the number of runs made.
    """
    import time

    from harmony_pipeline import storage
    from harmony_pipeline.acquisition.state import pending_download_work
    from harmony_pipeline.definitions import build_resources
    from harmony_pipeline.settings import load_settings
    from resources.slskd import SlskdResource
    from sensors.downloads import acquisition_selection, pending_work

    settings = load_settings()
    database = build_resources(settings)["database"]
    slskd = SlskdResource(url=settings.slskd_url, api_key=os.environ.get("SLSKD_API_KEY"))
    runs, deadline = 0, time.monotonic() + timeout
    while True:
        selection = acquisition_selection(pending_work(database, slskd))
        if selection:
            runs += 1
            assert runs <= max_runs, f"acquisition still has work after {max_runs} runs: {selection}"
            result = materialize_assets(selection, instance)
            assert result.success
            continue
        with database.connect(read_only=True) as conn:
            in_flight, next_due = pending_download_work(conn, storage.utcnow())
        if not in_flight and next_due is None:
            return runs
        assert time.monotonic() < deadline, f"acquisition not settled after {timeout}s"
        time.sleep(0.2)


def stop_process_group(process, term_seconds: float = 15) -> None:
    """SIGTERM, then SIGKILL, to a process started with start_new_session=True and everything it started
    (a daemon's code server and run workers share its process group)."""
    import signal
    import subprocess

    for sig, wait in ((signal.SIGTERM, term_seconds), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def missing_prerequisite(reason: str) -> None:
    """A system package a test needs is absent: a skip on a developer's machine, a failure under `.ci/run`
    (which installs every one of them and sets CI=1), so CI never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def running_postgres(databases: tuple[str, ...] = ()):
    """A throwaway PostgreSQL server (tests/postgres_server.py) from Debian's package."""
    from postgres_server import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        missing_prerequisite("PostgreSQL server binaries not found (apt-get install postgresql; .ci/run installs it)")
    with PostgresServer(bin_dir, databases=databases) as server:
        yield server
