"""The whole pipeline on a small playlist with artwork and lyrics on: Spotify → Soulseek → library →
tags, the Cover Art Archive's 1500 px cover, .lrc files. A second run asks no service anything new."""

from __future__ import annotations

from pathlib import Path

import duckdb
import mutagen
import pytest
from conftest import materialize_assets, pipeline_environment, settle_acquisition

from harmony_pipeline.enrichment.artwork import existing_cover
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings
from harmony_pipeline.enrichment.tagging import read_tags

EVERYTHING = ["spotify_playlists", "playlist_tracks", "wanted_tracks", "soulseek_matches", "downloads",
              "library_tracks", "track_metadata", "track_artwork", "track_lyrics"]
ENRICHMENT_SERVICES = ("musicbrainz", "coverart", "lrclib")


@pytest.fixture
def small_playlist_env(tmp_path, monkeypatch):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.2, slskd_transfer_step_seconds=0.02) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.small_playlist_id,
                                   ENABLE_ARTWORK="1", ENABLE_LYRICS="1")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield sandbox, env


def test_small_playlist_acquired_tagged_with_cover_and_lyrics(small_playlist_env, instance):
    sandbox, env = small_playlist_env
    catalog = sandbox.catalog
    assert materialize_assets(EVERYTHING, instance).success
    # Transfers finishing after the run are imported by the runs download_transfer_sensor requests;
    # enrichment follows them (declarative automation in a deployment).
    settle_acquisition(instance)
    assert materialize_assets(EVERYTHING[-3:], instance).success

    library_root = Path(env["HARMONY_LIBRARY_DIR"])
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        rows = conn.execute("SELECT isrc, path FROM library_tracks").fetchall()
        artwork = {k: (s, r) for k, s, r in conn.execute(
            "SELECT wanted_key, source, reason FROM track_artwork").fetchall()}
        lyrics_status = dict(conn.execute("SELECT wanted_key, status FROM track_lyrics").fetchall())
    assert len(rows) >= 3
    by_isrc = {t.isrc: t for t in catalog.tracks.values()}
    covers = synced = 0
    for isrc, relative in rows:
        track = by_isrc[isrc]
        album = catalog.albums[track.album_id]
        path = library_root / relative
        tags = read_tags(path)
        assert tags.isrc == isrc and tags.title == track.name and tags.album == album.name
        assert tags.track_number == track.track_number
        assert any(text for text, _ in album.copyrights if text in (tags.copyright or ""))
        if track.recording and track.recording.work and track.recording.work.composers:
            assert tags.composers
        cover = existing_cover(path)
        if album.cover is not None and track.recording is not None:  # reachable through the ISRC
            assert cover is not None and min(cover.width, cover.height) >= 1000, (relative, artwork.get(f"isrc:{isrc}"))
            assert (path.parent / "cover.jpg").is_file()
            covers += 1
        lrc = path.with_suffix(".lrc")
        if track.lyrics is not None and track.lyrics.kind == "synced":
            synced += 1
            text = lrc.read_text(encoding="utf-8")
            assert text.startswith("[ar:") and f"[ti:{track.name}]" in text
            assert "[00:" in text or "[01:" in text
        if track.lyrics is not None and track.lyrics.kind == "instrumental":
            assert not lrc.exists() and lyrics_status[f"isrc:{isrc}"] == "instrumental"
        assert mutagen.File(path) is not None
    assert covers >= 1 and synced >= 1  # the small playlist has both; the checks above really ran

    for name in ("spotify", *ENRICHMENT_SERVICES, "slskd"):
        sandbox.emulator(name).clear_requests()
    assert materialize_assets(EVERYTHING, instance).success
    for name in ENRICHMENT_SERVICES:
        assert sandbox.emulator(name).requests() == [], f"{name} asked again"
    spotify_calls = [r for r in sandbox.emulator("spotify").requests() if r.path.startswith("/v1/")]
    assert len(spotify_calls) == 1  # the playlist's snapshot check
    assert not [r for r in sandbox.emulator("slskd").requests() if r.method == "POST"]
