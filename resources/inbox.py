"""The FREE-ingest drop folder as a resource: read by the free_ingest_items asset and the inbox sensor
(both import it from here, so the sensor never imports the asset module)."""

from dagster import ConfigurableResource

from harmony_pipeline.ingest.store import CLAIM_STALE_SECONDS


class IngestInbox(ConfigurableResource):
    """The FREE-ingest drop folder (HARMONY_INBOX_DIR)."""

    path: str
    settle_seconds: float = 2.0  # a file changed more recently may still be being copied
    claim_stale_seconds: float = CLAIM_STALE_SECONDS  # a claim in processing/ this old is taken back
