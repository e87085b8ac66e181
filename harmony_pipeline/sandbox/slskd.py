"""The sandbox's slskd: REST API v0 over generated Soulseek peers (`soulseek_peers.PeerNetwork`).

Follows `api-contracts.md` §1: `X-API-Key` auth (401, empty body), case-insensitive routes, JSON
string error bodies, camelCase with null properties omitted, TimeSpan strings, ISO timestamps.

- Searches run for `search_seconds` (or the request's `searchTimeout`, if shorter): `InProgress`
  with growing counters, then `Completed, TimedOut`; responses are served only once complete.
  `POST /searches` holds a server-wide semaphore for `search_post_seconds`, so a concurrent POST
  gets 429; `busy_next_search_post()` makes the next POST answer 429; `logged_in = False` gives 409.
- Downloads walk `Requested → Queued, Remotely → Initializing → InProgress → Completed, Succeeded`,
  one state per `transfer_step_seconds` (busy peers queue longer). At completion a real MP3/FLAC whose
  duration is the shared file's length lands in `<downloads_dir>/<remote parent folder>/<file name>`
  and a `DownloadFileComplete` event names it as slskd sees it (`remote_downloads_dir` prefix).
- Outcomes: the peer's fixed behaviour (some peers always reject, error, stall or send corrupt
  files), size mismatches abort, unshared or locked files are rejected, and `script_outcome()` (or
  `POST /_sandbox/slskd/outcomes`) scripts the next transfers.
- `version` picks the enqueue body style: ≤0.23 empty, 0.24/0.25 `{"enqueued", "failed": [names]}`,
  0.26+ `failed` entries as `{}`.

Admin routes (not logged, no auth) under `/_sandbox/slskd/`: `GET|POST|DELETE outcomes`,
`GET|POST switches` (`{"version", "loggedIn", "busyNextSearchPost", "offlinePeers"}`),
`GET truth?username=&filename=` and `GET scenarios`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harmony_pipeline.sandbox.acoustid import write_served_audio
from harmony_pipeline.sandbox.audio import write_corrupt_audio, write_m4a
from harmony_pipeline.sandbox.catalog import Catalog
from harmony_pipeline.sandbox.images import jpeg_bytes
from harmony_pipeline.sandbox.server import Emulator, Request, Response, empty_response, json_response
from harmony_pipeline.sandbox.soulseek_peers import PeerNetwork, SharedFile

DEFAULT_API_KEY = "sandbox-slskd-api-key-0000"
DEFAULT_VERSION = "0.24.1"
SEARCH_BUSY_MESSAGE = "Only one concurrent operation is permitted. Wait until the previous request completes"
# "WrongAudio": a correct name over another recording's audio; "Silent": all zeros (sandbox/acoustid.py).
OUTCOMES = ("Succeeded", "Rejected", "Errored", "TimedOut", "Aborted", "Corrupt", "WrongAudio", "Silent")
OUTCOME_EXCEPTIONS = {
    "Rejected": "File not shared.",
    "Errored": "Remote connection closed",
    "TimedOut": "Transfer timed out",
}
PEER_BEHAVIOUR_OUTCOMES = {"rejects": "Rejected", "errors": "Errored", "stalls": "TimedOut", "corrupts": "Corrupt"}
LOSSLESS_EXTENSIONS = {"flac", "wav", "aiff", "aif", "alac", "ape", "wv"}
NON_AUDIO_TEXT_EXTENSIONS = {"cue", "log", "nfo", "m3u", "sfv", "txt"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_DOTNET_EPOCH_TICKS = 621_355_968_000_000_000
_INVALID_FILE_NAME_CHARACTERS = re.compile(r"[\x00-\x1f/]")  # invalid on the Linux host slskd runs on


# ------------------------------------------------------------------------------------------------
# .NET-style values
# ------------------------------------------------------------------------------------------------
def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """`2026-11-25T20:01:00.1234560Z`: the round-trip format with seven fractional digits."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def timespan(seconds: float) -> str:
    """`hh:mm:ss.fffffff`, without the fraction when it is zero (as .NET prints TimeSpan)."""
    ticks = max(0, round(seconds * 10_000_000))
    whole, fraction = divmod(ticks, 10_000_000)
    hours, rest = divmod(whole, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{fraction:07d}" if fraction else text


def dotnet_ticks(moment: datetime) -> int:
    return _DOTNET_EPOCH_TICKS + int(moment.timestamp() * 1_000_000) * 10


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.strip().lower() == "true"


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def json_string(message: str, status: int) -> Response:
    """slskd's error bodies are JSON string literals."""
    return json_response(message, status)


# ------------------------------------------------------------------------------------------------
# State
# ------------------------------------------------------------------------------------------------
@dataclass
class Search:
    id: str
    search_text: str
    token: int
    started_at: datetime
    started_clock: float
    duration: float
    responses: list[dict[str, Any]]
    limit_state: str  # "TimedOut", "ResponseLimitReached" or "FileLimitReached"
    ended_at: datetime | None = None
    end_state: str = ""
    visible: int = 0  # responses received so far

    def refresh(self, now: float) -> None:
        if self.ended_at is not None:
            return
        elapsed = now - self.started_clock
        if elapsed >= self.duration:
            self.finish(self.limit_state, self.started_at + timedelta(seconds=self.duration), len(self.responses))
        else:
            self.visible = int(len(self.responses) * elapsed / self.duration)

    def finish(self, state: str, ended_at: datetime, visible: int) -> None:
        self.end_state, self.ended_at, self.visible = state, ended_at, visible

    def to_json(self, include_responses: bool) -> dict[str, Any]:
        received = self.responses[: self.visible]
        data: dict[str, Any] = {
            "fileCount": sum(r["fileCount"] for r in received),
            "id": self.id,
            "isComplete": self.ended_at is not None,
            "lockedFileCount": sum(r["lockedFileCount"] for r in received),
            "responseCount": len(received),
            "responses": self.completed_responses() if include_responses else [],
            "searchText": self.search_text,
            "startedAt": iso(self.started_at),
            "state": f"Completed, {self.end_state}" if self.ended_at else "InProgress",
            "token": self.token,
        }
        if self.ended_at is not None:
            data["endedAt"] = iso(self.ended_at)
        return data

    def completed_responses(self) -> list[dict[str, Any]]:
        """Responses are written when the search completes; before that the list is empty."""
        if self.ended_at is None:
            return []
        return [{**response, "token": self.token} for response in self.responses[: self.visible]]


@dataclass
class Transfer:
    id: str
    username: str
    filename: str
    size: int
    outcome: str
    shared: SharedFile | None
    requested_at: datetime
    phases: list[tuple[float, str]]  # (clock time, state) still to come, in order
    state: str = "Requested"
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    started_clock: float | None = None
    ended_at: datetime | None = None
    transfer_seconds: float = 1.0  # how long InProgress lasts
    bytes_transferred: int = 0
    exception: str | None = None
    place_in_queue: int | None = None
    removed: bool = False
    local_path: Path | None = None

    @property
    def directory(self) -> str:
        return self.filename.rsplit("\\", 1)[0] if "\\" in self.filename else ""

    @property
    def is_complete(self) -> bool:
        return self.state.startswith("Completed")

    def progress(self, now: float) -> int:
        if self.state == "InProgress" and self.started_clock is not None:
            share = min(1.0, (now - self.started_clock) / self.transfer_seconds)
            return int(self.size * share)
        return self.bytes_transferred

    def to_json(self, version: tuple[int, ...], now: float) -> dict[str, Any]:
        transferred = self.progress(now)
        elapsed = None
        if self.started_at is not None:
            end = self.ended_at or utc_now()
            elapsed = max(0.0, (end - self.started_at).total_seconds())
        speed = transferred / elapsed if elapsed else 0.0
        data: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "direction": "Download",
            "filename": self.filename,
            "size": self.size,
            "state": self.state,
            "requestedAt": iso(self.requested_at),
            "enqueuedAt": iso(self.enqueued_at) if self.enqueued_at else None,
            "startedAt": iso(self.started_at) if self.started_at else None,
            "endedAt": iso(self.ended_at) if self.ended_at else None,
            "bytesTransferred": transferred,
            "averageSpeed": speed,
            "bytesRemaining": self.size - transferred,
            "elapsedTime": timespan(elapsed) if elapsed is not None else None,
            "percentComplete": transferred * 100 / self.size if self.size else 0.0,
            "remainingTime": timespan((self.size - transferred) / speed) if speed and not self.is_complete else None,
            "placeInQueue": self.place_in_queue if self.state == "Queued, Remotely" else None,
            "exception": self.exception,
            "removed": self.removed,
        }
        if version < (0, 26):
            data["startOffset"] = 0
        if version >= (0, 25):
            data["attempts"] = 1
        return {name: value for name, value in data.items() if value is not None}


@dataclass
class ScriptedOutcome:
    outcome: str
    username: str | None = None
    filename: str | None = None
    times: int | None = 1  # None: always

    def matches(self, username: str, filename: str) -> bool:
        return (self.username is None or self.username == username) and (
            self.filename is None or self.filename == filename
        )

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "username": self.username, "filename": self.filename, "times": self.times}


@dataclass
class Event:
    id: str
    timestamp: datetime
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"timestamp": iso(self.timestamp), "type": self.type, "id": self.id,
                "data": json.dumps(self.data, ensure_ascii=False)}


# ------------------------------------------------------------------------------------------------
# Local file names, as slskd derives them
# ------------------------------------------------------------------------------------------------
def _safe_component(name: str) -> str:
    name = _INVALID_FILE_NAME_CHARACTERS.sub("_", name).strip()
    return "_" if name in ("", ".", "..") else name


def local_destination(downloads_dir: Path, remote_filename: str) -> Path:
    """`<downloads>/<remote parent folder>/<file name>`, never outside `downloads_dir`.

    An existing file is kept and the new one renamed `<stem>_<ticks><ext>`, as slskd does.
    """
    parts = remote_filename.split("\\")
    folder = _safe_component(parts[-2]) if len(parts) > 1 else None
    directory = downloads_dir / folder if folder else downloads_dir
    target = directory / _safe_component(parts[-1])
    root = downloads_dir.resolve()
    if not target.resolve().is_relative_to(root):  # defence in depth: components are already safe
        target = root / _safe_component(parts[-1])
    if target.exists():
        target = target.with_name(f"{target.stem}_{dotnet_ticks(utc_now())}{target.suffix}")
    return target


def write_download(path: Path, shared: SharedFile | None, extension: str, *, corrupt: bool,
                   catalog: Catalog | None = None, outcome: str = "Succeeded", filename: str = "") -> None:
    """A real file: MP3/FLAC audio of the shared file's length; the closest real format for others."""
    if corrupt:
        write_corrupt_audio(path)
        return
    duration = shared.duration_s if shared and shared.duration_s else 200
    if extension == "jpg" or extension == "jpeg":
        path.write_bytes(jpeg_bytes(500, 500, path.name))
    elif extension in NON_AUDIO_TEXT_EXTENSIONS:
        path.write_text(f"{path.name}\n", encoding="utf-8")
    elif extension in ("m4a", "aac", "alac"):
        write_m4a(path, duration)
    else:
        # Other lossy formats (ogg, opus, …) get MP3 audio, lossless ones FLAC; mutagen reads both by content.
        # Each recording has audio of its own, so AcoustID fingerprints tell them apart.
        write_served_audio(path, "flac" if extension in LOSSLESS_EXTENSIONS else "mp3", duration,
                           catalog, shared, outcome, filename)


# ------------------------------------------------------------------------------------------------
# The emulator
# ------------------------------------------------------------------------------------------------
class SlskdEmulator(Emulator):
    name = "slskd"
    case_insensitive_routes = True

    def __init__(
        self,
        catalog: Catalog,
        downloads_dir: Path,
        *,
        seed: int = 7,
        api_key: str = DEFAULT_API_KEY,
        version: str = DEFAULT_VERSION,
        remote_downloads_dir: str | None = "/app/downloads",
        incomplete_dir: Path | None = None,
        url_base: str = "",
        search_seconds: float = 2.0,
        search_post_seconds: float = 0.05,
        transfer_step_seconds: float = 0.25,
        peers: PeerNetwork | None = None,
    ) -> None:
        super().__init__()
        self.catalog = catalog
        self.downloads_dir = Path(downloads_dir).absolute()
        self.incomplete_dir = Path(incomplete_dir or self.downloads_dir.parent / "incomplete").absolute()
        self.api_key = api_key
        self.version = version
        self.remote_downloads_dir = remote_downloads_dir
        self.url_base = "/" + url_base.strip("/") if url_base.strip("/") else ""
        self.search_seconds = search_seconds
        self.search_post_seconds = search_post_seconds
        self.transfer_step_seconds = transfer_step_seconds
        self.peers = peers or PeerNetwork(catalog, seed)
        # Switches
        self.logged_in = True
        self.offline_peers: set[str] = set()
        self._busy_next_search_post = False
        self._scripted: list[ScriptedOutcome] = []
        # State
        self._searches: dict[str, Search] = {}
        self._transfers: list[Transfer] = []
        self._events: list[Event] = []
        self._search_semaphore = threading.Semaphore(1)
        self._enqueue_semaphore = threading.Semaphore(2)
        self._state_lock = threading.RLock()
        self._wake = threading.Condition(self._state_lock)
        self._closed = False
        self._next_token = 31337
        self.downloads_dir.mkdir(parents=True, exist_ok=True)
        self._worker = threading.Thread(target=self._run_transfers, name="sandbox-slskd-transfers", daemon=True)
        self._worker.start()
        self._add_routes()

    # -- public switches and helpers ------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """The URL clients are configured with (`SLSKD_URL`): base without `/api/v0`."""
        return self.base_url + self.url_base

    def environment(self, base_url: str | None = None) -> dict[str, str]:
        """The pipeline's environment for this emulator (`base_url` defaults to where `serve()` put it)."""
        env = {
            "SLSKD_URL": (base_url or self.base_url) + self.url_base,
            "SLSKD_API_KEY": self.api_key,
            "SLSKD_DOWNLOADS_DIR": str(self.downloads_dir),
        }
        if self.remote_downloads_dir:
            env["SLSKD_REMOTE_DOWNLOADS_DIR"] = self.remote_downloads_dir
        return env

    def busy_next_search_post(self) -> None:
        """The next `POST /searches` answers 429 as if another search POST were being processed."""
        with self._state_lock:
            self._busy_next_search_post = True

    def script_outcome(
        self, outcome: str, *, username: str | None = None, filename: str | None = None, times: int | None = 1
    ) -> None:
        """The next `times` matching enqueued transfers (None: all) end with `outcome` (see OUTCOMES)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        with self._state_lock:
            self._scripted.append(ScriptedOutcome(outcome, username, filename, times))

    def clear_scripted_outcomes(self) -> None:
        with self._state_lock:
            self._scripted.clear()

    def is_correct(self, username: str, filename: str) -> str | None:
        return self.peers.is_correct(username, filename)

    def transfers(self) -> list[Transfer]:
        with self._state_lock:
            return list(self._transfers)

    def wait_for_transfers(self, timeout: float = 10.0) -> bool:
        """Block until every transfer is complete (for tests and demos)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while any(not t.is_complete for t in self._transfers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(min(remaining, 0.1))
        return True

    def close(self) -> None:
        """Stop the transfer worker."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._worker.join(timeout=5)

    # -- framework hooks ------------------------------------------------------------------------
    def error_response(self, status: int, message: str) -> Response:
        if status in (401, 403, 404, 204):
            return empty_response(status)
        return json_string(message, status)

    def dispatch(self, request: Request) -> Response:
        if request.path.rstrip("/").lower().startswith("/_sandbox/slskd/"):
            return self._admin_slskd(request)
        return super().dispatch(request)

    def _add_routes(self) -> None:
        api = f"{self.url_base}/api/v0"
        routes = [
            ("GET", "/application", self._application),
            ("GET", "/server", self._server),
            ("POST", "/searches", self._post_search),
            ("GET", "/searches", self._list_searches),
            ("GET", "/searches/{id}", self._get_search),
            ("GET", "/searches/{id}/responses", self._get_responses),
            ("PUT", "/searches/{id}", self._stop_search),
            ("DELETE", "/searches/{id}", self._delete_search),
            ("DELETE", "/transfers/downloads/all/completed", self._remove_completed),
            ("GET", "/transfers/downloads", self._list_downloads),
            ("POST", "/transfers/downloads/{username}", self._enqueue),
            ("GET", "/transfers/downloads/{username}", self._user_downloads),
            ("GET", "/transfers/downloads/{username}/{id}", self._get_download),
            ("GET", "/transfers/downloads/{username}/{id}/position", self._queue_position),
            ("DELETE", "/transfers/downloads/{username}/{id}", self._cancel_download),
            ("GET", "/events", self._list_events),
        ]
        for method, template, handler in routes:
            self.add_route(method, api + template, self._authenticated(handler))

    def _authenticated(self, handler: Any) -> Any:
        def guarded(request: Request) -> Response:
            if request.headers.get("X-API-Key") != self.api_key:
                return empty_response(401, {"WWW-Authenticate": "Bearer"})
            return handler(request)

        return guarded

    # -- application / server -------------------------------------------------------------------
    def _server_state(self) -> dict[str, Any]:
        return {
            "address": "vps.slsknet.org",
            "ipEndPoint": "208.76.170.59:2271",
            "state": "Connected, LoggedIn" if self.logged_in else "Disconnected",
            "username": "harmony_sandbox",
            "isConnected": self.logged_in,
            "isLoggedIn": self.logged_in,
            "isTransitioning": False,
        }

    def _application(self, request: Request) -> Response:
        return json_response({
            "version": {"full": f"{self.version}.0", "current": self.version, "isUpdateAvailable": False,
                        "isCanary": False, "isDevelopment": False},
            "server": self._server_state(),
            "shares": {"scanPending": False, "scanning": False, "faulted": False, "cancelled": False,
                       "scanProgress": 1.0, "directories": 0, "files": 0},
            "user": {"username": "harmony_sandbox"},
            "pendingReconnect": False,
            "pendingRestart": False,
        })

    def _server(self, request: Request) -> Response:
        return json_response(self._server_state())

    # -- searches -------------------------------------------------------------------------------
    def _post_search(self, request: Request) -> Response:
        with self._state_lock:
            busy, self._busy_next_search_post = self._busy_next_search_post, False
        if busy or not self._search_semaphore.acquire(blocking=False):
            return json_string(SEARCH_BUSY_MESSAGE, 429)
        try:
            time.sleep(self.search_post_seconds)  # the semaphore is held while slskd starts the search
            return self._start_search(request)
        finally:
            self._search_semaphore.release()

    def _start_search(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return json_string("The request body is not valid JSON.", 400)
        if not isinstance(body, dict):
            return json_string("The request body must be a search request object.", 400)
        text = body.get("searchText")
        if not isinstance(text, str) or not text.strip():
            return json_string("SearchText may not be null or empty.", 400)
        search_id = body.get("id")
        if search_id is None:
            search_id = str(uuid.uuid4())
        elif not isinstance(search_id, str) or not _GUID.match(search_id):
            return json_string(f"The value '{search_id}' is not a valid Id.", 400)
        search_id = str(uuid.UUID(search_id))
        if not self.logged_in:
            return json_string(
                "The server connection must be connected and logged in to perform a search (currently: Disconnected)",
                409,
            )
        responses, limit_state = self._filter_responses(self.peers.search(text), body)
        timeout_ms = body.get("searchTimeout")
        duration = self.search_seconds
        if isinstance(timeout_ms, (int, float)) and timeout_ms > 0:
            duration = min(duration, timeout_ms / 1000)
        with self._state_lock:
            if search_id in self._searches:
                return json_string(f"A search with ID {search_id} already exists.", 500)
            self._next_token += 1
            search = Search(search_id, text, self._next_token, utc_now(), time.monotonic(), duration, responses,
                            limit_state)
            self._searches[search_id] = search
            return json_response(search.to_json(include_responses=False))

    @staticmethod
    def _filter_responses(responses: list[dict[str, Any]], body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """Soulseek.NET's response filters and limits (defaults as when a property is omitted)."""
        if body.get("filterResponses", True) is not False:
            min_files = body.get("minimumResponseFileCount", 1)
            max_queue = body.get("maximumPeerQueueLength", 2**31 - 1)
            min_speed = body.get("minimumPeerUploadSpeed", 0)
            responses = [
                r for r in responses
                if r["fileCount"] >= min_files and r["queueLength"] <= max_queue and r["uploadSpeed"] >= min_speed
            ]
        response_limit = body.get("responseLimit", 250)
        file_limit = body.get("fileLimit", 25000)
        kept: list[dict[str, Any]] = []
        files = 0
        for response in responses:
            if len(kept) >= response_limit:
                return kept, "ResponseLimitReached"
            kept.append(response)
            files += response["fileCount"]
            if files >= file_limit:
                return kept, "FileLimitReached"
        return kept, "TimedOut"

    def _find_search(self, request: Request) -> Search | None:
        with self._state_lock:
            search = self._searches.get(request.params["id"].lower())
            if search is not None:
                search.refresh(time.monotonic())
            return search

    def _list_searches(self, request: Request) -> Response:
        with self._state_lock:
            now = time.monotonic()
            for search in self._searches.values():
                search.refresh(now)
            return json_response([s.to_json(include_responses=False) for s in self._searches.values()])

    def _get_search(self, request: Request) -> Response:
        search = self._find_search(request)
        if search is None:
            return empty_response(404)
        return json_response(search.to_json(include_responses=query_bool(request, "includeResponses")))

    def _get_responses(self, request: Request) -> Response:
        search = self._find_search(request)
        return empty_response(404) if search is None else json_response(search.completed_responses())

    def _stop_search(self, request: Request) -> Response:
        with self._state_lock:
            search = self._find_search(request)
            if search is None:
                return empty_response(404)
            if search.ended_at is None:
                search.finish("Cancelled", utc_now(), search.visible)  # responses so far are kept
            return empty_response(200)

    def _delete_search(self, request: Request) -> Response:
        with self._state_lock:
            if self._searches.pop(request.params["id"].lower(), None) is None:
                return empty_response(404)
        return empty_response(204)

    # -- transfers ------------------------------------------------------------------------------
    def _enqueue(self, request: Request) -> Response:
        if not self._enqueue_semaphore.acquire(blocking=False):
            return json_string(SEARCH_BUSY_MESSAGE, 429)
        try:
            return self._enqueue_files(request)
        finally:
            self._enqueue_semaphore.release()

    def _enqueue_files(self, request: Request) -> Response:
        username = request.params["username"]
        try:
            body = request.json()
        except ValueError:
            return json_string("The request body is not valid JSON.", 400)
        if not isinstance(body, list) or not body or any(not isinstance(item, dict) for item in body):
            return json_string("The request must contain at least one file.", 400)
        for item in body:
            filename = item.get("filename")
            if not isinstance(filename, str) or not filename:
                return json_string("Filename may not be null or empty.", 400)
            if ".." in re.split(r"[\\/]", filename):
                return json_string("Paths may not contain '..' segments.", 400)
        if username not in self.peers.peers or username in self.offline_peers:
            return json_string(f"Failed to resolve endpoint for {username}: user is offline", 500)
        enqueued: list[Transfer] = []
        failed: list[str] = []
        with self._wake:
            for item in body:
                filename = item["filename"]
                if any(t.username == username and t.filename == filename and not t.is_complete
                       for t in self._transfers):
                    failed.append(filename)  # already queued or in progress: not duplicated
                    continue
                size = item.get("size") if isinstance(item.get("size"), int) else 0
                transfer = self._new_transfer(username, filename, size)
                self._transfers.append(transfer)
                enqueued.append(transfer)
            self._wake.notify_all()
            now = time.monotonic()
            version = version_tuple(self.version)
            body_json = [t.to_json(version, now) for t in enqueued]
        if version < (0, 24):
            return empty_response(201)
        failures: list[Any] = failed if version < (0, 26) else [{} for _ in failed]
        return json_response({"enqueued": body_json, "failed": failures}, 201)

    def _outcome_for(self, username: str, filename: str, size: int, shared: SharedFile | None) -> str:
        for scripted in self._scripted:
            if scripted.matches(username, filename):
                if scripted.times is not None:
                    scripted.times -= 1
                    if scripted.times <= 0:
                        self._scripted.remove(scripted)
                return scripted.outcome
        if shared is None or shared.locked:
            return "Rejected"  # not shared, or only for buddies
        if size != shared.size:
            return "Aborted"
        return PEER_BEHAVIOUR_OUTCOMES.get(self.peers.peers[username].behaviour, "Succeeded")

    def _new_transfer(self, username: str, filename: str, size: int) -> Transfer:
        shared = self.peers.find(username, filename)
        outcome = self._outcome_for(username, filename, size, shared)
        peer = self.peers.peers[username]
        step = self.transfer_step_seconds
        start = time.monotonic()
        queued = step * (1 if peer.has_free_upload_slot else 4)
        phases = {
            "Rejected": [(start + step, "Completed, Rejected")],
            "TimedOut": [(start + step, "Queued, Remotely"), (start + step + queued, "Completed, TimedOut")],
            "Aborted": [(start + step, "Queued, Remotely"), (start + step + queued, "Initializing"),
                        (start + 2 * step + queued, "Completed, Aborted")],
        }.get(outcome, [
            (start + step, "Queued, Remotely"),
            (start + step + queued, "Initializing"),
            (start + 2 * step + queued, "InProgress"),
            # An errored transfer breaks off halfway through.
            (start + (3 if outcome == "Errored" else 4) * step + queued,
             "Completed, Errored" if outcome == "Errored" else "Completed, Succeeded"),
        ])
        transfer = Transfer(str(uuid.uuid4()), username, filename, size, outcome, shared, utc_now(), phases,
                            transfer_seconds=2 * step, place_in_queue=peer.queue_length + 1)
        if outcome == "Aborted":
            remote_size = shared.size if shared else 0
            transfer.exception = f"Transfer aborted: remote size {remote_size} does not match expected size {size}"
        return transfer

    def _run_transfers(self) -> None:
        """Advance transfers through their phases; write files outside the lock."""
        while True:
            with self._wake:
                if self._closed:
                    return
                now = time.monotonic()
                to_write = []
                for transfer in self._transfers:
                    while transfer.phases and transfer.phases[0][0] <= now and not transfer.is_complete:
                        _, state = transfer.phases[0]
                        if state == "Completed, Succeeded":
                            to_write.append(transfer)  # the file is written first, outside the lock
                            break
                        transfer.phases.pop(0)
                        self._enter(transfer, state)
                upcoming = [t.phases[0][0] for t in self._transfers
                            if t.phases and not t.is_complete and t not in to_write]
                if not to_write:
                    self._wake.wait(max(0.005, min(upcoming) - now) if upcoming else 0.5)
                    continue
            for transfer in to_write:
                self._finish_download(transfer)

    def _enter(self, transfer: Transfer, state: str) -> None:
        """Apply one state change (lock held)."""
        moment = utc_now()
        transfer.state = state
        if state == "Queued, Remotely":
            transfer.enqueued_at = moment
        elif state == "InProgress":
            transfer.started_at, transfer.started_clock = moment, time.monotonic()
        elif state.startswith("Completed"):
            transfer.bytes_transferred = transfer.progress(time.monotonic())
            transfer.ended_at = moment
            transfer.place_in_queue = None
            outcome = state.split(", ", 1)[1]
            if transfer.exception is None and outcome in OUTCOME_EXCEPTIONS:
                transfer.exception = OUTCOME_EXCEPTIONS[outcome]
            if outcome == "Succeeded":
                transfer.bytes_transferred = transfer.size
        self._wake.notify_all()

    def _finish_download(self, transfer: Transfer) -> None:
        extension = transfer.filename.rsplit(".", 1)[-1].lower() if "." in transfer.filename else ""
        with self._state_lock:
            destination = local_destination(self.downloads_dir, transfer.filename)
        partial = self.incomplete_dir / transfer.username / f"{transfer.id}.{extension or 'bin'}"
        partial.parent.mkdir(parents=True, exist_ok=True)
        write_download(partial, transfer.shared, extension, corrupt=transfer.outcome == "Corrupt",
                       catalog=self.catalog, outcome=transfer.outcome, filename=transfer.filename)
        with self._wake:
            if transfer.is_complete:  # cancelled while the file was being written
                partial.unlink(missing_ok=True)
                return
            destination = local_destination(self.downloads_dir, transfer.filename)  # may have appeared since
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, destination)
            transfer.local_path = destination
            transfer.phases.clear()
            self._enter(transfer, "Completed, Succeeded")
            self._emit_completion_events(transfer)

    def _remote_local_name(self, path: Path) -> str:
        """The file name as the slskd host sees it (`/app/downloads/...` in the official image)."""
        if not self.remote_downloads_dir:
            return str(path)
        relative = path.relative_to(self.downloads_dir).as_posix()
        return f"{self.remote_downloads_dir.rstrip('/')}/{relative}"

    def _emit_completion_events(self, transfer: Transfer) -> None:
        assert transfer.local_path is not None
        now = time.monotonic()
        version = version_tuple(self.version)
        self._events.append(Event(str(uuid.uuid4()), utc_now(), "DownloadFileComplete", {
            "version": 0,
            "localFilename": self._remote_local_name(transfer.local_path),
            "remoteFilename": transfer.filename,
            "transfer": transfer.to_json(version, now),
        }))
        siblings = [t for t in self._transfers if t.username == transfer.username and t.directory == transfer.directory
                    and not t.removed]
        if all(t.state == "Completed, Succeeded" for t in siblings):
            self._events.append(Event(str(uuid.uuid4()), utc_now(), "DownloadDirectoryComplete", {
                "version": 0,
                "localDirectoryName": self._remote_local_name(transfer.local_path.parent),
                "remoteDirectoryName": transfer.directory,
                "username": transfer.username,
            }))

    def _visible_transfers(self, request: Request, username: str | None = None) -> list[Transfer]:
        include_removed = query_bool(request, "includeRemoved")
        return [t for t in self._transfers
                if (include_removed or not t.removed) and (username is None or t.username == username)]

    def _user_json(self, username: str, transfers: list[Transfer]) -> dict[str, Any]:
        version, now = version_tuple(self.version), time.monotonic()
        directories: dict[str, list[Transfer]] = {}
        for transfer in transfers:
            directories.setdefault(transfer.directory, []).append(transfer)
        return {
            "username": username,
            "directories": [
                {"directory": name, "fileCount": len(files), "files": [t.to_json(version, now) for t in files]}
                for name, files in directories.items()
            ],
        }

    def _list_downloads(self, request: Request) -> Response:
        with self._state_lock:
            by_user: dict[str, list[Transfer]] = {}
            for transfer in self._visible_transfers(request):
                by_user.setdefault(transfer.username, []).append(transfer)
            return json_response([self._user_json(name, transfers) for name, transfers in by_user.items()])

    def _user_downloads(self, request: Request) -> Response:
        username = request.params["username"]
        with self._state_lock:
            transfers = self._visible_transfers(request, username)
            return json_response(self._user_json(username, transfers)) if transfers else empty_response(404)

    def _find_transfer(self, request: Request) -> Transfer | Response:
        transfer_id = request.params["id"]
        if not _GUID.match(transfer_id):
            return json_string(f"The value '{transfer_id}' is not valid.", 400)
        wanted = str(uuid.UUID(transfer_id))
        for transfer in self._transfers:
            if transfer.id == wanted and transfer.username == request.params["username"]:
                return transfer
        return empty_response(404)

    def _get_download(self, request: Request) -> Response:
        with self._state_lock:
            found = self._find_transfer(request)
            if isinstance(found, Response):
                return found
            return json_response(found.to_json(version_tuple(self.version), time.monotonic()))

    def _queue_position(self, request: Request) -> Response:
        with self._state_lock:
            found = self._find_transfer(request)
            if isinstance(found, Response):
                return found
            return json_response(found.place_in_queue if found.state == "Queued, Remotely" else 0)

    def _cancel_download(self, request: Request) -> Response:
        with self._wake:
            found = self._find_transfer(request)
            if isinstance(found, Response):
                return found
            if not found.is_complete:
                found.phases.clear()
                self._enter(found, "Completed, Cancelled")
                found.exception = "Operation cancelled"
            if query_bool(request, "remove"):
                found.removed = True
        return empty_response(204)

    def _remove_completed(self, request: Request) -> Response:
        with self._state_lock:
            for transfer in self._transfers:
                if transfer.is_complete:
                    transfer.removed = True
        return empty_response(204)

    # -- events ---------------------------------------------------------------------------------
    def _list_events(self, request: Request) -> Response:
        try:
            offset = int(request.query.get("offset", 0))
            limit = int(request.query.get("limit", 100))
        except ValueError:
            return json_string("offset and limit must be integers.", 400)
        if offset < 0 or limit < 1:
            return json_string("offset must be >= 0 and limit >= 1.", 400)
        with self._state_lock:
            newest_first = list(reversed(self._events))
            page = [event.to_json() for event in newest_first[offset : offset + limit]]
            total = len(newest_first)
        return json_response(page, headers={"X-Total-Count": str(total)})

    # -- admin ----------------------------------------------------------------------------------
    def _admin_slskd(self, request: Request) -> Response:
        what = request.path.rstrip("/").lower().removeprefix("/_sandbox/slskd/")
        if what == "outcomes":
            if request.method == "POST":
                payload = request.json() or {}
                try:
                    self.script_outcome(payload["outcome"], username=payload.get("username"),
                                        filename=payload.get("filename"), times=payload.get("times", 1))
                except (KeyError, ValueError) as error:
                    return json_response({"error": str(error)}, 400)
            elif request.method == "DELETE":
                self.clear_scripted_outcomes()
            with self._state_lock:
                return json_response([s.to_json() for s in self._scripted])
        if what == "switches":
            if request.method == "POST":
                payload = request.json() or {}
                self.version = str(payload.get("version", self.version))
                self.logged_in = bool(payload.get("loggedIn", self.logged_in))
                self.offline_peers = set(payload.get("offlinePeers", self.offline_peers))
                if payload.get("busyNextSearchPost"):
                    self.busy_next_search_post()
            return json_response({"version": self.version, "loggedIn": self.logged_in,
                                  "busyNextSearchPost": self._busy_next_search_post,
                                  "offlinePeers": sorted(self.offline_peers)})
        if what == "truth":
            username, filename = request.query.get("username", ""), request.query.get("filename", "")
            return json_response({"trackId": self.is_correct(username, filename)})
        if what == "scenarios":
            return json_response({"tracksWithoutCorrectFile": sorted(self.peers.tracks_without_correct_file),
                                  "lockedOnlyTracks": sorted(self.peers.locked_only_track_ids)})
        return json_response({"error": "unknown admin route"}, 404)


# ------------------------------------------------------------------------------------------------
# Sandbox plug-in hooks (see harmony_pipeline/sandbox/__init__.py)
# ------------------------------------------------------------------------------------------------
SANDBOX_OPTIONS = ("api_key", "version", "remote_downloads_dir", "url_base", "search_seconds",
                   "search_post_seconds", "transfer_step_seconds")


def create_emulator(sandbox: Any) -> SlskdEmulator:
    """slskd over the sandbox's catalog; options `slskd_<name>` for each name in SANDBOX_OPTIONS."""
    options = {name: sandbox.options[f"slskd_{name}"] for name in SANDBOX_OPTIONS if f"slskd_{name}" in sandbox.options}
    folder = Path(sandbox.root_dir) / "slskd"
    return SlskdEmulator(sandbox.catalog, folder / "downloads", incomplete_dir=folder / "incomplete",
                         seed=sandbox.seed, **options)


def environment(sandbox: Any, base_url: str) -> dict[str, str]:
    emulator = sandbox.emulator("slskd")
    assert isinstance(emulator, SlskdEmulator)
    return emulator.environment(base_url)
