"""AcoustID (ACOUSTID_URL, ACOUSTID_API_KEY) as a Dagster resource: the verifier of finished downloads."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource

from harmony_pipeline.acquisition.audio_verification import DEFAULT_ACOUSTID_URL, AcoustIdClient, Verifier
from harmony_pipeline.http_cache import HttpCache


class AcoustIdResource(ConfigurableResource):
    """Without `api_key`, downloads are still decoded and fingerprinted, and marked unverified."""

    url: str = DEFAULT_ACOUSTID_URL
    api_key: str | None = None
    timeout_seconds: float = 15.0

    def get_verifier(self, musicbrainz: Any = None, cache: HttpCache | None = None) -> Verifier:
        """`musicbrainz`: a MusicBrainzClient (ISRC → recordings); `cache`: lookups kept per fingerprint."""
        client = AcoustIdClient(self.api_key, self.url, cache, self.timeout_seconds) if self.api_key else None
        return Verifier(client, musicbrainz)
