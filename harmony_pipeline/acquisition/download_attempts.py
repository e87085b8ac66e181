"""Download attempts of one wanted track: which candidate comes next, what a failure leads to.

Every attempt counts (the first included). After a failed attempt the next one waits
RETRY_BASE_SECONDS × 2^min(attempt, 6) × U(1−j, 1+j) and uses the next best candidate not yet tried
(when every known candidate was tried, Soulseek is searched again first); when RETRY_MAX_ATTEMPTS is
reached, or a new search finds no candidate left to try, the track is dead-lettered with its history.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from harmony_pipeline.acquisition.backoff import attempts_exhausted, retry_delay_seconds


@dataclass(frozen=True)
class RetryRules:
    max_attempts: int
    base_seconds: float
    jitter: float


@dataclass(frozen=True)
class FailureOutcome:
    state: str  # "retry" | "dead_letter"
    next_attempt_at: datetime | None
    reason: str
    search_again: bool = False  # every known candidate was tried: look for new ones before retrying


# Attempts that failed on our side (a finished file gone from the downloads folder): the peer did
# nothing wrong, so its file stays a candidate for the next attempt.
OUR_SIDE_OUTCOMES = frozenset({"file_missing"})


def tried_candidates(history: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(h["username"], h["filename"]) for h in history
            if h.get("username") and h.get("outcome") not in OUR_SIDE_OUTCOMES}


def next_candidate(
    candidates: list[dict[str, Any]],
    history: list[dict[str, Any]],
    blocked: set[tuple[str, str]],
) -> dict[str, Any] | None:
    """The best accepted candidate that was neither tried for this track nor blocked."""
    used = tried_candidates(history) | blocked
    for candidate in candidates:
        if (candidate["username"], candidate["filename"]) not in used:
            return candidate
    return None


def after_failure(
    attempts: int,
    rules: RetryRules,
    now: datetime,
    *,
    candidates_left: bool,
    rng: random.Random | None = None,
) -> FailureOutcome:
    """What follows a failed attempt: a retry at a backoff time, or the dead-letter state."""
    if attempts_exhausted(attempts, rules.max_attempts):
        return FailureOutcome("dead_letter", None, f"{attempts} attempts made (RETRY_MAX_ATTEMPTS)")
    delay = retry_delay_seconds(attempts, rules.base_seconds, rules.jitter, rng)
    if not candidates_left:
        return FailureOutcome("retry", now + timedelta(seconds=delay),
                              f"every candidate tried: searching again, retry in {delay:.0f}s", search_again=True)
    return FailureOutcome("retry", now + timedelta(seconds=delay), f"retry in {delay:.0f}s")


def history_entry(candidate: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "username": candidate["username"],
        "filename": candidate["filename"],
        "size": candidate.get("size"),
        "score": candidate.get("score"),
        "started_at": now.isoformat(),
        "outcome": None,
        "error": None,
    }


def close_attempt(history: list[dict[str, Any]], outcome: str, error: str | None, now: datetime) -> None:
    """Record how the newest attempt ended."""
    if history:
        history[-1].update({"outcome": outcome, "error": error, "ended_at": now.isoformat()})
