"""The execution model as a long-running service needs it: a run killed anywhere never blocks the
pipeline nor loses or duplicates a track, overlapping runs never take the same work twice, slow
enrichment never holds up a playlist sync, transient errors retry the step, idle ticks materialize
nothing. Every test runs real `dagster` processes or runs against the sandbox and a real instance.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import mutagen
import pytest
from conftest import REPO, materialize_assets, pipeline_environment, settle_acquisition, subprocess_env
from dagster import DagsterEventType, DagsterRunStatus

from harmony_pipeline.claims import claim_is_live, process_token
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.sandbox.server import Fault
from harmony_pipeline.settings import load_settings
from sensors.run_health import fail_dead_runs

pytestmark = pytest.mark.integration

SOURCES = ["spotify_playlists", "playlist_tracks", "wanted_tracks"]
DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture
def pipeline(tmp_path, monkeypatch, dagster_home):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.small_playlist_id)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield sandbox, {**env, "DAGSTER_HOME": str(dagster_home)}


def _query(sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _materialize_in_process(env: dict, selection: list[str], **extra: str) -> subprocess.CompletedProcess:
    """`dagster asset materialize` in its own process, as the daemon or a user would start it."""
    return subprocess.run([DAGSTER, "asset", "materialize", "-m", "harmony_pipeline.definitions",
                           "--select", ",".join(selection)],
                          env=subprocess_env({**env, **extra}), cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _downloaded(instance) -> None:
    """Reconcile until every enqueued transfer is settled, without importing."""
    deadline = time.monotonic() + 60
    while _query("SELECT count(*) FROM downloads WHERE state IN ('enqueuing', 'downloading')")[0][0]:
        assert time.monotonic() < deadline, "transfers did not finish"
        time.sleep(0.2)
        assert materialize_assets(["downloads"], instance).success


def _assert_library_consistent(library: Path) -> int:
    """Every file in the library has its row, every row its file, no track twice, no "(2)" copy."""
    rows = _query("SELECT wanted_key, path FROM library_tracks")
    files = {p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file() and
             p.suffix in (".mp3", ".flac", ".m4a")}
    paths = [path for _, path in rows]
    assert sorted(paths) == sorted(files), "orphan files or rows without a file"
    assert len(set(paths)) == len(paths)
    assert not [p for p in files if " (2)." in p]
    for path in files:
        assert mutagen.File(library / path) is not None
    states = dict(_query("SELECT state, count(*) FROM downloads GROUP BY state"))
    assert set(states) <= {"imported", "dead_letter"}, states
    assert states.get("imported", 0) == len(rows)
    return len(rows)


def _enqueues(sandbox) -> list[str]:
    return [r.body.decode() for r in sandbox.emulator("slskd").requests()
            if r.method == "POST" and "/transfers/downloads/" in r.path]


@pytest.mark.parametrize("point", ["enqueue.after_claim", "enqueue.after_slskd", "import.after_claim",
                                   "import.after_move"])
def test_run_killed_mid_step_never_blocks_and_converges(pipeline, instance, point):
    sandbox, env = pipeline
    assert materialize_assets(SOURCES + ["soulseek_matches"], instance).success
    if point.startswith("import"):
        assert materialize_assets(["downloads"], instance).success
        _downloaded(instance)
        assert _query("SELECT count(*) FROM downloads WHERE state = 'succeeded'")[0][0] >= 2
        step = ["library_tracks"]
    else:
        step = ["downloads", "library_tracks"]

    killed = _materialize_in_process(env, step, HARMONY_CRASHPOINT=point)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    library = Path(env["HARMONY_LIBRARY_DIR"])
    if point == "import.after_move":  # the crash window: a file in the library, its row not written
        assert len([p for p in library.rglob("*.*") if p.is_file()]) == 1 + len(_query("SELECT * FROM library_tracks"))
    if point in ("enqueue.after_claim", "import.after_claim"):
        claimed = _query("SELECT state, claimed_by FROM downloads WHERE claimed_by IS NOT NULL")
        assert claimed and not any(claim_is_live(token) for _, token in claimed)

    # The dead run is seen as dead (not "in progress" for ever) and nothing waits on it.
    [dead_run] = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
    assert fail_dead_runs(instance) == [dead_run.run_id]
    assert instance.get_run_by_id(dead_run.run_id).status == DagsterRunStatus.FAILURE

    started = time.monotonic()
    settle_acquisition(instance)
    assert time.monotonic() - started < 90
    imported = _assert_library_consistent(library)
    assert imported >= 2
    enqueued = _enqueues(sandbox)
    assert len(enqueued) == len(set(enqueued)), "a transfer was enqueued twice"


def test_two_acquisition_runs_started_together_take_each_track_once(pipeline, instance):
    sandbox, env = pipeline
    assert materialize_assets(SOURCES, instance).success
    command = [DAGSTER, "asset", "materialize", "-m", "harmony_pipeline.definitions", "--select",
               "soulseek_matches,downloads,library_tracks"]
    runs = [subprocess.Popen(command, env=subprocess_env(env), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]
    searches = [json.loads(r.body)["searchText"] for r in sandbox.emulator("slskd").requests()
                if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    assert searches and len(searches) == len(set(searches)), "a track was searched by both runs"
    settle_acquisition(instance)
    matched = _query("SELECT count(*) FROM soulseek_matches WHERE status = 'matched'")[0][0]
    assert _assert_library_consistent(Path(env["HARMONY_LIBRARY_DIR"])) == matched
    enqueued = _enqueues(sandbox)
    assert len(enqueued) == len(set(enqueued)) == matched


def test_playlist_sync_does_not_wait_for_a_long_enrichment(pipeline, instance):
    sandbox, env = pipeline
    assert materialize_assets(SOURCES, instance).success
    settle_acquisition(instance)
    tracks = _query("SELECT count(*) FROM library_tracks")[0][0]
    assert tracks >= 3
    alone = _materialize_in_process(env, ["spotify_playlists"])
    assert alone.returncode == 0, alone.stderr[-2000:]

    musicbrainz = sandbox.emulator("musicbrainz")
    musicbrainz.add_fault(Fault(pattern="/ws/2/", delay=1.5))  # a slow MusicBrainz: the step runs for minutes
    enrichment = subprocess.Popen([DAGSTER, "asset", "materialize", "-m", "harmony_pipeline.definitions",
                                   "--select", "track_metadata"], env=subprocess_env(env), cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(r.path.startswith("/ws/2/") for r in musicbrainz.requests()):
            assert enrichment.poll() is None and time.monotonic() < deadline, "enrichment never asked MusicBrainz"
            time.sleep(0.2)
        started = time.monotonic()
        sync = _materialize_in_process(env, ["spotify_playlists"])
        during = time.monotonic() - started
        assert sync.returncode == 0, sync.stderr[-2000:]
        assert enrichment.poll() is None, "the enrichment was meant to be still running"
    finally:
        enrichment.kill()
        enrichment.wait()
    print(f"\nspotify_playlists run while track_metadata runs: {during:.1f}s")
    # A process start plus a sub-second step: well under one slowed MusicBrainz lookup per track.
    assert during < 30


def test_musicbrainz_503_burst_retries_the_step_and_enriches_in_the_same_run(pipeline, instance):
    sandbox, env = pipeline
    assert materialize_assets(SOURCES, instance).success
    settle_acquisition(instance)
    tracks = _query("SELECT count(*) FROM library_tracks")[0][0]
    # More 503s in a row than the client's own retries absorb, then MusicBrainz is back.
    sandbox.emulator("musicbrainz").add_fault(Fault(pattern="/ws/2/", status=503, times=8))
    result = materialize_assets(["track_metadata"], instance)
    assert result.success
    events = instance.all_logs(result.run_id)
    assert any(e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_UP_FOR_RETRY for e in events)
    statuses = dict(_query("SELECT status, count(*) FROM track_metadata GROUP BY status"))
    assert statuses == {"tagged": tracks}, statuses


def test_idle_schedule_ticks_materialize_no_acquisition_asset(pipeline, instance):
    from dagster import AssetKey

    from harmony_pipeline.definitions import build_definitions

    job = build_definitions(load_settings()).resolve_job_def("playlist_sync_job")
    assert job.execute_in_process(instance=instance).success
    settle_acquisition(instance)
    acquisition = ["wanted_tracks", "soulseek_matches", "downloads", "library_tracks"]

    def count(name):
        return len(instance.fetch_materializations(AssetKey(name), limit=1000).records)

    before = {name: count(name) for name in acquisition}
    for _ in range(8):  # eight ticks of the 15-minute schedule with nothing new on Spotify
        assert job.execute_in_process(instance=instance).success
    after = {name: count(name) for name in acquisition}
    print(f"\nmaterializations after 8 idle schedule ticks: before {before}, after {after}")
    assert after == before
    assert count("spotify_playlists") >= 9  # the checks themselves are recorded


def test_claims_tell_a_live_process_from_a_dead_one():
    assert claim_is_live(process_token())
    child = subprocess.run([sys.executable, "-c", "from harmony_pipeline.claims import process_token; "
                            "print(process_token())"], capture_output=True, text=True, cwd=REPO, check=True)
    assert not claim_is_live(child.stdout.strip())
    assert not claim_is_live(None)
    host, pid, start = process_token().split(":")
    assert not claim_is_live(f"{host}:{pid}:{int(start) + 1}")  # the same pid, reused by another process


def test_ingest_run_killed_with_a_file_claimed_converges_at_once(pipeline, instance):
    sandbox, env = pipeline
    inbox = Path(env["HARMONY_DATA_DIR"]) / "inbox"
    inbox.mkdir(parents=True)
    lines = [f"{sandbox.catalog.artists[t.artist_ids[0]].name} - {t.name}"
             for t in list(sandbox.catalog.tracks.values())[:5]]
    (inbox / "wishes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    time.sleep(2.5)  # older than the inbox's settle time: a finished copy

    killed = _materialize_in_process(env, ["free_ingest_items"], HARMONY_CRASHPOINT="ingest.after_claim")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert [p.name.endswith("_wishes.txt") for p in (inbox / "processing").iterdir()] == [True]
    [dead_run] = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
    assert fail_dead_runs(instance) == [dead_run.run_id]

    # The next run takes the claim back at once (its process is gone) and records every line once.
    assert materialize_assets(["free_ingest_items"], instance).success
    assert list((inbox / "processing").iterdir()) == []
    assert [p.name for p in (inbox / "processed").iterdir() if p.name.endswith("_wishes.txt")]
    assert _query("SELECT count(*), count(DISTINCT fingerprint) FROM free_ingest_items")[0] == (5, 5)


def test_slskd_outage_during_enqueue_spends_no_attempt_and_leaves_no_claim(pipeline, instance):
    from harmony_pipeline.acquisition.download_attempts import RetryRules
    from harmony_pipeline.acquisition.download_flow import DownloadSetup, start_due_downloads
    from resources.database import HarmonyDatabase
    from resources.slskd import SlskdResource
    from harmony_pipeline.acquisition.slskd import SlskdUnavailable

    sandbox, env = pipeline
    assert materialize_assets(SOURCES + ["soulseek_matches"], instance).success
    matched = _query("SELECT count(*) FROM soulseek_matches WHERE status = 'matched'")[0][0]
    slskd = sandbox.emulator("slskd")
    # slskd answers 409 while it is not logged in to Soulseek: the client reports it unavailable.
    slskd.add_fault(Fault(pattern="/transfers/downloads/", method="POST", status=409,
                          message="Not connected to the server"))
    setup = DownloadSetup(
        client=SlskdResource(url=sandbox.url("slskd"), api_key=env["SLSKD_API_KEY"]).get_client(),
        database=HarmonyDatabase(path=str(load_settings().duckdb_path)),
        downloads_dir=Path(env["SLSKD_DOWNLOADS_DIR"]), remote_downloads_dir=None,
        quarantine_dir=Path(env["HARMONY_DATA_DIR"]) / "quarantine", rules=RetryRules(3, 0.05, 0.2))
    with pytest.raises(SlskdUnavailable):
        start_due_downloads(setup)
    assert _query("SELECT count(*) FROM downloads")[0][0] == 0  # every claim undone, no attempt spent

    slskd.clear_faults()
    assert start_due_downloads(setup) == matched
    assert set(_query("SELECT state, attempts FROM downloads")) == {("downloading", 1)}


def test_short_rate_limits_retry_the_step_and_transient_errors_escape_items():
    from datetime import datetime, timedelta, timezone

    from dagster import RetryRequested

    from assets.common import retry_on_short_rate_limit
    from harmony_pipeline.http_cache import ServiceError
    from harmony_pipeline.service_errors import escapes_item, is_transient
    from harmony_pipeline.spotify.client import SpotifyError, SpotifyForbidden, SpotifyNotFound, SpotifyRateLimited

    soon = SpotifyRateLimited(datetime.now(timezone.utc) + timedelta(seconds=40))
    with pytest.raises(RetryRequested) as retry:
        with retry_on_short_rate_limit():
            raise soon
    assert 39 <= retry.value.seconds_to_wait <= 42
    later = SpotifyRateLimited(datetime.now(timezone.utc) + timedelta(hours=2))
    with pytest.raises(SpotifyRateLimited):  # a long limit stays a per-item matter (cool-down)
        with retry_on_short_rate_limit():
            raise later
    assert escapes_item(soon) and not escapes_item(later)
    for transient in (ServiceError("musicbrainz answered 503", 503), ServiceError("unreachable", None),
                      SpotifyError("Spotify unreachable: ConnectionError"), SpotifyError("bad gateway", 502)):
        assert is_transient(transient) and escapes_item(transient)
    for permanent in (ServiceError("not JSON", 200), SpotifyNotFound("gone", 404), SpotifyForbidden("no", 403),
                      ValueError("a bug"), OSError("disk full")):
        assert not escapes_item(permanent)


def test_an_import_failing_on_our_side_waits_before_it_is_tried_again(pipeline, instance):
    from harmony_pipeline.acquisition.state import imports_pending
    from resources.database import HarmonyDatabase

    sandbox, env = pipeline
    assert materialize_assets(SOURCES + ["soulseek_matches", "downloads"], instance).success
    _downloaded(instance)
    library = Path(env["HARMONY_LIBRARY_DIR"])
    if library.exists():
        shutil.rmtree(library)
    library.write_text("not a folder")  # the library cannot take files (as on a full or unmounted disk)
    result = materialize_assets(["library_tracks"], instance, raise_on_error=False)
    assert not result.success  # the run says so, with the reason
    rows = _query("SELECT state, next_attempt_at, last_error FROM downloads")
    assert rows and all(state == "succeeded" and due is not None and "could not import" in error
                        for state, due, error in rows)
    database = HarmonyDatabase(path=str(load_settings().duckdb_path))
    with database.connect(read_only=True) as conn:
        assert imports_pending(conn) == 0  # the sensor does not ask for a run every tick meanwhile
    assert [p for p in Path(env["SLSKD_DOWNLOADS_DIR"]).rglob("*") if p.is_file()]  # the files stay


def test_started_runs_are_failed_only_when_their_process_is_gone(instance, monkeypatch):
    import uuid

    from dagster._core.storage.dagster_run import DagsterRun

    import sensors.run_health as run_health

    def started(tags):
        return instance.add_run(DagsterRun(job_name="acquisition_job", run_id=str(uuid.uuid4()),
                                           status=DagsterRunStatus.STARTED, tags=tags)).run_id

    child = subprocess.run([sys.executable, "-c", "from harmony_pipeline.claims import process_token; "
                            "print(process_token())"], capture_output=True, text=True, cwd=REPO, check=True)
    alive = started({run_health.PROCESS_TAG: process_token()})
    dead = started({run_health.PROCESS_TAG: child.stdout.strip()})
    untagged = started({})
    assert fail_dead_runs(instance) == [dead]  # the untagged one may still be starting
    monkeypatch.setattr(run_health, "UNTAGGED_RUN_TIMEOUT_SECONDS", -1)
    assert fail_dead_runs(instance) == [untagged]  # killed before it could say who it is
    assert instance.get_run_by_id(alive).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
