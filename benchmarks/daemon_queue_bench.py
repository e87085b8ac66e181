"""The production profile's run queue under load (docs/scale.md): how fast `dagster-daemon` launches runs
and how the queue holds them, on a real PostgreSQL server.

A throwaway PostgreSQL (tests/postgres_server.py), deploy/dagster.yaml as the instance, a gRPC code
server and a `dagster-daemon` loaded through deploy/workspace.yaml, with pipeline state on PostgreSQL
too (HARMONY_DATABASE_URL). `--runs` runs are submitted at once as `dagster job launch` would (through
the QueuedRunCoordinator): a mix of acquisition_job (tag-limited to one at a time) and enrichment_job,
both with nothing to do (no playlist, an empty library), so what is measured is the queue, the launcher
and the run workers' start-up, not the pipeline. Sensors and schedules are off (HARMONY_DISABLE_WORKERS).

Reported, from the run records in PostgreSQL: runs launched per minute (first start to last start),
the whole batch's wall time, queue wait (submit → start) median and maximum, the most runs in progress
at once and the most acquisition runs in progress at once (the limits are 4 and 1).

    .venv/bin/python benchmarks/daemon_queue_bench.py --runs 100 --acquisition 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, emit

sys.path.insert(0, str(REPO / "tests"))
from postgres_server import PostgresServer, find_bin_dir, free_port, wait_for

BIN = Path(sys.executable).parent
MAX_CONCURRENT = 4


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def submit(instance, workspace_file: Path, jobs: list[str]) -> list[str]:
    """Create and submit the runs as `dagster job launch` does (dagster's CLI helpers, one workspace)."""
    from dagster._cli.job import _create_run
    from dagster._cli.workspace.cli_target import (
        WorkspaceOpts,
        get_code_location_from_workspace,
        get_remote_job_from_remote_repo,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )
    from dagster.version import __version__

    run_ids = []
    with get_workspace_from_cli_opts(instance, version=__version__,
                                     workspace_opts=WorkspaceOpts(workspace=(str(workspace_file),))) as workspace:
        location = get_code_location_from_workspace(workspace, "harmony_pipeline")
        repo = get_remote_repository_from_code_location(location, None)
        for job_name in jobs:
            remote_job = get_remote_job_from_remote_repo(repo, job_name)
            run = _create_run(instance=instance, code_location=location, remote_repo=repo, remote_job=remote_job,
                              run_config={}, tags={"harmony/bench": "queue"}, op_selection=None, run_id=None)
            instance.submit_run(run.run_id, workspace)
            run_ids.append(run.run_id)
    return run_ids


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def run(args: argparse.Namespace) -> dict:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="harmony-queue-bench-"))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    try:
        with PostgresServer(bin_dir, databases=("dagster", "harmony")) as server:
            env = {"DAGSTER_HOME": str(home), "HARMONY_DATABASE_URL": server.url("harmony"),
                   "HARMONY_DATA_DIR": str(root / "data"), "HARMONY_LIBRARY_DIR": str(root / "library"),
                   "HARMONY_PLAYLISTS": "", "HARMONY_DISABLE_WORKERS": "1",
                   "HARMONY_MAX_CONCURRENT_RUNS": str(MAX_CONCURRENT),
                   "HARMONY_CODE_SERVER_HOST": "127.0.0.1", "HARMONY_CODE_SERVER_PORT": str(port),
                   **server.dagster_env("dagster")}
            os.environ.update(env)
            child_env = {**os.environ, "PYTHONPATH": str(REPO)}
            from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

            with DagsterInstance.get() as instance:  # creates Dagster's schema before the daemon starts
                code_server = _spawn([str(BIN / "dagster"), "api", "grpc", "-m", "harmony_pipeline.definitions",
                                      "-h", "127.0.0.1", "-p", str(port)], child_env, root / "codeserver.log")
                daemon = None
                try:
                    wait_for(lambda: subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                                                    capture_output=True, env=child_env, check=False).returncode == 0,
                             90, "code server", interval=1)
                    workspace = REPO / "deploy" / "workspace.yaml"
                    step = args.runs / max(args.acquisition, 1)  # acquisition runs spread through the batch
                    spread = {int(i * step) for i in range(args.acquisition)}
                    jobs = ["acquisition_job" if i in spread else "enrichment_job" for i in range(args.runs)]
                    submitted_at = time.time()
                    run_ids = submit(instance, workspace, jobs)
                    submit_seconds = time.time() - submitted_at
                    queued = len(instance.get_run_ids(RunsFilter(statuses=[DagsterRunStatus.QUEUED])))
                    daemon = _spawn([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], child_env,
                                    root / "daemon.log")
                    daemon_started = time.time()
                    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

                    def done():
                        assert daemon.poll() is None, (root / "daemon.log").read_text(errors="replace")[-3000:]
                        runs = instance.get_runs(RunsFilter(run_ids=run_ids))
                        left = sum(r.status not in finished for r in runs)
                        print(f"{len(runs) - left}/{len(runs)} finished, {time.time() - daemon_started:.0f} s",
                              flush=True)
                        return left == 0

                    wait_for(done, args.timeout, "every run finished", interval=5)
                    batch_seconds = time.time() - daemon_started
                finally:
                    for process in (daemon, code_server):
                        if process is not None:
                            _stop(process)
                records = instance.get_run_records(RunsFilter(run_ids=run_ids))
            starts = sorted(r.start_time for r in records if r.start_time)
            spans = [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]
            acquisition_spans = [(r.start_time, r.end_time) for r in records
                                 if r.dagster_run.job_name == "acquisition_job" and r.start_time and r.end_time]
            waits = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
            launch_minutes = (starts[-1] - starts[0]) / 60 if len(starts) > 1 else None
            statuses = [r.dagster_run.status.value for r in records]
            return {
                "runs": args.runs, "acquisition_runs": jobs.count("acquisition_job"),
                "submit_seconds": round(submit_seconds, 1), "queued_before_daemon": queued,
                "succeeded": statuses.count("SUCCESS"), "failed": statuses.count("FAILURE"),
                "batch_seconds": round(batch_seconds, 1),
                "launched_per_min": round((len(starts) - 1) / launch_minutes, 1) if launch_minutes else None,
                "finished_per_min": round(len(spans) / (batch_seconds / 60), 1),
                "queue_wait_median_s": round(statistics.median(waits), 1),
                "queue_wait_max_s": round(max(waits), 1),
                "run_seconds_median": round(statistics.median(e - s for s, e in spans), 1),
                "most_in_progress": most_at_once(spans), "most_acquisition_in_progress": most_at_once(acquisition_spans),
                "max_concurrent_runs": MAX_CONCURRENT,
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--acquisition", type=int, default=30, help="how many of them are acquisition_job")
    parser.add_argument("--timeout", type=float, default=1500)
    args = parser.parse_args()
    result = run(args)
    print(f"{result['runs']} runs ({result['acquisition_runs']} acquisition) queued in {result['submit_seconds']} s; "
          f"the daemon launched {result['launched_per_min']}/min, all done in {result['batch_seconds']} s "
          f"({result['succeeded']} succeeded, {result['failed']} failed); queue wait median "
          f"{result['queue_wait_median_s']} s, max {result['queue_wait_max_s']} s; at most "
          f"{result['most_in_progress']} in progress (limit {MAX_CONCURRENT}), "
          f"{result['most_acquisition_in_progress']} acquisition (limit 1)")
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
