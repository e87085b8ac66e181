"""`status_view_sensor`: keeps the instance view `harmony status` reads without loading Dagster.

Every 30 s it judges every worker (last tick, stored status) and reads the last materialization of
every asset, then writes them to HARMONY_DATA_DIR/status-instance-view.json (harmony_pipeline/status.py).
When the daemon stops, the view ages past its limit and `harmony status` reads the instance itself.
"""

from __future__ import annotations

from dagster import SensorEvaluationContext, SkipReason, sensor

from harmony_pipeline.settings import load_settings
from harmony_pipeline.status import VIEW_INTERVAL_SECONDS, write_instance_view
from harmony_pipeline.wiring import Workers


def build_status_view_sensor(workers: Workers):
    @sensor(
        name="status_view_sensor",
        minimum_interval_seconds=VIEW_INTERVAL_SECONDS,
        default_status=workers.sensor_status,
        description="Writes the workers' states and the assets' last materializations for `harmony status`, "
                    "which then answers without loading Dagster.",
    )
    def status_view_sensor(context: SensorEvaluationContext):
        path = write_instance_view(load_settings(), context.instance)
        return SkipReason(f"status view written to {path}")

    return status_view_sensor
