"""playlist_files: one .m3u8 per synced playlist that a media server reads: UTF-8, #EXTM3U, #EXTINF, paths
relative to the playlist file, tracks in playlist order that are in the library, rewritten atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from audio_fixtures import write_audio
from conftest import materialize_assets, pipeline_environment, settle_acquisition

from harmony_pipeline.library.playlist_files import MARKER, Entry, owned_files, render, write_atomically
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.enrichment.tagging import TrackTags, write_tags


def read_m3u8(path: Path) -> list[tuple[str, Path]]:
    """(#EXTINF text, resolved file) per entry, as a player reads the list."""
    text = path.read_bytes().decode("utf-8")  # strict UTF-8
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    entries, info = [], None
    for line in lines[1:]:
        if line.startswith("#EXTINF:"):
            info = line[len("#EXTINF:"):]
        elif line and not line.startswith("#"):
            assert not os.path.isabs(line) and "\\" not in line
            entries.append((info, (path.parent / line).resolve()))
            info = None
    return entries


def test_render_lists_relative_paths_and_durations(tmp_path):
    folder = tmp_path / "library" / "Playlists"
    entries = [Entry(201, "Ana, Bo - Señorita", tmp_path / "library" / "Ana" / "Días" / "03 - Señorita.flac"),
               Entry(180, "Cleo - Night\nDrive", tmp_path / "nas" / "x.mp3")]
    text = render("pl1", "Road trip", entries, folder)
    assert text.splitlines() == [
        "#EXTM3U", "#PLAYLIST:Road trip", f"{MARKER}pl1",
        "#EXTINF:201,Ana, Bo - Señorita", "../Ana/Días/03 - Señorita.flac",
        "#EXTINF:180,Cleo - Night Drive", "../../nas/x.mp3",
    ]


def test_write_atomically_writes_only_changes_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "list.m3u8"
    assert write_atomically(path, "#EXTM3U\nä\n")
    before = path.stat().st_mtime_ns
    assert not write_atomically(path, "#EXTM3U\nä\n")
    assert path.stat().st_mtime_ns == before
    assert write_atomically(path, "#EXTM3U\n")
    assert [p.name for p in tmp_path.iterdir()] == ["list.m3u8"]


def test_only_files_naming_a_playlist_are_ours(tmp_path):
    (tmp_path / "mine.m3u8").write_text("#EXTM3U\n#EXTINF:1,a - b\na.mp3\n", encoding="utf-8")
    (tmp_path / "ours.m3u8").write_text(render("pl9", "x", [], tmp_path), encoding="utf-8")
    assert owned_files(tmp_path) == {"pl9": [tmp_path / "ours.m3u8"]}


# --- against the sandbox --------------------------------------------------------------------------------
@pytest.fixture
def pipeline(tmp_path, monkeypatch, dagster_home):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02) as sandbox:
        extra = tmp_path / "nas"
        extra.mkdir()
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.small_playlist_id,
                                   HARMONY_EXTRA_LIBRARY_DIRS=str(extra))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield sandbox, Path(env["HARMONY_LIBRARY_DIR"]), extra


def test_playlist_file_lists_library_tracks_in_order_and_follows_changes(pipeline, instance):
    sandbox, library, extra = pipeline
    catalog = sandbox.catalog
    playlist = catalog.playlists[catalog.small_playlist_id]
    tracks = catalog.playlist_tracks(playlist)
    # The second track is the user's own file on a read-only share: listed, never copied.
    own = extra / "own.mp3"
    write_audio(own, tracks[1].duration_ms / 1000)
    write_tags(own, TrackTags(title=tracks[1].name, artist=catalog.artists[tracks[1].artist_ids[0]].name,
                              isrc=tracks[1].isrc))
    sync = ["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks"]
    assert materialize_assets(sync, instance).success
    settle_acquisition(instance)
    assert materialize_assets(["playlist_files"], instance).success

    path = library / "Playlists" / f"{playlist.name}.m3u8"
    entries = read_m3u8(path)
    assert entries, path.read_text(encoding="utf-8")
    assert all(file.is_file() for _, file in entries)
    assert own.resolve() in [file for _, file in entries]
    titles = [info.split(" - ", 1)[1] for info, _ in entries]
    order = [t.name for t in tracks]
    assert titles == [t for t in order if t in titles], "not in playlist order"
    for info, _ in entries:
        seconds = int(info.split(",", 1)[0])
        assert seconds in {round(t.duration_ms / 1000) for t in tracks}

    # Unchanged: not rewritten. A track removed from the playlist leaves the list; its file stays.
    mtime = path.stat().st_mtime_ns
    assert materialize_assets(["playlist_files"], instance).success
    assert path.stat().st_mtime_ns == mtime
    removed_title, removed_file = titles[0].split(" - ")[-1], entries[0][1]
    removed = next(t for t in tracks if t.name == titles[0])
    catalog.remove_playlist_track(playlist.id, removed.id)
    assert materialize_assets(sync, instance).success
    assert materialize_assets(["playlist_files"], instance).success
    after = read_m3u8(path)
    assert [f for _, f in after] == [f for _, f in entries[1:]]
    assert removed_file.is_file(), f"{removed_title}: the file of a removed track was deleted"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
