"""Replacing a library file by a better one, without Dagster, against a real DuckDB file: a same-format
upgrade replaces the file in place (no "(2)" copy, the library path and the playlists stay valid), a
replaced file left behind by a crash is removed by the next run (never a file the library points to),
and a download whose track the user's own library already has is not imported a second time."""

from __future__ import annotations

import json
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile

from harmony_pipeline import storage
from harmony_pipeline.enrichment.artwork import embed_cover, existing_cover_bytes
from harmony_pipeline.acquisition.download_attempts import RetryRules
from harmony_pipeline.acquisition.import_flow import ImportSetup, import_downloads, imports_to_do
from harmony_pipeline.acquisition.library_import import inspect_audio
from harmony_pipeline.library.scan import scan_library
from harmony_pipeline.library.quality import parse_quality
from harmony_pipeline.enrichment.tagging import TrackTags, read_tags, write_tags
from harmony_pipeline.library.upgrades import (
    UpgradeReport,
    UpgradeSetup,
    load_upgrades,
    remove_old_file,
    replace_file,
)
from audio_fixtures import image_bytes
from resources.database import HarmonyDatabase

KEY = "isrc:USTEST0000001"


def _mp3(path: Path, level: float) -> Path:
    """A 3 s tone as a constant-bitrate MP3: compression level 0.0 is 320 kbps, 0.8 is 96 kbps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(44100 * 3) / 44100)
    soundfile.write(path, tone, 44100, format="MP3", subtype="MPEG_LAYER_III", compression_level=level,
                    bitrate_mode="CONSTANT")
    return path


@pytest.fixture
def world(tmp_path):
    database = HarmonyDatabase(path=str(tmp_path / "harmony.duckdb"))
    library, downloads = tmp_path / "library", tmp_path / "downloads"
    now = storage.utcnow()
    with database.connect() as conn:
        conn.execute("INSERT INTO wanted_tracks (wanted_key, isrc, title, artist, album, duration_ms, sources, "
                     "state, first_wanted_at, updated_at) VALUES (?, 'USTEST0000001', 'Song', 'Band', 'Record', "
                     "3000, ['playlist:p'], 'wanted', ?, ?)", [KEY, now, now])
    return database, library, downloads, tmp_path


def _library_track(database, relative: str, info) -> None:
    with database.connect() as conn:
        conn.execute("INSERT INTO library_tracks (wanted_key, path, isrc, title, artist, album, format, bitrate, "
                     "imported_at) VALUES (?, ?, 'USTEST0000001', 'Song', 'Band', 'Record', ?, ?, ?)",
                     [KEY, relative, info.format, info.bitrate_kbps, storage.utcnow()])
        conn.execute("UPDATE wanted_tracks SET state = 'in_library'")


def _setup(database, library, downloads, tmp_path, quality="mp3:256>mp3;cutoff=mp3:256") -> UpgradeSetup:
    return UpgradeSetup(database=database, client=None, search=lambda text: [], profile=parse_quality(quality),
                        library_root=library, downloads_dir=downloads, remote_downloads_dir=None,
                        quarantine_dir=tmp_path / "quarantine", search_limit=10, search_window_seconds=3600)


def test_a_same_format_upgrade_replaces_the_file_in_place_keeping_tags_and_cover(world):
    database, library, downloads, tmp_path = world
    relative = "Band/Record/01 Song.mp3"
    old = _mp3(library / relative, 0.8)
    cover = image_bytes(64, 64)
    write_tags(old, TrackTags(title="Song", artist="Band", album="Record", isrc="USTEST0000001",
                              genres=["Kept"], track_number=1))
    embed_cover(old, cover, "image/jpeg")
    old.with_suffix(".lrc").write_text("[00:01.00]la\n", encoding="utf-8")
    _library_track(database, relative, inspect_audio(old))
    download = _mp3(downloads / "peer" / "Song.mp3", 0.0)
    now = storage.utcnow()
    with database.connect() as conn:
        conn.execute("INSERT INTO library_upgrades (wanted_key, state, old_path, username, filename, local_path, "
                     "from_quality, attempts, updated_at, enqueued_at) VALUES (?, 'downloading', ?, 'peer', "
                     "'@@x\\Song.mp3', ?, 'mp3 96 kbps', 1, ?, ?)", [KEY, relative, str(download), now, now])
        [row] = load_upgrades(conn, "u.wanted_key = ?", [KEY])
    report = UpgradeReport()
    replace_file(_setup(database, library, downloads, tmp_path), row, report)

    assert [r["to"] for r in report.replaced] == ["mp3 320 kbps"], report.failed
    files = sorted(p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file())
    assert files == ["Band/Record/01 Song.lrc", relative]  # replaced in place: no "(2)", no temporary file
    assert inspect_audio(old).bitrate_kbps == 320 and not download.exists()
    tags = read_tags(old)
    assert (tags.title, tags.artist, tags.album, tags.isrc, tags.genres) == \
        ("Song", "Band", "Record", "USTEST0000001", ["Kept"])
    assert existing_cover_bytes(old) == cover
    with database.connect(read_only=True) as conn:
        assert conn.execute("SELECT path, bitrate FROM library_tracks").fetchall() == [(relative, 320)]
        assert conn.execute("SELECT state, new_path, remove_path FROM library_upgrades").fetchall() == \
            [("replaced", relative, None)]
        [(details,)] = conn.execute("SELECT details FROM activity_events WHERE type = 'track_upgraded'").fetchall()
    assert json.loads(details)["path"] == relative


def test_a_replaced_file_left_behind_is_removed_once_and_never_one_the_library_uses(world):
    database, library, downloads, tmp_path = world
    new = _mp3(library / "Band/Record/01 Song.flac.mp3", 0.0)
    stale = shutil.copy(new, library / "Band/Record/01 Song.mp3")
    _library_track(database, "Band/Record/01 Song.flac.mp3", inspect_audio(new))
    now = storage.utcnow()
    with database.connect() as conn:  # as a run killed between the commit and the unlink leaves it
        conn.execute("INSERT INTO library_upgrades (wanted_key, state, old_path, new_path, remove_path, attempts, "
                     "updated_at, next_check_at) VALUES (?, 'replaced', 'Band/Record/01 Song.mp3', "
                     "'Band/Record/01 Song.flac.mp3', 'Band/Record/01 Song.mp3', 1, ?, ?)",
                     [KEY, now, now + timedelta(days=7)])
    setup = _setup(database, library, downloads, tmp_path)
    from harmony_pipeline.library.upgrades import settle_upgrades
    report = UpgradeReport()
    settle_upgrades(setup, report)
    assert report.removed == ["Band/Record/01 Song.mp3"] and not Path(stale).exists() and new.is_file()
    with database.connect(read_only=True) as conn:
        assert conn.execute("SELECT remove_path FROM library_upgrades").fetchall() == [(None,)]

    # A path the library points to again (here: the track's own file) is never removed.
    with database.connect() as conn:
        [row] = load_upgrades(conn, "u.wanted_key = ?", [KEY])
    row["remove_path"] = "Band/Record/01 Song.flac.mp3"
    row["new_path"] = "elsewhere.mp3"
    report = UpgradeReport()
    remove_old_file(setup, row, report)
    assert new.is_file() and report.removed == []


def test_a_download_whose_track_the_users_library_already_has_is_not_imported_twice(world):
    database, library, downloads, tmp_path = world
    own = _mp3(library / "My Music" / "band - song.mp3", 0.5)
    write_tags(own, TrackTags(title="Song", artist="Band", isrc="USTEST0000001"))
    own_bytes = own.read_bytes()
    download = _mp3(downloads / "peer" / "Song.mp3", 0.0)
    now = storage.utcnow()
    with database.connect() as conn:  # the transfer was in flight when the scan adopted the user's file
        conn.execute("INSERT INTO downloads (wanted_key, state, attempts, username, filename, local_path, history, "
                     "updated_at) VALUES (?, 'succeeded', 1, 'peer', '@@x\\Song.mp3', ?, '[]', ?)",
                     [KEY, str(download), now])
    scan_library(database, [library])
    setup = ImportSetup(database=database, library_root=library, path_template="{albumartist}/{album}/{title}",
                        quarantine_dir=tmp_path / "quarantine", rules=RetryRules(3, 60, 0.2), downloads_dir=downloads)
    report = import_downloads(setup, imports_to_do(database), {})

    assert report.imported == [] and [s["library_file"] for s in report.superseded] == [str(own)]
    assert not download.exists() and own.read_bytes() == own_bytes
    assert [p for p in library.rglob("*") if p.is_file()] == [own]
    with database.connect(read_only=True) as conn:
        assert conn.execute("SELECT state FROM downloads").fetchall() == [("superseded",)]
        assert conn.execute("SELECT state FROM wanted_tracks").fetchall() == [("in_library",)]
        assert conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0] == 0
        [(details,)] = conn.execute("SELECT details FROM activity_events WHERE type = 'download_superseded'"
                                    ).fetchall()
    assert json.loads(details)["library_file"] == str(own)


@pytest.mark.parametrize("download_left", [True, False])
def test_an_in_place_replacement_a_crash_interrupted_is_finished_without_a_second_copy(world, download_left):
    """Killed after the rename over the old file: the download is still there (not yet removed) or gone;
    the next run records the replacement once, from what the claim recorded."""
    database, library, downloads, tmp_path = world
    relative = "Band/Record/01 Song.mp3"
    old = _mp3(library / relative, 0.8)
    write_tags(old, TrackTags(title="Song", artist="Band", album="Record"))
    _library_track(database, relative, inspect_audio(old))
    download = _mp3(downloads / "peer" / "Song.mp3", 0.0)
    shutil.copy(download, old)  # the swap happened
    if not download_left:
        download.unlink()
    now = storage.utcnow()
    with database.connect() as conn:
        conn.execute("INSERT INTO library_upgrades (wanted_key, state, old_path, new_path, username, filename, "
                     "local_path, from_quality, to_quality, attempts, updated_at, claimed_by) VALUES (?, 'replacing', "
                     "?, ?, 'peer', 'Song.mp3', ?, 'mp3 96 kbps', 'mp3 320 kbps', 1, ?, ?)",
                     [KEY, relative, relative, str(download), now, f"{socket.gethostname()}:4194304:1"])  # dead
    from harmony_pipeline.library.upgrades import settle_upgrades
    report = UpgradeReport()
    settle_upgrades(_setup(database, library, downloads, tmp_path), report)
    assert len(report.replaced) == 1 and report.failed == [] and report.removed == []
    assert sorted(p.name for p in library.rglob("*") if p.is_file()) == ["01 Song.mp3"]
    assert inspect_audio(old).bitrate_kbps == 320 and not download.exists()
    with database.connect(read_only=True) as conn:
        assert conn.execute("SELECT state, claimed_by FROM library_upgrades").fetchall() == [("replaced", None)]
        assert conn.execute("SELECT path, bitrate FROM library_tracks").fetchall() == [(relative, 320)]
