"""Runs whose process died (kill -9, OOM, reboot) are marked failed, so nothing waits on them.

With the default run launcher, Dagster's run monitoring cannot see that a run's process is gone: the
run stays STARTED for ever and "one acquisition run at a time" checks would wait on it for ever. Every
run records its process token as a tag when its resources start (resources/database.py); a sensor
tick that finds a started run whose process is gone reports it failed, with the reason.
"""

from __future__ import annotations

import time

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from harmony_pipeline.claims import claim_is_live

PROCESS_TAG = "harmony/process"
# A started run that never tagged its process (killed while starting) is taken for dead after this.
UNTAGGED_RUN_TIMEOUT_SECONDS = 600
ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                       DagsterRunStatus.STARTED]


def _gone(record) -> str | None:
    """Why a started run is dead, or None while it may still be running."""
    token = record.dagster_run.tags.get(PROCESS_TAG)
    if token:
        return None if claim_is_live(token) else f"the run's process ({token}) is gone: it was killed or crashed"
    # No token: killed before its resources started, or not ours. Its process never said who it is.
    started = record.start_time or record.create_timestamp.timestamp()
    if time.time() - started > UNTAGGED_RUN_TIMEOUT_SECONDS:
        return f"the run started {UNTAGGED_RUN_TIMEOUT_SECONDS // 60} minutes ago and never reported its process"
    return None


def fail_dead_runs(instance: DagsterInstance, log=None) -> list[str]:
    """Report every started run whose process is gone as failed; returns their ids."""
    dead = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        reason = _gone(record)
        if reason is None:
            continue
        run = instance.get_run_by_id(record.dagster_run.run_id)  # it may have finished since the list was read
        if run is not None and run.status == DagsterRunStatus.STARTED:
            instance.report_run_failed(run, reason)
            dead.append(run.run_id)
            if log is not None:
                log.warning(f"run {run.run_id[:8]} marked failed: {reason}")
    return dead


def active_runs(instance: DagsterInstance, job_name: str, log=None) -> list:
    """Runs of the job that are queued or really running (dead ones are marked failed first)."""
    fail_dead_runs(instance, log)
    return instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=ACTIVE_RUN_STATUSES), limit=1)
