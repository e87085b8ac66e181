"""download_transfer_sensor: requests an acquisition run when slskd transfers finish or retries fall due.

It replaces the original's retry scheduler loop: nothing sleeps in a worker; each tick looks at
DuckDB and slskd's transfer list and asks Dagster for a run only when there is work.
"""

from dagster import (
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from harmony_pipeline import storage
from harmony_pipeline.download_flow import pending_download_work
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from resources.slskd import SlskdError, SlskdResource

ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                       DagsterRunStatus.STARTED]


def pending_work(database: HarmonyDatabase, slskd: SlskdResource | None) -> dict[str, int]:
    """Counts of what an acquisition run would act on now."""
    now = storage.utcnow()
    with database.connect(read_only=True) as conn:
        downloading = conn.execute(
            "SELECT username, filename FROM downloads WHERE state = 'downloading'").fetchall()
        _, next_due = pending_download_work(conn, now)
        work = {
            "retries_due": int(next_due is not None and next_due <= now),
            "to_import": conn.execute("SELECT count(*) FROM downloads WHERE state = 'succeeded'").fetchone()[0],
            "searches_due": conn.execute(
                "SELECT count(*) FROM wanted_tracks w LEFT JOIN soulseek_matches m USING (wanted_key) "
                "WHERE w.state = 'wanted' AND (m.wanted_key IS NULL OR "
                "(m.status IN ('deferred', 'no_match') AND m.retry_search_after <= ?))", [now]).fetchone()[0],
        }
    work["transfers_finished"] = 0
    if slskd is not None and (downloading or work["retries_due"] or work["searches_due"]):
        # Asked even with nothing in flight: while slskd is down the tick is skipped (SlskdError)
        # instead of requesting runs that can only fail.
        ours = set(downloading)
        work["transfers_finished"] = sum(
            1 for t in slskd.get_client().transfers() if (t.username, t.filename) in ours and t.is_terminal)
    return work


def build_download_transfer_sensor(job, workers: Workers, interval_seconds: int):
    @sensor(
        name="download_transfer_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=workers.sensor_status,
        description="Requests an acquisition run when transfers finish, files await import or retries fall due.",
    )
    def download_transfer_sensor(context: SensorEvaluationContext, slskd: SlskdResource,
                                 database: HarmonyDatabase):
        active = context.instance.get_runs(
            filters=RunsFilter(job_name=job.name, statuses=ACTIVE_RUN_STATUSES), limit=1)
        if active:
            return SkipReason(f"an acquisition run is already in progress ({active[0].run_id[:8]})")
        try:
            work = pending_work(database, slskd)
        except SlskdError as error:
            return SkipReason(f"slskd unavailable: {error}")
        if not any(work.values()):
            return SkipReason("no finished transfers, imports or due retries")
        summary = ", ".join(f"{name}={count}" for name, count in work.items() if count)
        context.log.info(f"requesting an acquisition run: {summary}")
        return RunRequest(run_key=f"acquisition-{storage.utcnow().isoformat()}", tags={"harmony/trigger": summary})

    return download_transfer_sensor
