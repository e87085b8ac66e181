"""Which library tracks an enrichment step has to (re)visit: the one definition of "due", shared by the
enrichment assets and the nightly enrichment schedule (so the sensor side never imports the assets)."""

from __future__ import annotations

from datetime import datetime

# A library track without a row in the asset's table, imported again since its row, or whose miss /
# failure cool-down has passed. `{table}` is the asset's table (named as the asset).
DUE_FROM = """
FROM library_tracks l
LEFT JOIN wanted_tracks w ON w.wanted_key = l.wanted_key
LEFT JOIN {table} e ON e.wanted_key = l.wanted_key
WHERE e.wanted_key IS NULL OR e.updated_at < l.imported_at OR e.next_attempt_at <= ?
"""
TRACKS_DUE_SQL = ("SELECT l.*, w.artists, w.album_total_tracks, w.duration_ms" + DUE_FROM
                  + "ORDER BY l.imported_at, l.wanted_key")
COUNT_DUE_SQL = "SELECT count(*)" + DUE_FROM


def count_due(conn, table: str, now: datetime) -> int:
    """How many library tracks the asset writing `table` would act on at `now`."""
    return conn.execute(COUNT_DUE_SQL.format(table=table), [now]).fetchone()[0]
