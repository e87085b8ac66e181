"""`make bench`: run every throughput benchmark and write benchmarks/RESULTS.md.

Each benchmark is its own script (run alone to reproduce one figure); this runner starts them one after
another, reads the `RESULT {json}` line each prints last, and writes the date, the machine (cores,
memory, Python, package versions) and every figure with its command and the issue-11 goal. It is never
part of `make test`. Budget: under 20 minutes on 2 cores (the 1,000-track acquisition is capped at 10 min, the search window at 3).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...] [--output FILE]

--quick runs each at a small size, to check the scripts work (its RESULTS file says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dagster", "duckdb", "polars", "rapidfuzz", "pykakasi", "anyascii", "mutagen", "spotipy", "requests")

# name, title, full-size arguments, quick arguments, [(figure key, label, goal text, goal check)]
BENCHMARKS = [
    ("upsert", "`storage.upsert` of 100,000 library rows",
     ["benchmarks/upsert_bench.py", "--rows", "100000"], ["benchmarks/upsert_bench.py", "--rows", "10000"],
     [("insert_s", "insert, s", "≤ 2 s", lambda v: v <= 2),
      ("update_s", "update (ON CONFLICT), s", "≤ 2 s", lambda v: v <= 2),
      ("insert_cpu_s", "insert, CPU s (all threads)", "", None), ("update_cpu_s", "update, CPU s", "", None),
      ("peak_rss_mb", "peak RSS, MB (row dicts included)", "≤ 400 MB", lambda v: v <= 400),
      ("rows_rss_mb", "of which the row dicts and imports, MB", "", None)]),
    ("wanted_tracks", "`wanted_tracks` over 110,000 demanded tracks",
     ["benchmarks/wanted_tracks_bench.py", "--tracks", "110000"], ["benchmarks/wanted_tracks_bench.py", "--tracks", "11000"],
     [("nothing_new_s", "nothing new: materialization, s", "≤ 5 s", lambda v: v <= 5),
      ("nothing_new_rss_mb", "nothing new: peak RSS, MB (Dagster's ~260 MB included)", "≤ 400 MB", lambda v: v <= 400),
      ("nothing_new_cpu_s", "nothing new: CPU s (all threads)", "", None),
      ("nothing_new_rows_written", "nothing new: rows written", "0", lambda v: v == 0),
      ("hundred_new_s", "100 new tracks: materialization, s", "", None),
      ("hundred_new_rows_written", "100 new tracks: rows written", "100", lambda v: v == 100),
      ("first_run_s", "first run (every row new), s", "", None), ("first_run_rss_mb", "first run, peak RSS, MB", "", None)]),
    ("status", "`harmony status --json` on a 100,000-track database",
     ["benchmarks/status_timing.py", "--tracks", "100000", "--runs", "5"],
     ["benchmarks/status_timing.py", "--tracks", "10000", "--runs", "2"],
     [("median_s", "wall time, median, s (instance view kept by the daemon)", "≤ 1 s", lambda v: v <= 1),
      ("min_s", "fastest run, s", "", None),
      ("cpu_s", "CPU per run (user + system), median, s", "", None),
      ("live_median_s", "`--live` (daemon not running: loads Dagster), median, s", "", None),
      ("live_cpu_s", "`--live`, CPU per run, median, s", "", None)]),
    ("matching", "Matching throughput on the development set (one core)",
     ["benchmarks/matching_throughput.py", "--passes", "5"], ["benchmarks/matching_throughput.py", "--passes", "1"],
     [("harmony_warm_candidates_per_s", "harmony, candidates/s (memo caches kept)", "≥ 20,000", lambda v: v >= 20_000),
      ("harmony_candidates_per_s", "harmony, candidates/s (memo caches emptied each pass)", "≥ 20,000", lambda v: v >= 20_000),
      ("spotdl_style_baseline_candidates_per_s", "spotDL-style baseline, candidates/s", "", None),
      ("harmony_top1", "harmony top-1 over every case (an abstention counts as a miss)", "", None),
      ("spotdl_style_baseline_top1", "baseline top-1", "", None),
      ("harmony_false_accepts", "harmony false accepts", "", None),
      ("spotdl_style_baseline_false_accepts", "baseline false accepts", "", None)]),
    ("acquisition", "Sandbox acquisition of 1,000 tracks (24 twelve-track albums + singles), budget lifted, 0.5 s searches",
     ["benchmarks/acquisition_bench.py", "--tracks", "1000", "--albums", "24", "--search-seconds", "0.5",
      "--budget", "100000/60", "--minutes", "10"],
     ["benchmarks/acquisition_bench.py", "--tracks", "40", "--albums", "2", "--search-seconds", "0.5",
      "--budget", "100000/60", "--minutes", "3"],
     [("tracks_per_min", "tracks/min", "≥ 300", lambda v: v >= 300), ("runs", "runs", "≤ 3", lambda v: v <= 3),
      ("converged", "converged", "yes", lambda v: bool(v)), ("imported", "tracks imported", "", None),
      ("acquirable", "tracks the sandbox shares a correct file of", "", None), ("seconds", "wall time, s", "", None),
      ("searches_per_album_track", "searches per acquired album track", "≤ 0.25", lambda v: v is not None and v <= 0.25),
      ("searches_per_single", "searches per acquired single", "≤ 1.05", lambda v: v is not None and v <= 1.05),
      ("status_polls_per_search", "status polls per search", "", None),
      ("peak_rss_mb", "peak RSS of the run process, MB", "", None)]),
    ("search_rate", "Search rate with 15 s searches under the real budget (34 searches / 220 s)",
     ["benchmarks/acquisition_bench.py", "--tracks", "200", "--albums", "4", "--search-seconds", "15",
      "--budget", "34/220", "--window", "3"],
     ["benchmarks/acquisition_bench.py", "--tracks", "40", "--albums", "1", "--search-seconds", "15",
      "--budget", "34/220", "--window", "1"],
     [("searches_per_min", "searches/min", "≥ 9 (the budget's 9.27)", lambda v: v >= 9),
      ("searches", "searches in the window", "", None), ("window_minutes", "window, min", "", None),
      ("status_polls_per_search", "status polls per search", "", None)]),
    ("profile", "Where an acquisition run's time goes (100 tracks under cProfile; seconds, cumulative)",
     ["benchmarks/profile_acquisition.py", "--tracks", "100", "--albums", "2"],
     ["benchmarks/profile_acquisition.py", "--tracks", "30", "--albums", "1"],
     [("steps_s", "the four acquisition steps, s", "", None),
      ("soulseek_matches_s", "soulseek_matches (searches, decisions, downloads started), s", "", None),
      ("downloads_s", "downloads (reconcile, verify), s", "", None),
      ("library_tracks_s", "library_tracks (tag, move, record), s", "", None),
      ("sleeping_s", "of which sleeping (slskd's pace, polls, rate limits), s", "", None),
      ("waiting_on_sockets_s", "of which waiting on HTTP answers, s", "", None),
      ("DuckDB_connect_s", "of which opening DuckDB connections, s", "", None),
      ("DuckDB_close_s", "of which closing DuckDB connections, s", "", None),
      ("DuckDB_statements_s", "of which DuckDB statements, s", "", None),
      ("ranking_candidates_s", "of which ranking candidates, s", "", None),
      ("audio_checks_and_fingerprints_s", "of which audio checks and fingerprints, s", "", None),
      ("moving_files_into_the_library_s", "of which the import (tags, move, record), s", "", None)]),
]


def machine() -> dict[str, str]:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), "0") if Path("/proc/meminfo").exists() else "0"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {"cores": str(os.cpu_count()), "memory": f"{int(memory) / 1024 / 1024:.1f} GiB", "cpu": cpu,
            "python": platform.python_version(), "os": platform.platform(), "packages": ", ".join(versions),
            "commit": commit.stdout.strip() or "unknown", "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def run_one(arguments: list[str], log: Path) -> tuple[dict | None, float, int]:
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run([sys.executable, *arguments], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    result = next((json.loads(line[len("RESULT "):]) for line in reversed(lines) if line.startswith("RESULT ")), None)
    return result, time.monotonic() - started, done.returncode


def render(results: list[tuple], info: dict[str, str], quick: bool, total: float) -> str:
    lines = [
        "# Throughput benchmarks (issue 11)", "",
        f"Written by `make bench` (`.venv/bin/python benchmarks/run_all.py{' --quick' if quick else ''}`) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {total / 60:.1f} min."
        + (" **Quick mode: small sizes, to check the scripts run; not the figures the goals speak of.**" if quick else ""),
        "", "## Machine", "",
        f"- cores: {info['cores']}; memory: {info['memory']}; CPU: {info['cpu']}",
        f"- load average when the run ended: {info['load']} (other processes share the machine)",
        f"- Python {info['python']} on {info['os']}", f"- packages: {info['packages']}",
        f"- commit: {info['commit']}", "",
        "Every figure is measured by the command shown (run from the repository root); "
        "each script's docstring says exactly what it measures.", "",
    ]
    skipped = [b for b in BENCHMARKS if b[1] not in {title for (title, _, _), _ in results}]
    if skipped:
        lines += ["Not run in this pass (`--only`): " + "; ".join(
            f"{title} (`{shlex.join(['.venv/bin/python', *(quick_args if quick else full)])}`)"
            for _, title, full, quick_args, _ in skipped) + ".", ""]
    for (title, arguments, figures), (result, seconds, code, log) in results:
        lines += [f"## {title}", "", f"Command: `{shlex.join(['.venv/bin/python', *arguments])}` "
                  f"({seconds:.0f} s{'' if code == 0 else f', exit code {code}, log {log}'})", ""]
        if result is None:
            lines += ["No result: the benchmark failed (see its log).", ""]
            continue
        lines += ["| figure | value | goal | met |", "|---|---|---|---|"]
        for key, label, goal, check in figures:
            value = result.get(key)
            met = "" if check is None or value is None else ("yes" if check(value) else "**no**")
            lines.append(f"| {label} | {value if value is not None else '–'} | {goal} | {met} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check that every script runs")
    parser.add_argument("--only", nargs="*", help="names: " + ", ".join(b[0] for b in BENCHMARKS))
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="harmony-bench-logs-"))
    started = time.monotonic()
    results = []
    for bench in BENCHMARKS:
        name, title, full, quick, _ = bench
        if args.only and name not in args.only:
            continue
        arguments = quick if args.quick else full
        print(f"== {name}: {shlex.join(arguments)}", flush=True)
        log = logs / f"{name}.log"
        result, seconds, code = run_one(arguments, log)
        print(f"   {seconds:.0f} s, exit {code}: {json.dumps(result) if result else 'no result, see ' + str(log)}",
              flush=True)
        results.append(((title, arguments, bench[4]), (result, seconds, code, log)))  # the command that ran
    args.output.write_text(render(results, machine(), args.quick, time.monotonic() - started) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0 if all(outcome[2] == 0 for _, outcome in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
