"""The response cache in tests: a movable clock (requests-cache judges expiry by `utcnow`, imported by name in
three of its modules; harmony_pipeline.http_cache.now reads the same clock) and answers placed in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
import requests
import requests_cache.models.response
import requests_cache.policy.actions
import requests_cache.policy.expiration

import harmony_pipeline.http_cache

_MODULES = (requests_cache.models.response, requests_cache.policy.actions, requests_cache.policy.expiration,
            harmony_pipeline.http_cache)


def use_clock(monkeypatch: pytest.MonkeyPatch, clock: Callable[[], datetime]) -> None:
    """Make `clock` (aware UTC) the time the response cache judges expiry by."""
    for module in _MODULES:
        monkeypatch.setattr(module, "utcnow", clock)


class Clock:
    """`now` moves forward with `+=`; every module above reads it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.now = datetime.now(timezone.utc)
        use_clock(monkeypatch, self)

    def __call__(self) -> datetime:
        return self.now

    def __iadd__(self, delta: timedelta) -> Clock:
        self.now = self.now + delta
        return self


def cache_json_answer(cache: harmony_pipeline.http_cache.HttpCache, url: str, params: dict, body: object,
                      expires: datetime) -> None:
    """Store `body` as the 200 answer to GET `url?params`, as if the service had sent it."""
    from requests.structures import CaseInsensitiveDict
    from requests_cache import CachedRequest, CachedResponse

    prepared = requests.Request("GET", url, params=params).prepare()
    backend = cache.backend()
    backend.responses[backend.create_key(prepared)] = CachedResponse(
        url=prepared.url, status_code=200, reason="OK",
        headers=CaseInsensitiveDict({"Content-Type": "application/json"}), content=json.dumps(body).encode(), request=CachedRequest.from_request(prepared), expires=expires)
