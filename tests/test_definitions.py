"""The code location as a whole: flags, worker states, the wiring summary."""

from __future__ import annotations

import logging

import pytest
from dagster import DefaultScheduleStatus, DefaultSensorStatus

from harmony_pipeline.definitions import build_definitions
from harmony_pipeline.settings import load_settings


def _asset_names(defs) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()
            if defs.resolve_asset_graph().has(key) and defs.resolve_asset_graph().get(key).is_materializable}


def test_core_assets_groups_and_executor(tmp_path):
    defs = build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.materializable_asset_keys}
    assert groups["spotify_playlists"] == "sources"
    assert groups["playlist_tracks"] == "sources"
    assert groups["wanted_tracks"] == "catalog"
    for name in ("soulseek_matches", "downloads", "library_tracks"):
        assert groups[name] == "acquisition"
    job = defs.resolve_job_def("playlist_sync_job")
    assert job.executor_def.name == "in_process"


@pytest.mark.parametrize("flag_value", ["", "1"])
def test_flags_decide_artwork_and_lyrics_assets(tmp_path, flag_value):
    env = {"HARMONY_DATA_DIR": str(tmp_path), "ENABLE_ARTWORK": flag_value, "ENABLE_LYRICS": flag_value}
    defs = build_definitions(load_settings(env))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    enrichment = {"track_artwork", "track_lyrics"}
    if flag_value:
        assert enrichment <= keys or "track_metadata" not in keys  # enrichment not wired yet
    else:
        assert not enrichment & keys


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
