"""new_release_sensor under a real `dagster-daemon run`: a release published on the sandbox's Spotify
is detected by the daemon's sensor tick and acquired by the run it requests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, pipeline_environment, stop_process_group
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, materialize

from harmony_pipeline import storage
from harmony_pipeline.cli.main import main as harmony
from harmony_pipeline.definitions import collect_wiring
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings

WAIT_SECONDS = 120
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _rows(sql: str, params=()) -> list[tuple]:
    # Waits out the lock of a run the daemon started, as every reader in the pipeline does.
    with storage.connect(load_settings().duckdb_path, read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _start_daemon(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: harmony_pipeline.definitions\n"
        f"      working_directory: {REPO}\n", encoding="utf-8")
    daemon = Path(sys.executable).parent / "dagster-daemon"
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(daemon), "run", "-w", str(workspace)], cwd=home, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    stop_process_group(process, term_seconds=15)


def _wait_for_watchlist_run(instance: DagsterInstance, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "dagster-daemon exited:\n" + log.read_text(errors="replace")[-3000:]
        runs = instance.get_runs(filters=RunsFilter(job_name="watchlist_job"))
        if runs and runs[0].status in FINISHED:
            return runs[0]
        time.sleep(1)
    pytest.fail(f"no finished watchlist run after {WAIT_SECONDS}s:\n" + log.read_text(errors="replace")[-3000:])


def _wait_for_transfers_settled(process, log: Path) -> None:
    """Until the daemon's download_transfer_sensor runs have left nothing in flight or awaiting import."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "dagster-daemon exited:\n" + log.read_text(errors="replace")[-3000:]
        busy = _rows("SELECT count(*) FROM downloads WHERE state IN "
                     "('enqueuing', 'downloading', 'succeeded', 'importing')")[0][0]
        if not busy and _rows("SELECT count(*) FROM library_tracks")[0][0]:
            return
        time.sleep(1)
    pytest.fail(f"transfers not settled after {WAIT_SECONDS}s:\n" + log.read_text(errors="replace")[-3000:])


@pytest.mark.integration
def test_daemon_sensor_acquires_a_new_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    box = Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.2, slskd_transfer_step_seconds=0.02)
    artist = next(a for a in box.catalog.artists.values() if len(a.album_ids) >= 2)
    # Shared on Soulseek from the start (peers share what the catalog holds when slskd starts),
    # published on Spotify only after the artist's discography was recorded.
    album = box.catalog.add_album(artist.id, name="Brand New Day", track_count=6, release_date="2026-11-20")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    with box:
        with box.catalog.lock:
            del box.catalog.albums[album.id]
        env = pipeline_environment(box, tmp_path, HARMONY_PLAYLISTS="", HARMONY_SENSOR_INTERVAL_SECONDS="2",
                                   WATCHLIST_INTERVAL="1", DAGSTER_HOME=str(home))
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        # The baseline in this process: the artist's existing releases become known, nothing wanted.
        assert harmony(["--quiet", "watch", "add", artist.id]) == 0
        wiring = collect_wiring(load_settings())
        assert materialize(wiring.assets, resources=wiring.resources, selection=["artist_releases"],
                           instance=DagsterInstance.ephemeral()).success
        assert _rows("SELECT count(*) FROM artist_releases WHERE acquire") == [(0,)]

        with box.catalog.lock:
            box.catalog.albums[album.id] = album
        log = tmp_path / "daemon.log"
        # The instance's SQLite storage is created here first: the daemon and its code server creating
        # it at the same moment can record two schema heads and fail to load.
        with DagsterInstance.get() as instance:
            process = _start_daemon(home, env, log)
            try:
                run = _wait_for_watchlist_run(instance, process, log)
                assert run.status == DagsterRunStatus.SUCCESS, log.read_text(errors="replace")[-3000:]
                assert run.tags["harmony/trigger"] == "new_release_sensor"
                if "slskd" in box.servers:  # transfers finishing later: download_transfer_sensor's runs
                    _wait_for_transfers_settled(process, log)
            finally:
                _stop(process)

        album_tracks = {t.isrc for t in box.catalog.album_tracks(album)}
        wanted = dict(_rows("SELECT isrc, state FROM wanted_tracks WHERE album_id = ?", [album.id]))
        assert set(wanted) == album_tracks
        assert _rows("SELECT count(*) FROM activity_events WHERE type = 'new_release_detected'") == [(1,)]
        if "slskd" in box.servers:
            library = Path(load_settings().library_dir)
            paths = [p for (p,) in _rows("SELECT path FROM library_tracks WHERE album_id = ?", [album.id])]
            assert paths and all((library / p).is_file() for p in paths)
            assert sum(state == "in_library" for state in wanted.values()) == len(paths)
