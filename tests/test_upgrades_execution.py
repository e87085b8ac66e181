"""Quality upgrades under the execution model: two `library_upgrades` runs at once never enqueue or replace
a track twice, a run killed (SIGKILL) anywhere in an upgrade is finished by the next one, and an upgrade
transfer that fails or vanishes is recorded and waits (backoff) instead of staying `downloading` for ever.
Real `dagster` processes, the sandbox's slskd and a real DuckDB file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, materialize_assets, pipeline_environment, settle_acquisition, subprocess_env
from dagster import DagsterRunStatus

from harmony_pipeline import storage
from harmony_pipeline.claims import claim_is_live
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings
from resources.slskd import SlskdResource
from sensors.run_health import fail_dead_runs

pytestmark = pytest.mark.integration

DAGSTER = str(Path(sys.executable).parent / "dagster")
ACTIVE = "state IN ('searching', 'enqueuing', 'downloading', 'replacing') OR remove_path IS NOT NULL"


@pytest.fixture
def below_cutoff(tmp_path, monkeypatch, dagster_home, instance):
    """A library of MP3s below a FLAC cutoff (nobody shared FLAC then); FLACs appear now."""
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.small_playlist_id,
                                   HARMONY_QUALITY="flac>mp3;cutoff=flac", RETRY_MAX_ATTEMPTS="3")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        peers = sandbox.emulator("slskd").peers
        peers.withhold("flac")
        assert materialize_assets(["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks"],
                                  instance).success
        settle_acquisition(instance)
        mp3s = dict(_query("SELECT wanted_key, path FROM library_tracks WHERE format <> 'flac'"))
        assert len(mp3s) >= 2
        peers.release()
        with storage.connect(load_settings().duckdb_path) as conn:
            conn.execute("DELETE FROM search_cache")
        yield sandbox, {**env, "DAGSTER_HOME": str(dagster_home)}, mp3s


def _query(sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _client(sandbox, env):
    return SlskdResource(url=sandbox.url("slskd"), api_key=env["SLSKD_API_KEY"]).get_client()


def _enqueues(sandbox) -> list[str]:
    return [r.body.decode() for r in sandbox.emulator("slskd").requests()
            if r.method == "POST" and "/transfers/downloads/" in r.path]


def _transfers_settled(sandbox, env) -> None:
    client, deadline = _client(sandbox, env), time.monotonic() + 60
    while not all(t.is_terminal for t in client.transfers()):
        assert time.monotonic() < deadline, "transfers did not finish"
        time.sleep(0.2)


def _upgrade_process(env: dict, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([DAGSTER, "asset", "materialize", "-m", "harmony_pipeline.definitions", "--select",
                             "library_upgrades"], env=subprocess_env({**env, **extra}), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _converge(instance, keys, timeout: float = 180) -> None:
    """Upgrade runs until every track below the cutoff has been looked at and nothing is in flight."""
    deadline = time.monotonic() + timeout
    while True:
        assert materialize_assets(["library_upgrades"], instance).success
        active = _query(f"SELECT count(*) FROM library_upgrades WHERE {ACTIVE}")[0][0]
        seen = {k for (k,) in _query("SELECT wanted_key FROM library_upgrades")}
        if not active and set(keys) <= seen:
            return
        assert time.monotonic() < deadline, _query("SELECT state, count(*) FROM library_upgrades GROUP BY 1")
        time.sleep(0.3)


def _assert_upgraded_once(sandbox, library: Path, mp3s: dict[str, str], enqueued_before: int) -> list[str]:
    """Every replaced track is a FLAC, its MP3 gone; one file and one event per track; nothing left over."""
    replaced = [k for (k,) in _query("SELECT wanted_key FROM library_upgrades WHERE state = 'replaced'")]
    assert replaced, _query("SELECT wanted_key, state, last_error FROM library_upgrades")
    for key in replaced:
        [(path, file_format)] = _query("SELECT path, format FROM library_tracks WHERE wanted_key = ?", [key])
        assert file_format == "flac" and (library / path).is_file()
        assert not (library / mp3s[key]).exists(), f"the old file {mp3s[key]} is still there"
    files = sorted(p.relative_to(library).as_posix() for p in library.rglob("*")
                   if p.is_file() and p.suffix in (".mp3", ".flac", ".m4a"))
    assert files == sorted(p for (p,) in _query("SELECT path FROM library_tracks")), "orphan or missing files"
    assert not [p for p in library.rglob("*") if " (2)." in p.name or p.name.startswith(".harmony-")]
    events = Counter(json.loads(d)["track"] for (d,) in
                     _query("SELECT details FROM activity_events WHERE type = 'track_upgraded'"))
    assert len(events) == len(replaced) and set(events.values()) == {1}, events
    enqueued = _enqueues(sandbox)[enqueued_before:]
    assert len(enqueued) == len(set(enqueued)), "a file was enqueued twice"
    return replaced


def test_two_upgrade_runs_at_once_take_each_track_once(below_cutoff, instance):
    sandbox, env, mp3s = below_cutoff
    before = len(_enqueues(sandbox))
    for phase in ("search and enqueue", "replace"):
        runs = [_upgrade_process(env) for _ in range(2)]
        for run in runs:
            output = run.communicate(timeout=300)[0]
            assert run.returncode == 0, f"{phase}: {output[-3000:]}"
        if phase == "search and enqueue":
            enqueued = _enqueues(sandbox)[before:]
            assert enqueued and len(enqueued) == len(set(enqueued)), "both runs enqueued the same file"
            assert _query("SELECT max(attempts) FROM library_upgrades")[0][0] == 1
            _transfers_settled(sandbox, env)
    _converge(instance, mp3s)
    _assert_upgraded_once(sandbox, Path(env["HARMONY_LIBRARY_DIR"]), mp3s, before)


@pytest.mark.parametrize("point", ["upgrade.after_enqueue_claim", "upgrade.after_claim", "upgrade.after_swap",
                                   "upgrade.after_commit"])
def test_an_upgrade_run_killed_mid_step_is_finished_by_the_next(below_cutoff, instance, point):
    sandbox, env, mp3s = below_cutoff
    library = Path(env["HARMONY_LIBRARY_DIR"])
    before = len(_enqueues(sandbox))
    if point != "upgrade.after_enqueue_claim":
        assert materialize_assets(["library_upgrades"], instance).success  # searched and enqueued
        _transfers_settled(sandbox, env)

    killed = _upgrade_process(env, HARMONY_CRASHPOINT=point)
    output = killed.communicate(timeout=300)[0]
    assert killed.returncode == -9, output[-3000:]
    claimed = _query("SELECT state, claimed_by FROM library_upgrades WHERE claimed_by IS NOT NULL")
    if point == "upgrade.after_commit":  # the crash window: the new file recorded, the old one not removed
        [(key, old)] = _query("SELECT wanted_key, remove_path FROM library_upgrades WHERE remove_path IS NOT NULL")
        assert (library / old).is_file() and old == mp3s[key]
        assert _query("SELECT state FROM library_upgrades WHERE wanted_key = ?", [key]) == [("replaced",)]
    else:
        expected = "enqueuing" if point == "upgrade.after_enqueue_claim" else "replacing"
        assert expected in {state for state, _ in claimed}
        assert not any(claim_is_live(token) for _, token in claimed)
    [dead_run] = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
    assert fail_dead_runs(instance) == [dead_run.run_id]

    _converge(instance, mp3s)
    replaced = _assert_upgraded_once(sandbox, library, mp3s, before)
    assert _query("SELECT max(attempts) FROM library_upgrades")[0][0] == 1  # the dead run spent no attempt
    assert len(replaced) >= 1


def test_an_upgrade_transfer_that_fails_or_vanishes_is_recorded_and_waits(below_cutoff, instance):
    sandbox, env, mp3s = below_cutoff
    slskd, client = sandbox.emulator("slskd"), _client(sandbox, env)
    slskd.script_outcome("Errored", times=None)
    assert materialize_assets(["library_upgrades"], instance).success
    enqueued = _query("SELECT wanted_key FROM library_upgrades WHERE state = 'downloading'")
    assert enqueued
    _transfers_settled(sandbox, env)
    assert materialize_assets(["library_upgrades"], instance).success
    rows = _query("SELECT state, last_error, next_check_at, attempts FROM library_upgrades "
                  "WHERE wanted_key IN (SELECT unnest(?))", [[k for (k,) in enqueued]])
    now = storage.utcnow()
    assert all(state == "failed" and "Errored" in error and due > now + timedelta(minutes=20) and attempts == 1
               for state, error, due, attempts in rows), rows
    failed_events = _query("SELECT count(*) FROM activity_events WHERE type = 'track_upgrade_failed'")[0][0]
    assert failed_events == len(enqueued)
    count = len(_enqueues(sandbox))
    assert materialize_assets(["library_upgrades"], instance).success
    assert len(_enqueues(sandbox)) == count, "a failed upgrade was tried again before its backoff passed"

    # Due again; this time the transfers stay queued and then vanish from slskd (removed, a restart…).
    slskd.clear_scripted_outcomes()
    for transfer in client.transfers():
        client.cancel(transfer.username, transfer.id, remove=True)
    slskd.transfer_step_seconds = 60
    with storage.connect(load_settings().duckdb_path) as conn:
        conn.execute("UPDATE library_upgrades SET next_check_at = ? WHERE state = 'failed'", [storage.utcnow()])
    assert materialize_assets(["library_upgrades"], instance).success
    again = [k for (k,) in _query("SELECT wanted_key FROM library_upgrades WHERE state = 'downloading'")]
    assert again and _query("SELECT min(attempts) FROM library_upgrades WHERE state = 'downloading'")[0][0] == 2
    for transfer in client.transfers():
        client.cancel(transfer.username, transfer.id, remove=True)
    assert materialize_assets(["library_upgrades"], instance).success
    assert _query("SELECT count(*) FROM library_upgrades WHERE state = 'downloading'")[0][0] == len(again)  # grace
    with storage.connect(load_settings().duckdb_path) as conn:  # the grace has passed
        conn.execute("UPDATE library_upgrades SET enqueued_at = enqueued_at - INTERVAL 10 MINUTE "
                     "WHERE state = 'downloading'")
    assert materialize_assets(["library_upgrades"], instance).success
    rows = _query("SELECT state, last_error, next_check_at FROM library_upgrades WHERE wanted_key IN "
                  "(SELECT unnest(?))", [again])
    assert all(state == "failed" and error == "transfer missing from slskd" and due > storage.utcnow()
               for state, error, due in rows), rows
