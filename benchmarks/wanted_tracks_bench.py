"""Time the `wanted_tracks` asset over N demanded tracks (default 110,000) when nothing is new, and its peak RSS.

Builds a DuckDB file with the demand of a large library: playlist tracks over 50 playlists (every tenth
track in two playlists), FREE-ingest tracks and watchlist tracks (half of them demanded twice), one in
twenty without an ISRC (identified by artist + title); all but 10,000 of them already in the library.
A first materialization writes wanted_tracks; the measured one runs in a fresh process with nothing new,
so its peak RSS is that run's alone (Dagster's in-process materialize, an ephemeral instance; the
time is the materialize call, the peak RSS the whole process's, Dagster's ~260 MB included). A third
run adds 100 demanded tracks and checks that only they are written.

    .venv/bin/python benchmarks/wanted_tracks_bench.py [--tracks 110000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, peak_rss_mb

from harmony_pipeline import storage

PLAYLISTS = [f"{n:02d}benchplaylist{n:07d}" for n in range(50)]  # 22-character Spotify ids
IN_LIBRARY_LEFT = 10_000  # demanded tracks not yet in the library


def build_database(path: Path, tracks: int) -> None:
    now = storage.utcnow()
    playlist_count = tracks - tracks // 11
    columns = ("spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, track_number, "
               "disc_number, album_total_tracks, release_date, duration_ms")
    values = ("lpad(i::VARCHAR, 22, '0'), CASE WHEN i % 20 = 0 THEN NULL ELSE 'QZ' || lpad(i::VARCHAR, 10, '0') END, "
              "'Title ' || i, 'Artist ' || (i // 120), ['Artist ' || (i // 120)], 'Album ' || (i // 12), "
              "'alb' || lpad((i // 12)::VARCHAR, 19, '0'), 'Artist ' || (i // 120), 1 + i % 12, 1, 12, "
              "(1970 + i % 50)::VARCHAR, 180000 + (i % 97) * 1000")
    with storage.connect(path) as conn, storage.transaction(conn):
        conn.execute("CREATE TEMP TABLE playlist_ids AS SELECT unnest(?) AS playlist_id, "
                     "generate_subscripts(?, 1) - 1 AS n", [PLAYLISTS, PLAYLISTS])
        conn.execute(
            f"INSERT INTO playlist_tracks (playlist_id, position, {columns}, added_at, first_seen_at) "
            f"SELECT p.playlist_id, i, {values}, ?, ? FROM range(?) t(i) "
            f"JOIN playlist_ids p ON p.n = i % 50 OR (i % 10 = 0 AND p.n = (i + 1) % 50)",
            [now, now, playlist_count])
        conn.execute(
            f"INSERT INTO backfilled_tracks (fingerprint, status, via, {columns}, resolved_at) "
            f"SELECT 'fp' || i, 'matched', 'search', {values}, ? FROM range(?, ?) t(i)",
            [now, playlist_count, tracks])
        conn.execute(
            f"INSERT INTO artist_release_tracks (artist_id, acquire, first_seen_at, {columns}) "
            f"SELECT 'artist' || (i // 120), true, ?, {values} FROM range(?, ?) t(i)",
            [now, tracks - (tracks - playlist_count) // 2, tracks])
        conn.execute(
            "INSERT INTO library_tracks (wanted_key, path, spotify_track_id, isrc, title, artist, album, "
            "track_number, format, imported_at) "
            "SELECT CASE WHEN i % 20 = 0 THEN 'key:artist ' || (i // 120) || '|title ' || i "
            "ELSE 'isrc:QZ' || lpad(i::VARCHAR, 10, '0') END, i || '.flac', lpad(i::VARCHAR, 22, '0'), "
            "CASE WHEN i % 20 = 0 THEN NULL ELSE 'QZ' || lpad(i::VARCHAR, 10, '0') END, 'Title ' || i, "
            "'Artist ' || (i // 120), 'Album ' || (i // 12), 1 + i % 12, 'flac', ? FROM range(?) t(i)",
            [now, tracks - IN_LIBRARY_LEFT])


def add_demand(path: Path, tracks: int, extra: int) -> None:
    now = storage.utcnow()
    with storage.connect(path) as conn:
        conn.execute(
            "INSERT INTO backfilled_tracks (fingerprint, status, via, spotify_track_id, isrc, title, artist, "
            "duration_ms, resolved_at) SELECT 'new' || i, 'matched', 'search', 'new' || i, "
            "'QN' || lpad(i::VARCHAR, 10, '0'), 'New title ' || i, 'New artist', 200000, ? FROM range(?) t(i)",
            [now, extra])


def materialize_once(database: str) -> dict:
    """One in-process materialization of wanted_tracks (run in a child process of its own)."""
    from dagster import DagsterInstance, materialize

    from assets.acquisition import wanted_tracks
    from resources.database import HarmonyDatabase, PipelineSettings

    started = time.perf_counter()  # the run, not the imports (a code server has them loaded already)
    started_cpu = time.process_time()
    with DagsterInstance.ephemeral() as instance:
        result = materialize([wanted_tracks], instance=instance, resources={
            "database": HarmonyDatabase(path=database), "pipeline": PipelineSettings(playlists=PLAYLISTS)})
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    figures = {"seconds": round(elapsed, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": round(peak_rss_mb())}
    materialized = result.asset_materializations_for_node("wanted_tracks")
    if materialized:
        metadata = materialized[0].metadata
        return {**figures, **{k: metadata[k].value for k in ("wanted", "in_library", "newly_wanted", "demand_rows")}}
    # Nothing changed: the asset wrote nothing and did not materialize (its downstream steps are skipped).
    with storage.connect(Path(database), read_only=True) as conn:
        counts = dict(conn.execute("SELECT state, count(*) FROM wanted_tracks GROUP BY state").fetchall())
    return {**figures, "wanted": counts.get("wanted", 0), "in_library": counts.get("in_library", 0),
            "newly_wanted": 0, "demand_rows": None}


def run_child(database: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", database], capture_output=True, text=True,
                          env={**os.environ, "DAGSTER_HOME": ""})
    if done.returncode:
        raise SystemExit(f"materialization failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def changed_since(database: str, since) -> int:
    with storage.connect(Path(database), read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM wanted_tracks WHERE updated_at >= ?", [since]).fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=110_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(materialize_once(args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="harmony-wanted-") as folder:
        database = str(Path(folder) / "harmony.duckdb")
        build_database(Path(database), args.tracks)
        first = run_child(database)
        before = storage.utcnow()
        steady = run_child(database)
        rewritten = changed_since(database, before)
        add_demand(Path(database), args.tracks, 100)
        before = storage.utcnow()
        grown = run_child(database)
        written = changed_since(database, before)
    print(f"wanted_tracks over {args.tracks} demanded tracks ({first['demand_rows']} demand rows): "
          f"first run {first['seconds']:.2f} s ({first['peak_rss_mb']} MB); "
          f"nothing new {steady['seconds']:.2f} s, peak RSS {steady['peak_rss_mb']} MB, {rewritten} rows rewritten; "
          f"100 new {grown['seconds']:.2f} s, {written} rows written, {grown['newly_wanted']} newly wanted")
    emit({"tracks": args.tracks, "demand_rows": first["demand_rows"], "first_run_s": first["seconds"],
          "first_run_rss_mb": first["peak_rss_mb"], "nothing_new_s": steady["seconds"],
          "nothing_new_rss_mb": steady["peak_rss_mb"], "nothing_new_cpu_s": steady["cpu_s"], "nothing_new_rows_written": rewritten,
          "hundred_new_s": grown["seconds"], "hundred_new_rows_written": written,
          "wanted": steady["wanted"], "in_library": steady["in_library"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
