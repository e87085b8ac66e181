"""The Soulseek search budget: at most N searches per window of seconds across all runs.

Soulseek servers ban accounts that search too often; clients keep to about 34 searches per 220 s.
The searches made are recorded in DuckDB (`search_budget`), so every run and process shares one count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def seconds_until_allowed(
    recent: Sequence[datetime], now: datetime, limit: int, window_seconds: int
) -> float:
    """0 when a search may start now; otherwise how long until the oldest search in the window expires."""
    window = timedelta(seconds=window_seconds)
    in_window = sorted(t for t in recent if now - t < window)
    if len(in_window) < limit:
        return 0.0
    oldest_blocking = in_window[len(in_window) - limit]
    return max(0.0, (oldest_blocking + window - now).total_seconds())
