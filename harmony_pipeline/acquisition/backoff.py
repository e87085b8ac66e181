"""Download retry delay (design.md §5 Retries).

Counting rule: `RETRY_MAX_ATTEMPTS` counts every download attempt of a track, the first one
included. `attempt` below is the number of attempts already made (and failed) when the next one
is scheduled: 1 after the first failure, 2 after the second… The delay applies before every
further attempt, also when that attempt switches to another candidate:

    delay = base_seconds × 2^min(attempt, 6) × U(1 − jitter, 1 + jitter)

so with the defaults (60 s, 0.2) the first retry waits 120 s ± 20 % and no wait exceeds
64 × 60 s × 1.2. A track whose `attempt` has reached `RETRY_MAX_ATTEMPTS` is dead-lettered
instead (`attempts_exhausted`).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

MAX_DOUBLINGS = 6
_DEFAULT_RNG = random.Random()


def retry_delay_seconds(
    attempt: int, base_seconds: float, jitter: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the next download attempt, after `attempt` failed ones."""
    _check_attempt(attempt)
    if not (math.isfinite(base_seconds) and base_seconds > 0):
        raise ValueError(f"base_seconds must be a positive number of seconds, got {base_seconds!r}")
    if not (0 <= jitter <= 1):
        raise ValueError(f"jitter must be a fraction between 0 and 1, got {jitter!r}")
    factor = (rng or _DEFAULT_RNG).uniform(1 - jitter, 1 + jitter)
    return base_seconds * 2 ** min(attempt, MAX_DOUBLINGS) * factor


def next_attempt_at(
    now: datetime,
    attempt: int,
    base_seconds: float,
    jitter: float,
    rng: random.Random | None = None,
) -> datetime:
    """When the next download attempt falls due, after `attempt` failed ones."""
    return now + timedelta(seconds=retry_delay_seconds(attempt, base_seconds, jitter, rng))


def attempts_exhausted(attempt: int, max_attempts: int) -> bool:
    """Whether a track that has had `attempt` failed attempts must be dead-lettered."""
    _check_attempt(attempt)
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
    return attempt >= max_attempts


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt counts failed attempts and must be an integer >= 1, got {attempt!r}")
