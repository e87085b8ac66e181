"""LRCLIB as a Dagster resource (LRCLIB_URL); the client is harmony_pipeline.enrichment.lrclib."""

from __future__ import annotations

from dagster import ConfigurableResource

from harmony_pipeline.enrichment.lrclib import ANSWER_TTL, LrclibClient
from harmony_pipeline.http_cache import USER_AGENT, HttpCache

__all__ = ["LrclibClient", "LrclibResource"]


class LrclibResource(ConfigurableResource):
    """LRCLIB at LRCLIB_URL (the base without `/api`)."""

    url: str = "https://lrclib.net"
    user_agent: str = USER_AGENT
    timeout_seconds: float = 30.0

    def get_client(self, cache: HttpCache | None = None) -> LrclibClient:
        return LrclibClient(self.url, cache=cache, user_agent=self.user_agent, timeout=self.timeout_seconds,
                            hit_ttl=ANSWER_TTL, miss_ttl=ANSWER_TTL)
