"""No file is ever visible in the library without title / artist / album: the import tags the downloaded
file before its atomic move (harmony_pipeline/library/import_tags.py, import_flow.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from audio_fixtures import AUDIO_SUFFIXES, write_audio
from conftest import REPO, materialize_assets, pipeline_environment, settle_acquisition, subprocess_env

from harmony_pipeline.library.import_tags import basic_tags, read_spotify_id, tag_in_place_atomically
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings
from harmony_pipeline.enrichment.tagging import read_tags

AUDIO = {".mp3", ".flac", ".m4a", ".ogg", ".opus"}
DAGSTER = str(Path(sys.executable).parent / "dagster")
ROW = {"title": "Señorita", "artist": "Ana", "artists": ["Ana", "Bo"], "album": "Días", "album_artist": "Ana",
       "track_number": 3, "disc_number": 1, "album_total_tracks": 12, "release_date": "2019-03-01",
       "isrc": "USAB11900001", "spotify_track_id": "4uLU6hMCjMI75M1A2tKUQC"}


# --- the tags (no Dagster) ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_basic_tags_written_through_a_copy_read_back_in_every_format(tmp_path, suffix):
    path = write_audio(tmp_path / f"download{suffix}")
    tag_in_place_atomically(path, basic_tags(ROW, 1), ROW["spotify_track_id"])
    tags = read_tags(path)
    assert (tags.title, tags.album, tags.album_artist) == ("Señorita", "Días", "Ana")
    assert tags.artist == "Ana, Bo" and tags.artists == ["Ana", "Bo"]
    assert (tags.track_number, tags.track_total, tags.disc_number, tags.disc_total) == (3, 12, 1, 1)
    assert tags.date == "2019-03-01" and tags.isrc == "USAB11900001"
    assert read_spotify_id(path) == ROW["spotify_track_id"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "the temporary copy was left behind"


def test_a_copy_left_by_a_killed_run_is_overwritten_not_accumulated(tmp_path):
    path = write_audio(tmp_path / "download.flac")
    (tmp_path / ".harmony-tags-download.part.flac").write_bytes(b"half written by a killed run")
    tag_in_place_atomically(path, basic_tags(ROW, 1), None)
    assert [p.name for p in tmp_path.iterdir()] == ["download.flac"]
    assert read_tags(path).title == "Señorita"


def test_multi_disc_album_leaves_the_per_disc_track_total_to_enrichment():
    tags = basic_tags({**ROW, "disc_number": 2}, 2)
    assert (tags.disc_number, tags.disc_total, tags.track_total) == (2, 2, None)


def test_an_untaggable_file_is_left_unchanged(tmp_path):
    path = tmp_path / "download.mp3"
    path.write_bytes(b"not audio at all" * 100)
    from harmony_pipeline.enrichment.tagging import TaggingError

    with pytest.raises(TaggingError):
        tag_in_place_atomically(path, basic_tags(ROW, 1), None)
    assert path.read_bytes() == b"not audio at all" * 100
    assert [p.name for p in tmp_path.iterdir()] == ["download.mp3"]


# --- the import against the sandbox -------------------------------------------------------------------
@pytest.fixture
def pipeline(tmp_path, monkeypatch, dagster_home):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS=sandbox.catalog.small_playlist_id)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield sandbox, {**env, "DAGSTER_HOME": str(dagster_home)}


def _count(sql: str) -> int:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql).fetchone()[0]


def _downloaded_not_imported(instance) -> None:
    assert materialize_assets(["spotify_playlists", "playlist_tracks", "wanted_tracks", "soulseek_matches",
                               "downloads"], instance).success
    deadline = time.monotonic() + 60
    while _count("SELECT count(*) FROM downloads WHERE state IN ('enqueuing', 'downloading')"):
        assert time.monotonic() < deadline, "transfers did not finish"
        time.sleep(0.2)
        assert materialize_assets(["downloads"], instance).success
    assert _count("SELECT count(*) FROM downloads WHERE state = 'succeeded'") >= 2


def _audio_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and p.suffix in AUDIO}


def _wanted_titles() -> dict[str, tuple[str, str]]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return {title: (artist, album) for title, artist, album in
                conn.execute("SELECT title, artist, album FROM wanted_tracks").fetchall()}


def test_a_file_read_the_instant_it_appears_in_the_library_is_tagged(pipeline, instance):
    _, env = pipeline
    library = Path(env["HARMONY_LIBRARY_DIR"])
    _downloaded_not_imported(instance)
    seen: dict[Path, object] = {}
    stop = threading.Event()

    def watch() -> None:  # polls as a media server's scanner would, reading each file when it first shows
        while not stop.is_set():
            for path in _audio_files(library) - set(seen):
                seen[path] = read_tags(path)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert materialize_assets(["library_tracks"], instance).success
    finally:
        stop.set()
        watcher.join()
    assert len(seen) == _count("SELECT count(*) FROM library_tracks") >= 2
    wanted = _wanted_titles()
    for path, tags in seen.items():
        assert tags.title in wanted, f"{path.name} appeared without its title"
        artist, album = wanted[tags.title]
        assert tags.artist.startswith(artist) and tags.album == album, path.name


def test_the_file_left_by_a_run_killed_right_after_the_move_is_already_tagged(pipeline, instance):
    _, env = pipeline
    library = Path(env["HARMONY_LIBRARY_DIR"])
    _downloaded_not_imported(instance)
    killed = subprocess.run([DAGSTER, "asset", "materialize", "-m", "harmony_pipeline.definitions",
                             "--select", "library_tracks"],
                            env=subprocess_env({**env, "HARMONY_CRASHPOINT": "import.after_move"}), cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    [visible] = _audio_files(library)  # the crash window: in the library, no row written, no enrichment
    assert _count("SELECT count(*) FROM library_tracks") == 0
    tags = read_tags(visible)
    wanted = _wanted_titles()
    assert tags.title in wanted and tags.album == wanted[tags.title][1] and tags.artist
    assert tags.isrc and read_spotify_id(visible)

    settle_acquisition(instance)  # the next run finishes the import: one copy, still tagged
    files = _audio_files(library)
    assert len(files) == _count("SELECT count(*) FROM library_tracks") >= 2
    assert not [p for p in files if " (2)." in p.name]
    assert all(read_tags(p).title in wanted for p in files)
