"""slskd REST API (v0) client (plain code; resources/slskd.py builds it), as slskd really behaves (api-contracts.md §1).

- Searches are asynchronous: create, poll the state until `Completed`, read the responses once,
  delete the search. Responses exist only after completion.
- Error bodies are JSON string literals (or empty); 429 comes from slskd's semaphores (one search
  creation, two enqueues at a time) and carries no Retry-After: retried after a short backoff.
- Enqueue answers 201 with a body that differs by version: 201 is success, the transfer list is the
  truth. Transfer ids are GUIDs; transfers are reconciled by username + remote filename.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from urllib3.util.retry import Retry

from harmony_pipeline.http_cache import retrying_session

TERMINAL_FLAG = "Completed"
SUCCEEDED_STATE = "Completed, Succeeded"
CREATE_ATTEMPTS = 5  # a search POST answered 429 (another creation in progress) is tried this often


class SlskdError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class SlskdUnavailable(SlskdError):
    """slskd cannot be reached, or is not logged in to Soulseek (409): try again later.

    `maybe_done`: the request was sent but its answer never came (a read timeout), so slskd may have
    acted on it (e.g. created the transfer)."""

    maybe_done: bool = False


@dataclass(frozen=True)
class Transfer:
    id: str
    username: str
    filename: str
    state: str
    size: int | None
    bytes_transferred: int | None
    percent_complete: float | None
    exception: str | None
    requested_at: str | None = None

    @property
    def is_terminal(self) -> bool:
        return TERMINAL_FLAG in states(self.state)

    @property
    def succeeded(self) -> bool:
        return self.is_terminal and "Succeeded" in states(self.state)


def states(flags: str | None) -> set[str]:
    """slskd flag enums are comma-joined names: "Completed, Succeeded" → {"Completed", "Succeeded"}."""
    return {part.strip() for part in (flags or "").split(",") if part.strip()}


def search_complete(search: dict) -> bool:
    """A search slskd reports as finished (isComplete, or a state with the Completed flag)."""
    return bool(search.get("isComplete")) or TERMINAL_FLAG in states(search.get("state"))


def error_text(response: requests.Response) -> str:
    """slskd error bodies are JSON string literals ("text"), sometimes empty."""
    body = response.text.strip()
    if not body:
        return response.reason or f"HTTP {response.status_code}"
    try:
        value = json.loads(body)
    except ValueError:
        return body[:300]
    return value if isinstance(value, str) else json.dumps(value)[:300]


def _session(api_key: str | None) -> requests.Session:
    retry = Retry(
        total=4, connect=4, read=1, status=4, backoff_factor=0.5, backoff_jitter=0.25,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST", "PUT", "DELETE"}),
        respect_retry_after_header=True, raise_on_status=False,
    )
    return retrying_session(retry, None, headers={"X-API-Key": api_key} if api_key else None)


class SlskdClient:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 20.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.api = base_url.rstrip("/") + "/api/v0"
        self.session = _session(api_key)
        self.timeout = timeout
        self.sleep = sleep
        self.seconds_spent = 0.0  # wall time inside slskd requests, for materialization metadata

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        try:
            response = self.session.request(method, self.api + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            unavailable = SlskdUnavailable(f"slskd unreachable at {self.api}: {type(error).__name__}")
            unavailable.maybe_done = isinstance(error, requests.ReadTimeout)
            raise unavailable from None
        finally:
            self.seconds_spent += time.monotonic() - started
        if response.status_code == 401:
            raise SlskdError("slskd refused the API key (401): check SLSKD_API_KEY", 401)
        if response.status_code == 409:
            raise SlskdUnavailable(f"slskd is not connected to Soulseek: {error_text(response)}", 409)
        return response

    # --- searches --------------------------------------------------------------------------------
    def start_search(self, text: str, *, timeout_ms: int = 15000) -> str:
        """Create a search and return its id without waiting for it. slskd creates one search at a time
        (a concurrent POST gets 429): that answer is retried after a short pause."""
        search_id = str(uuid.uuid4())
        body = {"id": search_id, "searchText": text, "searchTimeout": timeout_ms,
                "filterResponses": True, "minimumResponseFileCount": 1}
        for attempt in range(CREATE_ATTEMPTS):
            response = self._request("POST", "/searches", json=body)
            if response.status_code != 429:
                break
            self.sleep(0.5 * (attempt + 1))
        if response.status_code not in (200, 201):
            raise SlskdError(f"search {text!r} not created: {error_text(response)}", response.status_code)
        return search_id

    def search_progress(self) -> dict[str, bool]:
        """Whether each search slskd holds is complete, by id (lower case): one request for all."""
        response = self._request("GET", "/searches")
        if response.status_code != 200:
            raise SlskdError(f"search list: {error_text(response)}", response.status_code)
        return {str(s.get("id", "")).lower(): search_complete(s) for s in response.json() or []}

    def delete_search(self, search_id: str) -> None:
        self._request("DELETE", f"/searches/{search_id}")

    def stop_search(self, search_id: str) -> None:
        self._request("PUT", f"/searches/{search_id}")  # it completes as "Cancelled", responses kept

    def finish_search(self, search_id: str, text: str) -> list[dict]:
        """The responses of a completed search; the search is deleted afterwards."""
        try:
            responses = self._request("GET", f"/searches/{search_id}/responses")
            if responses.status_code != 200:
                raise SlskdError(f"responses of {text!r}: {error_text(responses)}", responses.status_code)
            return responses.json() or []
        finally:
            self._request("DELETE", f"/searches/{search_id}")

    def search(self, text: str, *, timeout_ms: int = 15000, poll_seconds: float = 0.5,
               max_wait_seconds: float | None = None) -> list[dict]:
        """Run one search to completion and return its responses; the search is deleted afterwards."""
        search_id = self.start_search(text, timeout_ms=timeout_ms)
        deadline = time.monotonic() + (max_wait_seconds or timeout_ms / 1000 * 4 + 30)
        stopped = False
        try:
            while True:
                state = self._request("GET", f"/searches/{search_id}", params={"includeResponses": "false"})
                if state.status_code != 200:
                    raise SlskdError(f"search {text!r} vanished: {error_text(state)}", state.status_code)
                if search_complete(state.json()):
                    break
                if time.monotonic() > deadline:
                    if stopped:
                        raise SlskdError(f"search {text!r} did not complete, even after being stopped")
                    self.stop_search(search_id)
                    stopped, deadline = True, time.monotonic() + 10
                self.sleep(poll_seconds)
        except BaseException:
            self._request("DELETE", f"/searches/{search_id}")
            raise
        return self.finish_search(search_id, text)

    # --- transfers -------------------------------------------------------------------------------
    def enqueue(self, username: str, filename: str, size: int | None) -> None:
        """Ask the peer for one file. 201 is success whatever the body (it differs by version)."""
        entry: dict[str, Any] = {"filename": filename}
        if size is not None:
            entry["size"] = size
        response = self._request("POST", f"/transfers/downloads/{quote(username, safe='')}", json=[entry])
        if response.status_code != 201:
            raise SlskdError(f"enqueue from {username} refused: {error_text(response)}", response.status_code)

    def transfers(self) -> list[Transfer]:
        response = self._request("GET", "/transfers/downloads", params={"includeRemoved": "false"})
        if response.status_code != 200:
            raise SlskdError(f"transfer list: {error_text(response)}", response.status_code)
        return list(_flatten_transfers(response.json() or []))

    def cancel(self, username: str, transfer_id: str, remove: bool = False) -> None:
        self._request("DELETE", f"/transfers/downloads/{quote(username, safe='')}/{transfer_id}",
                      params={"remove": str(remove).lower()})

    def completed_local_paths(self, limit: int = 500) -> dict[tuple[str | None, str], str]:
        """{(username, remote filename): local filename as slskd names it} from DownloadFileComplete events."""
        response = self._request("GET", "/events", params={"offset": 0, "limit": limit})
        if response.status_code == 404:  # slskd before 0.22 has no events
            return {}
        if response.status_code != 200:
            raise SlskdError(f"events: {error_text(response)}", response.status_code)
        paths: dict[tuple[str | None, str], str] = {}
        for event in response.json() or []:
            if event.get("type") != "DownloadFileComplete":
                continue
            try:
                data = json.loads(event.get("data") or "{}")  # a JSON string inside JSON
            except ValueError:
                continue
            remote, local = data.get("remoteFilename"), data.get("localFilename")
            if remote and local:
                username = (data.get("transfer") or {}).get("username")
                paths.setdefault((username, remote), local)
                paths.setdefault((None, remote), local)
        return paths


def _flatten_transfers(users: list[dict]) -> Iterator[Transfer]:
    for user in users:
        for directory in user.get("directories") or []:
            for item in directory.get("files") or []:
                yield Transfer(
                    id=item.get("id", ""),
                    username=item.get("username") or user.get("username", ""),
                    filename=item.get("filename", ""),
                    state=item.get("state", ""),
                    size=item.get("size"),
                    bytes_transferred=item.get("bytesTransferred"),
                    percent_complete=item.get("percentComplete"),
                    exception=item.get("exception"),
                    requested_at=item.get("requestedAt"),
                )
