"""FREE ingest: submitted items (group `sources`) and their Spotify backfill (group `catalog`).

`harmony ingest` and the inbox sensor record items straight into DuckDB (harmony_pipeline.ingest.store);
`free_ingest_items` shows their state and records inbox files no sensor has taken yet;
`backfilled_tracks` resolves every pending item to Spotify tracks (harmony_pipeline.ingest.resolve) and
feeds wanted_tracks through the "free_ingest" demand source.
"""

import json
import time
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, row_count, table_preview
from harmony_pipeline import storage
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.ingest.resolve import backfill_items, items_due
from harmony_pipeline.ingest.store import ingest_inbox
from harmony_pipeline.safe_read import preview
from harmony_pipeline.spotify.cache import SpotifyCache
from resources.database import HarmonyDatabase
from resources.inbox import IngestInbox
from resources.spotify import SpotifyResource

SKIPPED_LINES_SHOWN = 50  # rows of the skipped_lines table; each line only as a short sanitised preview
INGEST_CHAIN = ("free_ingest_items", "backfilled_tracks", "wanted_tracks", "soulseek_matches", "downloads",
                "library_tracks")
OWNERS = ["team:sources"]
STATES = ("matched", "expanded", "unmatched")


@asset(
    group_name="sources",
    kinds={"python", "duckdb"},
    owners=OWNERS,
    tags={"concern": "ingest"},
    description="FREE-ingest items from `harmony ingest` and the inbox, deduplicated across submissions, "
                "with their state (pending | matched | unmatched | expanded).",
)
def free_ingest_items(
    context: AssetExecutionContext, database: HarmonyDatabase, ingest_inbox_dir: IngestInbox
) -> MaterializeResult:
    taken = ingest_inbox(database.path, Path(ingest_inbox_dir.path), time.time(), ingest_inbox_dir.settle_seconds,
                         ingest_inbox_dir.claim_stale_seconds)
    for entry in taken:
        summary = (f"accepted {entry.outcome.accepted}, skipped {entry.outcome.skipped_count}" if entry.outcome
                   else f"failed: {entry.error}")
        context.log.info(f"inbox {preview(entry.file.name)}: {summary}")
    with database.connect(read_only=True) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM free_ingest_items GROUP BY state").fetchall())
        kinds = dict(conn.execute("SELECT kind, count(*) FROM free_ingest_items GROUP BY kind").fetchall())
        total_submissions = conn.execute("SELECT count(*) FROM free_ingest_submissions").fetchone()[0]
        submissions = storage.fetch_dicts(
            conn, "SELECT id, source, format, submitted_at, accepted, skipped, "
            f"to_json(list_slice(CAST(CAST(rejected AS JSON) AS JSON[]), 1, {SKIPPED_LINES_SHOWN})) AS rejected "
            "FROM free_ingest_submissions "
            "ORDER BY id DESC LIMIT 20")
    # Submitted text is untrusted: only short, single-line previews reach the event log.
    skipped_lines = [{"source": preview(s["source"]), "line": r["line"], "reason": preview(r["reason"], 120),
                      "text": preview(r["raw"])}
                     for s in submissions for r in json.loads(s.pop("rejected") or "[]")][:SKIPPED_LINES_SHOWN]
    for s in submissions:
        s["source"] = preview(s["source"])
    return MaterializeResult(
        metadata={
            "items": sum(states.values()),
            **{state: states.get(state, 0) for state in ("pending", "matched", "unmatched", "expanded")},
            "by_kind": MetadataValue.json(kinds),
            "inbox_files_taken": len(taken),
            "submissions": total_submissions,
            "newest_submissions": table_preview(submissions),
            "skipped_lines": table_preview(skipped_lines),
            **row_count(database, "free_ingest_items"),
        }
    )



@asset(
    group_name="catalog",
    deps=[free_ingest_items],
    retry_policy=NETWORK_RETRY,
    kinds={"spotify", "duckdb"},
    owners=OWNERS,
    tags={"concern": "ingest"},
    description="FREE-ingest items resolved to Spotify tracks: links expanded, ISRC search first, then "
                "track/artist/album searches scored on names and duration. Unmatched items say why.",
)
def backfilled_tracks(
    context: AssetExecutionContext, spotify: SpotifyResource, database: HarmonyDatabase
) -> MaterializeResult:
    due = items_due(database, storage.utcnow())
    lookups = SpotifyCache(spotify, HttpCache(database.path))
    report = backfill_items(database, due, lookups)
    if report.rate_limit:
        context.log.warning(f"{report.rate_limit}; {report.left_pending} items left pending")
    with database.connect() as conn, storage.transaction(conn):
        states = dict(conn.execute("SELECT state, count(*) FROM free_ingest_items GROUP BY state").fetchall())
        tracks = conn.execute("SELECT count(*) FROM backfilled_tracks WHERE status = 'matched'").fetchone()[0]
        if report.outcomes:
            storage.record_activity(conn, "backfill_completed", {
                "looked_up": len(report.outcomes), "spotify_requests": lookups.requests, "cache_hits": lookups.hits,
                **{state: report.count(state) for state in STATES}})
    for outcome in report.outcomes:
        if outcome["state"] == "unmatched":
            context.log.info(f"unmatched: {outcome['item']}: {outcome['reason']}")
    metadata: dict[str, Any] = {
        "looked_up": len(report.outcomes),
        **{state: report.count(state) for state in STATES},
        "tracks_resolved": sum(o["tracks"] for o in report.outcomes),
        "spotify_requests": lookups.requests,
        "cache_hits": lookups.hits,
        "backfilled_tracks_total": tracks,
        "items_by_state": MetadataValue.json(states),
        "items": table_preview(report.outcomes),
        **row_count(database, "backfilled_tracks"),
    }
    if report.rate_limited_until is not None:
        metadata["rate_limited_until"] = report.rate_limited_until.isoformat(timespec="seconds")
    return MaterializeResult(metadata=metadata)


def wiring(settings, workers):
    """FREE-ingest assets, the ingest job (through acquisition) and the inbox sensor."""
    from dagster import AssetSelection, Definitions, define_asset_job

    from sensors.inbox import build_free_ingest_inbox_sensor

    job = define_asset_job("free_ingest_job", selection=AssetSelection.assets(*INGEST_CHAIN),
                           description="Ingested items: backfill from Spotify, then search, download and import.")
    sensor = build_free_ingest_inbox_sensor(job, workers, settings.sensor_interval_seconds)
    return Definitions(
        assets=[free_ingest_items, backfilled_tracks],
        jobs=[job],
        sensors=[sensor],
        resources={"ingest_inbox_dir": IngestInbox(path=str(settings.inbox_dir))},
    )
