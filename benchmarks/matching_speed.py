"""Matching throughput: candidates per second of `rank()` over the development set, on one core.

Usage: python benchmarks/matching_speed.py [FILE.jsonl] [--seconds 6] [--warm]

Every case of the set is ranked (responses parsed, every file judged, the list sorted), pass after
pass, until about `--seconds` of CPU time have been spent. Before each pass the matching engine's
memo caches (every `functools` cache in `harmony_pipeline.matching`) are emptied, so each pass meets
the names as a new search would; `--warm` keeps them (the same responses ranked again, as when one
album search serves every track of the album). The rate is counted in CPU time of this single-threaded
process, so other processes on the machine weigh on it as little as possible; the wall-clock rate is
printed on the line before.

The last line printed is the summary:
matching_speed: candidates_per_second=<rate> cases=<count> candidates=<count per pass>
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import harmony_pipeline.matching as matching  # noqa: E402
from harmony_pipeline.matching import WantedTrack, rank  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "matching-dev-set" / "dev.jsonl"


def load_cases(path: Path) -> list[tuple[WantedTrack, list[dict]]]:
    with path.open(encoding="utf-8") as handle:
        cases = [json.loads(line) for line in handle if line.strip()]
    return [(WantedTrack.from_dict(case["wanted"]), case["responses"]) for case in cases]


def count_candidates(responses: list[dict]) -> int:
    return sum(len(r.get("files") or []) + len(r.get("lockedFiles") or []) for r in responses)


def matching_caches() -> list:
    """Every functools cache of the matching package (anything with `cache_clear`)."""
    caches = []
    for info in pkgutil.iter_modules(matching.__path__, matching.__name__ + "."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == info.name:
                caches.append(value)
    return caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seconds", type=float, default=6.0, help="CPU time to spend (default 6)")
    parser.add_argument("--warm", action="store_true", help="keep the memo caches between passes")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"matching_speed: no data set at {args.data}")

    cases = load_cases(args.data)
    per_pass = sum(count_candidates(responses) for _, responses in cases)
    caches = matching_caches()
    for wanted, responses in cases:  # one untimed pass: imports, vocabulary, first allocations
        rank(wanted, responses)

    pass_cpu: list[float] = []
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    while time.process_time() - cpu_start < args.seconds:
        if not args.warm:
            for cache in caches:
                cache.cache_clear()
        start = time.process_time()
        for wanted, responses in cases:
            rank(wanted, responses)
        pass_cpu.append(time.process_time() - start)
    wall = time.perf_counter() - wall_start
    cpu = sum(pass_cpu)
    total = per_pass * len(pass_cpu)

    print(f"passes={len(pass_cpu)} caches={'warm' if args.warm else 'cleared each pass'} ({len(caches)} caches)")
    print(f"per pass (CPU s): best={min(pass_cpu):.4f} median={statistics.median(pass_cpu):.4f}")
    print(f"wall: {total / wall:.0f} candidates/s over {wall:.1f} s")
    print(f"matching_speed: candidates_per_second={total / cpu:.0f} cases={len(cases)} candidates={per_pass}")


if __name__ == "__main__":
    main()
