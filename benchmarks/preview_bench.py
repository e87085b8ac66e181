"""A table preview of a 100,000-row DuckDB result: every row fetched as dicts, the result read as a polars
frame through the Arrow stream (no pyarrow, no per-row Python objects), and the SQL limited to the rows shown.
Prints the median of several passes of each.

    .venv/bin/python benchmarks/preview_bench.py [--rows 100000] [--passes 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import duckdb
import polars as pl

from assets.common import PREVIEW_ROWS, table_preview
from harmony_pipeline import storage

SQL = ("SELECT 'Artist ' || (i % 977) || ' – Title ' || i AS track, CASE WHEN i % 3 = 0 THEN 'matched' ELSE "
       "'no_match' END AS decision, (i % 100)::DOUBLE AS score, 'file' || i || '.flac' AS file FROM range(?) t(i)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    conn = duckdb.connect()
    ways = {
        "dicts, every row": lambda: table_preview(storage.fetch_dicts(conn, SQL, [args.rows])),
        "polars via Arrow stream": lambda: table_preview(
            pl.DataFrame(conn.sql(SQL, params=[args.rows])).head(PREVIEW_ROWS).to_dicts()),
        f"SQL LIMIT {PREVIEW_ROWS}, dicts": lambda: table_preview(
            storage.fetch_dicts(conn, f"{SQL} LIMIT {PREVIEW_ROWS}", [args.rows])),
    }
    previews = [way() for way in ways.values()]
    assert all(p.records == previews[0].records for p in previews), "the previews differ"
    for name, way in ways.items():
        times = []
        for _ in range(args.passes):
            start = time.perf_counter()
            way()
            times.append(time.perf_counter() - start)
        print(f"{name:24s} {args.rows} rows: median {statistics.median(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
