"""Which service errors are worth retrying the whole step for, and which belong to one item.

Transient answers (5xx, timeouts, connection errors) escape per-item handling so the asset's Dagster
RetryPolicy retries the step (STEP_UP_FOR_RETRY in the UI); work saved before the failure is not redone.
A short rate limit becomes a retry after the wait (`retry_wait`); a long one, and permanent answers
(404, 403, a refused login, a broken body), stay per-item failures with their cool-downs; a long rate
limit and a refused login also stop the asking for the other items (`stops_asking`).
"""

from __future__ import annotations

from datetime import datetime, timezone

# A rate limit that lifts within this many seconds is waited out by retrying the step.
SHORT_RATE_LIMIT_SECONDS = 120.0


def is_transient(error: BaseException) -> bool:
    """A 5xx, a timeout or a connection error of a service client (ServiceError, SpotifyError)."""
    status = getattr(error, "status", "no status")
    if status == "no status":
        return False
    return status is None or status == -1 or (isinstance(status, int) and 500 <= status < 600)


def retry_wait(error: BaseException, now: datetime | None = None) -> float | None:
    """Seconds until a short rate limit lifts; None when the error is no rate limit or a long one."""
    until = getattr(error, "until", None)
    if not isinstance(until, datetime):
        return None
    wait = (until - (now or datetime.now(timezone.utc))).total_seconds()
    return max(wait, 0.0) if wait <= SHORT_RATE_LIMIT_SECONDS else None


def stops_asking(error: BaseException) -> bool:
    """A refusal that concerns the whole service, not the item: a rate limit or a refused authorisation.
    Asking for the other items would only prolong the limit or repeat the refusal (the clients' error
    types say which of theirs are such refusals, with `stops_asking = True`)."""
    return bool(getattr(error, "stops_asking", False))


def escapes_item(error: BaseException) -> bool:
    """Whether a per-item handler must let the error go to the step: transient, or a short rate limit."""
    return is_transient(error) or retry_wait(error) is not None
