"""download_transfer_sensor: requests an acquisition run when there is acquisition work to do.

It replaces the original's retry scheduler loop: nothing sleeps in a worker; each tick looks at
DuckDB and slskd's transfer list and asks Dagster for a run only when there is work: searches due,
retries due, transfers finished, files awaiting the import. The run selects only the assets that
have work, from the first of them down the chain.
"""

from dagster import AssetKey, RunRequest, SensorEvaluationContext, SkipReason, sensor

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import (
    downloads_not_started,
    imports_pending,
    load_downloads,
    pending_download_work,
    searches_due,
)
from harmony_pipeline.acquisition.download_flow import belongs_to_attempt, newest_transfers
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from resources.slskd import SlskdResource
from harmony_pipeline.acquisition.slskd import SlskdError
from sensors.run_health import ACTIVE_RUN_STATUSES, active_runs  # noqa: F401  (re-exported for other sensors)

ACQUISITION_CHAIN = ("soulseek_matches", "downloads", "library_tracks")
# The first asset of the chain each kind of work needs; the run takes it and everything after it.
WORK_STARTS_AT = {"searches_due": "soulseek_matches", "retries_due": "downloads", "downloads_due": "downloads",
                  "transfers_finished": "downloads", "stalled_claims": "downloads", "to_import": "library_tracks"}


def pending_work(database: HarmonyDatabase, slskd: SlskdResource | None) -> dict[str, int]:
    """Counts of what an acquisition run would act on now."""
    now = storage.utcnow()
    with database.connect(read_only=True) as conn:
        downloading = load_downloads(conn, "state = 'downloading'")
        _, next_due = pending_download_work(conn, now)
        claims = conn.execute("SELECT count(*) FROM downloads WHERE state = 'enqueuing'").fetchone()[0]
        work = {
            "retries_due": int(next_due is not None and next_due <= now),
            "downloads_due": downloads_not_started(conn),
            "to_import": imports_pending(conn),
            "searches_due": searches_due(conn, now),
            "stalled_claims": claims,
        }
    work["transfers_finished"] = 0
    if slskd is not None and (downloading or work["retries_due"] or work["searches_due"] or work["downloads_due"]):
        # Asked even with nothing in flight: while slskd is down the tick is skipped (SlskdError)
        # instead of requesting runs that can only fail.
        # The newest transfer of each file, and only one requested for the current attempt: an earlier
        # attempt's finished transfer of the same file is no news.
        transfers = newest_transfers(slskd.get_client().transfers())
        work["transfers_finished"] = sum(
            1 for row in downloading
            if (t := transfers.get((row["username"], row["filename"]))) is not None and t.is_terminal
            and belongs_to_attempt(t, row))
    return work


def acquisition_selection(work: dict[str, int]) -> list[str]:
    """The acquisition assets a run needs for this work: from the earliest one with work to the end."""
    starts = [ACQUISITION_CHAIN.index(WORK_STARTS_AT[name]) for name, count in work.items() if count]
    return list(ACQUISITION_CHAIN[min(starts):]) if starts else []


def build_download_transfer_sensor(job, workers: Workers, interval_seconds: int):
    @sensor(
        name="download_transfer_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=workers.sensor_status,
        description="Requests an acquisition run when searches or retries fall due, transfers finish or "
                    "files await the import.",
    )
    def download_transfer_sensor(context: SensorEvaluationContext, slskd: SlskdResource,
                                 database: HarmonyDatabase):
        active = active_runs(context.instance, job.name, context.log)
        if active:
            return SkipReason(f"an acquisition run is already in progress ({active[0].run_id[:8]})")
        try:
            work = pending_work(database, slskd)
        except SlskdError as error:
            return SkipReason(f"slskd unavailable: {error}")
        selection = acquisition_selection(work)
        if not selection:
            return SkipReason("no searches or retries due, no finished transfers or imports")
        summary = ", ".join(f"{name}={count}" for name, count in work.items() if count)
        context.log.info(f"requesting an acquisition run of {', '.join(selection)}: {summary}")
        return RunRequest(run_key=f"acquisition-{storage.utcnow().isoformat()}",
                          asset_selection=[AssetKey(name) for name in selection],
                          tags={"harmony/trigger": summary})

    return download_transfer_sensor
