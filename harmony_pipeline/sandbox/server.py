"""A small HTTP framework for the sandbox emulators (standard library only).

An `Emulator` registers routes (method + path template) and answers `Request`s with `Response`s.
The framework adds what every emulator needs: a request log, fault injection per path pattern
(status with optional `Retry-After`, delay, a number of times or always), a global latency switch
and admin routes under `/_sandbox/` so another process can switch faults at runtime:

- `GET /_sandbox/faults` lists active faults; `POST` with a fault object adds one, with
  `{"clear": true}` clears all, with `{"clear": "<pattern>"}` clears one pattern; `DELETE` clears all.
- `GET /_sandbox/requests` returns the request log; `DELETE` empties it.
- `GET /_sandbox/latency` / `POST {"seconds": 0.5}` read / set a delay added to every request.

Admin requests are neither logged nor subject to faults or latency.
`serve(emulator, port=0)` runs one emulator on 127.0.0.1 in a daemon thread.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from requests.structures import CaseInsensitiveDict

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/_sandbox/"
_TEMPLATE_FIELD = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


@dataclass
class Request:
    """One incoming request as handlers see it."""

    method: str
    path: str  # raw (still percent-encoded) path without the query string
    query: dict[str, str]  # first value of each query parameter
    query_lists: dict[str, list[str]]
    headers: CaseInsensitiveDict
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # decoded path-template fields
    base_url: str = ""  # scheme://host:port this request reached, for absolute links

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """The `application/x-www-form-urlencoded` body, first value of each field."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {name: values[0] for name, values in parsed.items()}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Response(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def bytes_response(data: bytes, content_type: str, status: int = 200) -> Response:
    return Response(status, data, {"Content-Type": content_type})


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status, b"", dict(headers or {}))


def redirect_response(location: str, status: int = 307) -> Response:
    return Response(status, b"", {"Location": location})


@dataclass
class Fault:
    """An injected failure or delay for requests whose path (trailing slash removed) matches
    `pattern` (a regex, searched).

    `status` None means "answer normally after `delay` seconds". `times` None means always;
    otherwise the fault fires that many times and then disappears.
    """

    pattern: str = ""
    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    times: int | None = None
    method: str | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return re.search(self.pattern, path) is not None


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    time: float  # seconds since the epoch when the request arrived

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = self.body.decode("utf-8", errors="replace")
        return data


@dataclass
class Route:
    method: str
    regex: re.Pattern[str]
    handler: Callable[[Request], Response]


def compile_template(template: str, *, case_insensitive: bool = False) -> re.Pattern[str]:
    """`/v1/playlists/{playlist_id}/items` → regex; `{name:regex}` sets a field's own regex."""
    parts: list[str] = []
    position = 0
    for match in _TEMPLATE_FIELD.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        parts.append(f"(?P<{match.group(1)}>{match.group(2) or '[^/]+?'})")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts), re.IGNORECASE if case_insensitive else 0)


class Emulator:
    """Base class of every sandbox emulator.

    Subclasses register routes in `__init__` with `add_route` and may override `error_response`
    to give framework-generated errors (404, 405, 500, injected faults) the service's own body shape.
    """

    name = "emulator"
    case_insensitive_routes = False

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.latency = 0.0
        self.base_url = ""  # set by serve()
        self._faults: list[Fault] = []
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()

    # -- routes -------------------------------------------------------------------------------
    def add_route(
        self,
        method: str,
        template: str,
        handler: Callable[[Request], Response],
        *,
        case_insensitive: bool | None = None,
    ) -> None:
        """Register `handler` for `method` on `template`; a trailing slash is always tolerated."""
        insensitive = self.case_insensitive_routes if case_insensitive is None else case_insensitive
        regex = compile_template(template.rstrip("/") or "/", case_insensitive=insensitive)
        self.routes.append(Route(method.upper(), regex, handler))

    def error_response(self, status: int, message: str) -> Response:
        """The body of framework-generated errors; override for the service's shape."""
        return json_response({"error": message}, status)

    # -- faults, latency, log -----------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self, pattern: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if pattern is not None and f.pattern != pattern]

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # -- dispatch -----------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        """Apply latency and faults, then route; log the outcome."""
        arrived = time.time()
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        if self.latency:
            time.sleep(self.latency)
        # Patterns see the path without a trailing slash, as routes do ("/v1/me/" is "/v1/me").
        fault = self._take_fault(request.method, request.path.rstrip("/") or "/")
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status is not None:
            response = self.error_response(fault.status, fault.message or HTTPStatus(fault.status).phrase)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
        else:
            response = self._route(request)
        with self._lock:
            self._log.append(
                LoggedRequest(
                    request.method,
                    request.path,
                    request.query,
                    dict(request.headers),
                    request.body,
                    response.status,
                    arrived,
                )
            )
        return response

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        method = "GET" if request.method == "HEAD" else request.method
        path_matched = False
        for route in self.routes:
            match = route.regex.fullmatch(path)
            if not match:
                continue
            path_matched = True
            if route.method != method:
                continue
            request.params = {name: unquote(value) for name, value in match.groupdict().items()}
            try:
                return route.handler(request)
            except Exception:  # an emulator bug must surface as a 500, not a dropped connection
                logger.exception("%s: handler failed for %s %s", self.name, request.method, request.path)
                return self.error_response(500, "Internal Server Error")
        if path_matched:
            return self.error_response(405, "Method Not Allowed")
        return self.error_response(404, "Not Found")

    def _admin(self, request: Request) -> Response:
        what = request.path[len(ADMIN_PREFIX) :].rstrip("/")
        if what == "faults":
            if request.method == "POST":
                payload = request.json() or {}
                if "clear" in payload:
                    clear = payload["clear"]
                    self.clear_faults(None if clear is True else str(clear))
                else:
                    self.add_fault(Fault(**payload))
            elif request.method == "DELETE":
                self.clear_faults()
            return json_response([asdict(fault) for fault in self.faults])
        if what == "requests":
            if request.method == "DELETE":
                self.clear_requests()
            return json_response([entry.to_dict() for entry in self.requests()])
        if what == "latency":
            if request.method == "POST":
                self.latency = float((request.json() or {}).get("seconds", 0))
            return json_response({"seconds": self.latency})
        return json_response({"error": "unknown admin route"}, 404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Drop kept-alive client connections so no handler thread outlives `stop()`."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real services
    server: _Server

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query_lists = parse_qs(parts.query, keep_blank_values=True)
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = Request(
            method=self.command,
            path=parts.path,
            query={name: values[0] for name, values in query_lists.items()},
            query_lists=query_lists,
            headers=CaseInsensitiveDict(self.headers.items()),
            body=body,
            base_url=f"http://{host}",
        )
        response = self.server.emulator.dispatch(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:  # the request log replaces access logs
        pass


@dataclass
class RunningServer:
    emulator: Emulator
    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.close_open_connections()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(emulator: Emulator, port: int = 0) -> RunningServer:
    """Start `emulator` on 127.0.0.1:`port` (0 = ephemeral) in a daemon thread."""
    server = _Server(("127.0.0.1", port), emulator)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{emulator.name}", daemon=True
    )
    running = RunningServer(emulator, server, thread)
    emulator.base_url = running.base_url
    thread.start()
    return running
