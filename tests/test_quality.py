"""HARMONY_QUALITY: the profile orders the correct candidates (and drops unwanted ones); it never makes a
wrong file right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harmony_pipeline import storage
from harmony_pipeline.library.quality import parse_quality
from harmony_pipeline.settings import SettingsError, load_settings
from harmony_pipeline.acquisition.search import SearchSession, decide_match

ROW = {"wanted_key": "isrc:USEE10001992", "artist": "The Doors", "artists": ["The Doors"], "title": "Light My Fire",
       "album": "The Doors", "duration_ms": 426_000, "isrc": "USEE10001992", "track_number": 6,
       "album_total_tracks": 11, "release_date": "1967-01-04"}


def _file(filename: str, bitrate: int | None, length: int = 426) -> dict[str, Any]:
    file = {"filename": filename, "size": 10_000_000, "code": 1, "extension": "", "isLocked": False, "length": length}
    if bitrate is not None:
        file["bitRate"] = bitrate
    return file


def _peer(username: str, files: list[dict], free: bool, queue: int, speed: int) -> dict[str, Any]:
    return {"username": username, "token": 1, "hasFreeUploadSlot": free, "uploadSpeed": speed,
            "queueLength": queue, "fileCount": len(files), "lockedFileCount": 0, "files": files, "lockedFiles": []}


# An MP3 on a fast, free peer and a FLAC on a slow, busy one: both the wanted recording.
RESPONSES = [
    _peer("fastmp3", [_file("Music\\The Doors\\The Doors (1967)\\06 - Light My Fire.mp3", 320)], True, 0, 9_000_000),
    _peer("slowflac", [_file("Music\\The Doors\\The Doors (1967)\\06 - Light My Fire.flac", 900)], False, 40, 20_000),
    _peer("lowmp3", [_file("share\\The Doors - Light My Fire.mp3", 128)], True, 0, 9_000_000),
    _peer("wrong", [_file("Music\\The Doors\\Live\\06 - Light My Fire (Live).flac", 900)], True, 0, 9_000_000),
]


class Database:
    def __init__(self, path: Path):
        self.path = path

    def connect(self, *, read_only: bool = False):
        return storage.connect(self.path, read_only=read_only)


def _decide(tmp_path: Path, profile: str | None) -> dict[str, Any]:
    session = SearchSession(search=lambda text: RESPONSES, database=Database(tmp_path / f"{profile}.duckdb"),
                            limit=100, window_seconds=60)
    return decide_match(ROW, None, session, set(), parse_quality(profile) if profile else None)


def test_a_flac_first_profile_takes_the_flac_over_a_higher_scored_mp3(tmp_path):
    plain = _decide(tmp_path, None)
    plain_order = [c["username"] for c in json.loads(plain["candidates"])]
    assert plain["username"] == "fastmp3", "the engine alone ranks the MP3 first (the case this test is about)"
    assert "slowflac" in plain_order and "wrong" not in plain_order
    chosen = _decide(tmp_path, "flac>mp3:320>mp3:256")
    order = [c["username"] for c in json.loads(chosen["candidates"])]
    assert chosen["username"] == "slowflac" and chosen["filename"].endswith(".flac")
    assert order == ["slowflac", "fastmp3", "lowmp3"][: len(order)] and "wrong" not in order
    assert chosen["score"] < plain["score"], "the FLAC was scored lower by the engine"


def test_min_bitrate_and_lossless_only(tmp_path):
    order = [c["username"] for c in json.loads(_decide(tmp_path, "mp3:320>flac;min_bitrate=192")["candidates"])]
    assert order[:2] == ["fastmp3", "slowflac"] and "lowmp3" not in order
    lossless = _decide(tmp_path, "flac;lossy=no")
    assert [c["username"] for c in json.loads(lossless["candidates"])] == ["slowflac"]


def test_lossless_only_with_no_lossless_candidate_is_no_match(tmp_path):
    global RESPONSES
    saved = RESPONSES
    RESPONSES = [r for r in saved if r["username"] in ("fastmp3", "lowmp3")]
    try:
        assert _decide(tmp_path, "flac;lossy=no")["status"] == "no_match"
    finally:
        RESPONSES = saved


def test_profile_parsing_and_settings(tmp_path):
    profile = parse_quality(" FLAC > mp3:320 > m4a:256 ; min_bitrate=192 ")
    assert str(profile) == "flac>mp3:320>m4a:256;min_bitrate=192"
    assert profile.tier_of("mp3", 256) == 3 and profile.tier_of("mp3", None) == 3 and profile.tier_of("flac", None) == 0
    settings = load_settings({"HARMONY_DATA_DIR": str(tmp_path), "HARMONY_QUALITY": "flac>mp3:320;lossy=no"})
    assert settings.quality == "flac>mp3:320;lossy=no"
    for bad in ("flac>mp5", "flac>mp3:x", "flac;loud=yes", "mp3;lossy=no"):
        with pytest.raises(SettingsError, match="HARMONY_QUALITY"):
            load_settings({"HARMONY_DATA_DIR": str(tmp_path), "HARMONY_QUALITY": bad})


@pytest.mark.integration
def test_soulseek_matches_follow_the_profile_against_the_sandbox(tmp_path, monkeypatch, dagster_home, instance):
    from conftest import materialize_assets, pipeline_environment

    from harmony_pipeline.sandbox import Sandbox

    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.acquisition_playlist_id,
                                   HARMONY_QUALITY="mp3:256>flac")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert materialize_assets(["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks",
                                   "soulseek_matches"], instance).success
        profile = parse_quality("mp3:256>flac")
        import duckdb

        with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
            decisions = [json.loads(c) for (c,) in conn.execute(
                "SELECT candidates FROM soulseek_matches WHERE status = 'matched'").fetchall()]
    assert len(decisions) >= 20
    tiers = [[profile.tier_of(c["extension"], c["bitrate"]) for c in candidates] for candidates in decisions]
    assert all(t == sorted(t) for t in tiers), "candidates not in the profile's order"
    assert sum(1 for t in tiers if t[0] == 0 and len(set(t)) > 1) >= 1, "no decision where the profile mattered"
