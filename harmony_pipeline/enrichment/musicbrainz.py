"""MusicBrainz web service (`/ws/2`, JSON) for credits, labels, genres and release MBIDs (api-contracts.md §5).

MusicBrainz allows about one request per second per IP and answers 503 beyond it, and refuses clients
without a descriptive User-Agent. Every request of this process, from any thread or client, waits for
one shared limiter — retries included: urllib3 retries the first 503 at once, which would only earn
another 503, so the retry's sleep also waits for the limiter.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from urllib3.util.retry import Retry

from harmony_pipeline.http_cache import (
    RETRY_STATUSES,
    USER_AGENT,
    CachedJsonClient,
    HttpCache,
)

MIN_INTERVAL_SECONDS = 1.1  # a little above 1 s, so network jitter never makes two arrive within a second
ISRC_PATTERN = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")
ISRC_INC = "artist-credits+releases"
RECORDING_INC = "artist-credits+isrcs+releases+artist-rels+work-rels+work-level-rels+genres+tags"
RELEASE_INC = "artist-rels+labels+release-groups+genres+tags"
ARTIST_INC = "genres+tags"


class RateLimiter:
    """At most one request per `interval` seconds among all threads sharing it (slots are reserved in turn)."""

    def __init__(self, interval: float):
        self.interval = interval
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


_limiters: dict[tuple[str, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(base_url: str, interval: float) -> RateLimiter:
    """The one limiter of this process for the host of `base_url`."""
    key = (urlsplit(base_url).netloc, interval)
    with _limiters_lock:
        return _limiters.setdefault(key, RateLimiter(interval))


class LimitedRetry(Retry):
    """urllib3 Retry whose every retry also waits for the shared limiter."""

    def __init__(self, *args: Any, limiter: RateLimiter | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limiter = limiter

    def new(self, **kwargs: Any) -> LimitedRetry:
        retry = super().new(**kwargs)
        retry.limiter = self.limiter
        return retry

    def sleep(self, response: Any = None) -> None:
        super().sleep(response)
        if self.limiter is not None:
            self.limiter.wait()


class MusicBrainzClient(CachedJsonClient):
    service = "musicbrainz"

    def __init__(self, base_url: str, limiter: RateLimiter, cache: HttpCache | None = None, *,
                 user_agent: str = USER_AGENT, timeout: float = 30.0, max_retries: int = 4):
        retry = LimitedRetry(
            total=max_retries, connect=3, read=1, status=max_retries, backoff_factor=1.0, backoff_jitter=0.3,
            status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True, raise_on_status=False, limiter=limiter,
        )
        super().__init__(base_url, cache=cache, timeout=timeout, retry=retry, user_agent=user_agent)
        self.limiter = limiter

    def before_request(self) -> None:
        self.limiter.wait()

    def _lookup(self, entity: str, identifier: str, inc: str) -> dict | None:
        return self.get_json(f"/ws/2/{entity}/{identifier}", {"inc": inc, "fmt": "json"})

    def isrc(self, isrc: str) -> dict | None:
        """Recordings carrying `isrc`, each with its releases; None when MusicBrainz does not know it."""
        isrc = isrc.strip().upper()
        if not ISRC_PATTERN.match(isrc):  # MusicBrainz would answer 400
            return None
        return self._lookup("isrc", isrc, ISRC_INC)

    def recording(self, mbid: str) -> dict | None:
        """The recording with its producers, performed work (writers included), genres and tags."""
        return self._lookup("recording", mbid, RECORDING_INC)

    def release(self, mbid: str) -> dict | None:
        """The release with its producers, label info and release group (genres, tags)."""
        return self._lookup("release", mbid, RELEASE_INC)

    def artist(self, mbid: str) -> dict | None:
        return self._lookup("artist", mbid, ARTIST_INC)
