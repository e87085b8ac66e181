"""Quality upgrades: an MP3 in the library below the HARMONY_QUALITY cutoff is replaced by a correct FLAC,
with its tags, cover and lyrics kept and the old file removed; the user's own files are never touched."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import duckdb
import pytest
from conftest import materialize_assets, pipeline_environment, settle_acquisition
from PIL import Image

from harmony_pipeline import storage
from harmony_pipeline.enrichment.artwork import embed_cover, existing_cover_bytes
from harmony_pipeline.library.import_tags import read_spotify_id
from harmony_pipeline.library.quality import parse_quality
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings
from harmony_pipeline.enrichment.tagging import TrackTags, read_tags, write_tags

pytestmark = pytest.mark.integration


def test_cutoff_parsing():
    profile = parse_quality("flac>mp3:320>mp3;cutoff=mp3:320")
    assert profile.cutoff == 1 and str(profile) == "flac>mp3:320>mp3;cutoff=mp3:320"
    assert profile.below_cutoff("mp3", 192) and not profile.below_cutoff("mp3", 320)
    assert not profile.below_cutoff("flac", None)
    assert not parse_quality("flac>mp3").below_cutoff("mp3", 64)
    with pytest.raises(ValueError, match="cutoff"):
        parse_quality("flac>mp3;cutoff=m4a")


def test_the_upgrade_asset_and_schedule_are_loaded_only_with_a_cutoff(tmp_path):
    from harmony_pipeline.definitions import build_definitions
    from test_definitions import graph_of

    plain = build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path), "HARMONY_QUALITY": "flac>mp3"}))
    assert "library_upgrades" not in graph_of(plain)[0]
    defs = build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path),
                                            "HARMONY_QUALITY": "flac>mp3;cutoff=flac"}))
    groups, deps = graph_of(defs)
    assert groups["library_upgrades"] == "acquisition" and deps["library_upgrades"] == {"library_tracks"}
    assert "library_upgrade_schedule" in {s.name for s in defs.schedules}


def _query(sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _cover() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_an_mp3_below_the_cutoff_is_replaced_by_a_flac_keeping_tags_cover_and_lyrics(
        tmp_path, monkeypatch, dagster_home, instance):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.acquisition_playlist_id,
                                   HARMONY_QUALITY="flac>mp3;cutoff=flac", RETRY_MAX_ATTEMPTS="3")
        peers = sandbox.emulator("slskd").peers
        peers.withhold("flac")  # nobody shares FLAC yet: the library gets MP3s below the cutoff
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        library = Path(env["HARMONY_LIBRARY_DIR"])
        own = library / "Mine" / "own.mp3"  # the user's own file: never upgraded
        assert materialize_assets(["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks"],
                                  instance).success
        settle_acquisition(instance, max_runs=30, timeout=240)
        # Every file below the FLAC cutoff (MP3s, and lossy formats the profile ranks after them).
        mp3s = {key: path for key, path in _query("SELECT wanted_key, path FROM library_tracks WHERE format <> 'flac'")}
        assert len(mp3s) >= 5
        cover = _cover()
        before = {}
        for key, path in mp3s.items():  # what enrichment would have added
            file = library / path
            write_tags(file, TrackTags(genres=["Upgrade Test"]))
            embed_cover(file, cover, "image/jpeg")
            file.with_suffix(".lrc").write_text("[00:01.00]la la\n", encoding="utf-8")
            before[key] = read_tags(file)
        own.parent.mkdir(parents=True, exist_ok=True)
        own.write_bytes((library / next(iter(mp3s.values()))).read_bytes())
        own_bytes = own.read_bytes()

        # FLAC copies appear later; the searches are asked again once their cached answers expire (6 h).
        peers.release()
        with storage.connect(load_settings().duckdb_path) as conn:
            conn.execute("DELETE FROM search_cache")
        deadline = time.monotonic() + 180
        while True:
            assert materialize_assets(["library_upgrades"], instance).success
            active = _query("SELECT count(*) FROM library_upgrades WHERE state IN ('downloading', 'replacing')")[0][0]
            pending = [k for k in mp3s if not _query("SELECT 1 FROM library_upgrades WHERE wanted_key = ?", [k])]
            if not active and not pending:
                break
            assert time.monotonic() < deadline, _query("SELECT state, count(*) FROM library_upgrades GROUP BY 1")
            time.sleep(0.3)

    upgrades = {k: (s, new, err) for k, s, new, err in
                _query("SELECT wanted_key, state, new_path, last_error FROM library_upgrades")}
    replaced = [k for k, (state, _, _) in upgrades.items() if state == "replaced"]
    assert replaced, upgrades
    assert {state for state, _, _ in upgrades.values()} <= {"replaced", "no_better", "failed"}
    for key in replaced:
        [(path, file_format)] = _query("SELECT path, format FROM library_tracks WHERE wanted_key = ?", [key])
        new = library / path
        assert file_format == "flac" and new.suffix == ".flac" and new.is_file()
        assert not (library / mp3s[key]).exists(), "the old MP3 is still there"
        tags, old = read_tags(new), before[key]
        assert (tags.title, tags.artist, tags.album, tags.isrc, tags.track_number) == \
            (old.title, old.artist, old.album, old.isrc, old.track_number)
        assert tags.genres == ["Upgrade Test"] and read_spotify_id(new)
        assert existing_cover_bytes(new) == cover
        assert new.with_suffix(".lrc").read_text(encoding="utf-8") == "[00:01.00]la la\n"
    events = [json.loads(d) for (d,) in _query("SELECT details FROM activity_events WHERE type = 'track_upgraded'")]
    assert len(events) == len(replaced) and all(e["to"].startswith("flac") for e in events)
    assert own.read_bytes() == own_bytes
