"""library_scan: the user's own files found, identified, recorded incrementally and never touched; wanted
tracks they satisfy are `in_library` and never searched on Soulseek."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from audio_fixtures import write_audio
from conftest import materialize_assets, pipeline_environment, settle_acquisition

from harmony_pipeline import storage
from harmony_pipeline.library import scan as library_scan
from harmony_pipeline.library.scan import LibraryIndex, names_from_path, scan_library
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import load_settings
from harmony_pipeline.enrichment.tagging import TrackTags, write_tags


class Database:
    def __init__(self, path: Path):
        self.path = path

    def connect(self, *, read_only: bool = False):
        return storage.connect(self.path, read_only=read_only)


def _audio(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_audio(path, seconds)


def _tagged(path: Path, seconds: float = 1.0, **tags) -> Path:
    _audio(path, seconds)
    write_tags(path, TrackTags(**tags))
    return path


def _fingerprints(root: Path) -> dict[str, tuple[str, int]]:
    """Every file's bytes and mtime: what "never touched" means."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def _rows(db: Database) -> dict[str, dict]:
    with db.connect(read_only=True) as conn:
        return {r["path"]: r for r in storage.fetch_dicts(conn, "SELECT * FROM library_files")}


@pytest.fixture
def library(tmp_path) -> Path:
    root = tmp_path / "library"
    _tagged(root / "Ana" / "Días" / "03 - Señorita.mp3", title="Señorita", artist="Ana feat. Bo", album="Días",
            isrc="usab11900001")
    _audio(root / "Cleo" / "Misc" / "Cleo - Night Drive.flac")  # untagged, named
    _audio(root / "Dan" / "First" / "02 - Morning.m4a")  # untagged, artist from the folders
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (root / "Dan" / ".hidden.mp3").write_bytes(b"junk")
    (root / "Broken.mp3").write_bytes(b"not an mp3 at all" * 50)
    return root


def test_scan_identifies_tagged_named_and_foldered_files_without_touching_them(tmp_path, library):
    db = Database(tmp_path / "h.duckdb")
    before = _fingerprints(library)
    report = scan_library(db, [library])
    assert (report.files, report.read, report.unreadable) == (4, 4, 1)
    rows = _rows(db)
    assert set(rows) == {"Ana/Días/03 - Señorita.mp3", "Cleo/Misc/Cleo - Night Drive.flac",
                         "Dan/First/02 - Morning.m4a", "Broken.mp3"}
    tagged = rows["Ana/Días/03 - Señorita.mp3"]
    assert (tagged["identified_by"], tagged["isrc"], tagged["artist"], tagged["format"]) == \
        ("tags", "USAB11900001", "Ana feat. Bo", "mp3")
    assert tagged["duration_s"] == pytest.approx(1.0, abs=0.1)
    named = rows["Cleo/Misc/Cleo - Night Drive.flac"]
    assert (named["identified_by"], named["artist"], named["title"]) == ("filename", "Cleo", "Night Drive")
    foldered = rows["Dan/First/02 - Morning.m4a"]
    assert (foldered["identified_by"], foldered["artist"], foldered["title"]) == ("filename", "Dan", "Morning")
    assert rows["Broken.mp3"]["identified_by"] == "none" and rows["Broken.mp3"]["error"]
    assert _fingerprints(library) == before, "the scan changed a file"


def test_rescan_reopens_only_new_and_changed_files_and_forgets_removed_ones(tmp_path, library, monkeypatch):
    db = Database(tmp_path / "h.duckdb")
    scan_library(db, [library])
    opened = []
    real_open = library_scan.mutagen.File
    monkeypatch.setattr(library_scan.mutagen, "File", lambda path, *a, **k: opened.append(Path(path).name)
                        or real_open(path, *a, **k))
    unchanged = scan_library(db, [library])
    assert (unchanged.read, unchanged.unchanged, unchanged.removed, opened) == (0, 4, 0, [])
    assert not unchanged.changed

    _tagged(library / "Cleo" / "Misc" / "Cleo - Night Drive.flac", title="Night Drive", artist="Cleo",
            isrc="GBXX10000001")
    (library / "Dan" / "First" / "02 - Morning.m4a").unlink()
    _audio(library / "New" / "Eve - Dawn.ogg")
    opened.clear()  # writing the tags above opened the file too
    changed = scan_library(db, [library])
    assert (changed.read, changed.removed, sorted(opened)) == (2, 1, ["Cleo - Night Drive.flac", "Eve - Dawn.ogg"])
    rows = _rows(db)
    assert rows["Cleo/Misc/Cleo - Night Drive.flac"]["isrc"] == "GBXX10000001"
    assert "Dan/First/02 - Morning.m4a" not in rows and "New/Eve - Dawn.ogg" in rows


def test_a_missing_extra_folder_keeps_what_was_found_in_it(tmp_path, library):
    db = Database(tmp_path / "h.duckdb")
    extra = tmp_path / "nas"
    _audio(extra / "Fay - Rain.mp3")
    assert scan_library(db, [library, extra]).files == 5
    extra.rename(tmp_path / "unmounted")
    report = scan_library(db, [library, extra])
    assert report.missing_roots == [str(extra)] and report.removed == 0
    assert "Fay - Rain.mp3" in _rows(db)
    scan_library(db, [library])  # taken out of the configuration: forgotten
    assert "Fay - Rain.mp3" not in _rows(db)


def test_a_symlink_loop_is_walked_once(tmp_path, library):
    (library / "Ana" / "loop").symlink_to(library, target_is_directory=True)
    report = scan_library(Database(tmp_path / "h.duckdb"), [library])
    assert report.files == 4


@pytest.mark.parametrize(("relative", "expected"), [
    ("A/B/01 - Artist - Title.mp3", ("Artist", "Title")),
    ("Artist/Album/1-05 Title.flac", ("Artist", "Title")),
    ("Artist/Title.mp3", ("Artist", "Title")),
    ("Title.mp3", ("", "Title")),
])
def test_names_from_path(relative, expected):
    from pathlib import PurePosixPath

    assert names_from_path(PurePosixPath(relative)) == expected


def test_index_finds_by_isrc_or_artist_title_and_length():
    index = LibraryIndex([
        {"root": "/l", "path": "a.mp3", "isrc": "USAB11900001", "artist": "Ana feat. Bo", "title": "Señorita",
         "duration_s": 200.0},
        {"root": "/l", "path": "b.flac", "isrc": None, "artist": "Cleo", "title": "Night Drive (feat. Dan)",
         "duration_s": 180.0},
    ])
    assert index.find({"isrc": "usab11900001", "artist": "X", "title": "Y"})["path"] == "a.mp3"
    # No ISRC on file: artist + title (accents, case, featuring) and a length within 10 s.
    assert index.find({"isrc": "GB0000000009", "artist": "cleo", "artists": ["cleo", "Dan"],
                       "title": "Night drive", "duration_ms": 185_000})["path"] == "b.flac"
    assert index.find({"isrc": None, "artist": "Ana", "title": "Senorita", "duration_ms": 201_000})["path"] == "a.mp3"
    assert index.find({"isrc": None, "artist": "Cleo", "title": "Night Drive", "duration_ms": 240_000}) is None
    assert index.find({"isrc": None, "artist": "Someone Else", "title": "Night Drive"}) is None


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
        yield sandbox, env, Path(env["HARMONY_LIBRARY_DIR"]), extra


def _search_texts(sandbox) -> list[str]:
    return [json.loads(r.body)["searchText"] for r in sandbox.emulator("slskd").requests()
            if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]


def test_tracks_already_in_the_library_are_adopted_and_never_searched(pipeline, instance):
    sandbox, env, library, extra = pipeline
    catalog = sandbox.catalog
    tracks = catalog.playlist_tracks(catalog.playlists[catalog.small_playlist_id])
    seconds = [t.duration_ms / 1000 for t in tracks]
    artists = [catalog.artists[t.artist_ids[0]].name for t in tracks]
    # 1: tagged with its ISRC, another format; 2: untagged but named "Artist - Title"; 3: in the read-only
    # extra folder, tagged without ISRC.
    _tagged(library / "Mine" / f"{artists[0]} - whatever.flac", seconds[0], title="x", artist="y",
            isrc=tracks[0].isrc)
    _audio(library / "Unsorted" / f"{artists[1]} - {tracks[1].name}.mp3", seconds[1])
    _tagged(extra / "Shared" / "track.m4a", seconds[2], title=tracks[2].name, artist=artists[2])
    before = {**_fingerprints(library), **{f"nas/{k}": v for k, v in _fingerprints(extra).items()}}
    adopted = {tracks[0].name, tracks[1].name, tracks[2].name}

    assert materialize_assets(["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks"],
                              instance).success
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        states = dict(conn.execute("SELECT title, state FROM wanted_tracks").fetchall())
    assert {t for t, s in states.items() if s == "in_library"} == adopted
    assert len([s for s in states.values() if s == "wanted"]) == len(tracks) - 3

    settle_acquisition(instance)
    searched = " ".join(_search_texts(sandbox)).casefold()
    assert searched, "the other tracks were searched"
    for title in adopted:
        assert title.casefold() not in searched, f"{title} was searched although it is in the library"
    after = {**_fingerprints(library), **{f"nas/{k}": v for k, v in _fingerprints(extra).items()}}
    assert {k: v for k, v in after.items() if k in before} == before, "a user's file was moved or rewritten"
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        imported = {r[0] for r in conn.execute("SELECT title FROM library_tracks").fetchall()}
    assert not imported & adopted and imported


def test_cli_library_scan_reports_and_is_incremental(pipeline):
    _, env, library, _ = pipeline
    _audio(library / "Gus - Song.mp3")
    command = [str(Path(sys.executable).parent / "harmony"), "library", "scan", "--json"]
    first = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["read"] == 1
    second = json.loads(subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                                       timeout=60).stdout)
    assert (second["files"], second["read"], second["unchanged"]) == (1, 0, 1)
    bad = subprocess.run(command, env={**os.environ, **env, "HARMONY_EXTRA_LIBRARY_DIRS": "/no/such/folder"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "HARMONY_EXTRA_LIBRARY_DIRS" in bad.stderr and "Traceback" not in bad.stderr


def test_extra_folders_must_exist_and_lie_outside_the_library(tmp_path):
    nas, library = tmp_path / "nas", tmp_path / "music"
    (library / "sub").mkdir(parents=True)
    nas.mkdir()
    base = {"HARMONY_DATA_DIR": str(tmp_path / "d"), "HARMONY_LIBRARY_DIR": str(library)}
    settings = load_settings({**base, "HARMONY_EXTRA_LIBRARY_DIRS": f"{nas}:{nas}:"})
    assert settings.extra_library_dirs == (nas,)
    assert settings.playlist_files_dir == library / "Playlists"
    from harmony_pipeline.settings import SettingsError

    for bad in (str(tmp_path / "missing"), str(library / "sub"), str(tmp_path)):
        with pytest.raises(SettingsError, match="HARMONY_EXTRA_LIBRARY_DIRS"):
            load_settings({**base, "HARMONY_EXTRA_LIBRARY_DIRS": bad})
