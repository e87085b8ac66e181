"""How each concern contributes to the code location, so definitions.py stays a short list.

Every module in `definitions.CONCERN_MODULES` defines `wiring(settings, workers) -> Wiring`. Flags are honoured inside `wiring` (e.g. the artwork assets only with
ENABLE_ARTWORK), and every sensor and schedule takes its default status from `workers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class Wiring:
    assets: list[Any] = field(default_factory=list)
    asset_checks: list[Any] = field(default_factory=list)
    sensors: list[Any] = field(default_factory=list)
    schedules: list[Any] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)

    def add(self, other: Wiring) -> None:
        self.assets += other.assets
        self.asset_checks += other.asset_checks
        self.sensors += other.sensors
        self.schedules += other.schedules
        self.jobs += other.jobs
        self.resources.update(other.resources)
