"""Small pieces every asset module shares: the retry policy for network-bound steps, metadata tables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from dagster import Backoff, Jitter, MetadataValue, RetryPolicy, RetryRequested

from harmony_pipeline.service_errors import retry_wait

# Transient service errors inside a run: exponential backoff with jitter, visible as step retries.
NETWORK_RETRY = RetryPolicy(max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


@contextmanager
def retry_on_short_rate_limit(max_retries: int = 3) -> Iterator[None]:
    """A rate limit that lifts soon becomes a step retry after the wait (RetryRequested); a transient
    error goes to the step's RetryPolicy as it is; anything else fails the step."""
    try:
        yield
    except Exception as error:
        wait = retry_wait(error)
        if wait is None:
            raise
        raise RetryRequested(max_retries=max_retries, seconds_to_wait=wait + 1) from error


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 120 else text[:119] + "…"  # a cut is always marked


def markdown_table(rows: Sequence[Mapping[str, Any]], limit: int = 50) -> str:
    """A markdown table for MetadataValue.md previews (the first `limit` rows)."""
    if not rows:
        return "(none)"
    columns = list(rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more")
    return "\n".join(lines)


def activity_metadata(context, database, limit: int = 30) -> dict[str, Any]:
    """The activity events this step recorded, as materialization metadata (a count and a markdown table),
    so the UI shows on each asset what `harmony status` lists under recent activity.

    Events are this run's (runs overlap) and count from the step's start (its latest STEP_START, so a
    retried step shows its last attempt).
    """
    from dagster import DagsterEventType

    from harmony_pipeline import storage

    step_key = context.get_step_execution_context().step.key
    starts = [entry.timestamp for entry in context.instance.all_logs(context.run.run_id, of_type=DagsterEventType.STEP_START)
              if entry.step_key == step_key]
    if not starts:
        return {}
    since = datetime.fromtimestamp(max(starts), timezone.utc)
    with database.connect(read_only=True) as conn:
        events = storage.fetch_dicts(
            conn, "SELECT e.time, e.type, e.details FROM activity_events e JOIN activity_runs r ON r.event_id = e.id "
            "WHERE r.run_id = ? AND e.time >= ? ORDER BY e.id",
            [context.run.run_id, since])
    rows = [{"time": f"{e['time']:%H:%M:%S}", "type": e["type"], "details": e["details"]} for e in events]
    return {"activity_events": len(rows), "activity": MetadataValue.md(markdown_table(rows, limit=limit))}
