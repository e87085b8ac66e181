"""The playlist diff at 100,000 tracks: stored rows read from DuckDB and compared with the ids now in the
playlist, as Python dict/set operations (spotify.playlist_sync.diff_playlist) and as a polars join over the
Arrow result. Prints the median of several passes of each.

    .venv/bin/python benchmarks/playlist_diff_bench.py [--tracks 100000] [--passes 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from harmony_pipeline.spotify.playlist_sync import diff_playlist

STORED_SQL = "SELECT spotify_track_id, removed_at IS NOT NULL AS removed FROM playlist_tracks WHERE playlist_id = ?"


def python_diff(conn, current: list[str]):
    stored = dict(conn.execute(STORED_SQL, ["p"]).fetchall())
    return diff_playlist(stored, current)


def polars_diff(conn, current: list[str]):
    stored = pl.DataFrame(conn.sql(STORED_SQL, params=["p"]))  # Arrow stream, no pyarrow
    now = pl.DataFrame({"spotify_track_id": current}).with_row_index("order")
    joined = now.join(stored, on="spotify_track_id", how="left").sort("order")
    added = joined.filter(pl.col("removed").is_null())["spotify_track_id"].to_list()
    revived = joined.filter(pl.col("removed") == True)["spotify_track_id"].to_list()  # noqa: E712
    kept = joined.filter(pl.col("removed") == False)["spotify_track_id"].to_list()  # noqa: E712
    removed = (stored.filter(~pl.col("removed")).join(now, on="spotify_track_id", how="anti")
               .sort("spotify_track_id")["spotify_track_id"].to_list())
    return added, removed, revived, kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    ids = [f"{i:022d}" for i in range(args.tracks)]
    with tempfile.TemporaryDirectory() as folder:
        conn = duckdb.connect(str(Path(folder) / "bench.duckdb"))
        conn.execute("CREATE TABLE playlist_tracks (playlist_id VARCHAR, spotify_track_id VARCHAR, removed_at TIMESTAMP)")
        conn.execute("INSERT INTO playlist_tracks SELECT 'p', lpad(i::VARCHAR, 22, '0'), "
                     "CASE WHEN hash(i) % 20 = 0 THEN TIMESTAMP '2026-01-01' END FROM range(?) t(i)", [args.tracks])
        # The playlist now: 2 % removed, 2 % new, the rest in a shuffled order.
        current = [i for i in ids if rng.random() > 0.02] + [f"n{i:021d}" for i in range(args.tracks // 50)]
        rng.shuffle(current)
        a = python_diff(conn, current)
        b = polars_diff(conn, current)
        assert (a.added, a.removed, a.revived, a.kept) == b, "the two diffs disagree"
        for name, run in (("python dict/set", python_diff), ("polars join", polars_diff)):
            times = []
            for _ in range(args.passes):
                start = time.perf_counter()
                run(conn, current)
                times.append(time.perf_counter() - start)
            print(f"{name:16s} {args.tracks} stored, {len(current)} current: median {statistics.median(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
