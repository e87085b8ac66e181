from __future__ import annotations

import pytest

from harmony_pipeline.settings import SettingsError, load_settings

PLAYLIST = "3cEYpjA9oz9GiPac4AsH4n"


def test_defaults(tmp_path):
    settings = load_settings({"HARMONY_DATA_DIR": str(tmp_path)})
    assert settings.duckdb_path == tmp_path / "harmony.duckdb"
    assert settings.inbox_dir == tmp_path / "inbox"
    assert settings.retry_max_attempts == 10 and settings.retry_base_seconds == 60
    assert str(settings.slskd_search_limit) == "34/220"
    assert settings.spotify_redirect_uri == "http://127.0.0.1:8888/callback"
    assert not settings.enable_artwork and not settings.disable_workers


def test_playlists_accept_ids_uris_and_urls_and_deduplicate():
    env = {"HARMONY_PLAYLISTS": f"{PLAYLIST}, spotify:playlist:{PLAYLIST},"
                                f"https://open.spotify.com/intl-de/playlist/{PLAYLIST}?si=abc"}
    assert load_settings(env).playlists == (PLAYLIST,)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RETRY_MAX_ATTEMPTS", "ten", "RETRY_MAX_ATTEMPTS"),
        ("RETRY_MAX_ATTEMPTS", "0", ">= 1"),
        ("ENABLE_ARTWORK", "maybe", "ENABLE_ARTWORK"),
        ("SLSKD_SEARCH_LIMIT", "34 per 220", "SEARCHES/SECONDS"),
        ("SLSKD_URL", "localhost:5030", "http"),
        ("HARMONY_PATH_TEMPLATE", "{artist}/{nope}", "HARMONY_PATH_TEMPLATE"),
        ("HARMONY_PLAYLISTS", "not a playlist", "HARMONY_PLAYLISTS"),
        ("RETRY_JITTER_PCT", "250", "RETRY_JITTER_PCT"),
    ],
)
def test_invalid_values_name_the_variable(name, value, expected):
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    assert name in str(raised.value)
    assert expected in str(raised.value)


def test_jitter_as_percentage():
    assert load_settings({"RETRY_JITTER_PCT": "20"}).retry_jitter_pct == pytest.approx(0.2)


def test_secrets_stay_out_of_descriptions():
    secret = "super-secret-value-123"
    settings = load_settings({"SPOTIFY_CLIENT_SECRET": secret, "SLSKD_API_KEY": secret,
                              "SPOTIFY_REFRESH_TOKEN": secret})
    assert settings.slskd_api_key == secret
    assert secret not in repr(settings)
    assert secret not in str(settings.describe())
