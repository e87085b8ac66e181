"""How enrichment runs: declarative automation after every library change, and a nightly retry.

- `enrichment_automation_sensor` evaluates the assets' `AutomationCondition.eager()`: a run after
  library_tracks is materialized. Dagster's own automation sensor starts STOPPED, so this one is
  declared with the workers' default status.
- `enrichment_schedule` (03:00 every night) materializes the enrichment assets when tracks wait for
  them: misses (no lyrics, no cover) and failures whose cool-down has passed, or tracks never enriched.
"""

from datetime import datetime

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from harmony_pipeline import storage
from harmony_pipeline.enrichment.due import count_due
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase

ENRICHMENT_CRON = "0 3 * * *"


def _asset_names(assets) -> list[str]:
    return [key.to_user_string() for asset in assets for key in asset.keys]


def build_enrichment_automation_sensor(assets, workers: Workers) -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        "enrichment_automation_sensor",
        target=AssetSelection.assets(*assets),
        default_status=workers.sensor_status,
        description="Enriches library tracks as soon as library_tracks changes (declarative automation).",
    )


def enrichment_due(database: HarmonyDatabase, tables: list[str], now: datetime) -> dict[str, int]:
    """Tracks each enrichment table would act on at `now` (the table of an asset is named as the asset)."""
    with database.connect() as conn:  # read-write: the enrichment tables may not exist yet
        known = {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "library_tracks" not in known:
            return {}
        return {table: count_due(conn, table, now) for table in tables}


def build_enrichment_schedule(assets, workers: Workers):
    names = _asset_names(assets)
    job = define_asset_job("enrichment_job", selection=AssetSelection.assets(*assets),
                           description="Tags, artwork and lyrics for every library track that waits for them.")

    @schedule(
        name="enrichment_schedule",
        job=job,
        cron_schedule=ENRICHMENT_CRON,
        default_status=workers.schedule_status,
        description="Nightly: retries lyrics/artwork misses and failures whose cool-down has passed.",
    )
    def enrichment_schedule(context: ScheduleEvaluationContext, database: HarmonyDatabase):
        now = context.scheduled_execution_time or storage.utcnow()
        due = {table: count for table, count in enrichment_due(database, names, now).items() if count}
        if not due:
            return SkipReason("no library track waits for enrichment")
        summary = ", ".join(f"{table}={count}" for table, count in due.items())
        return RunRequest(run_key=f"enrichment-{context.scheduled_execution_time.isoformat()}",
                          tags={"harmony/trigger": summary})

    return enrichment_schedule
