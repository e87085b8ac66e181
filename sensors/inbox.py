"""free_ingest_inbox_sensor: records files dropped into HARMONY_INBOX_DIR and requests an ingest run.

Each tick records every settled .txt/.csv/.json file up to SENSOR_MAX_BYTES with the same functions
as `harmony ingest`, claiming it first by a rename into `processing/` (so a file the free_ingest_items
asset took at the same moment is skipped, and none is read twice) and then moving it into `processed/`
(or `failed/` with a `.reason.txt`). Larger files are left to the free_ingest_items asset, so a tick
stays short whatever is dropped; a claim left in `processing/` by a killed tick or run is taken back
once older than CLAIM_STALE_SECONDS. A run of the ingest job is requested whenever items are due for a
Spotify lookup (also items added by `harmony ingest`) or large files wait, keyed by the newest
submission (or the waiting files) and the hour, so the same work starts one run, and work left over
by a failed or rate-limited run is tried again the next hour. Logs show file names and reasons only
as short sanitised previews.
"""

import hashlib
import time
from pathlib import Path

import duckdb
from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from harmony_pipeline import storage
from harmony_pipeline.ingest.store import SENSOR_MAX_BYTES, backfill_work, ingest_inbox_file, waiting_inbox_files
from harmony_pipeline.safe_read import preview
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from resources.inbox import IngestInbox
from sensors.run_health import active_runs


def build_free_ingest_inbox_sensor(job, workers: Workers, interval_seconds: int):
    @sensor(
        name="free_ingest_inbox_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=workers.sensor_status,
        description="Records files dropped into the FREE-ingest inbox and requests an ingest run for new items.",
    )
    def free_ingest_inbox_sensor(context: SensorEvaluationContext, database: HarmonyDatabase,
                                 ingest_inbox_dir: IngestInbox):
        taken = []
        waiting = waiting_inbox_files(Path(ingest_inbox_dir.path), time.time(), ingest_inbox_dir.settle_seconds,
                                      ingest_inbox_dir.claim_stale_seconds)
        left_for_run = [file for file in waiting if file.size > SENSOR_MAX_BYTES]
        for file in waiting:
            if file.size > SENSOR_MAX_BYTES:
                continue
            name = preview(file.name)
            try:
                outcome = ingest_inbox_file(database.path, file)
            except (OSError, duckdb.Error) as error:
                context.log.warning(f"inbox {name}: {preview(error, 200)}; left in the inbox for the next tick")
                continue
            if outcome is None:
                context.log.info(f"inbox {name}: taken by an ingest run")
                continue
            taken.append(outcome)
            if outcome.outcome is None:
                context.log.warning(f"inbox {name}: failed ({outcome.error}); moved to failed/")
            else:
                context.log.info(f"inbox {name}: accepted {outcome.outcome.accepted}, "
                                 f"skipped {outcome.outcome.skipped_count}")

        with database.connect(read_only=True) as conn:
            due, newest = backfill_work(conn, storage.utcnow())
        if not due and not left_for_run:
            summary = f"{len(taken)} inbox files recorded; " if taken else ""
            return SkipReason(f"{summary}no items waiting for a Spotify lookup")
        active = active_runs(context.instance, job.name, context.log)
        if active:
            return SkipReason(f"{due} items due, {len(left_for_run)} large inbox files; an ingest run is in progress")
        accepted = sum(t.outcome.accepted for t in taken if t.outcome)
        hour = storage.utcnow().strftime("%Y%m%d%H")
        files_key = ""
        if left_for_run:
            listing = "\n".join(f"{f.path.name}:{f.mtime}:{f.size}" for f in left_for_run)
            files_key = "-files-" + hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        return RunRequest(run_key=f"free-ingest-{newest}{files_key}-{hour}",
                          tags={"harmony/trigger": f"items_due={due} large_inbox_files={len(left_for_run)} "
                                                   f"inbox_accepted={accepted}"})

    return free_ingest_inbox_sensor
