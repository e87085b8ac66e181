"""Small pieces every asset module shares: the retry policy for network-bound steps, table previews, row counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from dagster import (
    Backoff,
    Jitter,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
    TableColumn,
    TableRecord,
    TableSchema,
)

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


PREVIEW_ROWS = 50  # rows shown in a table preview; the counts beside it tell the whole


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value).replace("\n", " ")
    return text if len(text) <= 120 else text[:119] + "…"  # a cut is always marked


def _column_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float")):
        if kinds == {kind}:
            return name
    return "float" if kinds == {int, float} else "string"


def table_preview(rows: Sequence[Mapping[str, Any]], limit: int = PREVIEW_ROWS) -> MetadataValue:
    """A MetadataValue.table of the first `limit` rows; the column types are read from the values shown.

    Rows come as dicts: a query behind a preview limits itself to what is shown (benchmarks/preview_bench.py:
    at 100,000 rows a polars frame read through the Arrow stream is no faster than dicts; LIMIT is).
    """
    shown = [{column: _cell(value) for column, value in row.items()} for row in rows[:limit]]
    columns = list(rows[0].keys()) if rows else ["(none)"]
    schema = TableSchema(columns=[TableColumn(c, _column_type([r.get(c) for r in shown])) for c in columns])
    return MetadataValue.table(records=[TableRecord(row) for row in shown], schema=schema)


def row_count(database, table: str) -> dict[str, int]:
    """`dagster/row_count` of the asset's table, as the catalog shows it."""
    with database.connect(read_only=True) as conn:
        return {"dagster/row_count": conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]}


def activity_metadata(context, database, limit: int = 30) -> dict[str, Any]:
    """The activity events this step recorded, as materialization metadata (a count and a table),
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
    return {"activity_events": len(rows), "activity": table_preview(rows, limit=limit)}
