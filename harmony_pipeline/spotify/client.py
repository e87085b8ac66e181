"""Spotify Web API client through spotipy, following the 2026 platform rules (api-contracts.md §2).

- User authorisation: a refresh token from SPOTIFY_REFRESH_TOKEN or from the token cache written by
  `harmony spotify login` (authorization code + PKCE, mode 0600). Without one, an app-only token
  (client credentials) still serves search, tracks, albums and artists.
- 429: spotipy's own retry would sleep for any Retry-After (hours after a request storm); here the
  client waits for Retry-After only up to a cap and then raises `SpotifyRateLimited` with the time
  the limit ends, so a run fails visibly instead of hanging. 5xx are retried by urllib3's Retry.
- No batch endpoints: one request per track / album / artist; harmony_pipeline.spotify.cache caches them.

Plain code (no Dagster): `harmony watch` and `harmony spotify login` use it directly; resources/spotify.py
is the Dagster resource that builds a `SpotifyConnection` from its fields.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dataclasses import dataclass

import requests
import spotipy
from requests.adapters import HTTPAdapter
from requests_cache import DO_NOT_CACHE
from spotipy.cache_handler import CacheHandler, MemoryCacheHandler
from urllib3.util.retry import Retry

from harmony_pipeline.http_cache import HttpCache, network_requests, retrying_session

USER_SCOPES = "playlist-read-private playlist-read-collaborative user-follow-read user-library-read"
PLAYLIST_PAGE_LIMIT = 50  # dev-mode maximum for /playlists/{id}/items
SEARCH_LIMIT = 10  # dev-mode maximum for /search
ARTIST_ALBUMS_LIMIT = 10  # dev-mode maximum for /artists/{id}/albums
NOT_FOUND_TTL = timedelta(days=1)  # a 404 of a cached lookup is remembered this long
NO_CREDENTIALS = ("no Spotify credentials: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET, then run "
                  "`harmony spotify login` or set SPOTIFY_REFRESH_TOKEN")


class SpotifyError(RuntimeError):
    """A Spotify request failed; `status` is the HTTP status (or -1 without one).

    `stops_asking`: the refusal concerns the whole service (harmony_pipeline.service_errors.stops_asking)."""

    stops_asking = False

    def __init__(self, message: str, status: int = -1):
        super().__init__(message)
        self.status = status


class SpotifyForbidden(SpotifyError):
    """403: for playlists this means the authorised user neither owns nor collaborates on it."""


class SpotifyNotFound(SpotifyError):
    pass


class SpotifyRateLimited(SpotifyError):
    stops_asking = True

    def __init__(self, until: datetime):
        super().__init__(f"Spotify rate-limited until {until.isoformat(timespec='seconds')}", 429)
        self.until = until


class SpotifyNotAuthorised(SpotifyError):
    stops_asking = True


class FileTokenCache(CacheHandler):
    """spotipy token cache in a file readable only by its owner (mode 0600)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def get_cached_token(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def save_token_to_cache(self, token_info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(token_info, handle)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def _retry() -> Retry:
    # 429 is left to SpotifyApi (Retry-After can be hours); transient 5xx are retried here.
    return Retry(
        total=3,
        status=3,
        connect=3,
        read=0,
        backoff_factor=0.5,
        backoff_jitter=0.3,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=False,
        raise_on_status=False,
    )


class _BearerAdapter(HTTPAdapter):
    """Adds the access token to requests that reach Spotify: an answer from the response cache needs no
    token, so a run whose answers are all cached never asks the accounts service (nor needs credentials)."""

    def __init__(self, token: Callable[[], str], **kwargs: Any):
        super().__init__(**kwargs)
        self._token = token

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.headers["Authorization"] = f"Bearer {self._token()}"
        return super().send(request, **kwargs)


def _retrying_session(cache: HttpCache | None = None, api_url: str = "",
                      token: Callable[[], str] | None = None) -> requests.Session:
    adapter = _BearerAdapter(token, max_retries=_retry()) if token else None
    if cache is None:
        return retrying_session(_retry(), None, adapter=adapter)
    from harmony_pipeline.spotify.cache import expiry_patterns  # the per-endpoint expiry lives with the cache

    return retrying_session(_retry(), None, cache=cache, expire_after=DO_NOT_CACHE,  # what no pattern names
                            urls_expire_after=expiry_patterns(api_url), miss_expire_after=NOT_FOUND_TTL,
                            adapter=adapter)


def _with_urls(cls: type, token_url: str, auth_url: str) -> type:
    """The auth manager class with its endpoints pointed at the configured accounts service."""
    return type(cls.__name__, (cls,), {"OAUTH_TOKEN_URL": token_url, "OAUTH_AUTHORIZE_URL": auth_url})


class SpotifyApi:
    """The calls the pipeline makes, with error mapping, paging by `next` and a request counter."""

    def __init__(
        self,
        client: spotipy.Spotify,
        *,
        user_authorised: bool,
        max_wait_seconds: float = 30.0,
        max_rate_limit_waits: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.sp = client
        self.user_authorised = user_authorised
        self.max_wait_seconds = max_wait_seconds
        self.max_rate_limit_waits = max_rate_limit_waits
        self.sleep = sleep
        self._calls = 0
        self.seconds_spent = 0.0  # wall time inside Spotify calls, for materialization metadata

    @property
    def requests_made(self) -> int:
        """Requests that reached Spotify (answers from the response cache do not count)."""
        counted = network_requests(self.sp._session)
        return self._calls if counted is None else counted

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        waits = 0
        while True:
            self._calls += 1
            started = time.monotonic()
            try:
                return method(*args, **kwargs)
            except spotipy.SpotifyException as error:
                status = error.http_status
                if status == 429:
                    retry_after = _retry_after_seconds(error.headers)
                    if retry_after > self.max_wait_seconds or waits >= self.max_rate_limit_waits:
                        raise SpotifyRateLimited(
                            datetime.now(timezone.utc) + timedelta(seconds=retry_after)
                        ) from None
                    waits += 1
                    self.sleep(retry_after)
                    continue
                message = _error_message(error)
                if status == 403:
                    raise SpotifyForbidden(message, 403) from None
                if status == 404:
                    raise SpotifyNotFound(message, 404) from None
                if status == 401:
                    raise SpotifyNotAuthorised(message, 401) from None
                raise SpotifyError(message, status) from None
            except spotipy.SpotifyOauthError as error:
                raise SpotifyNotAuthorised(f"Spotify authorisation failed: {error.error_description or error}") from None
            except requests.RequestException as error:
                raise SpotifyError(f"Spotify unreachable: {type(error).__name__}") from None
            finally:
                self.seconds_spent += time.monotonic() - started

    def pages(self, first_page: dict | None) -> Iterator[dict]:
        """Every item of a paging object and its followers (always follow `next`)."""
        page = first_page
        while page:
            yield from page.get("items") or []
            if not page.get("next"):
                return
            page = self._call(self.sp.next, page)

    # --- endpoints -------------------------------------------------------------------------------
    def me(self) -> dict:
        return self._call(self.sp.me)

    def playlist(self, playlist_id: str) -> dict:
        return self._call(self.sp.playlist, playlist_id, additional_types=("track",))

    def playlist_items(self, playlist_id: str) -> Iterator[dict]:
        first = self._call(
            self.sp.playlist_items, playlist_id, limit=PLAYLIST_PAGE_LIMIT, additional_types=("track",)
        )
        return self.pages(first)

    def saved_tracks_page(self) -> dict:
        """The first page of the user's Liked Songs (`/me/tracks`, newest first); `pages()` walks on."""
        return self._call(self.sp.current_user_saved_tracks, limit=50)

    def track(self, track_id: str) -> dict:
        return self._call(self.sp.track, track_id)

    def album(self, album_id: str) -> dict:
        return self._call(self.sp.album, album_id)

    def album_tracks(self, album: dict) -> list[dict]:
        """All simplified tracks of a full album object, following the embedded page's `next`."""
        return list(self.pages(album.get("tracks")))

    def artist(self, artist_id: str) -> dict:
        return self._call(self.sp.artist, artist_id)

    def artist_albums_page(self, artist_id: str, include_groups: str = "album,single") -> dict:
        """The first page of the artist's albums: a paging object with `total` and `next`."""
        return self._call(
            self.sp.artist_albums, artist_id, include_groups=include_groups, limit=ARTIST_ALBUMS_LIMIT
        )

    def artist_albums(self, artist_id: str, include_groups: str = "album,single") -> list[dict]:
        return list(self.pages(self.artist_albums_page(artist_id, include_groups)))

    def search_tracks(self, query: str, limit: int = SEARCH_LIMIT) -> list[dict]:
        result = self._call(self.sp.search, q=query, type="track", limit=min(limit, SEARCH_LIMIT))
        return (result.get("tracks") or {}).get("items") or []


def _retry_after_seconds(headers: dict | None) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 5.0


def _error_message(error: spotipy.SpotifyException) -> str:
    # spotipy's msg is "<url>:\n <message>"; keep the service's message, drop the URL.
    text = str(error.msg or "").split("\n")[-1].strip()
    return f"Spotify {error.http_status}: {text or error.reason or 'error'}"


@dataclass
class SpotifyConnection:
    """Where and as whom to talk to Spotify (SPOTIFY_*); builds the `SpotifyApi`."""

    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    api_url: str = "https://api.spotify.com/v1/"
    token_url: str = "https://accounts.spotify.com/api/token"
    auth_url: str = "https://accounts.spotify.com/authorize"
    redirect_uri: str = "http://127.0.0.1:8888/callback"
    token_cache_path: str = ".harmony/spotify_token.json"
    max_wait_seconds: float = 30.0
    request_timeout: float = 15.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SpotifyConnection:
        """The connection `harmony_pipeline.settings.Settings` describes."""
        fields = dict(
            client_id=settings.spotify_client_id, client_secret=settings.spotify_client_secret,
            refresh_token=settings.spotify_refresh_token, api_url=settings.spotify_api_url,
            token_url=settings.spotify_token_url, auth_url=settings.spotify_auth_url,
            redirect_uri=settings.spotify_redirect_uri, token_cache_path=str(settings.token_cache_path),
        )
        return cls(**{**fields, **overrides})

    def _cache_handler(self) -> CacheHandler | None:
        if self.refresh_token:
            return MemoryCacheHandler(
                {"access_token": "", "refresh_token": self.refresh_token, "expires_at": 0,
                 "scope": USER_SCOPES, "token_type": "Bearer", "expires_in": 0}
            )
        cache = FileTokenCache(Path(self.token_cache_path))
        if (cache.get_cached_token() or {}).get("refresh_token"):
            return cache
        return None

    def user_auth_manager(self, cache_handler: CacheHandler | None = None):
        """Authorisation-code manager (PKCE when no client secret is configured)."""
        if not self.client_id:
            raise SpotifyNotAuthorised("SPOTIFY_CLIENT_ID is not set")
        handler = cache_handler or FileTokenCache(Path(self.token_cache_path))
        if self.client_secret:
            cls = _with_urls(spotipy.SpotifyOAuth, self.token_url, self.auth_url)
            return cls(client_id=self.client_id, client_secret=self.client_secret,
                       redirect_uri=self.redirect_uri, scope=USER_SCOPES, open_browser=False,
                       cache_handler=handler, requests_session=_retrying_session(),
                       requests_timeout=self.request_timeout)
        cls = _with_urls(spotipy.SpotifyPKCE, self.token_url, self.auth_url)
        return cls(client_id=self.client_id, redirect_uri=self.redirect_uri, scope=USER_SCOPES,
                   open_browser=False, cache_handler=handler, requests_timeout=self.request_timeout)

    def pkce_login_manager(self):
        """The manager `harmony spotify login` uses: authorization code with PKCE, cached at 0600."""
        if not self.client_id:
            raise SpotifyNotAuthorised("SPOTIFY_CLIENT_ID is not set")
        cls = _with_urls(spotipy.SpotifyPKCE, self.token_url, self.auth_url)
        return cls(client_id=self.client_id, redirect_uri=self.redirect_uri, scope=USER_SCOPES,
                   open_browser=False, cache_handler=FileTokenCache(Path(self.token_cache_path)),
                   requests_timeout=self.request_timeout, state=secrets.token_urlsafe(16))

    def get_api(self, cache: HttpCache | None = None) -> SpotifyApi:
        """A new client; with `cache`, GET answers go through the response cache (per-endpoint expiry) and
        missing credentials are reported by the first request that has to reach Spotify."""
        handler = self._cache_handler()
        auth: Any = None
        if handler is not None:
            auth = self.user_auth_manager(handler)
        elif self.client_id and self.client_secret:
            cls = _with_urls(spotipy.SpotifyClientCredentials, self.token_url, self.auth_url)
            auth = cls(client_id=self.client_id, client_secret=self.client_secret,
                       cache_handler=MemoryCacheHandler(), requests_session=_retrying_session(),
                       requests_timeout=self.request_timeout)
        elif cache is None:
            raise SpotifyNotAuthorised(NO_CREDENTIALS)

        def token() -> str:
            if auth is None:
                raise SpotifyNotAuthorised(NO_CREDENTIALS)
            return auth.get_access_token(as_dict=False)

        # spotipy gets no auth manager: the session's adapter adds the token when a request goes out.
        client = spotipy.Spotify(requests_session=_retrying_session(cache, self.api_url, token),
                                 requests_timeout=self.request_timeout, retries=0)
        client.prefix = self.api_url if self.api_url.endswith("/") else self.api_url + "/"
        return SpotifyApi(client, user_authorised=handler is not None, max_wait_seconds=self.max_wait_seconds)
