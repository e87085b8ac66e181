"""Time `storage.upsert` of N library rows (default 100,000) into a fresh DuckDB file, and its peak RSS.

Rows look like the ones `library_tracks` writes after an import (22 columns: text, integers, a double,
a timestamp with time zone). The first upsert inserts every row; the second updates them all (the
ON CONFLICT path). Peak RSS is the whole process's, the rows themselves included.

    .venv/bin/python benchmarks/upsert_bench.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _common import emit, peak_rss_mb

from harmony_pipeline import storage


def library_rows(count: int, salt: str = "") -> list[dict]:
    now = storage.utcnow()
    return [{
        "wanted_key": f"isrc:QZ{i:010d}", "path": f"Artist {i % 500}/Album {i % 9000}/{i % 12 + 1:02d} Title {i}.flac",
        "spotify_track_id": f"{i:022d}", "isrc": f"QZ{i:010d}", "title": f"Title {i}{salt}",
        "artist": f"Artist {i % 500}", "album": f"Album {i % 9000}", "album_id": f"alb{i % 9000:019d}",
        "album_artist": f"Artist {i % 500}", "track_number": i % 12 + 1, "disc_number": 1,
        "release_date": f"{1970 + i % 50}-01-01", "format": "flac", "bitrate": 900 + i % 100,
        "duration_s": 180.5 + i % 60, "sample_rate": 44100, "size_bytes": 30_000_000 + i,
        "source": f"soulseek:user{i % 300}", "source_filename": f"@@share\\Music\\Artist {i % 500}\\{i}.flac",
        "imported_at": now - timedelta(seconds=i),
    } for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harmony-upsert-") as folder:
        path = Path(folder) / "harmony.duckdb"
        with storage.connect(path):
            pass  # migrations are not part of the figure
        rows = library_rows(args.rows)
        rows_rss = peak_rss_mb()
        timings, cpu = [], []
        for label in ("insert", "update"):
            if label == "update":
                del rows  # one row list alive at a time, as in a run
                rows = library_rows(args.rows, salt=" (remastered)")
            started, started_cpu = time.perf_counter(), time.process_time()
            with storage.connect(path) as conn, storage.transaction(conn):
                storage.upsert(conn, "library_tracks", rows, key=["wanted_key"])
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)  # every thread's CPU: less sensitive to a busy machine
        with storage.connect(path, read_only=True) as conn:
            count, changed = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE title LIKE '%(remastered)') FROM library_tracks").fetchone()
    assert count == changed == args.rows, (count, changed)
    rss = peak_rss_mb()
    print(f"upsert of {args.rows} library rows: insert {timings[0]:.2f} s, update {timings[1]:.2f} s; "
          f"peak RSS {rss:.0f} MB (the row dicts alone: {rows_rss:.0f} MB); CPU {cpu[0]:.2f} s / {cpu[1]:.2f} s")
    emit({"rows": args.rows, "insert_s": round(timings[0], 3), "update_s": round(timings[1], 3),
          "peak_rss_mb": round(rss), "rows_rss_mb": round(rows_rss),
          "insert_cpu_s": round(cpu[0], 3), "update_cpu_s": round(cpu[1], 3)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
