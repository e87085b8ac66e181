"""Time `harmony status --json` end to end on a library of 10,000 tracks.

Builds, in a temporary folder, a DuckDB file with 10,000 library tracks plus wanted tracks, matches,
downloads in every state and activity events, and a Dagster instance (the repository's dagster.yaml)
with materializations of every asset; then runs the command as a subprocess a few times and prints
the wall time of each run and the median.

    .venv/bin/python benchmarks/status_timing.py [--tracks 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harmony_pipeline import storage  # noqa: E402


def build_database(path: Path, tracks: int) -> None:
    now = storage.utcnow()
    with storage.connect(path) as conn, storage.transaction(conn):
        conn.execute(
            "INSERT INTO library_tracks (wanted_key, path, title, artist, album, format, imported_at) "
            "SELECT 'key:' || i, 'Artist ' || (i % 500) || '/Album ' || (i % 1000) || '/' || i || '.flac', "
            "'Title ' || i, 'Artist ' || (i % 500), 'Album ' || (i % 1000), 'flac', ? FROM range(?) t(i)",
            [now, tracks])
        pending = tracks // 10
        conn.execute(
            "INSERT INTO wanted_tracks (wanted_key, title, artist, sources, state, first_wanted_at, updated_at) "
            "SELECT 'key:' || i, 'Title ' || i, 'Artist', ['free_ingest'], "
            "CASE WHEN i < ? THEN 'in_library' ELSE 'wanted' END, ?, ? FROM range(?) t(i)",
            [tracks, now, now, tracks + pending])
        conn.execute(
            "INSERT INTO soulseek_matches (wanted_key, status, decided_at) "
            "SELECT 'key:' || i, CASE i % 3 WHEN 0 THEN 'matched' WHEN 1 THEN 'no_match' ELSE 'deferred' END, ? "
            "FROM range(?, ?) t(i)", [now, tracks, tracks + pending // 2])
        conn.execute(
            "INSERT INTO downloads (wanted_key, state, attempts, history, next_attempt_at, updated_at) "
            "SELECT 'key:' || i, CASE WHEN i < ? THEN 'imported' "
            "ELSE (['downloading', 'retry', 'dead_letter'])[1 + i % 3] END, 1, '[]', ?, ? "
            "FROM range(?) t(i)", [tracks, now - timedelta(minutes=5), now, tracks + pending // 2])
        for n in range(200):
            storage.record_activity(conn, "track_imported", {"track": f"Artist – Title {n}", "path": f"{n}.flac"})


def build_instance(home: Path) -> None:
    from dagster import AssetMaterialization, DagsterInstance

    from harmony_pipeline.settings import load_settings
    from harmony_pipeline.status import asset_keys

    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    with DagsterInstance.get() as instance:
        for key in asset_keys(load_settings()):
            for _ in range(20):  # some history per asset, as after a few days of runs
                instance.report_runless_asset_event(AssetMaterialization(key))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harmony-status-") as folder:
        root = Path(folder)
        (root / "dagster_home").mkdir()
        env = {**os.environ, "HARMONY_DATA_DIR": str(root / "data"), "HARMONY_LIBRARY_DIR": str(root / "library"),
               "DAGSTER_HOME": str(root / "dagster_home"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        os.environ.update(env)
        build_database(root / "data" / "harmony.duckdb", args.tracks)
        build_instance(root / "dagster_home")

        command = [sys.executable, "-m", "harmony_pipeline.cli", "status", "--json"]
        times, cpu = [], []
        for _ in range(args.runs):
            started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root)
            times.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU: less sensitive to a busy machine
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if done.returncode == 2:
                print(done.stderr, file=sys.stderr)
                return 1
        report = json.loads(done.stdout)
    print(f"library tracks: {args.tracks}, queues: {report['queues']}")
    print(f"`harmony status --json` wall time per run (s): {', '.join(f'{t:.2f}' for t in times)}")
    print(f"median: {statistics.median(times):.2f} s over {args.runs} runs (exit code {done.returncode}); "
          f"CPU per run, median: {statistics.median(cpu):.2f} s")
    print("RESULT " + json.dumps({"tracks": args.tracks, "runs": args.runs, "median_s": round(statistics.median(times), 3),
                                  "min_s": round(min(times), 3), "max_s": round(max(times), 3),
                                  "cpu_s": round(statistics.median(cpu), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
