"""The production profile (deploy/) on a real PostgreSQL server: Dagster's runs, event logs and sensor
state, and every pipeline table (HARMONY_DATABASE_URL), live in PostgreSQL; the code location is served by
`dagster api grpc` and a real `dagster-daemon` launches the runs its sensors request through the queue.
Then two acquisition runs and an enrichment run overlap on the same rows without a lock error."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, pipeline_environment, settle_acquisition, stop_process_group, running_postgres
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter, materialize
from dagster._serdes import deserialize_value
from postgres_server import PostgresServer, free_port, wait_for

from harmony_pipeline.definitions import collect_wiring
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
BIN = Path(sys.executable).parent
WAIT_SECONDS = 150
DEMAND = ["spotify_playlists", "playlist_tracks", "wanted_tracks"]
BUSY = "SELECT count(*) FROM downloads WHERE state IN ('enqueuing', 'downloading', 'succeeded', 'importing')"


@pytest.fixture
def postgres():
    with running_postgres(databases=("dagster", "harmony")) as server:
        yield server


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    stop_process_group(process, term_seconds=20)


def _tail(*logs: Path) -> str:
    return "\n".join(f"--- {log.name}\n" + log.read_text(errors="replace")[-2500:] for log in logs if log.exists())


def _sql(server: PostgresServer, sql: str, params=()) -> list[tuple]:
    return server.query("harmony", sql, params)


def _dagster_sql(server: PostgresServer, sql: str, params=()) -> list[tuple]:
    return server.query("dagster", sql, params)


def test_production_profile_on_postgres(postgres: PostgresServer, tmp_path: Path, monkeypatch):
    box = Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    grpc_port = free_port()
    with box:
        catalog = box.catalog
        artist = next(a for a in catalog.artists.values() if len(a.album_ids) >= 2)
        env = pipeline_environment(
            box, tmp_path, HARMONY_PLAYLISTS=catalog.small_playlist_id, HARMONY_WATCHLIST=artist.id,
            HARMONY_SENSOR_INTERVAL_SECONDS="2", DAGSTER_HOME=str(home),
            HARMONY_DATABASE_URL=postgres.url("harmony"), HARMONY_MAX_CONCURRENT_RUNS="4",
            HARMONY_CODE_SERVER_HOST="127.0.0.1", HARMONY_CODE_SERVER_PORT=str(grpc_port),
            **postgres.dagster_env("dagster"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        child_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        settings = load_settings()
        playlist_size = len(catalog.playlist_tracks(catalog.playlists[catalog.small_playlist_id]))

        # Demand, written by this process into PostgreSQL; Dagster's schema is created here first.
        with DagsterInstance.get() as instance:
            wiring = collect_wiring(settings)
            assert materialize(wiring.assets, resources=wiring.resources, selection=DEMAND,
                               instance=instance).success
            assert _sql(postgres, "SELECT count(*) FROM wanted_tracks WHERE state = 'wanted'") == [(playlist_size,)]

            # --- the deployment: a gRPC code server and the daemon, loaded through deploy/workspace.yaml
            server_log, daemon_log = tmp_path / "codeserver.log", tmp_path / "daemon.log"
            server = _spawn([str(BIN / "dagster"), "api", "grpc", "-m", "harmony_pipeline.definitions",
                             "-h", "127.0.0.1", "-p", str(grpc_port)], child_env, server_log)
            daemon = None
            try:
                wait_for(lambda: subprocess.run(
                    [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)],
                    capture_output=True, env=child_env, check=False).returncode == 0 or server.poll() is not None,
                    60, "code server healthy", interval=1)
                assert server.poll() is None, _tail(server_log)
                daemon = _spawn([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "deploy" / "workspace.yaml")],
                                child_env, daemon_log)

                def settled():
                    assert daemon.poll() is None and server.poll() is None, _tail(daemon_log, server_log)
                    library = _sql(postgres, "SELECT count(*) FROM library_tracks")[0][0]
                    tagged = _sql(postgres, "SELECT count(*) FROM track_metadata")
                    return (library == playlist_size and _sql(postgres, BUSY) == [(0,)]
                            and tagged == [(playlist_size,)])

                try:
                    wait_for(settled, WAIT_SECONDS, "playlist acquired and tagged by daemon-launched runs", 1)
                except TimeoutError as error:
                    pytest.fail(f"{error}\n{_tail(daemon_log, server_log)}")
                wait_for(lambda: instance.get_runs(filters=RunsFilter(
                    job_name="watchlist_job", statuses=[DagsterRunStatus.SUCCESS])), 60, "watchlist run", 1)
            finally:
                for process in (daemon, server):
                    if process is not None:
                        _stop(process)

            # Runs the sensors requested went through the queue: tagged by their sensor, one acquisition
            # run at a time, one watchlist run (for every due artist); all succeeded.
            acquisition = instance.get_runs(filters=RunsFilter(
                job_name="acquisition_job", tags={"dagster/sensor_name": "download_transfer_sensor"}))
            assert acquisition, _tail(daemon_log)
            assert all(r.status == DagsterRunStatus.SUCCESS for r in acquisition), \
                [(r.run_id, r.status) for r in acquisition]
            assert all(r.tags["harmony/queue"] == "acquisition" for r in acquisition)
            spans = sorted((instance.get_run_record_by_id(r.run_id).start_time,
                            instance.get_run_record_by_id(r.run_id).end_time) for r in acquisition)
            assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), spans
            watchlist = instance.get_runs(filters=RunsFilter(job_name="watchlist_job"))
            assert [r.tags["harmony/queue"] for r in watchlist] == ["watchlist"]
            enrichment = instance.get_runs(filters=RunsFilter(tags={"dagster/sensor_name": "enrichment_automation_sensor"}))
            assert enrichment and any(r.status == DagsterRunStatus.SUCCESS for r in enrichment)

        # … and every one of them is a row of Dagster's PostgreSQL database, with its events.
        launched = {r.run_id for r in acquisition + watchlist + enrichment}
        rows = {run_id for (run_id,) in _dagster_sql(postgres, "SELECT run_id FROM runs")}
        assert launched <= rows
        materialized = _dagster_sql(
            postgres, "SELECT count(DISTINCT run_id) FROM event_logs WHERE dagster_event_type = "
                      "'ASSET_MATERIALIZATION' AND asset_key = %s", [AssetKey("library_tracks").to_string()])
        assert materialized[0][0] >= 1
        # Sensor state: the new_release_sensor's cursor and ticks of the acquisition sensor.
        def state(name: str) -> list[tuple]:  # (selector_id, serialized InstigatorState) of one sensor
            return _dagster_sql(postgres, "SELECT selector_id, instigator_body FROM instigators "
                                          "WHERE instigator_body LIKE %s", [f'%"{name}"%'])

        bodies = state("new_release_sensor")
        assert bodies, "no new_release_sensor state in PostgreSQL"
        cursor = json.loads(deserialize_value(bodies[0][1]).instigator_data.cursor)
        assert cursor["checked"] == 1 and cursor["run_for"] == [artist.id]
        [(selector, _)] = state("download_transfer_sensor")
        ticks = _dagster_sql(postgres, "SELECT count(*) FROM job_ticks WHERE selector_id = %s", [selector])
        assert ticks[0][0] >= 1

        # Pipeline rows: in PostgreSQL, the activity of each run pointing at a run Dagster recorded there;
        # no DuckDB file was ever created.
        library_root = Path(settings.library_dir)
        paths = [p for (p,) in _sql(postgres, "SELECT path FROM library_tracks")]
        assert len(paths) == playlist_size and all((library_root / p).is_file() for p in paths)
        activity_runs = {r for (r,) in _sql(postgres, "SELECT DISTINCT run_id FROM activity_runs")}
        assert activity_runs and activity_runs <= rows
        assert _sql(postgres, "SELECT count(*) FROM artist_releases WHERE artist_id = %s", [artist.id])[0][0] >= 2
        assert not settings.duckdb_path.exists()

        # --- overlap: two acquisition runs and an enrichment run at once, outside the queue's limit.
        # New demand for the acquisition runs, covers and lyrics (off until now) for the enrichment run.
        others = [t for t in catalog.tracks.values()
                  if t.isrc not in {x.isrc for x in catalog.playlist_tracks(catalog.playlists[catalog.small_playlist_id])}]
        for track in others[:6]:
            catalog.add_playlist_track(catalog.small_playlist_id, track.id)
        with DagsterInstance.get() as instance:
            assert materialize(wiring.assets, resources=wiring.resources, selection=DEMAND, instance=instance).success
        wanted = _sql(postgres, "SELECT count(*) FROM wanted_tracks WHERE state = 'wanted'")[0][0]
        assert wanted >= 4
        overlap_env = {**child_env, "ENABLE_ARTWORK": "1", "ENABLE_LYRICS": "1"}
        logs = [tmp_path / f"overlap-{name}.log" for name in ("acquisition-1", "acquisition-2", "enrichment")]
        jobs = ["acquisition_job", "acquisition_job", "enrichment_job"]
        started = time.monotonic()
        # The acquisition runs take what download_transfer_sensor would select (the demand is written).
        selections = [["-o", "soulseek_matches,downloads,library_tracks"]] * 2 + [[]]
        processes = [_spawn([str(BIN / "dagster"), "job", "execute", "-m", "harmony_pipeline.definitions",
                             "-j", job, *selection], overlap_env, log)
                     for job, selection, log in zip(jobs, selections, logs)]
        try:
            for process in processes:
                process.wait(timeout=WAIT_SECONDS)
        finally:
            for process in processes:
                _stop(process)
        assert [p.returncode for p in processes] == [0, 0, 0], _tail(*logs)
        output = "\n".join(log.read_text(errors="replace") for log in logs).lower()
        assert "could not set lock" not in output and "conflicting lock" not in output
        assert "could not serialize" not in output and "deadlock" not in output
        with DagsterInstance.get() as instance:
            overlapping = instance.get_runs(limit=3)  # the newest three
            records = [instance.get_run_record_by_id(r.run_id) for r in overlapping]
            assert sorted(r.job_name for r in overlapping) == sorted(jobs)
            assert all(r.status == DagsterRunStatus.SUCCESS for r in overlapping)
            # They really ran at the same time: each started before the others ended.
            assert max(r.start_time for r in records) < min(r.end_time for r in records), \
                [(r.dagster_run.job_name, r.start_time, r.end_time) for r in records]
        assert time.monotonic() - started < WAIT_SECONDS

        # Every new track was searched once though two runs raced for it (claims), and the enrichment
        # run's covers and lyrics are rows in PostgreSQL.
        searches = [s.search_text for s in box.emulator("slskd")._searches.values()]
        assert len(searches) == len(set(searches)), sorted(searches)
        decided = dict(_sql(postgres, "SELECT status, count(*) FROM soulseek_matches GROUP BY status"))
        assert "searching" not in decided and sum(decided.values()) > playlist_size, decided
        with DagsterInstance.get() as instance:  # the transfers still in flight, imported
            settle_acquisition(instance)
        matched = _sql(postgres, "SELECT count(*) FROM soulseek_matches WHERE status = 'matched'")[0][0]
        assert _sql(postgres, "SELECT count(*) FROM library_tracks")[0][0] == matched > playlist_size
        artwork = _sql(postgres, "SELECT count(*) FROM track_artwork")[0][0]
        lyrics = _sql(postgres, "SELECT count(*) FROM track_lyrics")[0][0]
        assert artwork >= playlist_size and lyrics >= playlist_size
