"""`harmony status`: worker states from a real Dagster instance, queue sizes from a real DuckDB file,
the JSON object of docs/status-json.md and the exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetMaterialization, SensorDefinition
from dagster._core.definitions.sensor_definition import DefaultSensorStatus
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from harmony_pipeline import storage
from harmony_pipeline.cli import main as cli
from harmony_pipeline.settings import load_settings
from harmony_pipeline.status import collect_status

REPO = Path(__file__).resolve().parent.parent
WORKER_STATES = {"running", "stopped", "stale", "unavailable"}  # design.md §4b: exactly these four


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HARMONY_LIBRARY_DIR", str(tmp_path / "library"))
    return tmp_path / "data" / "harmony.duckdb"


def _origin(name: str) -> RemoteInstigatorOrigin:
    """The origin a daemon loading `-m harmony_pipeline.definitions` stores for a sensor or schedule."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="harmony_pipeline.definitions"),
        location_name="harmony_pipeline")
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)


def _store(instance, name: str, kind: str, status: InstigatorStatus, *, started_ago: float,
           tick_ago: float | None) -> None:
    """An instigator state as the daemon or the UI writes it, plus its last tick."""
    now = storage.utcnow().timestamp()
    if kind == "sensor":
        instigator_type = InstigatorType.SENSOR
        data = SensorInstigatorData(min_interval=60, last_sensor_start_timestamp=now - started_ago)
    else:
        instigator_type = InstigatorType.SCHEDULE
        data = ScheduleInstigatorData("*/15 * * * *", start_timestamp=now - started_ago)
    state = instance.add_instigator_state(InstigatorState(_origin(name), instigator_type, status, data))
    if tick_ago is not None:
        instance.create_tick(TickData(
            instigator_origin_id=state.instigator_origin_id, instigator_name=name,
            instigator_type=instigator_type, status=TickStatus.SKIPPED, timestamp=now - tick_ago,
            skip_reason="nothing to do", selector_id=state.selector_id))


def _run_status(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _workers(report) -> dict[str, str]:
    return {w.name: w.state for w in report.workers}


def test_running_stale_and_declared_in_code_workers(data_env, instance):
    # A daemon that ticked recently, one that stopped ticking long ago, one never seen by a daemon.
    _store(instance, "download_transfer_sensor", "sensor", InstigatorStatus.DECLARED_IN_CODE,
           started_ago=3600, tick_ago=20)
    _store(instance, "playlist_sync_schedule", "schedule", InstigatorStatus.RUNNING,
           started_ago=86_400, tick_ago=3 * 900)
    report = collect_status(load_settings(), instance)
    states = _workers(report)
    assert states["download_transfer_sensor"] == "running"
    assert states["playlist_sync_schedule"] == "stale"  # 45 min without a tick of a 15-min schedule
    never_seen = set(states) - {"download_transfer_sensor", "playlist_sync_schedule"}
    assert never_seen and {states[name] for name in never_seen} == {"stale"}
    ticked = {w.name: w.last_tick for w in report.workers}
    assert ticked["download_transfer_sensor"] is not None and ticked["free_ingest_inbox_sensor"] is None
    assert report.exit_code == 1
    assert any("playlist_sync_schedule is stale" in p for p in report.problems)


def test_just_started_schedule_is_running_before_its_first_tick(data_env, instance):
    _store(instance, "playlist_sync_schedule", "schedule", InstigatorStatus.RUNNING, started_ago=60, tick_ago=None)
    assert _workers(collect_status(load_settings(), instance))["playlist_sync_schedule"] == "running"


def test_disable_workers_reports_stopped_and_a_stored_status_wins(data_env, instance, monkeypatch):
    monkeypatch.setenv("HARMONY_DISABLE_WORKERS", "1")
    # The user started one sensor from the UI: the stored RUNNING status beats the code default.
    _store(instance, "new_release_sensor", "sensor", InstigatorStatus.RUNNING, started_ago=30, tick_ago=10)
    states = _workers(collect_status(load_settings(), instance))
    assert states.pop("new_release_sensor") == "running"
    assert set(states.values()) == {"stopped"}


def test_stored_stopped_beats_a_running_default(data_env, instance):
    _store(instance, "download_transfer_sensor", "sensor", InstigatorStatus.STOPPED, started_ago=600, tick_ago=500)
    assert _workers(collect_status(load_settings(), instance))["download_transfer_sensor"] == "stopped"


def _flagged_module(enabled_by: str) -> types.ModuleType:
    """A concern whose sensor exists only with a flag on, as enrichment sensors may."""
    module = types.ModuleType("flagged_concern")

    def wiring(settings, workers):
        from dagster import Definitions

        if not getattr(settings, enabled_by):
            return Definitions()
        return Definitions(sensors=[SensorDefinition(name="flagged_sensor", evaluation_fn=lambda _: None,
                                                     minimum_interval_seconds=120,
                                                     default_status=DefaultSensorStatus.RUNNING)])

    module.wiring = wiring
    return module


def test_worker_left_out_by_a_flag_is_unavailable(data_env, instance, monkeypatch):
    import harmony_pipeline.definitions as definitions

    monkeypatch.setattr(definitions, "CONCERN_MODULES",
                        (*definitions.CONCERN_MODULES, _flagged_module("enable_lyrics")))
    report = collect_status(load_settings(), instance)
    flagged = next(w for w in report.workers if w.name == "flagged_sensor")
    assert (flagged.state, flagged.note, flagged.interval_seconds) == ("unavailable", "ENABLE_LYRICS is off", 120)

    monkeypatch.setenv("ENABLE_LYRICS", "1")
    assert _workers(collect_status(load_settings(), instance))["flagged_sensor"] == "stale"  # loaded, never ticked


def test_every_worker_of_the_definitions_with_all_flags_on_is_listed(data_env, instance):
    from harmony_pipeline.definitions import collect_wiring

    settings = load_settings({**os.environ, "ENABLE_ARTWORK": "1", "ENABLE_LYRICS": "1"})
    wiring = collect_wiring(settings)
    expected = {s.name: "sensor" for s in wiring.sensors} | {s.name: "schedule" for s in wiring.schedules}
    report = collect_status(load_settings(), instance)
    assert {w.name: w.kind for w in report.workers} == expected
    assert set(report.assets) >= {"spotify_playlists", "downloads", "library_tracks"}


def _seed_queues(path: Path) -> None:
    now = storage.utcnow()
    with storage.connect(path) as conn:
        wanted = [
            {"wanted_key": f"key:{n}", "title": f"T{n}", "artist": "A", "sources": ["free_ingest"],
             "state": state, "first_wanted_at": now, "updated_at": now}
            for n, state in enumerate(["wanted"] * 6 + ["in_library"])
        ]
        storage.upsert(conn, "wanted_tracks", wanted, key=["wanted_key"])
        matches = [{"wanted_key": "key:0", "status": "deferred", "decided_at": now, "retry_search_after": now},
                   {"wanted_key": "key:1", "status": "no_match", "decided_at": now,
                    "retry_search_after": now + timedelta(hours=6)},
                   {"wanted_key": "key:2", "status": "matched", "decided_at": now, "retry_search_after": None}]
        storage.upsert(conn, "soulseek_matches", matches, key=["wanted_key"])
        downloads = [
            ("key:2", "downloading", None), ("key:3", "retry", now - timedelta(minutes=1)),
            ("key:4", "retry", now + timedelta(hours=1)), ("key:5", "dead_letter", None),
            ("key:6", "imported", None),
        ]
        storage.upsert(conn, "downloads", [
            {"wanted_key": k, "state": s, "attempts": 1, "next_attempt_at": due, "history": "[]",
             "last_error": "Errored" if s == "dead_letter" else None, "updated_at": now}
            for k, s, due in downloads], key=["wanted_key"])
        storage.record_activity(conn, "sync_completed", {"playlist": "Road trip", "added": 3})
        storage.record_activity(conn, "download_dead_lettered", {"track": "A – T5", "attempts": 10})


def test_queue_sizes_and_activity_from_duckdb(data_env, instance):
    _seed_queues(data_env)
    report = collect_status(load_settings(), instance)
    # key:3..5 have no match row yet: they count as wanted (not searched) besides their downloads.
    # The no-match track is not "searching": it waits for its next search, shown with its time.
    assert report.queues == {"wanted": 3, "searching": 1, "downloading": 1, "retry_due": 1, "no_match": 1,
                             "dead_letter": 1}
    assert abs((report.next_search_at - storage.utcnow()).total_seconds() - 6 * 3600) < 60
    assert [e["type"] for e in report.activity] == ["download_dead_lettered", "sync_completed"]
    assert report.activity[1]["details"] == {"playlist": "Road trip", "added": 3}
    assert any("dead-lettered" in p for p in report.problems)


def test_json_object_schema_and_exit_code(data_env, instance, capsys):
    _seed_queues(data_env)
    instance.report_runless_asset_event(AssetMaterialization("spotify_playlists"))
    code, out, err = _run_status(capsys, "--json")
    report = json.loads(out)
    # The four documented keys stay; keys are only ever added (docs/status-json.md).
    assert set(report) == {"workers", "queues", "activity", "assets", "next_search_at", "instance_read_at"}
    assert abs((datetime.fromisoformat(report["instance_read_at"]) - storage.utcnow()).total_seconds()) < 60
    assert datetime.fromisoformat(report["next_search_at"]).tzinfo is not None
    assert report["workers"]
    for worker in report["workers"].values():
        assert set(worker) == {"kind", "state", "last_tick"}
        assert worker["kind"] in {"sensor", "schedule"} and worker["state"] in WORKER_STATES
        assert worker["last_tick"] is None or isinstance(worker["last_tick"], str)
    assert report["queues"] == {"wanted": 3, "searching": 1, "matching": 1, "downloading": 1, "retry_due": 1,
                                "no_match": 1, "dead_letter": 1}  # `matching`: the old name of `searching`
    event = report["activity"][0]
    assert set(event) == {"time", "type", "details"} and isinstance(event["details"], dict)
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    assert datetime.fromisoformat(report["assets"]["spotify_playlists"]).tzinfo is not None
    assert report["assets"]["library_tracks"] is None
    assert code == 1 and "dead-lettered" in err


def test_healthy_exit_zero_when_workers_are_stopped_and_nothing_dead(data_env, instance, capsys, monkeypatch):
    monkeypatch.setenv("HARMONY_DISABLE_WORKERS", "1")
    code, out, err = _run_status(capsys)
    assert code == 0, err
    records = _records(out)
    assert records["worker"] and {r["state"] for r in records["worker"]} == {"stopped"}
    assert [r["name"] for r in records["queue"]] == ["wanted", "searching", "downloading", "retry due",
                                                     "no match yet", "dead-letter"]


def _records(out: str) -> dict[str, list[dict[str, str]]]:
    """Piped `harmony status` read back: `# section\tcolumn…` headers, then tab-separated records."""
    found: dict[str, list[dict[str, str]]] = {}
    columns: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("# "):
            header = line[2:].split("\t")
            columns[header[0]] = header
            found[header[0]] = []
            continue
        fields = line.split("\t")
        assert len(fields) == len(columns[fields[0]]), line
        found[fields[0]].append(dict(zip(columns[fields[0]], fields)))
    return found


def test_piped_status_is_one_full_record_per_line(data_env, instance, capsys):
    _seed_queues(data_env)
    long_playlist = "A playlist name far longer than any terminal line would ever hold " * 3
    with storage.connect(data_env) as conn:
        storage.record_activity(conn, "sync_completed", {"playlist": long_playlist, "added": 1})
    code, out, err = _run_status(capsys)
    records = _records(out)
    queues = {r["name"]: (int(r["tracks"]), r["meaning"]) for r in records["queue"]}
    assert queues["searching"][0] == 1 and queues["no match yet"][0] == 1
    assert queues["no match yet"][1].startswith("next search at ") and "(in 5 h" in queues["no match yet"][1]
    newest = records["activity"][0]
    assert newest["details"] == f"playlist={long_playlist}, added=1"  # whole, not cut, no "…"
    assert {r["name"] for r in records["asset"]} >= {"spotify_playlists", "library_tracks"}
    assert "attention: 1 download(s) dead-lettered" in err and code == 1
    assert err.splitlines()[-1] == "attention: 1 download(s) dead-lettered: see `harmony dead-letter list`"


def test_terminal_status_fits_the_width_and_marks_cuts(data_env, instance):
    from io import StringIO

    from rich.console import Console

    from harmony_pipeline.status import print_report

    _seed_queues(data_env)
    with storage.connect(data_env) as conn:
        storage.record_activity(conn, "sync_completed", {"playlist": "x" * 300})
    report = collect_status(load_settings(), instance)
    screen = StringIO()
    console = Console(file=screen, width=100, force_terminal=True, color_system=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("harmony_pipeline.status.is_terminal", lambda *a: True)
        patch.setattr("rich.console.Console", lambda *a, **k: console)
        print_report(report, storage.utcnow(), quiet=False)
    lines = screen.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) <= 100
    cut = next(line for line in lines if "playlist=xxx" in line)
    assert cut.rstrip().endswith("…")
    assert "no match yet" in screen.getvalue() and "matching" not in screen.getvalue()


@pytest.mark.parametrize(("disabled", "default_state"), [("", "stale"), ("1", "stopped")])
def test_without_dagster_home_workers_show_their_code_default(data_env, capsys, monkeypatch, disabled,
                                                               default_state):
    monkeypatch.setenv("HARMONY_DISABLE_WORKERS", disabled)
    code, out, err = _run_status(capsys, "--json")
    report = json.loads(out)
    assert {v["state"] for v in report["workers"].values()} <= WORKER_STATES
    loaded = {w for w, v in report["workers"].items() if v["state"] != "unavailable"}
    assert loaded and {report["workers"][w]["state"] for w in loaded} == {default_state}
    assert {v["last_tick"] for v in report["workers"].values()} == {None}
    assert set(report["assets"].values()) == {None}
    assert code == 1 and "DAGSTER_HOME is not set" in err
    assert "is the Dagster daemon running" not in err  # no daemon can be judged without an instance


def test_errors_exit_two(data_env, dagster_home, capsys, monkeypatch, tmp_path):
    data_env.parent.mkdir(parents=True)
    data_env.write_bytes(b"this is not a DuckDB file" * 100)
    code, _, err = _run_status(capsys, "--json")
    assert code == 2 and "cannot read" in err

    data_env.unlink()
    monkeypatch.setenv("HARMONY_SENSOR_INTERVAL_SECONDS", "often")
    code, _, err = _run_status(capsys)
    assert code == 2 and "HARMONY_SENSOR_INTERVAL_SECONDS" in err

    monkeypatch.delenv("HARMONY_SENSOR_INTERVAL_SECONDS")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    code, _, err = _run_status(capsys)
    assert code == 2 and "DAGSTER_HOME" in err


def test_command_line_end_to_end(data_env, instance, tmp_path):
    """The installed entry point, as a user or a monitoring script runs it."""
    _store(instance, "download_transfer_sensor", "sensor", InstigatorStatus.RUNNING, started_ago=100, tick_ago=5)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARMONY_DISABLE_WORKERS": "1"}
    done = subprocess.run([sys.executable, "-m", "harmony_pipeline.cli", "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    report = json.loads(done.stdout)
    assert report["workers"]["download_transfer_sensor"]["state"] == "running"
    assert report["workers"]["playlist_sync_schedule"]["state"] == "stopped"
    assert done.returncode == 0, done.stderr
    assert "wiring_summary" not in done.stderr  # the code server's log line stays out of the report


# --- the instance view: `harmony status` without loading Dagster -------------------------------------
def _status_subprocess(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[dict, set[str], int]:
    """`harmony status --json` as a user runs it: (report, the dagster modules it imported, exit code)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "harmony_pipeline.cli", "status", "--json",
                           *args], env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert done.stdout, done.stderr[-2000:]
    return json.loads(done.stdout), {m for m in imported if m.split(".")[0] == "dagster"}, done.returncode


def _view_path() -> Path:
    from harmony_pipeline.status import VIEW_FILE

    return load_settings().data_dir / VIEW_FILE


def test_status_view_sensor_writes_what_the_instance_says_and_status_reads_it_without_dagster(
        data_env, instance, tmp_path):
    from dagster import build_sensor_context

    from sensors.status_view import build_status_view_sensor
    from harmony_pipeline.wiring import Workers

    _seed_queues(data_env)
    _store(instance, "download_transfer_sensor", "sensor", InstigatorStatus.RUNNING, started_ago=100, tick_ago=5)
    _store(instance, "playlist_sync_schedule", "schedule", InstigatorStatus.STOPPED, started_ago=100, tick_ago=None)
    instance.report_runless_asset_event(AssetMaterialization("spotify_playlists"))
    sensor = build_status_view_sensor(Workers(disabled=False))
    result = sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert "status view written" in (result.skip_message or "")
    assert _view_path().is_file()

    fast, dagster_modules, code = _status_subprocess(tmp_path)
    assert dagster_modules == set(), sorted(dagster_modules)[:5]
    live, live_modules, live_code = _status_subprocess(tmp_path, "--live")
    assert "dagster" in live_modules  # the live read really is the other path
    assert fast["workers"] == live["workers"] and fast["assets"] == live["assets"]
    assert fast["workers"]["download_transfer_sensor"]["state"] == "running"
    assert fast["workers"]["playlist_sync_schedule"]["state"] == "stopped"
    assert fast["assets"]["spotify_playlists"] is not None and fast["queues"] == live["queues"]
    assert fast["queues"]["dead_letter"] == 1 and code == live_code == 1
    assert fast["instance_read_at"] < live["instance_read_at"]


@pytest.mark.parametrize("spoil", ["old", "other_home", "other_flags", "garbage"])
def test_a_view_that_is_old_or_not_ours_is_ignored_for_the_instance_itself(data_env, instance, tmp_path, spoil):
    from harmony_pipeline.status import write_instance_view

    _store(instance, "download_transfer_sensor", "sensor", InstigatorStatus.RUNNING, started_ago=100, tick_ago=5)
    write_instance_view(load_settings(), instance)
    view = json.loads(_view_path().read_text())
    env = {}
    if spoil == "old":  # the daemon stopped writing it: its judgement no longer holds
        view["taken_at"] = (storage.utcnow() - timedelta(minutes=5)).isoformat()
    elif spoil == "other_home":
        view["dagster_home"] = str(tmp_path / "another-home")
    elif spoil == "other_flags":
        env = {"ENABLE_LYRICS": "1"}
    for worker in view["workers"]:  # what a reader of this view would show
        worker["state"] = "stale"
    _view_path().write_text(json.dumps(view) if spoil != "garbage" else '{"workers": [')
    report, dagster_modules, _ = _status_subprocess(tmp_path, env=env)
    assert dagster_modules  # read from the instance instead
    assert report["workers"]["download_transfer_sensor"]["state"] == "running"
    assert abs((datetime.fromisoformat(report["instance_read_at"]) - storage.utcnow()).total_seconds()) < 60


def test_a_worker_the_view_saw_running_is_stale_once_its_ticks_stop(data_env, instance, tmp_path):
    """The daemon died after writing the view: within the view's life, a worker whose ticks stopped more
    than two intervals ago is shown stale, as a live read would, still without loading Dagster."""
    from harmony_pipeline.status import write_instance_view

    _store(instance, "download_transfer_sensor", "sensor", InstigatorStatus.RUNNING, started_ago=100, tick_ago=5)
    write_instance_view(load_settings(), instance)
    view = json.loads(_view_path().read_text())
    worker = next(w for w in view["workers"] if w["name"] == "download_transfer_sensor")
    assert worker["state"] == "running"
    now = storage.utcnow()
    worker["seen_at"] = worker["last_tick"] = (now - timedelta(minutes=10)).isoformat()
    view["taken_at"] = (now - timedelta(seconds=10)).isoformat()
    _view_path().write_text(json.dumps(view))
    report, dagster_modules, code = _status_subprocess(tmp_path)
    assert dagster_modules == set()
    assert report["workers"]["download_transfer_sensor"]["state"] == "stale" and code == 1
