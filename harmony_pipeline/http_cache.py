"""External JSON services behind one DuckDB response cache (`http_cache`), so a re-run asks nothing again.

Answers are stored per service and request (the full URL with sorted query parameters): 200 bodies
for `hit_ttl`, 404 answers ("not known there") and empty bodies (no search result) for `miss_ttl`, so
a miss is asked again only after a cool-down. Other statuses are errors and never cached. A DuckDB
connection is opened only around each read or write of the table, never while a request is in flight.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from harmony_pipeline import storage

USER_AGENT = "HarmonyPipeline/0.1 ( https://github.com/harmony-pipeline )"
HIT_TTL = timedelta(days=30)
MISS_TTL = timedelta(days=7)
RETRY_STATUSES = (429, 500, 502, 503, 504)


class ServiceError(RuntimeError):
    """A request failed for good (after retries); `status` is the HTTP status, or None without one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CachedResponse:
    status: int
    body: str | None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class HttpCache:
    """The `http_cache` table of the DuckDB file at `database_path`."""

    def __init__(self, database_path: Path | str, now: Callable[[], datetime] = storage.utcnow):
        self.database_path = Path(database_path)
        self.now = now

    def get(self, service: str, key: str) -> CachedResponse | None:
        """The stored answer, or None when there is none or it has expired."""
        with storage.connect(self.database_path) as conn:
            row = conn.execute(
                "SELECT status, body FROM http_cache WHERE service = ? AND key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                [service, key, self.now()],
            ).fetchone()
        return CachedResponse(row[0], row[1]) if row else None

    def get_many(self, service: str, keys: list[str]) -> dict[str, CachedResponse]:
        """The stored, unexpired answers among `keys`, read in one query."""
        if not keys:
            return {}
        with storage.connect(self.database_path) as conn:
            rows = conn.execute(
                "SELECT key, status, body FROM http_cache WHERE service = ? AND key IN (SELECT unnest(?)) "
                "AND (expires_at IS NULL OR expires_at > ?)",
                [service, keys, self.now()],
            ).fetchall()
        return {key: CachedResponse(status, body) for key, status, body in rows}

    def entry(self, service: str, key: str, status: int, body: str | None, ttl: timedelta | None) -> dict:
        """An `http_cache` row for an answer received now, to write later with `put_entries`."""
        now = self.now()
        return {"service": service, "key": key, "status": status, "body": body, "fetched_at": now,
                "expires_at": now + ttl if ttl is not None else None}

    def put_entries(self, entries: list[dict], conn: duckdb.DuckDBPyConnection | None = None) -> None:
        """Write rows made by `entry`: in `conn` (and its transaction) when given, else in a connection of its own."""
        if not entries:
            return
        if conn is not None:
            storage.upsert(conn, "http_cache", entries, key=["service", "key"])
            return
        with storage.connect(self.database_path) as own:
            storage.upsert(own, "http_cache", entries, key=["service", "key"])

    def put(self, service: str, key: str, status: int, body: str | None, ttl: timedelta | None) -> None:
        self.put_entries([self.entry(service, key, status, body, ttl)])

    def remember(self, service: str, key: str, fetch: Callable[[], Any | None],
                 hit_ttl: timedelta | None = HIT_TTL, miss_ttl: timedelta = MISS_TTL) -> Any | None:
        """The cached JSON value, else `fetch()` stored (None from `fetch` is stored as a 404 miss)."""
        cached = self.get(service, key)
        if cached is not None:
            return cached.json() if cached.status == 200 else None
        value = fetch()
        if value is None:
            self.put(service, key, 404, None, miss_ttl)
        else:
            self.put(service, key, 200, json.dumps(value, ensure_ascii=False), hit_ttl)
        return value


def retrying_session(retry: Retry | None = None, user_agent: str = USER_AGENT) -> requests.Session:
    """A session with a descriptive User-Agent that retries 429/5xx with backoff (urllib3 Retry)."""
    retry = retry or Retry(
        total=4, connect=3, read=1, status=4, backoff_factor=1.0, backoff_jitter=0.3,
        status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True, raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "application/json"
    return session


class CachedJsonClient:
    """GET JSON from one service through the cache; subclasses name the service and add endpoints.

    `requests_made` counts requests that reached the network (cache hits do not count).
    """

    service = "service"

    def __init__(self, base_url: str, session: requests.Session, cache: HttpCache | None = None, *,
                 timeout: float = 30.0, hit_ttl: timedelta | None = HIT_TTL, miss_ttl: timedelta = MISS_TTL):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.cache = cache
        self.timeout = timeout
        self.hit_ttl = hit_ttl
        self.miss_ttl = miss_ttl
        self.requests_made = 0

    def before_request(self) -> None:
        """Hook run before every request that reaches the network (e.g. a rate limiter)."""

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """The decoded body of a 200, or None for a 404; both cached. Raises ServiceError otherwise."""
        url = self.base_url + path
        key = url + ("?" + urlencode(sorted((params or {}).items())) if params else "")
        if self.cache is not None:
            cached = self.cache.get(self.service, key)
            if cached is not None:
                return cached.json() if cached.status == 200 else None
        response = self._get(url, params)
        if response.status_code == 404:
            if self.cache is not None:
                self.cache.put(self.service, key, 404, response.text or None, self.miss_ttl)
            return None
        if response.status_code != 200:
            raise ServiceError(f"{self.service} answered {response.status_code} for {path}: "
                               f"{response.text[:200]}", response.status_code)
        try:
            data = response.json()
        except ValueError:
            raise ServiceError(f"{self.service} sent a body that is not JSON for {path}", 200) from None
        if self.cache is not None:  # an empty answer (e.g. no search result) is a miss: asked again sooner
            self.cache.put(self.service, key, 200, response.text, self.hit_ttl if data else self.miss_ttl)
        return data

    def _get(self, url: str, params: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        self.before_request()
        self.requests_made += 1
        try:
            return self.session.get(url, params=params, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ServiceError(f"{self.service} unreachable: {type(error).__name__}: {error}") from None
