"""The Spotify resource against the sandbox: PKCE login, token cache mode, 429 handling, 403 mapping."""

from __future__ import annotations

import os
import socket
import stat

import pytest
import requests

from harmony_pipeline.sandbox import Fault
from harmony_pipeline.settings import load_settings
from harmony_pipeline.spotify.login import login
from resources.spotify import SpotifyResource
from harmony_pipeline.spotify.client import SpotifyForbidden, SpotifyRateLimited


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _resource(env: dict, **extra) -> SpotifyResource:
    return SpotifyResource(
        client_id=env["SPOTIFY_CLIENT_ID"], client_secret=env["SPOTIFY_CLIENT_SECRET"],
        refresh_token=env.get("SPOTIFY_REFRESH_TOKEN"), api_url=env["SPOTIFY_API_URL"],
        token_url=env["SPOTIFY_TOKEN_URL"], auth_url=env["SPOTIFY_AUTH_URL"], **extra)


def test_login_with_pkce_caches_refresh_token_privately(sandbox, harmony_env, monkeypatch, tmp_path):
    monkeypatch.delenv("SPOTIFY_REFRESH_TOKEN")
    monkeypatch.setenv("SPOTIFY_REDIRECT_URI", f"http://127.0.0.1:{_free_port()}/callback")
    settings = load_settings()
    printed: list[str] = []

    login(settings, echo=printed.append, approve=lambda url: requests.get(url, timeout=10))

    cache = settings.token_cache_path
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert "refresh_token" in cache.read_text()
    assert not any("refresh_token" in line or settings.spotify_client_secret in line for line in printed)
    token_posts = [r for r in sandbox.emulator("spotify").requests() if r.path == "/api/token"]
    assert "code_verifier=" in token_posts[-1].body.decode()  # PKCE, not a plain code exchange

    # The pipeline now reads playlists as that user, from the cache alone.
    env = {**harmony_env}
    env.pop("SPOTIFY_REFRESH_TOKEN")
    api = _resource(env, token_cache_path=str(cache)).get_api()
    assert api.user_authorised
    assert api.me()["id"] == sandbox.catalog.me


def test_429_waits_for_retry_after_then_succeeds(sandbox, harmony_env):
    slept: list[float] = []
    api = _resource(harmony_env).get_api()
    api.sleep = slept.append
    sandbox.emulator("spotify").add_fault(Fault(r"/v1/playlists/", status=429, retry_after=2, times=1))
    playlist = api.playlist(sandbox.catalog.small_playlist_id)
    assert playlist["id"] == sandbox.catalog.small_playlist_id
    assert slept == [2.0]


def test_long_retry_after_is_reported_as_rate_limited(sandbox, harmony_env):
    api = _resource(harmony_env).get_api()
    api.sleep = lambda seconds: pytest.fail("must not block for a long Retry-After")
    sandbox.emulator("spotify").add_fault(Fault(r"/v1/playlists/", status=429, retry_after=7200))
    with pytest.raises(SpotifyRateLimited) as raised:
        api.playlist(sandbox.catalog.small_playlist_id)
    assert "rate-limited until" in str(raised.value)


def test_forbidden_playlist_items(sandbox, harmony_env):
    api = _resource(harmony_env).get_api()
    with pytest.raises(SpotifyForbidden):
        list(api.playlist_items(sandbox.catalog.foreign_playlist_id))
