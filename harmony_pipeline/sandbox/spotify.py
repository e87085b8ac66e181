"""Spotify emulator: the accounts service (token, authorize) and the Web API under `/v1`.

Follows api-contracts.md §2 with the 2026 Development-Mode rules: playlist objects carry `items` /
`item` (or the legacy `tracks` / `track` with `legacy_shape=True`), `/playlists/{id}/items` only for
owners and collaborators (403 otherwise), `limit` ≤ 50 there, ≤ 10 for search and artist albums,
batch gets answer 403. Album images point to `/image/{id}` on this emulator and are real JPEGs.
Errors use Spotify's nested body `{"error": {"status": N, "message": "..."}}`, except the accounts
service, whose errors are flat (`{"error": "invalid_grant", "error_description": "..."}`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlencode, urlsplit

from harmony_pipeline.sandbox.catalog import (
    SPOTIFY_IMAGE_PREFIXES,
    Album,
    Artist,
    Catalog,
    Playlist,
    PlaylistEntry,
    Track,
    spotify_image_ids,
)
from harmony_pipeline.sandbox.images import jpeg_bytes
from harmony_pipeline.sandbox.server import (
    Emulator,
    Request,
    Response,
    bytes_response,
    json_response,
    redirect_response,
)

if TYPE_CHECKING:
    from harmony_pipeline.sandbox import Sandbox

SANDBOX_CLIENT_ID = "harmonysandboxclient0001"
SANDBOX_CLIENT_SECRET = "harmonysandboxsecret0001"
USER_SCOPES = "playlist-read-private playlist-read-collaborative user-follow-read user-library-read"
ARTIST_IMAGE_PREFIXES = {640: "ab6761610000e5eb", 320: "ab67616100005174", 160: "ab6761610000f178"}
_BASE62_ID = re.compile(r"[0-9A-Za-z]{22}")
_QUERY_TOKEN = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')


@dataclass
class _Token:
    user_id: str | None  # None: client-credentials (app only)
    expires_at: float
    scope: str


@dataclass
class _AuthorizationCode:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scope: str


class SpotifyError(Exception):
    """Raised by handlers; becomes the nested error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _normalise(text: str) -> str:
    """Case- and accent-insensitive form used by search."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _is_allowed_redirect(uri: str) -> bool:
    """HTTPS, or a loopback IP literal over HTTP; `localhost` is rejected (since Nov 2025)."""
    parts = urlsplit(uri)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1")


def _parse_fields(spec: str) -> dict[str, Any]:
    """Spotify's `fields` filter: `a,b(c,d.e)` → {"a": {}, "b": {"c": {}, "d": {"e": {}}}}; {} = whole."""
    tree: dict[str, Any] = {}
    stack = [tree]
    name = ""

    def flush() -> None:
        nonlocal name
        if name:
            node = stack[-1]
            for part in name.split("."):
                node = node.setdefault(part, {})
            stack[-1]["__last__"] = node
        name = ""

    for char in spec:
        if char == ",":
            flush()
        elif char == "(":
            flush()
            stack.append(stack[-1].pop("__last__"))
        elif char == ")":
            flush()
            stack.pop()
        else:
            name += char.strip()
    flush()

    def clean(node: dict[str, Any]) -> dict[str, Any]:
        return {key: clean(value) for key, value in node.items() if key != "__last__"}

    return clean(tree)


def _apply_fields(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_apply_fields(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: _apply_fields(value[key], sub) for key, sub in tree.items() if key in value}
    return value


class SpotifyEmulator(Emulator):
    name = "spotify"

    def __init__(
        self,
        catalog: Catalog,
        *,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        token_lifetime: int = 3600,
        legacy_shape: bool = False,
    ) -> None:
        super().__init__()
        self.catalog = catalog
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.legacy_shape = legacy_shape  # Extended-Quota/older shape: `tracks` / `track` keys
        self._tokens: dict[str, _Token] = {}
        self._refresh_tokens: dict[str, tuple[str, str]] = {}  # token → (user id, scope)
        self._codes: dict[str, _AuthorizationCode] = {}
        self._state_lock = threading.Lock()
        # A refresh token issued ahead of time for the sandbox user (SPOTIFY_REFRESH_TOKEN).
        self.user_refresh_token = f"sandbox-refresh-{catalog.seed}-{catalog.me}"
        self._refresh_tokens[self.user_refresh_token] = (catalog.me, USER_SCOPES)
        # The user's Liked Songs, newest first: (track id, added_at). Starts as the small playlist's tracks.
        self.liked: list[tuple[str, str]] = self._initial_liked()

        self.add_route("GET", "/authorize", self.authorize)
        self.add_route("POST", "/api/token", self.token)
        self.add_route("GET", "/image/{image_id}", self.image)
        api: list[tuple[str, Callable[[Request, str | None], Any]]] = [
            ("/v1/me", self.me),
            ("/v1/me/playlists", self.my_playlists),
            ("/v1/me/tracks", self.saved_tracks),
            ("/v1/playlists/{playlist_id}", self.playlist),
            ("/v1/playlists/{playlist_id}/items", self.playlist_items),
            ("/v1/playlists/{playlist_id}/tracks", self.playlist_tracks_legacy),
            ("/v1/tracks/{track_id}", self.track),
            ("/v1/artists/{artist_id}", self.artist),
            ("/v1/artists/{artist_id}/albums", self.artist_albums),
            ("/v1/albums/{album_id}", self.album),
            ("/v1/albums/{album_id}/tracks", self.album_tracks),
            ("/v1/search", self.search),
            ("/v1/tracks", self.removed_batch),
            ("/v1/albums", self.removed_batch),
            ("/v1/artists", self.removed_batch),
        ]
        for template, handler in api:
            self.add_route("GET", template, self._api(handler))

    # -- framework hooks ------------------------------------------------------------------------
    def error_response(self, status: int, message: str) -> Response:
        return json_response({"error": {"status": status, "message": message}}, status)

    def _api(self, handler: Callable[[Request, str | None], Any]) -> Callable[[Request], Response]:
        """Wrap a Web API handler: bearer-token check, JSON body, SpotifyError → nested error."""

        def wrapped(request: Request) -> Response:
            try:
                user_id = self._authenticate(request)
                return json_response(handler(request, user_id))
            except SpotifyError as error:
                return self.error_response(error.status, error.message)

        return wrapped

    # -- Liked Songs ----------------------------------------------------------------------------
    def _initial_liked(self) -> list[tuple[str, str]]:
        playlist = self.catalog.playlists.get(self.catalog.small_playlist_id)
        if playlist is None:
            return []
        entries = [(e.track_id, e.added_at) for e in playlist.entries if e.kind == "track" and e.track_id]
        return sorted(entries, key=lambda entry: entry[1], reverse=True)

    def like(self, track_id: str, added_at: str | None = None) -> None:
        """Save a track to Liked Songs (it comes first, as on Spotify)."""
        stamp = added_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._state_lock:
            self.liked = [(track_id, stamp)] + [entry for entry in self.liked if entry[0] != track_id]

    def unlike(self, track_id: str) -> None:
        with self._state_lock:
            self.liked = [entry for entry in self.liked if entry[0] != track_id]

    # -- tokens ---------------------------------------------------------------------------------
    def issue_access_token(self, user_id: str | None, scope: str = USER_SCOPES) -> str:
        """A bearer token for `user_id` (None: app-only), for tests that skip the OAuth dance."""
        token = "BQ" + secrets.token_urlsafe(48)
        with self._state_lock:
            self._tokens[token] = _Token(user_id, time.time() + self.token_lifetime, scope)
        return token

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (clients must refresh)."""
        with self._state_lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    def _authenticate(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise SpotifyError(401, "No token provided")
        scheme, _, value = header.partition(" ")
        with self._state_lock:
            token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise SpotifyError(401, "Invalid access token")
        if token.expires_at <= time.time():
            raise SpotifyError(401, "The access token expired")
        return token.user_id

    def _client_from_request(self, request: Request, form: dict[str, str]) -> tuple[str | None, bool]:
        """(client id, authenticated with the secret?) from Basic auth or the form body."""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, False
            return client_id, secrets.compare_digest(secret, self.client_secret)
        if "client_secret" in form:
            return form.get("client_id"), secrets.compare_digest(form["client_secret"], self.client_secret)
        return form.get("client_id"), False

    @staticmethod
    def _oauth_error(error: str, description: str, status: int = 400) -> Response:
        return json_response({"error": error, "error_description": description}, status)

    def authorize(self, request: Request) -> Response:
        """Approve at once: redirect to `redirect_uri?code=…&state=…` (no login page)."""
        query = request.query
        if query.get("client_id") != self.client_id:
            return bytes_response(b"INVALID_CLIENT: Invalid client", "text/plain", 400)
        redirect_uri = query.get("redirect_uri", "")
        if not _is_allowed_redirect(redirect_uri):
            return bytes_response(b"INVALID_CLIENT: Invalid redirect URI", "text/plain", 400)
        separator = "&" if "?" in redirect_uri else "?"
        if query.get("response_type") != "code":
            error = {"error": "unsupported_response_type", "state": query.get("state", "")}
            return redirect_response(redirect_uri + separator + urlencode(error), 302)
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method") != "S256":
            error = {"error": "invalid_request", "state": query.get("state", "")}
            return redirect_response(redirect_uri + separator + urlencode(error), 302)
        code = secrets.token_urlsafe(32)
        with self._state_lock:
            self._codes[code] = _AuthorizationCode(self.client_id, redirect_uri, challenge, query.get("scope", ""))
        answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        return redirect_response(redirect_uri + separator + urlencode(answer), 302)

    def token(self, request: Request) -> Response:
        form = request.form()
        client_id, has_secret = self._client_from_request(request, form)
        if client_id != self.client_id:
            return self._oauth_error("invalid_client", "Invalid client")
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if not has_secret:
                return self._oauth_error("invalid_client", "Invalid client secret")
            return self._token_answer(None, "")
        if grant == "authorization_code":
            return self._exchange_code(form, has_secret)
        if grant == "refresh_token":
            with self._state_lock:
                owner = self._refresh_tokens.get(form.get("refresh_token", ""))
            if owner is None:
                return self._oauth_error("invalid_grant", "Invalid refresh token")
            return self._token_answer(owner[0], owner[1])
        if not grant:
            return self._oauth_error("unsupported_grant_type", "grant_type parameter is missing")
        return self._oauth_error("unsupported_grant_type", "grant_type must be client_credentials, authorization_code or refresh_token")

    def _exchange_code(self, form: dict[str, str], has_secret: bool) -> Response:
        with self._state_lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None:
            return self._oauth_error("invalid_grant", "Invalid authorization code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._oauth_error("invalid_grant", "Invalid redirect URI")
        if grant.code_challenge:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.code_challenge:
                return self._oauth_error("invalid_grant", "code_verifier was incorrect")
        elif not has_secret:
            return self._oauth_error("invalid_client", "Invalid client secret")
        refresh_token = "AQ" + secrets.token_urlsafe(48)
        scope = grant.scope or USER_SCOPES
        with self._state_lock:
            self._refresh_tokens[refresh_token] = (self.catalog.me, scope)
        return self._token_answer(self.catalog.me, scope, refresh_token)

    def _token_answer(self, user_id: str | None, scope: str, refresh_token: str | None = None) -> Response:
        body: dict[str, Any] = {
            "access_token": self.issue_access_token(user_id, scope),
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
        }
        if user_id is not None:
            body["scope"] = scope
        if refresh_token:
            body["refresh_token"] = refresh_token
        return json_response(body)

    # -- images ---------------------------------------------------------------------------------
    def image(self, request: Request) -> Response:
        image_id = request.params["image_id"]
        for prefixes in (SPOTIFY_IMAGE_PREFIXES, ARTIST_IMAGE_PREFIXES):
            for size, prefix in prefixes.items():
                if image_id.startswith(prefix) and len(image_id) == len(prefix) + 24:
                    return bytes_response(jpeg_bytes(size, size, image_id[len(prefix) :]), "image/jpeg")
        return bytes_response(b"", "text/plain", 404)

    # -- object shapes --------------------------------------------------------------------------
    def _url(self, request: Request, path: str) -> str:
        return f"{request.base_url}/v1/{path}"

    def _artist_simple(self, request: Request, artist: Artist) -> dict[str, Any]:
        return {
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist.id}"},
            "href": self._url(request, f"artists/{artist.id}"),
            "id": artist.id,
            "name": artist.name,
            "type": "artist",
            "uri": f"spotify:artist:{artist.id}",
        }

    def _album_images(self, request: Request, album: Album) -> list[dict[str, Any]]:
        return [
            {"url": f"{request.base_url}/image/{image_id}", "height": size, "width": size}
            for size, image_id in spotify_image_ids(album).items()
        ]

    def _album_simple(self, request: Request, album: Album, artist_id: str | None = None) -> dict[str, Any]:
        data = {
            "album_type": album.album_type,
            "total_tracks": len(album.track_ids),
            "external_urls": {"spotify": f"https://open.spotify.com/album/{album.id}"},
            "href": self._url(request, f"albums/{album.id}"),
            "id": album.id,
            "images": self._album_images(request, album),
            "name": album.name,
            "release_date": album.release_date,
            "release_date_precision": album.release_date_precision,
            "type": "album",
            "uri": f"spotify:album:{album.id}",
            "artists": [self._artist_simple(request, a) for a in self.catalog.album_artists(album)],
        }
        if self.legacy_shape and artist_id:
            data["album_group"] = _album_group(album, artist_id)
        return data

    def _track_simple(self, request: Request, track: Track) -> dict[str, Any]:
        return {
            "artists": [self._artist_simple(request, a) for a in self.catalog.track_artists(track)],
            "disc_number": track.disc_number,
            "duration_ms": track.duration_ms,
            "explicit": track.explicit,
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track.id}"},
            "href": self._url(request, f"tracks/{track.id}"),
            "id": track.id,
            "is_local": False,
            "name": track.name,
            "track_number": track.track_number,
            "type": "track",
            "uri": f"spotify:track:{track.id}",
        }

    def _track_full(self, request: Request, track: Track) -> dict[str, Any]:
        album = self.catalog.albums[track.album_id]
        return {
            **self._track_simple(request, track),
            "album": self._album_simple(request, album),
            "external_ids": {"isrc": track.isrc},
        }

    def _local_item(self, entry: PlaylistEntry) -> dict[str, Any]:
        artist, _, title = entry.local_name.partition(" - ")
        return {
            "album": {"name": "", "id": None, "type": "album", "uri": None, "artists": [], "images": []},
            "artists": [{"name": artist, "id": None, "type": "artist", "uri": None, "href": None}],
            "disc_number": 0,
            "duration_ms": 187000,
            "explicit": False,
            "external_ids": {},
            "external_urls": {},
            "href": None,
            "id": None,
            "is_local": True,
            "name": title,
            "track_number": 0,
            "type": "track",
            "uri": f"spotify:local:{_local_uri_part(artist)}::{_local_uri_part(title)}:187",
        }

    def _playlist_entry(self, request: Request, entry: PlaylistEntry) -> dict[str, Any]:
        if entry.kind == "track" and entry.track_id in self.catalog.tracks:
            item: dict[str, Any] | None = self._track_full(request, self.catalog.tracks[entry.track_id])
        elif entry.kind == "local":
            item = self._local_item(entry)
        else:
            item = None
        return {
            "added_at": entry.added_at,
            "added_by": {
                "external_urls": {"spotify": f"https://open.spotify.com/user/{entry.added_by}"},
                "href": self._url(request, f"users/{entry.added_by}"),
                "id": entry.added_by,
                "type": "user",
                "uri": f"spotify:user:{entry.added_by}",
            },
            "is_local": entry.kind == "local",
            "primary_color": None,
            ("track" if self.legacy_shape else "item"): item,
        }

    def _owner(self, request: Request, user_id: str) -> dict[str, Any]:
        user = self.catalog.users[user_id]
        return {
            "display_name": user.display_name,
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user.id}"},
            "href": self._url(request, f"users/{user.id}"),
            "id": user.id,
            "type": "user",
            "uri": f"spotify:user:{user.id}",
        }

    def _playlist_base(self, request: Request, playlist: Playlist) -> dict[str, Any]:
        return {
            "collaborative": playlist.collaborative,
            "description": playlist.description,
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist.id}"},
            "href": self._url(request, f"playlists/{playlist.id}"),
            "id": playlist.id,
            "images": [],
            "name": playlist.name,
            "owner": self._owner(request, playlist.owner_id),
            "public": playlist.public,
            "snapshot_id": playlist.snapshot_id,
            "type": "playlist",
            "uri": f"spotify:playlist:{playlist.id}",
        }

    def _page(
        self,
        request: Request,
        path: str,
        items: list[Any],
        offset: int,
        limit: int,
        render: Callable[[Any], Any],
        *,
        embedded: bool = False,
    ) -> dict[str, Any]:
        """A paging object whose `href`/`next`/`previous` are absolute URLs back to this emulator.

        Links repeat the request's own parameters (q, type, include_groups…) unless the page is
        embedded in another object (a playlist's items, an album's tracks).
        """
        extra = {} if embedded else {k: v for k, v in request.query.items() if k not in ("offset", "limit")}

        def link(at: int) -> str:
            return f"{self._url(request, path)}?{urlencode({**extra, 'offset': at, 'limit': limit})}"

        total = len(items)
        return {
            "href": link(offset),
            "items": [render(item) for item in items[offset : offset + limit]],
            "limit": limit,
            "next": link(offset + limit) if offset + limit < total else None,
            "offset": offset,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
            "total": total,
        }

    # -- parameter checks -----------------------------------------------------------------------
    @staticmethod
    def _limit_offset(request: Request, default: int, maximum: int) -> tuple[int, int]:
        try:
            limit = int(request.query.get("limit", default))
        except ValueError:
            raise SpotifyError(400, "Invalid limit") from None
        if not 1 <= limit <= maximum:
            raise SpotifyError(400, "Invalid limit")
        try:
            offset = int(request.query.get("offset", 0))
        except ValueError:
            raise SpotifyError(400, "Invalid offset") from None
        if offset < 0:
            raise SpotifyError(400, "Invalid offset")
        return limit, offset

    @staticmethod
    def _checked_id(value: str) -> str:
        if not _BASE62_ID.fullmatch(value):
            raise SpotifyError(400, "Invalid base62 id")
        return value

    def _lookup(self, table: dict[str, Any], value: str) -> Any:
        found = table.get(self._checked_id(value))
        if found is None:
            raise SpotifyError(404, "Resource not found")
        return found

    @staticmethod
    def _require_user(user_id: str | None) -> str:
        if user_id is None:
            raise SpotifyError(401, "Unauthorized.")
        return user_id

    # -- Web API handlers -----------------------------------------------------------------------
    def me(self, request: Request, user_id: str | None) -> dict[str, Any]:
        user = self.catalog.users[self._require_user(user_id)]
        return {**self._owner(request, user.id), "images": []}

    def saved_tracks(self, request: Request, user_id: str | None) -> dict[str, Any]:
        """`/me/tracks`: saved track objects `{added_at, track}`, newest first; needs user-library-read."""
        self._require_user(user_id)
        if "user-library-read" not in self._token_scope(request).split():
            raise SpotifyError(403, "Insufficient client scope")
        limit, offset = self._limit_offset(request, 20, 50)
        with self._state_lock:
            liked = list(self.liked)
        with self.catalog.lock:
            return self._page(request, "me/tracks", liked, offset, limit,
                              lambda entry: {"added_at": entry[1],
                                             "track": self._track_full(request, self.catalog.tracks[entry[0]])})

    def _token_scope(self, request: Request) -> str:
        value = request.headers.get("Authorization", "").partition(" ")[2].strip()
        with self._state_lock:
            token = self._tokens.get(value)
        return token.scope if token else ""

    def my_playlists(self, request: Request, user_id: str | None) -> dict[str, Any]:
        me = self._require_user(user_id)
        limit, offset = self._limit_offset(request, 20, 50)
        key = "tracks" if self.legacy_shape else "items"
        with self.catalog.lock:
            # The user's own playlists and those they follow (here: every playlist in the catalog).
            playlists = sorted(self.catalog.playlists.values(), key=lambda p: p.owner_id != me)

            def render(playlist: Playlist) -> dict[str, Any]:
                href = self._url(request, f"playlists/{playlist.id}/{key}")
                return {**self._playlist_base(request, playlist), key: {"href": href, "total": len(playlist.entries)}}

            return self._page(request, "me/playlists", playlists, offset, limit, render)

    def playlist(self, request: Request, user_id: str | None) -> dict[str, Any]:
        with self.catalog.lock:
            playlist: Playlist = self._lookup(self.catalog.playlists, request.params["playlist_id"])
            data = self._playlist_base(request, playlist)
            # Development mode: nested items only for playlists the user owns or collaborates on.
            if user_id is not None and self.catalog.can_read_items(playlist, user_id):
                key = "tracks" if self.legacy_shape else "items"
                data[key] = self._page(
                    request, f"playlists/{playlist.id}/{key}", list(playlist.entries), 0, 100,
                    lambda entry: self._playlist_entry(request, entry), embedded=True,
                )
        if "fields" in request.query:
            return _apply_fields(data, _parse_fields(request.query["fields"]))
        return data

    def playlist_items(self, request: Request, user_id: str | None) -> dict[str, Any]:
        with self.catalog.lock:
            playlist: Playlist = self._lookup(self.catalog.playlists, request.params["playlist_id"])
            if user_id is None or not self.catalog.can_read_items(playlist, user_id):
                raise SpotifyError(403, "Forbidden")
            limit, offset = self._limit_offset(request, 20, 100 if self.legacy_shape else 50)
            page = self._page(
                request, f"playlists/{playlist.id}/items", list(playlist.entries), offset, limit,
                lambda entry: self._playlist_entry(request, entry),
            )
        if "fields" in request.query:
            return _apply_fields(page, _parse_fields(request.query["fields"]))
        return page

    def playlist_tracks_legacy(self, request: Request, user_id: str | None) -> dict[str, Any]:
        """`/playlists/{id}/tracks` was removed for Development-Mode apps (403)."""
        if not self.legacy_shape:
            raise SpotifyError(403, "Forbidden")
        return self.playlist_items(request, user_id)

    def track(self, request: Request, user_id: str | None) -> dict[str, Any]:
        return self._track_full(request, self._lookup(self.catalog.tracks, request.params["track_id"]))

    def artist(self, request: Request, user_id: str | None) -> dict[str, Any]:
        artist: Artist = self._lookup(self.catalog.artists, request.params["artist_id"])
        tail = hashlib.sha256(artist.id.encode()).hexdigest()[:24]
        return {
            **self._artist_simple(request, artist),
            "genres": list(artist.genres),
            "images": [
                {"url": f"{request.base_url}/image/{prefix}{tail}", "height": size, "width": size}
                for size, prefix in ARTIST_IMAGE_PREFIXES.items()
            ],
        }

    def artist_albums(self, request: Request, user_id: str | None) -> dict[str, Any]:
        artist: Artist = self._lookup(self.catalog.artists, request.params["artist_id"])
        limit, offset = self._limit_offset(request, 10, 10)
        groups_param = request.query.get("include_groups", "album,single,appears_on,compilation")
        groups = [g.strip().lower() for g in groups_param.split(",") if g.strip()]
        order = ["album", "single", "compilation", "appears_on"]
        with self.catalog.lock:
            albums = [
                a for a in self.catalog.albums.values()
                if _album_group(a, artist.id) in groups
                and (artist.id in a.artist_ids or _features(self.catalog, a, artist.id))
            ]
            albums.sort(key=lambda a: a.release_date, reverse=True)
            albums.sort(key=lambda a: order.index(_album_group(a, artist.id)))
            return self._page(
                request, f"artists/{artist.id}/albums", albums, offset, limit,
                lambda album: self._album_simple(request, album, artist.id),
            )

    def album(self, request: Request, user_id: str | None) -> dict[str, Any]:
        album: Album = self._lookup(self.catalog.albums, request.params["album_id"])
        data = {
            **self._album_simple(request, album),
            "copyrights": [{"text": text, "type": kind} for text, kind in album.copyrights],
            "external_ids": {"upc": album.upc},
            "genres": [],
            "tracks": self._page(
                request, f"albums/{album.id}/tracks", self.catalog.album_tracks(album), 0, 50,
                lambda track: self._track_simple(request, track), embedded=True,
            ),
        }
        if self.legacy_shape:
            data["label"] = album.label
        return data

    def album_tracks(self, request: Request, user_id: str | None) -> dict[str, Any]:
        album: Album = self._lookup(self.catalog.albums, request.params["album_id"])
        limit, offset = self._limit_offset(request, 20, 50)
        return self._page(
            request, f"albums/{album.id}/tracks", self.catalog.album_tracks(album), offset, limit,
            lambda track: self._track_simple(request, track),
        )

    def search(self, request: Request, user_id: str | None) -> dict[str, Any]:
        query = request.query.get("q", "").strip()
        if not query:
            raise SpotifyError(400, "No search query")
        types = [t.strip() for t in request.query.get("type", "").split(",") if t.strip()]
        if not types:
            raise SpotifyError(400, "Missing parameter type")
        if any(t not in ("track", "album", "artist") for t in types):
            raise SpotifyError(400, "Unsupported search type")
        limit, offset = self._limit_offset(request, 5, 10)
        if offset + limit > 1000:
            raise SpotifyError(400, "Invalid offset")
        filters, words = _parse_query(query)
        result: dict[str, Any] = {}
        with self.catalog.lock:
            if "track" in types:
                tracks = [t for t in self.catalog.tracks.values() if _track_matches(self.catalog, t, filters, words)]
                result["tracks"] = self._page(
                    request, "search", tracks, offset, limit, lambda t: self._track_full(request, t)
                )
            if "album" in types:
                albums = [a for a in self.catalog.albums.values() if _album_matches(self.catalog, a, filters, words)]
                result["albums"] = self._page(
                    request, "search", albums, offset, limit, lambda a: self._album_simple(request, a)
                )
            if "artist" in types:
                artists = [a for a in self.catalog.artists.values() if _artist_matches(a, filters, words)]
                result["artists"] = self._page(
                    request, "search", artists, offset, limit, lambda a: {
                        **self._artist_simple(request, a), "genres": list(a.genres),
                    }
                )
        return result

    def removed_batch(self, request: Request, user_id: str | None) -> dict[str, Any]:
        """Batch gets (`?ids=`) were removed for Development-Mode apps."""
        raise SpotifyError(403, "Forbidden")


def _local_uri_part(text: str) -> str:
    """Spotify writes spaces in local-file URIs as `+`."""
    return text.replace(" ", "+")


def _album_group(album: Album, artist_id: str) -> str:
    return album.album_type if artist_id in album.artist_ids else "appears_on"


def _features(catalog: Catalog, album: Album, artist_id: str) -> bool:
    return any(artist_id in catalog.tracks[t].artist_ids for t in album.track_ids)


def _parse_query(query: str) -> tuple[dict[str, str], list[str]]:
    """`track:"A B" artist:C free words` → ({"track": "a b", "artist": "c"}, ["free", "words"])."""
    filters: dict[str, str] = {}
    words: list[str] = []
    for match in _QUERY_TOKEN.finditer(query):
        field, quoted, bare = match.groups()
        value = _normalise(quoted if quoted is not None else bare)
        if field:
            filters[field.lower()] = value
        elif quoted is not None:
            words.append(value)
        else:
            words.extend(value.split())
    return filters, words


def _year_matches(release_date: str, wanted: str) -> bool:
    year = int(release_date[:4])
    start, _, end = wanted.partition("-")
    try:
        return int(start) <= year <= int(end or start)
    except ValueError:
        return False


def _track_matches(catalog: Catalog, track: Track, filters: dict[str, str], words: list[str]) -> bool:
    album = catalog.albums[track.album_id]
    artist_names = " ".join(_normalise(a.name) for a in catalog.track_artists(track))
    name, album_name = _normalise(track.name), _normalise(album.name)
    checks = {
        "track": lambda v: v in name,
        "artist": lambda v: v in artist_names,
        "album": lambda v: v in album_name,
        "isrc": lambda v: v == track.isrc.lower(),
        "upc": lambda v: v == album.upc,
        "year": lambda v: _year_matches(album.release_date, v),
    }
    haystack = f"{name} {artist_names} {album_name}"
    return _passes(checks, filters) and all(word in haystack for word in words)


def _passes(checks: dict, filters: dict[str, str]) -> bool:
    """Every field filter is known for this type and matches (an unknown filter matches nothing)."""
    return all(field in checks and checks[field](value) for field, value in filters.items())


def _album_matches(catalog: Catalog, album: Album, filters: dict[str, str], words: list[str]) -> bool:
    artist_names = " ".join(_normalise(a.name) for a in catalog.album_artists(album))
    name = _normalise(album.name)
    checks = {
        "album": lambda v: v in name,
        "artist": lambda v: v in artist_names,
        "upc": lambda v: v == album.upc,
        "year": lambda v: _year_matches(album.release_date, v),
    }
    return _passes(checks, filters) and all(word in f"{name} {artist_names}" for word in words)


def _artist_matches(artist: Artist, filters: dict[str, str], words: list[str]) -> bool:
    name = _normalise(artist.name)
    checks = {
        "artist": lambda v: v in name,
        "genre": lambda v: any(v in g for g in artist.genres),
    }
    return _passes(checks, filters) and all(word in name for word in words)


def create_emulator(sandbox: Sandbox) -> SpotifyEmulator:
    """Sandbox plug-in hook; options: `spotify_legacy_shape`, `spotify_token_lifetime`."""
    return SpotifyEmulator(
        sandbox.catalog,
        legacy_shape=bool(sandbox.options.get("spotify_legacy_shape", False)),
        token_lifetime=int(sandbox.options.get("spotify_token_lifetime", 3600)),
    )


def environment(sandbox: Sandbox, base_url: str) -> dict[str, str]:
    """The Spotify variables of design.md §4, pointing at this emulator."""
    catalog = sandbox.catalog
    emulator = sandbox.emulator("spotify")
    assert isinstance(emulator, SpotifyEmulator)
    playlists = catalog.owned_playlist_ids() + [catalog.foreign_playlist_id]
    return {
        "SPOTIFY_API_URL": f"{base_url}/v1/",
        "SPOTIFY_TOKEN_URL": f"{base_url}/api/token",
        "SPOTIFY_AUTH_URL": f"{base_url}/authorize",
        "SPOTIFY_CLIENT_ID": emulator.client_id,
        "SPOTIFY_CLIENT_SECRET": emulator.client_secret,
        "SPOTIFY_REFRESH_TOKEN": emulator.user_refresh_token,
        "HARMONY_PLAYLISTS": ",".join(playlists),
    }
