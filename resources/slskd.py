"""slskd as a Dagster resource (SLSKD_URL, SLSKD_API_KEY); the client is harmony_pipeline.acquisition.slskd."""

from __future__ import annotations

from dagster import ConfigurableResource

from harmony_pipeline.acquisition.slskd import SlskdClient


class SlskdResource(ConfigurableResource):
    """slskd at SLSKD_URL with SLSKD_API_KEY."""

    url: str = "http://localhost:5030"
    api_key: str | None = None
    search_timeout_ms: int = 15000
    poll_seconds: float = 0.5

    def get_client(self) -> SlskdClient:
        return SlskdClient(self.url, self.api_key)
