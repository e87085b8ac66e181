"""Where an acquisition run's time goes: the sandbox acquisition under cProfile.

Runs benchmarks/acquisition_bench.py (its own sandbox, budget lifted, 0.5 s searches) under cProfile
and reads the profile back: the wall time of each acquisition step (the asset functions), and inside
them the time spent sleeping (waiting on slskd's pace, transfers, rate limits), waiting on sockets
(HTTP answers of slskd and the other services), opening and closing DuckDB connections, ranking
candidates and decoding/fingerprinting audio. The run is smaller than the throughput benchmark so
the profile's overhead does not matter; the shares are what it is for.

    .venv/bin/python benchmarks/profile_acquisition.py [--tracks 150] [--albums 3]
"""

from __future__ import annotations

import argparse
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, emit

STEPS = ("wanted_tracks", "soulseek_matches", "downloads", "library_tracks")
# (label, file suffix, function name) of the places time is spent inside the steps.
PLACES = [
    ("sleeping", "~", "<built-in method time.sleep>"),
    ("waiting on sockets", "~", "<method 'recv_into' of '_socket.socket' objects>"),
    ("DuckDB connect", "~", "<built-in method _duckdb.connect>"),
    ("DuckDB close", "~", "<built-in method _duckdb.close>"),
    ("DuckDB statements", "~", "<built-in method _duckdb.execute>"),
    ("ranking candidates", "matching/scoring.py", "rank"),
    ("audio checks and fingerprints", "acquisition/audio_verification.py", "verify_download"),
    ("moving files into the library", "acquisition/import_flow.py", "import_downloads"),
]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    total = 0.0
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if function == name and (filename == suffix or filename.endswith(suffix)):
            total += ct
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=150)
    parser.add_argument("--albums", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harmony-profile-") as folder:
        output = Path(folder) / "acquisition.prof"
        done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(output), "acquisition_bench.py",
                               "--tracks", str(args.tracks), "--albums", str(args.albums), "--search-seconds", "0.5",
                               "--budget", "100000/60", "--minutes", "6"],
                              cwd=REPO / "benchmarks", capture_output=True, text=True)
        if done.returncode != 0 or not output.exists():
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        stats = pstats.Stats(str(output))
    steps = {step: round(cumulative(stats, "assets/acquisition.py", step), 1) for step in STEPS}
    in_steps = sum(steps.values())
    places = {label: round(cumulative(stats, suffix, name), 1) for label, suffix, name in PLACES}
    for step, seconds in steps.items():
        print(f"{step:18} {seconds:7.1f} s")
    for label, seconds in places.items():
        print(f"  {label:32} {seconds:7.1f} s ({100 * seconds / max(in_steps, 1e-9):.0f} % of the steps)")
    emit({"tracks": args.tracks, "steps_s": in_steps,
          **{f"{step}_s": seconds for step, seconds in steps.items()},
          **{label.replace(" ", "_") + "_s": seconds for label, seconds in places.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
