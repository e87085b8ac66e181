"""Audio verification of downloads: decoding, fingerprints once per file, AcoustID against the sandbox,
and the download flow quarantining a correctly named file with the wrong audio.

Needs `fpcalc` (Debian: libchromaprint-tools, installed by .ci/run).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import mutagen
import pytest

from harmony_pipeline import storage
from harmony_pipeline.acquisition.audio_verification import (
    AcoustIdClient,
    Fingerprinter,
    VerificationError,
    Verifier,
    verification_counts,
    verify_download,
)
from harmony_pipeline.acquisition.download_attempts import RetryRules
from harmony_pipeline.acquisition.download_flow import DownloadSetup, reconcile_transfers, start_due_downloads
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.sandbox import Fault, Sandbox
from harmony_pipeline.sandbox.acoustid import SANDBOX_API_KEY, other_recording, write_melody, write_served_audio
from resources.acoustid import AcoustIdResource
from resources.database import HarmonyDatabase
from harmony_pipeline.enrichment.musicbrainz import MusicBrainzClient, RateLimiter
from harmony_pipeline.acquisition.slskd import SlskdClient

pytestmark = pytest.mark.skipif(shutil.which("fpcalc") is None, reason="fpcalc (libchromaprint-tools) missing")


def _verdict(path: Path, wanted: dict | None, verifier: Verifier | None):
    try:
        return verify_download(path, wanted, verifier)
    except VerificationError as rejected:
        return rejected.verdict


# --- local checks --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_a_silent_file_is_rejected(tmp_path: Path, fmt: str) -> None:
    path = write_melody(tmp_path / f"silent.{fmt}", fmt, 180, None)
    assert mutagen.File(path).info.length == pytest.approx(180, abs=1)  # a valid file of the right length
    with pytest.raises(VerificationError) as rejected:
        verify_download(path, {"isrc": "GBAAA0000001"}, None)
    assert rejected.value.verdict.status == "silent"


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_a_truncated_file_is_rejected(tmp_path: Path, fmt: str) -> None:
    whole = write_melody(tmp_path / f"whole.{fmt}", fmt, 180, "recording:x")
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert mutagen.File(cut).info.length == pytest.approx(180, abs=1)  # the header still promises 180 s
    verdict = _verdict(cut, None, None)
    assert verdict.status == "truncated", verdict
    assert _verdict(whole, None, None).status == "unverified"


def test_audible_audio_without_a_key_is_imported_unverified(tmp_path: Path) -> None:
    path = write_melody(tmp_path / "song.flac", "flac", 200, "recording:y")
    verdict = verify_download(path, {"isrc": "GBAAA0000001"}, Verifier())
    assert (verdict.status, verdict.reason) == ("unverified", "no ACOUSTID_API_KEY")
    assert not verdict.rejected


def test_fingerprints_are_computed_once_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "fpcalc.log"
    wrapper = tmp_path / "fpcalc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {shutil.which("fpcalc")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("FPCALC", str(wrapper))
    first = write_melody(tmp_path / "a.flac", "flac", 150, "recording:a")
    second = write_melody(tmp_path / "b.mp3", "mp3", 150, "recording:b")
    verifier = Verifier()
    for _ in range(3):
        verify_download(first, None, verifier)
    verify_download(second, None, verifier)
    runs = log.read_text().splitlines()
    assert len(runs) == 2 and runs[0].endswith("a.flac") and runs[1].endswith("b.mp3")
    assert verifier.fingerprinter.computed == 2
    write_melody(first, "flac", 151, "recording:a")  # new content under the same name is fingerprinted again
    verify_download(first, None, verifier)
    assert len(log.read_text().splitlines()) == 3


# --- AcoustID against the sandbox ---------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    # MusicBrainz's 1 request/s is not what these tests measure: its emulator limit is off.
    with Sandbox(tmp_path_factory.mktemp("sandbox"), slskd_search_seconds=0.2,
                 slskd_transfer_step_seconds=0.02, musicbrainz_rate_limit=None) as running:
        yield running


def _musicbrainz(sandbox: Sandbox) -> MusicBrainzClient:
    return MusicBrainzClient(sandbox.url("musicbrainz"), RateLimiter(0.0), max_retries=0)


def _verifier(sandbox: Sandbox, key: str = SANDBOX_API_KEY, cache: HttpCache | None = None) -> Verifier:
    return Verifier(AcoustIdClient(key, sandbox.env["ACOUSTID_URL"], cache), _musicbrainz(sandbox), Fingerprinter())


def _track_with_recording(sandbox: Sandbox, index: int = 0):
    slskd = sandbox.emulator("slskd")
    tracks = [t for t in sandbox.catalog.tracks.values()
              if t.recording is not None and slskd.peers.scenario(t.id) == "normal"
              and slskd.peers.canonical_track_id(t.id) == t.id]
    return tracks[index]


def _served(sandbox: Sandbox, track, folder: Path, outcome: str = "Succeeded", fmt: str = "flac") -> Path:
    """A file written exactly as the sandbox's slskd writes a finished download of `track`."""
    slskd = sandbox.emulator("slskd")
    username, filename = slskd.peers.correct_files(track.id)[0]
    shared = slskd.peers.find(username, filename)
    path = folder / f"{outcome}-{track.id}.{fmt}"
    write_served_audio(path, fmt, shared.duration_s, sandbox.catalog, shared, outcome, filename)
    return path


def test_the_right_audio_is_verified_and_a_correct_name_over_other_audio_is_a_mismatch(sandbox, tmp_path):
    track = _track_with_recording(sandbox)
    verifier = _verifier(sandbox)
    right = verify_download(_served(sandbox, track, tmp_path, fmt="mp3"), {"isrc": track.isrc}, verifier)
    assert right.status == "verified" and track.recording.mbid in right.recording_ids, right
    wrong_file = _served(sandbox, track, tmp_path, "WrongAudio")
    other = sandbox.catalog.tracks[other_recording(sandbox.catalog, track.id)]
    assert abs(mutagen.File(wrong_file).info.length - track.duration_ms / 1000) <= 2  # the length fools the name checks
    with pytest.raises(VerificationError) as rejected:
        verify_download(wrong_file, {"isrc": track.isrc}, verifier)
    assert rejected.value.verdict.status == "mismatch"
    assert rejected.value.verdict.recording_ids == (other.recording.mbid,)


def test_without_an_answer_the_file_passes_unverified(sandbox, tmp_path):
    track = _track_with_recording(sandbox, 1)
    path = _served(sandbox, track, tmp_path)
    acoustid = sandbox.emulator("acoustid")
    acoustid.add_fault(Fault("/v2/lookup", status=503, times=1))
    down = verify_download(path, {"isrc": track.isrc}, _verifier(sandbox))
    assert down.status == "unverified" and "AcoustID" in down.reason
    refused = verify_download(path, {"isrc": track.isrc}, _verifier(sandbox, key="not-a-key"))
    assert refused.status == "unverified" and "invalid API key" in refused.reason
    assert SANDBOX_API_KEY not in refused.label and "not-a-key" not in refused.label
    assert verify_download(path, {"isrc": None}, _verifier(sandbox)).reason == "no ISRC"
    sandbox.emulator("musicbrainz").add_fault(Fault("/ws/2/isrc", status=503, times=1))
    assert verify_download(path, {"isrc": track.isrc}, _verifier(sandbox)).status == "unverified"
    unknown = write_melody(tmp_path / "unknown.flac", "flac", track.duration_ms / 1000, "recording:nowhere")
    verdict = verify_download(unknown, {"isrc": track.isrc}, _verifier(sandbox))
    assert (verdict.status, verdict.reason) == ("unverified", "AcoustID does not know this audio")


def test_the_resource_builds_a_verifier_that_looks_up_only_with_a_key(sandbox, tmp_path):
    track = _track_with_recording(sandbox, 10)
    path = _served(sandbox, track, tmp_path)
    keyed = AcoustIdResource(url=sandbox.env["ACOUSTID_URL"], api_key=SANDBOX_API_KEY)
    assert verify_download(path, {"isrc": track.isrc}, keyed.get_verifier(_musicbrainz(sandbox))).status == "verified"
    keyless = AcoustIdResource(url=sandbox.env["ACOUSTID_URL"]).get_verifier(_musicbrainz(sandbox))
    assert verify_download(path, {"isrc": track.isrc}, keyless).reason == "no ACOUSTID_API_KEY"


def test_lookups_are_cached_per_fingerprint_and_kept_to_three_a_second(sandbox, tmp_path):
    acoustid = sandbox.emulator("acoustid")
    tracks = [_track_with_recording(sandbox, index) for index in range(2, 6)]
    paths = [_served(sandbox, track, tmp_path) for track in tracks]
    cache = HttpCache(tmp_path / "cache.duckdb")
    verifier = _verifier(sandbox, cache=cache)
    acoustid.clear_requests()
    for track, path in zip(tracks, paths):
        assert verify_download(path, {"isrc": track.isrc}, verifier).status == "verified"
    lookups = [r for r in acoustid.requests() if r.path.startswith("/v2/lookup")]
    assert len(lookups) == 4
    gaps = [b.time - a.time for a, b in zip(lookups, lookups[1:])]
    assert min(gaps) >= 0.3, gaps  # pyacoustid spaces requests 0.33 s apart
    # The same audio again, from another process's verifier: answered by the response cache file.
    assert verify_download(paths[0], {"isrc": tracks[0].isrc}, _verifier(sandbox, cache=cache)).status == "verified"
    assert len([r for r in acoustid.requests() if r.path.startswith("/v2/lookup")]) == 4
    with sqlite3.connect(cache.path) as conn:
        stored = conn.execute("SELECT key, value FROM answers WHERE key LIKE 'acoustid:%'").fetchall()
    assert len(stored) == 4 and not any(SANDBOX_API_KEY in key + str(body) for key, body in stored)


# --- the download flow ---------------------------------------------------------------------------
def _flow(sandbox: Sandbox, tmp_path: Path, track, verifier: Verifier | None):
    """A DuckDB file with `track` wanted and matched to its correct FLAC/MP3 copies, and the download setup."""
    slskd = sandbox.emulator("slskd")
    peers = slskd.peers
    files = [peers.find(u, f) for u, f in peers.correct_files(track.id)]
    usable = [(u, f) for (u, f), shared in zip(peers.correct_files(track.id), files)
              if peers.peers[u].behaviour == "ok" and shared.extension in ("flac", "mp3")]
    assert len(usable) >= 2, "the track needs two downloadable copies"
    candidates = [{"username": u, "filename": f, "size": peers.find(u, f).size, "score": 90.0} for u, f in usable]
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    key = f"isrc:{track.isrc}"
    now = storage.utcnow()
    with database.connect() as conn:
        storage.upsert(conn, "wanted_tracks", [{
            "wanted_key": key, "isrc": track.isrc, "title": track.name, "artist": "x", "duration_ms": track.duration_ms,
            "sources": ["test"], "state": "wanted", "first_wanted_at": now, "updated_at": now}], key=["wanted_key"])
        storage.upsert(conn, "soulseek_matches", [{
            "wanted_key": key, "status": "matched", "username": candidates[0]["username"],
            "filename": candidates[0]["filename"], "candidates": json.dumps(candidates), "decided_at": now}],
            key=["wanted_key"])
    setup = DownloadSetup(
        client=SlskdClient(slskd.api_url, slskd.api_key), database=database,
        downloads_dir=slskd.downloads_dir, remote_downloads_dir=slskd.remote_downloads_dir,
        quarantine_dir=tmp_path / "quarantine", rules=RetryRules(5, 0.01, 0.0), verifier=verifier)
    return setup, key, candidates


def _settle(setup: DownloadSetup, sandbox: Sandbox) -> dict[str, int]:
    assert start_due_downloads(setup) == 1
    assert sandbox.emulator("slskd").wait_for_transfers(20)
    return reconcile_transfers(setup)


def _download_row(setup: DownloadSetup, key: str) -> dict:
    with setup.database.connect(read_only=True) as conn:
        cursor = conn.execute("SELECT * FROM downloads WHERE wanted_key = ?", [key])
        return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))


@pytest.mark.parametrize("outcome, status", [("WrongAudio", "mismatch"), ("Silent", "silent")])
def test_a_rejected_file_is_quarantined_its_source_blocked_and_the_next_candidate_downloaded(
        sandbox, tmp_path, outcome, status):
    track = _track_with_recording(sandbox, 6 if outcome == "WrongAudio" else 7)
    setup, key, candidates = _flow(sandbox, tmp_path, track, _verifier(sandbox))
    first = candidates[0]
    sandbox.emulator("slskd").script_outcome(outcome, username=first["username"], filename=first["filename"])

    assert _settle(setup, sandbox)["failed"] == 1
    row = _download_row(setup, key)
    assert row["state"] == "retry" and row["last_error"].startswith(f"file rejected: {status}:")
    quarantined = [p for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".reason.txt")]
    assert len(quarantined) == 1 and mutagen.File(quarantined[0]) is not None
    assert next((tmp_path / "quarantine").glob("*.reason.txt")).read_text().startswith(f"{status}:")
    with setup.database.connect(read_only=True) as conn:
        blocked = conn.execute("SELECT username, filename, reason FROM blocked_candidates").fetchall()
    assert [(u, f) for u, f, _ in blocked] == [(first["username"], first["filename"])]

    time.sleep(0.05)  # past the retry's backoff
    assert _settle(setup, sandbox)["succeeded"] == 1
    row = _download_row(setup, key)
    assert row["state"] == "succeeded" and row["filename"] == candidates[1]["filename"]
    assert row["verification"].startswith("verified: AcoustID")
    assert Path(row["local_path"]).is_file()
    history = json.loads(row["history"])
    assert [h["outcome"] for h in history] == ["quarantined", "downloaded"]
    with setup.database.connect(read_only=True) as conn:
        counts = verification_counts(conn)
    assert counts["verified"] == 1 and counts[status] == 1 and counts["unverified"] == 0


def test_with_the_service_down_or_no_key_the_download_still_succeeds_unverified(sandbox, tmp_path):
    track = _track_with_recording(sandbox, 8)
    setup, key, _ = _flow(sandbox, tmp_path, track, _verifier(sandbox))
    sandbox.emulator("acoustid").add_fault(Fault("/v2/lookup", status=503, times=None))
    try:
        assert _settle(setup, sandbox)["succeeded"] == 1
    finally:
        sandbox.emulator("acoustid").clear_faults()
    row = _download_row(setup, key)
    assert row["state"] == "succeeded" and row["verification"].startswith("unverified: AcoustID")

    track = _track_with_recording(sandbox, 9)
    setup, key, _ = _flow(sandbox, tmp_path / "nokey", track, None)
    assert _settle(setup, sandbox)["succeeded"] == 1
    assert _download_row(setup, key)["verification"] == "unverified: no ACOUSTID_API_KEY"


def test_a_mismatch_needs_a_confident_answer_naming_only_other_recordings() -> None:
    from harmony_pipeline.acquisition.audio_verification import judge

    def answer(*results):
        return {"status": "ok", "results": [{"id": f"a{i}", "score": score, "recordings": [{"id": r} for r in ids]}
                                            for i, (score, ids) in enumerate(results)]}

    wanted = {"rec-wanted"}
    assert judge(answer((0.97, ["rec-wanted", "rec-dup"])), wanted, "X").status == "verified"
    assert judge(answer((0.97, ["rec-other"])), wanted, "X").status == "mismatch"
    # One audio, several MusicBrainz recordings: the ISRC's among them anywhere is no mismatch.
    assert judge(answer((0.97, ["rec-other"]), (0.6, ["rec-wanted"])), wanted, "X").status == "unverified"
    assert judge(answer((0.85, ["rec-other"])), wanted, "X").status == "unverified"  # not sure enough
    assert judge(answer((0.5, ["rec-other"])), wanted, "X").reason == "AcoustID does not know this audio"
    assert judge({"status": "ok", "results": [{"id": "a", "score": 0.99}]}, wanted, "X").status == "unverified"


def test_the_sandbox_plants_wrong_audio_and_silent_copies_that_verification_catches(tmp_path):
    with Sandbox(tmp_path / "sandbox", slskd_transfer_step_seconds=0.02, musicbrainz_rate_limit=None,
                 acoustid_wrong_audio_tracks=1, acoustid_silent_tracks=1) as sandbox:
        decoys = sandbox.emulator("acoustid").decoys
        assert {outcome for outcome, *_ in decoys} == {"WrongAudio", "Silent"}
        playlist = sandbox.catalog.playlists[sandbox.catalog.acquisition_playlist_id]
        assert {track_id for _, track_id, _, _ in decoys} <= {t.id for t in sandbox.catalog.playlist_tracks(playlist)}
        slskd = sandbox.emulator("slskd")
        client = SlskdClient(slskd.api_url, slskd.api_key)
        verifier = _verifier(sandbox)
        for outcome in ("WrongAudio", "Silent"):
            _, track_id, username, filename = next(d for d in decoys if d[0] == outcome)
            client.enqueue(username, filename, slskd.peers.find(username, filename).size)
            assert slskd.wait_for_transfers(20)
            transfer = next(t for t in slskd.transfers() if t.filename == filename)
            assert transfer.state == "Completed, Succeeded"  # slskd reports success, as for a real mislabelled file
            isrc = sandbox.catalog.tracks[track_id].isrc
            expected = {"WrongAudio": "mismatch", "Silent": "silent"}[outcome]
            assert _verdict(transfer.local_path, {"isrc": isrc}, verifier).status == expected


def test_acoustid_settings_keep_the_key_secret_and_check_the_url() -> None:
    from harmony_pipeline.settings import SettingsError, load_settings

    defaults = load_settings({})
    assert (defaults.acoustid_url, defaults.acoustid_api_key) == ("https://api.acoustid.org", None)
    settings = load_settings({"ACOUSTID_API_KEY": "k3y-secret", "ACOUSTID_URL": "http://127.0.0.1:9/"})
    assert settings.acoustid_api_key == "k3y-secret" and settings.acoustid_url == "http://127.0.0.1:9/"
    assert "k3y-secret" not in str(settings.describe()) and "k3y-secret" not in repr(settings)
    with pytest.raises(SettingsError, match="ACOUSTID_URL"):
        load_settings({"ACOUSTID_URL": "api.acoustid.org"})
