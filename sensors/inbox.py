"""free_ingest_inbox_sensor: records files dropped into HARMONY_INBOX_DIR and requests an ingest run.

Each tick records every settled .txt/.csv/.json file with the same functions as `harmony ingest`,
claiming it first by a rename into `processing/` (so a file the free_ingest_items asset took at the
same moment is skipped, and none is read twice) and then moving it into `processed/` (or `failed/`
with a `.reason.txt`). A run of the ingest job is requested whenever items are due for a Spotify lookup
(also items added by `harmony ingest`), keyed by the newest submission and the hour, so the same work
starts one run, and work left over by a failed or rate-limited run is tried again the next hour.
"""

import time
from pathlib import Path

import duckdb
from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from harmony_pipeline import storage
from harmony_pipeline.ingest_store import backfill_work, ingest_inbox_file, waiting_inbox_files
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from sensors.run_health import active_runs


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
        taken = []
        for file in waiting_inbox_files(Path(ingest_inbox_dir.path), time.time(), ingest_inbox_dir.settle_seconds):
            try:
                outcome = ingest_inbox_file(database.path, file)
            except (OSError, duckdb.Error) as error:
                context.log.warning(f"inbox {file.path.name}: {error}; left in the inbox for the next tick")
                continue
            if outcome is None:
                context.log.info(f"inbox {file.path.name}: taken by an ingest run")
                continue
            taken.append(outcome)
            if outcome.outcome is None:
                context.log.warning(f"inbox {file.path.name}: failed ({outcome.error}); moved to {outcome.moved_to}")
            else:
                context.log.info(f"inbox {file.path.name}: accepted {outcome.outcome.accepted}, "
                                 f"skipped {len(outcome.outcome.skipped)}")

        with database.connect(read_only=True) as conn:
            due, newest = backfill_work(conn, storage.utcnow())
        if not due:
            summary = f"{len(taken)} inbox files recorded; " if taken else ""
            return SkipReason(f"{summary}no items waiting for a Spotify lookup")
        active = active_runs(context.instance, job.name, context.log)
        if active:
            return SkipReason(f"{due} items due; an ingest run is in progress")
        accepted = sum(t.outcome.accepted for t in taken if t.outcome)
        hour = storage.utcnow().strftime("%Y%m%d%H")
        return RunRequest(run_key=f"free-ingest-{newest}-{hour}",
                          tags={"harmony/trigger": f"items_due={due} inbox_accepted={accepted}"})

    return free_ingest_inbox_sensor

