"""The Cover Art Archive as a Dagster resource (COVERART_URL); the client is harmony_pipeline.enrichment.coverart."""

from __future__ import annotations

from dagster import ConfigurableResource

from harmony_pipeline.enrichment.coverart import CoverArtClient, ImageTooLarge
from harmony_pipeline.http_cache import USER_AGENT, HttpCache

__all__ = ["CoverArtClient", "CoverArtResource", "ImageTooLarge"]


class CoverArtResource(ConfigurableResource):
    """The Cover Art Archive at COVERART_URL."""

    url: str = "https://coverartarchive.org"
    user_agent: str = USER_AGENT
    timeout_seconds: float = 60.0  # the archive hop can be slow

    def get_client(self, cache: HttpCache | None = None) -> CoverArtClient:
        return CoverArtClient(self.url, cache=cache, user_agent=self.user_agent, timeout=self.timeout_seconds)
