"""The code location as a whole: flags, worker states, the wiring summary."""

from __future__ import annotations

import logging

import pytest
from dagster import DefaultScheduleStatus, DefaultSensorStatus

from harmony_pipeline.definitions import build_definitions
from harmony_pipeline.settings import load_settings


# design.md §3: the asset keys, their groups and their dependencies (a contract: users navigate by them).
DESIGN_GROUPS = {
    "spotify_playlists": "sources", "playlist_tracks": "sources", "free_ingest_items": "sources",
    "watchlist_artists": "sources", "artist_releases": "sources",
    "backfilled_tracks": "catalog", "wanted_tracks": "catalog",
    "soulseek_matches": "acquisition", "downloads": "acquisition", "library_tracks": "acquisition",
    "track_metadata": "enrichment", "track_artwork": "enrichment", "track_lyrics": "enrichment",
    "library_scan": "catalog", "playlist_files": "enrichment",
}
DESIGN_DEPENDENCIES = {
    "spotify_playlists": set(), "free_ingest_items": set(), "watchlist_artists": set(),
    "playlist_tracks": {"spotify_playlists"}, "backfilled_tracks": {"free_ingest_items"},
    "artist_releases": {"watchlist_artists"},
    "library_scan": set(),
    "wanted_tracks": {"playlist_tracks", "backfilled_tracks", "artist_releases", "library_scan"},
    "playlist_files": {"playlist_tracks", "library_tracks", "library_scan"},
    "soulseek_matches": {"wanted_tracks"}, "downloads": {"soulseek_matches"}, "library_tracks": {"downloads"},
    "track_metadata": {"library_tracks"}, "track_artwork": {"library_tracks"}, "track_lyrics": {"library_tracks"},
}

# What each step talks to, shown in the lineage as asset kinds (issue 14).
DESIGN_KINDS = {
    "spotify_playlists": {"spotify", "duckdb"}, "playlist_tracks": {"spotify", "duckdb"},
    "free_ingest_items": {"python", "duckdb"}, "backfilled_tracks": {"spotify", "duckdb"},
    "watchlist_artists": {"spotify", "duckdb"}, "artist_releases": {"spotify", "duckdb"},
    "library_scan": {"python", "duckdb"}, "wanted_tracks": {"polars", "duckdb"},
    "soulseek_matches": {"soulseek", "duckdb"}, "downloads": {"soulseek", "acoustid", "duckdb"},
    "library_tracks": {"python", "spotify", "duckdb"}, "playlist_files": {"python", "duckdb"},
    "track_metadata": {"spotify", "musicbrainz", "duckdb"},
    "track_artwork": {"coverartarchive", "spotify", "musicbrainz", "duckdb"}, "track_lyrics": {"lrclib", "duckdb"},
}

def design_graph(*, artwork: bool, lyrics: bool) -> tuple[dict[str, str], dict[str, set[str]]]:
    """(asset → group, asset → upstream assets) of design.md §3 for the given flags."""
    left_out = {name for name, on in (("track_artwork", artwork), ("track_lyrics", lyrics)) if not on}
    return ({k: v for k, v in DESIGN_GROUPS.items() if k not in left_out},
            {k: v for k, v in DESIGN_DEPENDENCIES.items() if k not in left_out})


def graph_of(defs) -> tuple[dict[str, str], dict[str, set[str]]]:
    graph = defs.resolve_asset_graph()
    keys = graph.materializable_asset_keys
    return ({k.to_user_string(): graph.get(k).group_name for k in keys},
            {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in keys})


def test_assets_groups_dependencies_and_executor_follow_the_design(tmp_path):
    defs = build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path)}))
    assert graph_of(defs) == design_graph(artwork=False, lyrics=False)
    job = defs.resolve_job_def("playlist_sync_job")
    assert job.executor_def.name == "in_process"


@pytest.mark.parametrize(("artwork", "lyrics"), [("", ""), ("1", ""), ("", "1"), ("1", "1")])
def test_flags_decide_artwork_and_lyrics_assets(tmp_path, artwork, lyrics):
    env = {"HARMONY_DATA_DIR": str(tmp_path), "ENABLE_ARTWORK": artwork, "ENABLE_LYRICS": lyrics}
    defs = build_definitions(load_settings(env))
    enrichment = {k for k, group in graph_of(defs)[0].items() if group == "enrichment"}
    expected = {"track_metadata", "playlist_files"} | ({"track_artwork"} if artwork else set()) | ({"track_lyrics"} if lyrics else set())
    assert enrichment == expected
    assert graph_of(defs) == design_graph(artwork=bool(artwork), lyrics=bool(lyrics))


@pytest.mark.parametrize(("disabled", "sensor", "schedule"), [
    ("1", DefaultSensorStatus.STOPPED, DefaultScheduleStatus.STOPPED),
    ("", DefaultSensorStatus.RUNNING, DefaultScheduleStatus.RUNNING),
])
def test_disable_workers_loads_everything_stopped(tmp_path, disabled, sensor, schedule):
    defs = build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path),
                                            "HARMONY_DISABLE_WORKERS": disabled}))
    sensors = list(defs.sensors or [])
    schedules = list(defs.schedules or [])
    assert sensors and schedules
    assert {s.default_status for s in sensors} == {sensor}
    assert {s.default_status for s in schedules} == {schedule}


def test_wiring_summary_logged_once(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="harmony_pipeline"):
        build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path), "HARMONY_DISABLE_WORKERS": "1"}))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("wiring_summary")]
    assert len(lines) == 1
    assert "spotify_playlists" in lines[0] and "download_transfer_sensor" in lines[0]
    assert "playlist_sync_schedule" in lines[0] and "workers=stopped" in lines[0]
    assert "ENABLE_ARTWORK=False" in lines[0]


def test_a_concern_clashing_with_a_shared_resource_key_is_refused(tmp_path, monkeypatch):
    """Two different resources under one key stop the load (Definitions.merge), instead of one silently
    replacing the other."""
    import harmony_pipeline.definitions as definitions
    from dagster import Definitions, DagsterInvariantViolationError

    from resources.database import HarmonyDatabase

    def clashing(settings, workers):
        return Definitions(resources={"database": HarmonyDatabase(path=str(tmp_path / "other.duckdb"))})

    monkeypatch.setattr(definitions, "CONCERN_MODULES",
                        (*definitions.CONCERN_MODULES, type("clashing", (), {"wiring": staticmethod(clashing)})))
    with pytest.raises(DagsterInvariantViolationError, match="'database'"):
        build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path / "clash")}))


def test_every_asset_names_what_it_talks_to_its_owner_and_concern(tmp_path):
    env = {"HARMONY_DATA_DIR": str(tmp_path), "ENABLE_ARTWORK": "1", "ENABLE_LYRICS": "1"}
    graph = build_definitions(load_settings(env)).resolve_asset_graph()
    nodes = {key.to_user_string(): graph.get(key) for key in graph.materializable_asset_keys}
    assert {name: set(node.kinds) for name, node in nodes.items()} == DESIGN_KINDS
    for name, node in nodes.items():
        assert node.owners and all(owner.startswith("team:") for owner in node.owners), name
        assert node.tags.get("concern"), name
