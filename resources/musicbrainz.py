"""MusicBrainz as a Dagster resource (MUSICBRAINZ_URL); the client is harmony_pipeline.enrichment.musicbrainz."""

from __future__ import annotations

from dagster import ConfigurableResource

from harmony_pipeline.enrichment.musicbrainz import MIN_INTERVAL_SECONDS, MusicBrainzClient, shared_limiter
from harmony_pipeline.http_cache import USER_AGENT, HttpCache


class MusicBrainzResource(ConfigurableResource):
    """MusicBrainz at MUSICBRAINZ_URL (the base without `/ws/2`)."""

    url: str = "https://musicbrainz.org"
    user_agent: str = USER_AGENT
    min_interval_seconds: float = MIN_INTERVAL_SECONDS
    timeout_seconds: float = 30.0

    def get_client(self, cache: HttpCache | None = None) -> MusicBrainzClient:
        return MusicBrainzClient(self.url, shared_limiter(self.url, self.min_interval_seconds), cache,
                                 user_agent=self.user_agent, timeout=self.timeout_seconds)
