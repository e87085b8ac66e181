"""HTTP for every service client: the one session factory (urllib3 Retry) and the response cache.

The cache is requests-cache over its own SQLite file (WAL, so the runs of several processes share it)
under HARMONY_DATA_DIR, next to the DuckDB file, which keeps the pipeline's state only. 200 answers are
kept for the endpoint's `expire_after`; 404 answers ("not known there") and empty bodies (no search
result) for the shorter miss expiry, so a miss is asked again after a cool-down. Other statuses are
errors and never cached. Only GET is cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests_cache import CachedSession, SQLiteCache
from requests_cache.backends.sqlite import SQLiteDict
from requests_cache.policy.expiration import utcnow
from urllib3.util.retry import Retry

USER_AGENT = "HarmonyPipeline/0.1 ( https://github.com/harmony-pipeline )"
HIT_TTL = timedelta(days=30)
MISS_TTL = timedelta(days=7)
RETRY_STATUSES = (429, 500, 502, 503, 504)
CACHE_FILE_NAME = "http_cache.sqlite"
ExpiryPatterns = Mapping["str | re.Pattern[str]", timedelta]


class ServiceError(RuntimeError):
    """A request failed for good (after retries); `status` is the HTTP status, or None without one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def default_retry() -> Retry:
    """429/5xx retried with backoff, honouring Retry-After; GET only."""
    return Retry(
        total=4, connect=3, read=1, status=4, backoff_factor=1.0, backoff_jitter=0.3,
        status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True, raise_on_status=False,
    )


def retrying_session(retry: Retry | None = None, user_agent: str | None = USER_AGENT, *,
                     headers: Mapping[str, str] | None = None, cache: HttpCache | None = None,
                     expire_after: timedelta | int | None = None,
                     urls_expire_after: ExpiryPatterns | None = None,
                     miss_expire_after: timedelta = MISS_TTL,
                     adapter: HTTPAdapter | None = None) -> requests.Session:
    """The session every client uses: urllib3 Retry on both schemes, a descriptive User-Agent, JSON.

    With `cache`, a requests-cache session over that file: GET answers are kept for `expire_after`
    (or the first matching `urls_expire_after` pattern), 404s for `miss_expire_after`. `adapter`: an
    HTTPAdapter subclass built with `retry` (it sees only requests that reach the network).
    """
    if cache is None:
        session = requests.Session()
    else:
        session = cache.session(expire_after=HIT_TTL if expire_after is None else expire_after,
                                urls_expire_after=urls_expire_after, miss_expire_after=miss_expire_after)
    adapter = adapter or HTTPAdapter(max_retries=retry or default_retry())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if user_agent:
        session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "application/json"
    session.headers.update(headers or {})
    return session


class HttpCache:
    """The response cache file. `location`: an existing folder (HARMONY_DATA_DIR), or the DuckDB file,
    whose folder holds it (a DuckDB path without a suffix is still a file)."""

    def __init__(self, location: Path | str, now: Callable[[], datetime] | None = None):
        from harmony_pipeline import storage

        self.now = now or storage.utcnow  # the time assets stamp rows with
        self._answers_table: SQLiteDict | None = None
        location = Path(location)
        self.path = location / CACHE_FILE_NAME if location.is_dir() else location.with_name(CACHE_FILE_NAME)

    def backend(self) -> SQLiteCache:
        """A backend over the file. Each session needs its own: requests-cache keeps a session's settings
        (expiry) on its backend. Connections to the one file are safe across threads and processes (WAL)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteCache(self.path, wal=True, busy_timeout=30_000)

    def session(self, *, expire_after: timedelta | int, urls_expire_after: ExpiryPatterns | None = None,
                miss_expire_after: timedelta = MISS_TTL) -> requests.Session:
        return CachedSession404(backend=self.backend(), expire_after=expire_after,
                                urls_expire_after=dict(urls_expire_after or {}), allowable_codes=(200, 404),
                                allowable_methods=("GET",), miss_expire_after=miss_expire_after)

    def remember(self, service: str, key: str, fetch: Callable[[], Any], ttl: timedelta) -> Any:
        """A JSON answer that is not a plain GET (e.g. AcoustID's POST), kept under `service:key`."""
        table = self._answers()
        stored = table.get(f"{service}:{key}")
        entry = json.loads(stored) if stored else None
        if entry is not None and datetime.fromisoformat(entry["expires"]) > now():
            return entry["value"]
        value = fetch()
        table[f"{service}:{key}"] = json.dumps({"value": value, "expires": (now() + ttl).isoformat()})
        return value

    def _answers(self) -> SQLiteDict:
        """The `answers` table of the same file (JSON text with its expiry), opened once per instance."""
        if self._answers_table is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._answers_table = SQLiteDict(self.path, table_name="answers", serializer=None, busy_timeout=30_000,
                                             wal=True)
        return self._answers_table


def now() -> datetime:
    """The clock requests-cache judges expiry by (tests move it with tests.response_cache.py)."""
    return utcnow()


class CachedSession404(CachedSession):
    """requests-cache session keeping 404 answers for the shorter miss expiry, counting network requests."""

    def __init__(self, *args: Any, miss_expire_after: timedelta = MISS_TTL, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.miss_expire_after = miss_expire_after
        self.network_requests = 0  # requests that reached the service (cache hits do not count)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        asked_cache_only = "only-if-cached" in request.headers.get("Cache-Control", "")
        if not asked_cache_only and not getattr(response, "from_cache", False):
            self.network_requests += 1
            if response.status_code == 404 and request.method == "GET":
                remember_as_miss(self, response)
        return response


def remember_as_miss(session: requests.Session, response: requests.Response) -> None:
    """Keep an answer just fetched for the session's miss expiry only (no-op without a cache)."""
    cache = getattr(session, "cache", None)
    if cache is None or getattr(response, "from_cache", False) or response.status_code not in (200, 404):
        return
    cache.save_response(response, expires=now() + session.miss_expire_after)


def network_requests(session: requests.Session) -> int | None:
    """Requests of a cached session that reached the service; None for a session without a cache."""
    return getattr(session, "network_requests", None)


class CachedJsonClient:
    """GET JSON from one service, through the response cache when one is given; subclasses add endpoints.

    `requests_made` counts requests that reached the network (cache hits do not count).
    """

    service = "service"

    def __init__(self, base_url: str, session: requests.Session | None = None, cache: HttpCache | None = None,
                 *, timeout: float = 30.0, hit_ttl: timedelta = HIT_TTL, miss_ttl: timedelta = MISS_TTL,
                 retry: Retry | None = None, user_agent: str = USER_AGENT):
        self.base_url = base_url.rstrip("/")
        self.session = session or retrying_session(retry, user_agent, cache=cache, expire_after=hit_ttl,
                                                   miss_expire_after=miss_ttl)
        self.cache = cache
        self.timeout = timeout
        self._uncounted = 0  # requests of a session without a cache

    @property
    def requests_made(self) -> int:
        counted = network_requests(self.session)
        return self._uncounted if counted is None else counted

    def before_request(self) -> None:
        """Hook run before every request that reaches the network (e.g. a rate limiter)."""

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """The decoded body of a 200, or None for a 404; both cached. Raises ServiceError otherwise."""
        response = self._get(self.base_url + path, params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceError(f"{self.service} answered {response.status_code} for {path}: "
                               f"{response.text[:200]}", response.status_code)
        try:
            data = response.json()
        except ValueError:
            raise ServiceError(f"{self.service} sent a body that is not JSON for {path}", 200) from None
        if not data:  # an empty answer (e.g. no search result) is a miss: asked again sooner
            remember_as_miss(self.session, response)
        return data

    def _get(self, url: str, params: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        if kwargs.get("stream"):  # streamed bodies (images) bypass the cache, which would read them whole
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Cache-Control": "no-store"}
        elif network_requests(self.session) is not None:  # a caching session
            cached = self._cached(url, params)
            if cached is not None:
                return cached
        self.before_request()
        if network_requests(self.session) is None:
            self._uncounted += 1
        try:
            return self.session.get(url, params=params, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ServiceError(f"{self.service} unreachable: {type(error).__name__}: {error}") from None

    def _cached(self, url: str, params: dict[str, Any] | None) -> requests.Response | None:
        """The cached answer, without waiting for a rate limiter (only the network needs one)."""
        try:
            response = self.session.get(url, params=params, timeout=self.timeout, only_if_cached=True)
        except requests.RequestException:
            return None
        return response if response.status_code != 504 else None  # 504: not cached (only_if_cached)
