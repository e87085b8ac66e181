"""Helpers shared by the throughput benchmarks: peak RSS and one-line JSON results."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict) -> None:
    """Print the human line and a final `RESULT {json}` line that benchmarks/run_all.py reads."""
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
