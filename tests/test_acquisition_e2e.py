"""A playlist of 40 tracks taken from Spotify through Soulseek into the library, against the sandbox.

Ground truth comes from the sandbox: `is_correct(username, filename)` names the catalog track a shared
file really is. Every track must end in the library as the right recording, or in retry / dead-letter /
no-match with a reason.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import mutagen
import pytest
from conftest import materialize_assets, pipeline_environment, settle_acquisition

from harmony_pipeline.cli.dead_letter import dead_letters, requeue
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings

ACQUISITION = ["spotify_playlists", "playlist_tracks", "wanted_tracks", "soulseek_matches", "downloads",
               "library_tracks"]


@pytest.fixture
def acquisition_sandbox(tmp_path):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.2, slskd_transfer_step_seconds=0.02) as sandbox:
        yield sandbox


@pytest.fixture
def acquisition_env(acquisition_sandbox, tmp_path, monkeypatch):
    env = pipeline_environment(acquisition_sandbox, tmp_path,
                               HARMONY_PLAYLISTS=acquisition_sandbox.catalog.acquisition_playlist_id,
                               RETRY_MAX_ATTEMPTS="4")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _query(sql: str, params=()):
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        cursor = conn.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_playlist_ends_in_library_or_visible_failure(acquisition_sandbox, acquisition_env, instance, tmp_path):
    sandbox = acquisition_sandbox
    catalog = sandbox.catalog
    slskd = sandbox.emulator("slskd")
    playlist = catalog.playlists[catalog.acquisition_playlist_id]
    tracks = catalog.playlist_tracks(playlist)
    assert len(tracks) >= 40

    # Match first, then make the best candidate of one track refuse the transfer.
    assert materialize_assets(ACQUISITION[:4], instance).success
    matched = _query("SELECT wanted_key, username, filename, candidates FROM soulseek_matches "
                     "WHERE status = 'matched' ORDER BY wanted_key")
    victim = next(m for m in matched if len(json.loads(m["candidates"])) >= 2)
    slskd.script_outcome("Rejected", username=victim["username"], filename=victim["filename"])

    _settle(instance)  # the runs download_transfer_sensor would request (retries, new searches)

    library_root = Path(acquisition_env["HARMONY_LIBRARY_DIR"])
    by_isrc = {t.isrc: t for t in tracks}
    library = {row["isrc"]: row for row in _query("SELECT * FROM library_tracks")}
    downloads = {row["wanted_key"]: row for row in _query("SELECT * FROM downloads")}
    matches = {row["wanted_key"]: row for row in _query("SELECT * FROM soulseek_matches")}
    outcome = {"library": 0, "dead_letter": 0, "no_match": 0}
    for isrc, track in by_isrc.items():
        key = f"isrc:{isrc}"
        if isrc in library:
            row = library[isrc]
            truth = slskd.is_correct(row["source"].removeprefix("soulseek:"), row["source_filename"])
            assert truth is not None and slskd.peers.copies_track(
                row["source"].removeprefix("soulseek:"), row["source_filename"], track.id), \
                f"{track.name}: wrong recording {row['source_filename']}"
            path = library_root / row["path"]
            assert path.is_file() and path.resolve().is_relative_to(library_root.resolve())
            assert abs(mutagen.File(path).info.length - track.duration_ms / 1000) <= 3
            outcome["library"] += 1
        elif key in downloads and downloads[key]["state"] == "dead_letter":
            assert downloads[key]["last_error"]
            outcome[downloads[key]["state"]] += 1
        else:
            assert matches[key]["status"] == "no_match" and matches[key]["reasons"], (track.name, downloads.get(key))
            outcome["no_match"] += 1
    assert outcome["library"] >= 30, outcome

    # The rejected first choice was followed by another candidate.
    history = json.loads(downloads[victim["wanted_key"]]["history"])
    assert history[0]["outcome"] == "Completed, Rejected"
    assert history[-1]["filename"] != victim["filename"]
    assert downloads[victim["wanted_key"]]["state"] in ("imported", "dead_letter")

    # Nothing written outside the library, slskd's downloads and the data folder.
    allowed = [library_root, Path(acquisition_env["HARMONY_DATA_DIR"]), tmp_path / "sandbox",
               tmp_path / "dagster_home"]
    stray = [p for p in _files_under(tmp_path) if not any(p.is_relative_to(a) for a in allowed)]
    assert stray == []

    searches = [r for r in slskd.requests() if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    unfound = sum(len(m["queries"] or []) for m in matches.values() if m["status"] == "no_match")
    print(f"\nacquisition: {outcome}; searches={len(searches)}; "
          f"searches per acquired track={len(searches) / max(outcome['library'], 1):.2f} "
          f"(without the {unfound} spent on tracks no peer shares: "
          f"{(len(searches) - unfound) / max(outcome['library'], 1):.2f})")

    # Once settled, another materialization changes nothing and duplicates nothing.
    before_files = _files_under(library_root)
    before_rows = _query("SELECT wanted_key, path FROM library_tracks ORDER BY wanted_key")
    slskd.clear_requests()
    assert materialize_assets(ACQUISITION, instance).success
    assert _files_under(library_root) == before_files
    assert _query("SELECT wanted_key, path FROM library_tracks ORDER BY wanted_key") == before_rows
    assert not [r for r in slskd.requests() if r.method == "POST" and "searches" in r.path]


def _settle(instance) -> None:
    """Sync the playlist, then run what download_transfer_sensor would request until nothing is left."""
    assert materialize_assets(ACQUISITION[:3], instance).success
    settle_acquisition(instance)


def test_dead_letter_after_max_attempts_and_requeue(acquisition_sandbox, acquisition_env, instance, monkeypatch):
    slskd = acquisition_sandbox.emulator("slskd")
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "2")
    slskd.script_outcome("Errored", times=None)  # every transfer fails

    _settle(instance)
    matched = {r["wanted_key"] for r in _query("SELECT wanted_key FROM downloads")}
    dead = dead_letters(load_settings().duckdb_path)
    assert {row["wanted_key"] for row in dead} == matched  # every track that was tried ends dead-lettered
    for row in dead:
        assert len(row["history"]) == row["attempts"]
        assert all(a["outcome"] == "Completed, Errored" for a in row["history"])
        # Two attempts, or one when a new search found no other peer to try.
        assert row["attempts"] == 2 or (row["attempts"] == 1 and row["last_error"] == row["history"][-1]["error"])
        if row["attempts"] == 2:
            first, second = row["history"]
            gap = (datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(first["ended_at"]))
            assert gap.total_seconds() >= 0.05 * 2 * 0.8  # RETRY_BASE_SECONDS × 2^1 × (1 − jitter)
    assert _query("SELECT count(*) AS n FROM library_tracks")[0]["n"] == 0
    events = {r["type"] for r in _query("SELECT type FROM activity_events")}
    assert {"download_retry_scheduled", "download_dead_lettered"} <= events

    slskd.clear_scripted_outcomes()
    # A track whose first choice is a well-behaved peer: once requeued, it must arrive.
    findable = next(row["wanted_key"] for row in dead
                    if slskd.peers.peers[row["history"][0]["username"]].behaviour == "ok")
    assert requeue(load_settings().duckdb_path, [findable]) == [findable]
    _settle(instance)
    state = _query("SELECT state, last_error, history FROM downloads WHERE wanted_key = ?", [findable])
    assert [r["wanted_key"] for r in _query("SELECT wanted_key FROM library_tracks")] == [findable], state


def test_downloads_start_while_the_searches_of_the_batch_go_on(acquisition_sandbox, acquisition_env, instance,
                                                               monkeypatch):
    """A run that downloads enqueues each decided track at once, before the batch's last search. (A run of
    the search alone enqueues nothing: test_playlist_ends_in_library_or_visible_failure relies on it.)"""
    import harmony_pipeline.acquisition.search as soulseek_search

    monkeypatch.setattr(soulseek_search, "DECISION_FLUSH_SECONDS", 0.5)
    slskd = acquisition_sandbox.emulator("slskd")
    assert materialize_assets(ACQUISITION[:3], instance).success
    result = materialize_assets(["soulseek_matches", "downloads"], instance)
    assert result.success
    requests = slskd.requests()
    searches = [r.time for r in requests if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    enqueues = [r.time for r in requests if r.method == "POST" and "/transfers/downloads/" in r.path]
    assert enqueues and min(enqueues) < max(searches)  # a download began before the last search
    started = result.asset_materializations_for_node("soulseek_matches")[0].metadata["downloads_started"].value
    assert started == len(enqueues)
    states = {r["state"] for r in _query("SELECT state FROM downloads")}
    assert states <= {"downloading", "succeeded", "imported", "retry"}, states
