"""free_ingest_inbox_sensor: records files dropped into HARMONY_INBOX_DIR and requests an ingest run.

Each tick records every settled .txt/.csv/.json file with the same functions as `harmony ingest`,
moves it into `processed/` (or `failed/` with a `.reason.txt`), and remembers its name, mtime and size
in the cursor so a file that could not be moved is never read twice. A run of the ingest job is
requested whenever items are due for a Spotify lookup (also items added by `harmony ingest`), keyed by
the newest submission and the hour, so the same work starts one run, and work left over by a failed
or rate-limited run is tried again the next hour.
"""

import json
import time
from pathlib import Path

from dagster import RunRequest, RunsFilter, SensorEvaluationContext, SensorResult, SkipReason, sensor

from harmony_pipeline import storage
from harmony_pipeline.ingest_store import backfill_work, ingest_inbox_file, waiting_inbox_files
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from sensors.downloads import ACTIVE_RUN_STATUSES

CURSOR_MEMORY = 200  # file keys remembered beyond those still in the inbox


def _read_cursor(cursor: str | None) -> list[str]:
    if not cursor:
        return []
    try:
        keys = json.loads(cursor).get("processed", [])
    except (ValueError, AttributeError):
        return []
    return [key for key in keys if isinstance(key, str)]


def build_free_ingest_inbox_sensor(job, workers: Workers, interval_seconds: int):
    from assets.ingest import IngestInbox

    @sensor(
        name="free_ingest_inbox_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=workers.sensor_status,
        description="Records files dropped into the FREE-ingest inbox and requests an ingest run for new items.",
    )
    def free_ingest_inbox_sensor(context: SensorEvaluationContext, database: HarmonyDatabase,
                                 ingest_inbox_dir: IngestInbox):
        inbox = Path(ingest_inbox_dir.path)
        processed = _read_cursor(context.cursor)
        seen = set(processed)
        taken = []
        for file in waiting_inbox_files(inbox, time.time(), ingest_inbox_dir.settle_seconds):
            if file.key in seen:
                continue
            processed.append(file.key)  # remembered even if the move below fails: never read twice
            seen.add(file.key)
            try:
                outcome = ingest_inbox_file(database.path, file)
            except OSError as error:
                context.log.warning(f"inbox {file.path.name}: recorded but not moved aside: {error}")
                continue
            taken.append(outcome)
            if outcome.outcome is None:
                context.log.warning(f"inbox {file.path.name}: failed ({outcome.error}); moved to {outcome.moved_to}")
            else:
                context.log.info(f"inbox {file.path.name}: accepted {outcome.outcome.accepted}, "
                                 f"skipped {len(outcome.outcome.skipped)}")
        cursor = json.dumps({"processed": _trim(processed, inbox)})

        with database.connect(read_only=True) as conn:
            due, newest = backfill_work(conn, storage.utcnow())
        if not due:
            summary = f"{len(taken)} inbox files recorded; " if taken else ""
            return SensorResult(skip_reason=SkipReason(f"{summary}no items waiting for a Spotify lookup"),
                                cursor=cursor)
        active = context.instance.get_runs(
            filters=RunsFilter(job_name=job.name, statuses=ACTIVE_RUN_STATUSES), limit=1)
        if active:
            return SensorResult(skip_reason=SkipReason(f"{due} items due; an ingest run is in progress"),
                                cursor=cursor)
        accepted = sum(t.outcome.accepted for t in taken if t.outcome)
        hour = storage.utcnow().strftime("%Y%m%d%H")
        return SensorResult(
            run_requests=[RunRequest(run_key=f"free-ingest-{newest}-{hour}",
                                     tags={"harmony/trigger": f"items_due={due} inbox_accepted={accepted}"})],
            cursor=cursor,
        )

    return free_ingest_inbox_sensor


def _trim(keys: list[str], inbox: Path) -> list[str]:
    """Keys of files still in the inbox, plus the most recent others (bounded cursor size)."""
    present = {p.name for p in inbox.iterdir()} if inbox.is_dir() else set()
    still_there = [k for k in keys if k.split("|", 1)[0] in present]
    others = [k for k in keys if k.split("|", 1)[0] not in present]
    return still_there + others[-CURSOR_MEMORY:]
