"""How each concern contributes to the code location, so definitions.py stays a short list.

Every module in `definitions.CONCERN_MODULES` defines `wiring(settings, workers) -> dagster.Definitions`;
definitions.py combines them with `Definitions.merge`, which refuses two different resources under one
key. Flags are honoured inside `wiring` (e.g. the artwork assets only with ENABLE_ARTWORK), and every
sensor and schedule takes its default status from `workers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DefaultScheduleStatus, DefaultSensorStatus


@dataclass(frozen=True)
class Workers:
    """Default status for sensors and schedules: RUNNING, or STOPPED with HARMONY_DISABLE_WORKERS=1."""

    disabled: bool

    @property
    def sensor_status(self) -> DefaultSensorStatus:
        return DefaultSensorStatus.STOPPED if self.disabled else DefaultSensorStatus.RUNNING

    @property
    def schedule_status(self) -> DefaultScheduleStatus:
        return DefaultScheduleStatus.STOPPED if self.disabled else DefaultScheduleStatus.RUNNING

