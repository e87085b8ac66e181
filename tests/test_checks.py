"""Asset checks on real DuckDB rows and real files: each passes and fails for the right reason, and runs
in the same run as its asset."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from audio_fixtures import write_audio
from dagster import AssetCheckSeverity, materialize

from assets.checks import (
    build_enrichment_coverage_check,
    library_integrity,
    no_dead_letters,
    playlists_fresh,
)
from harmony_pipeline import storage
from harmony_pipeline.definitions import collect_wiring
from harmony_pipeline.settings import load_settings
from resources.database import HarmonyDatabase, LibraryFolders


@pytest.fixture
def database(tmp_path: Path) -> HarmonyDatabase:
    return HarmonyDatabase(path=str(tmp_path / "harmony.duckdb"))


def _playlist(playlist_id: str, status: str, synced_ago: timedelta | None) -> dict:
    now = storage.utcnow()
    return {"playlist_id": playlist_id, "name": f"List {playlist_id}", "sync_status": status,
            "sync_status_reason": None, "checked_at": now,
            "synced_at": None if synced_ago is None else now - synced_ago}


def _put(database: HarmonyDatabase, table: str, rows: list[dict], key: list[str]) -> None:
    with database.connect() as conn:
        storage.upsert(conn, table, rows, key=key)


def test_playlists_fresh_passes_warns_and_fails(database):
    _put(database, "spotify_playlists", [_playlist("p1", "fresh", timedelta(minutes=10))], ["playlist_id"])
    assert playlists_fresh(database=database).passed

    _put(database, "spotify_playlists", [_playlist("p2", "forbidden", None)], ["playlist_id"])
    warned = playlists_fresh(database=database)
    assert (warned.passed, warned.severity) == (False, AssetCheckSeverity.WARN)
    assert warned.metadata["forbidden"].value == 1

    _put(database, "spotify_playlists", [_playlist("p3", "fresh", timedelta(hours=5))], ["playlist_id"])
    failed = playlists_fresh(database=database)
    assert (failed.passed, failed.severity) == (False, AssetCheckSeverity.ERROR)
    assert failed.metadata["stale_or_error"].value == 1
    assert "List p3" in [r.data["playlist"] for r in failed.metadata["problems"].value.records]


def test_playlists_fresh_fails_on_error_status(database):
    _put(database, "spotify_playlists", [_playlist("p1", "error", timedelta(minutes=1))], ["playlist_id"])
    assert not playlists_fresh(database=database).passed


def _download(key: str, state: str, error: str | None = None) -> dict:
    return {"wanted_key": key, "state": state, "attempts": 10 if state == "dead_letter" else 1,
            "history": "[]", "last_error": error, "updated_at": storage.utcnow()}


def test_no_dead_letters(database):
    now = storage.utcnow()
    _put(database, "wanted_tracks", [{"wanted_key": "k1", "title": "Hoppípolla", "artist": "Sigur Rós",
                                      "sources": ["free_ingest"], "state": "wanted", "first_wanted_at": now,
                                      "updated_at": now}], ["wanted_key"])
    _put(database, "downloads", [_download("k1", "imported")], ["wanted_key"])
    assert no_dead_letters(database=database).passed

    _put(database, "downloads", [_download("k1", "dead_letter", "Rejected: Too many files")], ["wanted_key"])
    result = no_dead_letters(database=database)
    assert not result.passed and result.metadata["dead_letter"].value == 1
    [row] = [r.data for r in result.metadata["dead_letters"].value.records]
    assert (row["track"], row["last_error"]) == ("Sigur Rós – Hoppípolla", "Rejected: Too many files")


def _library_row(key: str, path: str, imported_ago: timedelta = timedelta(days=1)) -> dict:
    return {"wanted_key": key, "path": path, "title": key, "artist": "A",
            "imported_at": storage.utcnow() - imported_ago}


def test_library_integrity_missing_corrupt_and_escaping_files(database, tmp_path):
    library = tmp_path / "library"
    folders = LibraryFolders(library_dir=str(library), data_dir=str(tmp_path / "data"), path_template="{title}")
    (library / "Artist").mkdir(parents=True)
    for name in ("a.mp3", "b.flac", "c.mp3", "d.ogg"):
        write_audio(library / "Artist" / name)
    _put(database, "library_tracks", [_library_row(n, f"Artist/{n}") for n in ("a.mp3", "b.flac", "c.mp3", "d.ogg")],
         ["wanted_key"])
    passed = library_integrity(database=database, folders=folders)
    assert passed.passed and passed.metadata["files"].value == 4

    (library / "Artist" / "c.mp3").unlink()  # deleted behind the pipeline's back
    (library / "Artist" / "d.ogg").write_bytes(b"OggS" + b"\x00" * 200)  # truncated / corrupt
    outside = tmp_path / "elsewhere.mp3"
    write_audio(outside)
    _put(database, "library_tracks", [_library_row("x", "../elsewhere.mp3")], ["wanted_key"])
    failed = library_integrity(database=database, folders=folders)
    assert not failed.passed and failed.metadata["problems"].value == 3
    problems = {r.data["path"]: r.data["problem"] for r in failed.metadata["problem_files"].value.records}
    assert problems["Artist/c.mp3"] == "missing"
    assert problems["Artist/d.ogg"].startswith(("unreadable", "not a recognised"))
    assert problems["../elsewhere.mp3"] == "outside the library folder"
    assert "a.mp3" not in problems


def test_enrichment_coverage_counts_each_enabled_part(database):
    keys = [f"k{n}" for n in range(10)]
    _put(database, "library_tracks", [_library_row(k, f"{k}.mp3") for k in keys]
         + [_library_row("fresh", "fresh.mp3", imported_ago=timedelta(minutes=1))], ["wanted_key"])
    now = storage.utcnow()
    _put(database, "track_metadata", [{"wanted_key": k, "path": f"{k}.mp3", "status": "tagged", "updated_at": now}
                                      for k in keys], ["wanted_key"])
    _put(database, "track_lyrics", [{"wanted_key": k, "path": f"{k}.mp3",
                                     "status": "instrumental" if k == "k0" else "synced", "updated_at": now}
                                    for k in keys], ["wanted_key"])
    _put(database, "track_artwork", [{"wanted_key": k, "path": f"{k}.mp3", "album_key": "al",
                                      "status": "embedded" if k < "k8" else "missing", "updated_at": now}
                                     for k in keys], ["wanted_key"])

    tags_and_lyrics = build_enrichment_coverage_check(["tags", "lyrics"])(database=database)
    assert tags_and_lyrics.passed  # the track imported a minute ago is not counted yet
    assert tags_and_lyrics.metadata["tags_share"].value == 1.0
    assert "cover_share" not in tags_and_lyrics.metadata

    with_cover = build_enrichment_coverage_check(["tags", "cover", "lyrics"])(database=database)
    assert (with_cover.passed, with_cover.severity) == (False, AssetCheckSeverity.WARN)
    assert with_cover.metadata["cover_share"].value == 0.8
    assert "cover" in with_cover.description


def test_enrichment_coverage_skips_missing_tables(database):
    _put(database, "library_tracks", [_library_row("k1", "k1.mp3")], ["wanted_key"])
    with database.connect() as conn:
        conn.execute("DROP TABLE track_lyrics")
    result = build_enrichment_coverage_check(["tags", "lyrics"])(database=database)
    assert "lyrics_share" not in result.metadata and result.metadata["tags_share"].value == 0.0
    assert not result.passed


def test_checks_run_in_the_same_run_as_their_asset(sandbox, harmony_env, instance):
    wiring = collect_wiring(load_settings())  # as the code location loads them: assets and checks together
    result = materialize([*wiring.assets, *wiring.asset_checks], resources=wiring.resources, instance=instance,
                         selection=["spotify_playlists", "playlist_tracks"])
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    fresh = evaluations["playlists_fresh"]
    # The sandbox lists one playlist owned by someone else: reported, only a warning.
    assert (fresh.passed, fresh.severity) == (False, AssetCheckSeverity.WARN)
    assert fresh.metadata["forbidden"].value == 1 and fresh.metadata["stale_or_error"].value == 0
    assert "no_dead_letters" not in evaluations  # downloads was not selected

    # The same run's materializations carry the activity events their step recorded.
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}
    assert metadata["spotify_playlists"]["activity_events"].value == 1
    def types(asset: str) -> list[str]:
        return [record.data["type"] for record in metadata[asset]["activity"].value.records]

    assert types("spotify_playlists") == ["playlists_checked"]
    assert "sync_completed" in types("playlist_tracks") and "playlists_checked" not in types("playlist_tracks")
