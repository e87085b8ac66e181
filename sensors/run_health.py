"""Runs whose process died (kill -9, OOM, reboot) are marked failed, so nothing waits on them.

With the default run launcher, Dagster's run monitoring cannot see that a run's process is gone: the
run stays STARTED for ever and "one acquisition run at a time" checks would wait on it for ever. Every
run records its process token as a tag when its resources start (resources/database.py); a sensor
tick that finds a started run whose process is gone reports it failed, with the reason.
"""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from harmony_pipeline.claims import claim_is_live

PROCESS_TAG = "harmony/process"
ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                       DagsterRunStatus.STARTED]


def fail_dead_runs(instance: DagsterInstance, log=None) -> list[str]:
    """Report every started run whose recorded process is gone as failed; returns their ids."""
    dead = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        token = run.tags.get(PROCESS_TAG)
        if not token or claim_is_live(token):
            continue
        run = instance.get_run_by_id(run.run_id)  # it may have finished since the list was read
        if run is not None and run.status == DagsterRunStatus.STARTED:
            instance.report_run_failed(run, f"the run's process ({token}) is gone: it was killed or crashed")
            dead.append(run.run_id)
            if log is not None:
                log.warning(f"run {run.run_id[:8]} marked failed: its process {token} is gone")
    return dead


def active_runs(instance: DagsterInstance, job_name: str, log=None) -> list:
    """Runs of the job that are queued or really running (dead ones are marked failed first)."""
    fail_dead_runs(instance, log)
    return instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=ACTIVE_RUN_STATUSES), limit=1)
