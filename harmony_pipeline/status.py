"""`harmony status [--json]`: workers, queue sizes, recent activity and last materializations.

Workers are the sensors and schedules of the code location. The full list comes from building the
definitions with every ENABLE_* flag on, so a worker a flag leaves out is still listed, as
"unavailable". The other states come from the Dagster instance under DAGSTER_HOME (the one the daemon
writes): "stopped" when its stored or default status is STOPPED, "running" when it is on and ticked
within twice its interval, "stale" when it is on but has not (the daemon is down). Without DAGSTER_HOME
no tick can be read: each worker shows its code default, "stopped" or (on, never seen ticking) "stale",
with no last tick. Queue sizes and activity are read from DuckDB, read-only.

Importing Dagster and building the definitions costs seconds, so the code location keeps an *instance
view* (workers and last materializations, judged when written) in HARMONY_DATA_DIR, rewritten by
`status_view_sensor` every 30 s. `harmony status` uses it while it is younger than VIEW_MAX_AGE and was
written for the same DAGSTER_HOME and flags, without importing Dagster; otherwise (the daemon stopped,
workers disabled, `--live`) it reads the instance itself, so a dead daemon still shows as stale workers.

Exit codes: 0 healthy, 1 when something needs attention (stale workers, DAGSTER_HOME unset, dead letters),
2 on error (bad configuration, unreadable DuckDB or Dagster instance). docs/status-json.md documents
the JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from harmony_pipeline import storage
from harmony_pipeline.cli.listing import is_terminal, print_rows, tab_rows
from harmony_pipeline.settings import Settings, SettingsError

if TYPE_CHECKING:
    from dagster import DagsterInstance

STALE_FACTOR = 2  # a worker is stale after this many intervals without a tick
VIEW_FILE = "status-instance-view.json"
VIEW_INTERVAL_SECONDS = 30
# Past this the view's own sensor would be judged stale: the daemon is not running it, so the instance is
# read live. Within it, each worker is judged again at the moment of the command (`rejudged`).
VIEW_MAX_AGE = timedelta(seconds=STALE_FACTOR * VIEW_INTERVAL_SECONDS)
DUCKDB_WAIT_SECONDS = 10.0  # a run holding the write lock releases it between statements
# Queue keys of the JSON object, in display order. `matching` is the old name of `searching`, kept for
# readers of the JSON (docs/status-json.md); no-match tracks are counted apart, as "no match yet".
QUEUES = ("wanted", "searching", "downloading", "retry_due", "no_match", "dead_letter")
JSON_ALIASES = {"matching": "searching"}
QUEUE_LABELS = {
    "wanted": ("wanted", "not searched yet"),
    "searching": ("searching", "search waiting for the Soulseek search budget"),
    "downloading": ("downloading", "transfers under way in slskd"),
    "retry_due": ("retry due", "failed downloads whose next attempt is due"),
    "no_match": ("no match yet", "nothing acceptable found; searched again later"),
    "dead_letter": ("dead-letter", "gave up: see `harmony dead-letter list`"),
}

# Plain SQL, one statement per queue, so it can move wherever the acquisition states are defined.
QUEUE_SQL = {
    "wanted": "SELECT count(*) FROM wanted_tracks w WHERE w.state = 'wanted' "
              "AND NOT EXISTS (SELECT 1 FROM soulseek_matches m WHERE m.wanted_key = w.wanted_key)",
    "searching": "SELECT count(*) FROM wanted_tracks w JOIN soulseek_matches m USING (wanted_key) "
                 "WHERE w.state = 'wanted' AND m.status IN ('searching', 'deferred')",
    # From the claim before slskd has the transfer to the file's move into the library.
    "downloading": "SELECT count(*) FROM downloads WHERE state IN ('enqueuing', 'downloading', 'succeeded', "
                   "'importing')",
    "retry_due": "SELECT count(*) FROM downloads WHERE state = 'retry' AND next_attempt_at <= ?",
    "no_match": "SELECT count(*) FROM wanted_tracks w JOIN soulseek_matches m USING (wanted_key) "
                "WHERE w.state = 'wanted' AND m.status = 'no_match'",
    "dead_letter": "SELECT count(*) FROM downloads WHERE state = 'dead_letter'",
}
NEXT_SEARCH_SQL = ("SELECT min(m.retry_search_after) FROM wanted_tracks w JOIN soulseek_matches m USING (wanted_key) "
                   "WHERE w.state = 'wanted' AND m.status = 'no_match'")
QUEUE_TABLES = {"wanted": {"wanted_tracks", "soulseek_matches"}, "searching": {"wanted_tracks", "soulseek_matches"},
                "no_match": {"wanted_tracks", "soulseek_matches"}}


@dataclass(frozen=True)
class WorkerDefinition:
    name: str
    kind: str  # sensor | schedule
    interval_seconds: int
    default_running: bool
    loaded: bool
    unavailable_reason: str = ""


@dataclass
class WorkerStatus:
    name: str
    kind: str
    state: str  # running | stopped | stale | unavailable
    last_tick: datetime | None
    interval_seconds: int
    note: str = ""
    seen_at: datetime | None = None  # its last tick or start, whichever is later (judges a kept view)


@dataclass
class StatusReport:
    workers: list[WorkerStatus]
    queues: dict[str, int]
    activity: list[dict[str, Any]]
    assets: dict[str, datetime | None]
    dagster_home: str | None
    notes: list[str] = field(default_factory=list)
    next_search_at: datetime | None = None  # the soonest new search of a no-match track
    instance_read_at: datetime | None = None  # when workers and assets were read from the instance

    @property
    def problems(self) -> list[str]:
        """One line per thing that needs the user's attention (these make the exit code 1)."""
        if self.dagster_home is None:
            found = ["DAGSTER_HOME is not set: no tick or materialization can be read, so workers show their "
                     "code default (on = stale, with no last tick); set it to the folder `dagster dev` / "
                     "`dagster-daemon run` use"]
        else:
            found = [f"worker {w.name} is stale: "
                     + (f"last tick {_iso(w.last_tick)}" if w.last_tick else "it never ticked")
                     + f" (interval {w.interval_seconds} s); is the Dagster daemon running?"
                     for w in self.workers if w.state == "stale"]
        if self.queues.get("dead_letter"):
            found.append(f"{self.queues['dead_letter']} download(s) dead-lettered: "
                         "see `harmony dead-letter list`")
        return found

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "workers": {w.name: {"kind": w.kind, "state": w.state, "last_tick": _iso(w.last_tick)}
                        for w in self.workers},
            "queues": {**self.queues, **{old: self.queues[new] for old, new in JSON_ALIASES.items()}},
            "next_search_at": _iso(self.next_search_at),
            "instance_read_at": _iso(self.instance_read_at),
            "activity": [{"time": _iso(e["time"]), "type": e["type"], "details": e["details"]}
                         for e in self.activity],
            "assets": {key: _iso(time) for key, time in self.assets.items()},
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def _from_timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


# --- what the code location defines ---------------------------------------------------------------
def _quiet_wiring(settings: Settings):
    """The definitions' wiring without the `wiring_summary` log line (meant for the code server)."""
    logging.disable(logging.INFO)
    try:
        from harmony_pipeline.definitions import collect_wiring

        return collect_wiring(settings)
    finally:
        logging.disable(logging.NOTSET)


def _flags(settings: Settings) -> list[str]:
    return [f.name for f in fields(settings) if f.name.startswith("enable_")]


def schedule_interval_seconds(cron: str, timezone_name: str | None, now: datetime) -> int:
    """Seconds between the next two fire times of a cron schedule."""
    from dagster._utils.schedules import cron_string_iterator

    fire_times = cron_string_iterator(now.timestamp(), cron, timezone_name or "UTC")
    first, second = next(fire_times), next(fire_times)
    return int((second - first).total_seconds())


def _workers_of(wiring, now: datetime) -> dict[str, tuple[str, int, bool]]:
    """name → (kind, interval seconds, running by default) of a wiring's sensors and schedules."""
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    found = {s.name: ("sensor", int(s.minimum_interval_seconds or 30),
                      s.default_status == DefaultSensorStatus.RUNNING) for s in wiring.sensors}
    for schedule in wiring.schedules:
        cron = schedule.cron_schedule if isinstance(schedule.cron_schedule, str) else schedule.cron_schedule[0]
        found[schedule.name] = ("schedule", schedule_interval_seconds(cron, schedule.execution_timezone, now),
                                schedule.default_status == DefaultScheduleStatus.RUNNING)
    return found


def worker_definitions(settings: Settings, now: datetime) -> list[WorkerDefinition]:
    """Every sensor and schedule the project has; those the current flags leave out are not loaded."""
    loaded = _workers_of(_quiet_wiring(settings), now)
    every_flag_on = replace(settings, **{flag: True for flag in _flags(settings)})
    everything = _workers_of(_quiet_wiring(every_flag_on), now)
    reasons: dict[str, str] = {}
    for flag in _flags(settings):
        if getattr(settings, flag):
            continue
        for name in _workers_of(_quiet_wiring(replace(settings, **{flag: True})), now):
            if name not in loaded:
                reasons.setdefault(name, f"{flag.upper()} is off")
    result = []
    for name, (kind, interval, default_running) in sorted(everything.items()):
        is_loaded = name in loaded
        if is_loaded:
            kind, interval, default_running = loaded[name]
        result.append(WorkerDefinition(name, kind, interval, default_running, is_loaded,
                                       "" if is_loaded else reasons.get(name, "not loaded")))
    return result


def asset_keys(settings: Settings) -> list[str]:
    """Asset keys of the code location with every flag on (a flag turned off keeps its history)."""
    every_flag_on = replace(settings, **{flag: True for flag in _flags(settings)})
    wiring = _quiet_wiring(every_flag_on)
    return sorted({key.to_user_string() for a in wiring.assets for key in getattr(a, "keys", ())})


# --- what the Dagster instance knows ----------------------------------------------------------------
@dataclass(frozen=True)
class _Observed:
    status: str  # RUNNING | STOPPED | DECLARED_IN_CODE
    last_tick: datetime | None
    started: datetime | None


def _observed(instance: DagsterInstance, kind: str) -> dict[str, _Observed]:
    """name → what the instance stored for it. A name stored by several code locations (e.g. `dagster
    dev` and `dagster-webserver -m`) keeps the one that ticked last."""
    from dagster._core.scheduler.instigation import InstigatorType

    instigator_type = InstigatorType.SENSOR if kind == "sensor" else InstigatorType.SCHEDULE
    found: dict[str, _Observed] = {}
    for state in instance.all_instigator_state(instigator_type=instigator_type):
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        data = state.instigator_data
        started = getattr(data, "last_sensor_start_timestamp", None) or getattr(data, "start_timestamp", None)
        seen = _Observed(state.status.value, _from_timestamp(ticks[0].timestamp) if ticks else None,
                         _from_timestamp(started))
        before = found.get(state.instigator_name)
        if before is None or _latest(seen) > _latest(before):
            found[state.instigator_name] = seen
    return found


def _latest(observed: _Observed) -> datetime:
    moments = [m for m in (observed.last_tick, observed.started) if m is not None]
    return max(moments) if moments else datetime.min.replace(tzinfo=timezone.utc)


def worker_state(definition: WorkerDefinition, observed: _Observed | None, now: datetime) -> tuple[str, str]:
    """(state, note) of one loaded worker from its stored instigator state and last tick."""
    if observed is None or observed.status == "DECLARED_IN_CODE":
        on = definition.default_running
    else:
        on = observed.status == "RUNNING"
    if not on:
        return "stopped", ""
    if observed is None:
        return "stale", "never ticked"
    window = timedelta(seconds=STALE_FACTOR * definition.interval_seconds)
    if now - _latest(observed) <= window:
        return "running", "" if observed.last_tick else "waiting for its first tick"
    return "stale", f"no tick in {STALE_FACTOR} intervals"


def collect_workers(definitions: Iterable[WorkerDefinition], instance: DagsterInstance | None,
                    now: datetime) -> list[WorkerStatus]:
    observed = {"sensor": {}, "schedule": {}}
    if instance is not None:
        observed = {kind: _observed(instance, kind) for kind in observed}
    workers = []
    for definition in definitions:
        seen = observed[definition.kind].get(definition.name)
        last_tick = seen.last_tick if seen else None
        if not definition.loaded:
            state, note = "unavailable", definition.unavailable_reason
        elif instance is None:  # no instance to read: the code default, as if no daemon ever ticked
            state = worker_state(definition, None, now)[0]
            note = "code default (DAGSTER_HOME not set)"
        else:
            state, note = worker_state(definition, seen, now)
        workers.append(WorkerStatus(definition.name, definition.kind, state, last_tick,
                                    definition.interval_seconds, note,
                                    _latest(seen) if seen and (seen.last_tick or seen.started) else None))
    return workers


def last_materializations(instance: DagsterInstance | None, keys: list[str]) -> dict[str, datetime | None]:
    if instance is None:
        return dict.fromkeys(keys)
    from dagster import AssetKey

    events = instance.get_latest_materialization_events([AssetKey.from_user_string(k) for k in keys])
    times = {key.to_user_string(): _from_timestamp(entry.timestamp) for key, entry in events.items() if entry}
    return {key: times.get(key) for key in keys}


# --- the instance view: what the instance knows, kept where the CLI reads it without Dagster -------
@dataclass
class InstanceView:
    dagster_home: str
    taken_at: datetime
    flags: dict[str, bool]  # the settings the view was judged with; another set reads the instance live
    workers: list[WorkerStatus]
    assets: dict[str, datetime | None]

    def to_json(self) -> dict[str, Any]:
        return {"dagster_home": self.dagster_home, "taken_at": _iso(self.taken_at), "flags": self.flags,
                "workers": [{**{f.name: getattr(w, f.name) for f in fields(w)}, "last_tick": _iso(w.last_tick),
                             "seen_at": _iso(w.seen_at)} for w in self.workers],
                "assets": {key: _iso(moment) for key, moment in self.assets.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceView:
        return cls(dagster_home=data["dagster_home"], taken_at=_parse_iso(data["taken_at"]), flags=data["flags"],
                   workers=[WorkerStatus(**{**w, "last_tick": _parse_iso(w["last_tick"]),
                                            "seen_at": _parse_iso(w.get("seen_at"))}) for w in data["workers"]],
                   assets={key: _parse_iso(moment) for key, moment in data["assets"].items()})


def _parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def view_flags(settings: Settings) -> dict[str, bool]:
    return {name: bool(getattr(settings, name)) for name in [*_flags(settings), "disable_workers"]}


def take_instance_view(settings: Settings, instance: DagsterInstance, now: datetime) -> InstanceView:
    return InstanceView(dagster_home=str(instance.root_directory), taken_at=now, flags=view_flags(settings),
                        workers=collect_workers(worker_definitions(settings, now), instance, now),
                        assets=last_materializations(instance, asset_keys(settings)))


def write_instance_view(settings: Settings, instance: DagsterInstance, now: datetime | None = None) -> Path:
    """Written to a temporary file and renamed, so a reader never sees half of it."""
    view = take_instance_view(settings, instance, now or storage.utcnow())
    path = settings.data_dir / VIEW_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{VIEW_FILE}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(view.to_json(), ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_instance_view(settings: Settings, dagster_home: str, now: datetime) -> InstanceView | None:
    """The view when it is fresh and was written for this instance and these flags; None otherwise
    (missing, unreadable, old, another instance or other flags): the caller then reads the instance."""
    try:
        view = InstanceView.from_json(json.loads((settings.data_dir / VIEW_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same_home = os.path.realpath(view.dagster_home) == os.path.realpath(dagster_home)
    fresh = timedelta(0) <= now - view.taken_at <= VIEW_MAX_AGE
    if not (same_home and fresh and view.flags == view_flags(settings)):
        return None
    view.workers = [rejudged(worker, now) for worker in view.workers]
    return view


def rejudged(worker: WorkerStatus, now: datetime) -> WorkerStatus:
    """A worker the view saw running, judged at `now`: stale once it has not ticked (or started) within
    STALE_FACTOR intervals, as a live read would say."""
    if worker.state != "running" or worker.seen_at is None:
        return worker
    if now - worker.seen_at <= timedelta(seconds=STALE_FACTOR * worker.interval_seconds):
        return worker
    return replace(worker, state="stale", note=f"no tick in {STALE_FACTOR} intervals")


# --- what DuckDB holds ----------------------------------------------------------------------------
class DatabaseUnreadable(Exception):
    pass


def read_database(path: Path, now: datetime, activity_limit: int
                  ) -> tuple[dict[str, int], list[dict], datetime | None]:
    """Queue sizes, the newest activity events and the next search of a no-match track; zeros and
    nothing when nothing was ever written."""
    queues = dict.fromkeys(QUEUES, 0)
    if not storage.database_exists(path):
        return queues, [], None
    try:
        conn = storage.open_connection(path, read_only=True, wait_seconds=DUCKDB_WAIT_SECONDS)
    except duckdb.Error as error:
        raise DatabaseUnreadable(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    next_search = None
    try:
        tables = {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for name, sql in QUEUE_SQL.items():
            if QUEUE_TABLES.get(name, {"downloads"}) <= tables:
                queues[name] = conn.execute(sql, [now] if "?" in sql else []).fetchone()[0]
        if {"wanted_tracks", "soulseek_matches"} <= tables:
            next_search = conn.execute(NEXT_SEARCH_SQL).fetchone()[0]
        activity = storage.recent_activity(conn, activity_limit) if "activity_events" in tables else []
    except duckdb.Error as error:
        raise DatabaseUnreadable(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    finally:
        conn.close()
    if next_search is not None and next_search.tzinfo is None:
        next_search = next_search.replace(tzinfo=timezone.utc)
    return queues, activity, next_search


# --- the report -----------------------------------------------------------------------------------
def collect_status(settings: Settings, instance: DagsterInstance | None, *, now: datetime | None = None,
                   activity_limit: int = 20, view: InstanceView | None = None) -> StatusReport:
    """The report; workers and assets from `view` when given (no Dagster import), else from `instance`."""
    now = now or storage.utcnow()
    queues, activity, next_search = read_database(settings.duckdb_path, now, activity_limit)
    notes = [] if storage.database_exists(settings.duckdb_path) else [f"no database yet at {settings.duckdb_path}"]
    if view is None:
        workers = collect_workers(worker_definitions(settings, now), instance, now)
        assets = last_materializations(instance, asset_keys(settings))
        home = str(instance.root_directory) if instance is not None else None
        read_at = now if instance is not None else None
    else:
        workers, assets, home, read_at = view.workers, view.assets, view.dagster_home, view.taken_at
        notes.append(f"workers and assets as the daemon read them {_ago(read_at, now)} "
                     "(status_view_sensor); `harmony status --live` reads the instance now")
    return StatusReport(workers=workers, queues=queues, activity=activity, assets=assets, dagster_home=home,
                        notes=notes, next_search_at=next_search, instance_read_at=read_at)


def open_instance() -> DagsterInstance | None:
    """The instance under DAGSTER_HOME, or None when it is not set."""
    from harmony_pipeline.cli.errors import CommandError

    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        return None
    if not Path(home).is_dir():
        raise CommandError(f"DAGSTER_HOME={home} is not a folder", code=2)
    from dagster import DagsterInstance

    try:
        return DagsterInstance.get()
    except Exception as error:  # a broken dagster.yaml or storage: the report cannot be trusted
        raise CommandError(f"cannot open the Dagster instance in {home}: {error}", code=2) from None


# --- command line ---------------------------------------------------------------------------------
STATE_STYLES = {"running": "green", "stopped": "yellow", "stale": "bold red", "unavailable": "dim"}


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def _every(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in details.items())


def queue_rows(report: StatusReport, now: datetime) -> list[tuple[str, int, str]]:
    """(label, count, meaning) of each queue, in the order a track moves through them."""
    rows = []
    for name in QUEUES:
        label, meaning = QUEUE_LABELS[name]
        if name == "no_match" and report.next_search_at is not None:
            moment = report.next_search_at
            meaning = (f"next search at {moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"
                       + (" (due now)" if moment <= now else f" (in {_ago(now, moment).removesuffix(' ago')})"))
        rows.append((label, report.queues[name], meaning))
    return rows


def print_report(report: StatusReport, now: datetime, quiet: bool) -> None:
    """Tables sized to the terminal; piped, one tab-separated record per line whose first field names
    its section (`worker`, `queue`, `asset`, `activity`, `note`), each section after a `#` header line."""
    if not is_terminal():
        _print_records(report, now, quiet)
        return
    from rich.console import Console
    from rich.text import Text

    console = Console()
    print_rows(["worker", "kind", "state", "last tick", "every", "note"],
               [(w.name, w.kind, Text(w.state, style=STATE_STYLES.get(w.state, "")), _ago(w.last_tick, now),
                 _every(w.interval_seconds), w.note) for w in report.workers],
               title="Workers", no_wrap=["worker", "kind", "state", "last tick", "every"], console=console)
    print_rows(["queue", "tracks", "meaning"],
               [(label, Text(str(count), style="bold red" if label == "dead-letter" and count else ""), meaning)
                for label, count, meaning in queue_rows(report, now)],
               title="Queues", no_wrap=["queue", "tracks"], console=console)
    print_rows(["asset", "last materialized"],
               [(key, _ago(moment, now) + (f" ({moment:%Y-%m-%d %H:%M})" if moment else ""))
                for key, moment in report.assets.items()],
               title="Assets", no_wrap=["asset"], console=console)
    if report.activity and not quiet:
        print_rows(["time", "type", "details"],
                   [(f"{e['time']:%Y-%m-%d %H:%M:%S}", e["type"], _details(e["details"])) for e in report.activity],
                   title="Recent activity", no_wrap=["time", "type"], ellipsis=["details"], console=console)
    if not quiet:
        for note in report.notes:
            console.print(Text(note, style="dim"))
        console.print(Text(f"Dagster instance: {report.dagster_home or 'none (DAGSTER_HOME not set)'}", style="dim"))


def _print_records(report: StatusReport, now: datetime, quiet: bool) -> None:
    sections = [
        (["worker", "name", "kind", "state", "last_tick", "every_seconds", "note"],
         [("worker", w.name, w.kind, w.state, _iso(w.last_tick) or "", w.interval_seconds, w.note)
          for w in report.workers]),
        (["queue", "name", "tracks", "meaning"],
         [("queue", label, count, meaning) for label, count, meaning in queue_rows(report, now)]),
        (["asset", "name", "last_materialized"],
         [("asset", key, _iso(moment) or "") for key, moment in report.assets.items()]),
    ]
    if not quiet:
        sections.append((["activity", "time", "type", "details"],
                         [("activity", _iso(e["time"]), e["type"], _details(e["details"])) for e in report.activity]))
        sections.append((["note", "text"],
                         [("note", note) for note in report.notes]
                         + [("note", f"Dagster instance: {report.dagster_home or 'none (DAGSTER_HOME not set)'}")]))
    for columns, rows in sections:
        lines = tab_rows(columns, rows)
        print("# " + lines[0])
        for line in lines[1:]:
            print(line)


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from harmony_pipeline.cli.errors import CommandError

    now = storage.utcnow()
    home = os.environ.get("DAGSTER_HOME", "").strip()
    view = read_instance_view(settings, home, now) if home and not args.live else None
    instance = open_instance() if view is None else None
    try:
        report = collect_status(settings, instance, now=now, activity_limit=args.activity, view=view)
    except DatabaseUnreadable as error:
        raise CommandError(str(error), code=2) from None
    except SettingsError:
        raise
    except Exception as error:  # the code location itself fails to load: say so in one line
        raise CommandError(f"cannot load the definitions: {type(error).__name__}: {error}", code=2) from None
    finally:
        if instance is not None:
            instance.dispose()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str))
        for problem in report.problems:
            print(f"harmony: {problem}", file=sys.stderr)
    else:
        print_report(report, now, args.quiet)
        if report.problems:
            from rich.console import Console
            from rich.text import Text

            err = Console(stderr=True, soft_wrap=True)  # one line per problem, piped or not
            for problem in report.problems:
                err.print(Text.assemble(("attention:", "bold red"), f" {problem}"))
    return report.exit_code


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="workers, queue sizes, recent activity, last materializations",
        description="Workers (sensors and schedules) with their state, queue sizes, recent activity and the "
                    "last materialization of each asset. Exit code 0 healthy, 1 needs attention (stale "
                    "worker, dead letters, DAGSTER_HOME unset), 2 error.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (docs/status-json.md)")
    parser.add_argument("--activity", type=int, default=20, metavar="N", help="newest N activity events (20)")
    parser.add_argument("--live", action="store_true",
                        help="read workers and assets from the Dagster instance now, not from the view the daemon "
                             "keeps (slower: loads Dagster)")
    parser.set_defaults(handler=_cmd_status, needs_settings=True)
