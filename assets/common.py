"""Small pieces every asset module shares: the retry policy for network-bound steps, metadata tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Backoff, Jitter, RetryPolicy

# Transient service errors inside a run: exponential backoff with jitter, visible as step retries.
NETWORK_RETRY = RetryPolicy(max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:120]


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
