"""`harmony spotify login`: the authorization-code flow with PKCE on the loopback redirect.

The redirect must be a loopback IP literal (Spotify rejects `localhost` since November 2025). The
refresh token lands in the token cache under HARMONY_DATA_DIR with mode 0600; it is never printed.
"""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from harmony_pipeline.settings import Settings


class LoginError(Exception):
    pass


def _connection(settings: Settings):
    from harmony_pipeline.spotify.client import SpotifyConnection  # spotipy only when logging in

    # PKCE: the login needs no client secret nor an earlier refresh token
    return SpotifyConnection.from_settings(settings, client_secret=None, refresh_token=None)


def wait_for_code(redirect_uri: str, timeout: float = 300.0,
                  listening: threading.Event | None = None) -> tuple[str, str | None]:
    """Serve the redirect URI until Spotify's callback arrives; return (code, state) from its query."""
    target = urlparse(redirect_uri)
    if target.hostname not in {"127.0.0.1", "::1"}:
        raise LoginError(
            f"SPOTIFY_REDIRECT_URI={redirect_uri!r}: use a loopback IP such as http://127.0.0.1:8888/callback"
        )
    result: dict[str, str | None] = {}

    class Callback(BaseHTTPRequestHandler):
        timeout = 10  # a browser's idle pre-connection must not block the login

        def do_GET(self):  # noqa: N802 - http.server naming
            url = urlparse(self.path)
            if url.path != (target.path or "/"):
                self.send_response(404)  # e.g. /favicon.ico: keep waiting for the callback
                self.end_headers()
                return
            query = parse_qs(url.query)
            result["code"] = (query.get("code") or [None])[0]
            result["state"] = (query.get("state") or [None])[0]
            result["error"] = (query.get("error") or [None])[0]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write("Harmony Pipeline is authorised. You can close this window.".encode())

        def log_message(self, *args):  # keep the terminal quiet
            pass

    class LoopbackServer(HTTPServer):
        address_family = socket.AF_INET6 if target.hostname == "::1" else socket.AF_INET

    server = LoopbackServer((target.hostname, target.port or 80), Callback)
    if listening is not None:
        listening.set()
    deadline = time.monotonic() + timeout
    try:
        while not result and time.monotonic() < deadline:
            server.timeout = max(0.1, deadline - time.monotonic())
            server.handle_request()
    finally:
        server.server_close()
    if result.get("error"):
        raise LoginError(f"Spotify refused the authorisation: {result['error']}")
    if not result.get("code"):
        raise LoginError("no authorisation code arrived before the time-out")
    return result["code"], result.get("state")


def login(settings: Settings, *, open_browser: bool = True, echo: Callable[[str], None] = print,
          approve: Callable[[str], None] | None = None) -> None:
    """Run the PKCE flow. `approve(url)` replaces the browser (tests and the sandbox approve at once)."""
    manager = _connection(settings).pkce_login_manager()
    url = manager.get_authorize_url()
    echo(f"Open this address to authorise Harmony Pipeline:\n  {url}")
    holder: dict[str, object] = {}

    listening = threading.Event()

    def receive() -> None:
        try:
            holder["code"] = wait_for_code(settings.spotify_redirect_uri, listening=listening)
        except Exception as error:  # reported below, in the caller's thread
            holder["error"] = error
        finally:
            listening.set()

    listener = threading.Thread(target=receive, daemon=True)
    listener.start()
    listening.wait()  # the redirect must find the callback's port open, however fast the approval
    if approve is not None:
        approve(url)
    elif open_browser:
        webbrowser.open(url)
    listener.join()
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    code, state = holder["code"]  # type: ignore[misc]
    if manager.state and state != manager.state:
        raise LoginError("the callback's state does not match: the login was not started here")
    manager.get_access_token(code=code, check_cache=False)
    echo(f"Authorised. Refresh token cached in {settings.token_cache_path} (mode 0600).")
