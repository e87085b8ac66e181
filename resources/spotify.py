"""Spotify as a Dagster resource: its fields come from the environment (SPOTIFY_*, secrets through EnvVar);
the client itself is harmony_pipeline.spotify.client."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.spotify.client import SpotifyApi, SpotifyConnection


class SpotifyResource(ConfigurableResource):
    """Spotify Web API client configured from the environment (SPOTIFY_*)."""

    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    api_url: str = "https://api.spotify.com/v1/"
    token_url: str = "https://accounts.spotify.com/api/token"
    auth_url: str = "https://accounts.spotify.com/authorize"
    redirect_uri: str = "http://127.0.0.1:8888/callback"
    token_cache_path: str = ".harmony/spotify_token.json"
    max_wait_seconds: float = 30.0
    request_timeout: float = 15.0

    _api: SpotifyApi | None = PrivateAttr(default=None)

    def connection(self) -> SpotifyConnection:
        return SpotifyConnection(**self.model_dump())

    def user_auth_manager(self, cache_handler=None):
        return self.connection().user_auth_manager(cache_handler)

    def pkce_login_manager(self):
        return self.connection().pkce_login_manager()

    def get_api(self, cache: HttpCache | None = None) -> SpotifyApi:
        """The resource's uncached client (one per resource), or a new one through `cache`."""
        if cache is not None:
            return self.connection().get_api(cache)
        if self._api is None:
            self._api = self.connection().get_api()
        return self._api
