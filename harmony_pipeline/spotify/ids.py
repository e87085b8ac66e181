"""Spotify id, URI and URL parsing.

Accepted spellings of one reference:
- a bare 22-character base62 id (the kind must then be given by the caller);
- URIs: ``spotify:track:ID``, legacy ``spotify:user:NAME:playlist:ID``;
- URLs on open.spotify.com / play.spotify.com, with or without scheme, with an
  ``intl-xx`` locale segment, an ``/embed/`` prefix, a legacy ``/user/NAME/`` prefix,
  a query string, a fragment or a trailing slash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

SpotifyKind = Literal["track", "album", "playlist", "artist"]
SUPPORTED_KINDS: tuple[str, ...] = ("track", "album", "playlist", "artist")

_ID_RE = re.compile(r"[0-9A-Za-z]{22}")
_SPOTIFY_HOSTS = ("open.spotify.com", "play.spotify.com")
_SHORT_LINK_HOSTS = ("spotify.link", "spoti.fi")
_LOCALE_SEGMENT_RE = re.compile(r"intl-[a-z]{2}(?:-[a-z]{2})?", re.IGNORECASE)
# Characters people paste around links: angle brackets (Markdown, Slack), quotes.
_WRAPPING = "<>\"'` \t"


@dataclass(frozen=True, slots=True)
class SpotifyRef:
    kind: SpotifyKind
    id: str

    @property
    def uri(self) -> str:
        return f"spotify:{self.kind}:{self.id}"

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/{self.kind}/{self.id}"


def is_spotify_id(text: str) -> bool:
    return _ID_RE.fullmatch(text) is not None


def split_spotify_link(text: str) -> tuple[str, str] | None:
    """(kind, id) of anything shaped like a Spotify URI or URL, kind and id unchecked.

    Returns None when the text is not a Spotify URI or link at all. The kind may be one we
    do not support (``episode``, ``show``, ``user``) and the id may be malformed; callers use
    this to explain *why* a link was refused. A shortened link gives ``("short-link", path)``.
    """
    text = text.strip(_WRAPPING)
    if text[:8].lower() == "spotify:":
        return _split_uri(text)
    return _split_url(text)


def _split_uri(text: str) -> tuple[str, str] | None:
    parts = text.split(":")
    if len(parts) >= 5 and parts[1].lower() == "user" and parts[3].lower() == "playlist":
        return "playlist", parts[4]
    if len(parts) >= 3:
        return parts[1].lower(), parts[2]
    if len(parts) == 2 and parts[1]:
        return parts[1].lower(), ""
    return None


def _split_url(text: str) -> tuple[str, str] | None:
    if "://" not in text:
        if not text.lower().startswith(_SPOTIFY_HOSTS + _SHORT_LINK_HOSTS):
            return None
        text = "https://" + text
    try:
        url = urlsplit(text)
        host = (url.hostname or "").lower()
    except ValueError:
        return None
    if url.scheme.lower() not in ("http", "https"):
        return None
    if host in _SHORT_LINK_HOSTS:
        return "short-link", url.path.strip("/")
    if host not in _SPOTIFY_HOSTS:
        return None
    segments = [s for s in url.path.split("/") if s]
    if segments and _LOCALE_SEGMENT_RE.fullmatch(segments[0]):
        segments = segments[1:]
    if segments and segments[0].lower() == "embed":
        segments = segments[1:]
    if len(segments) >= 4 and segments[0].lower() == "user" and segments[2].lower() == "playlist":
        segments = segments[2:]
    if not segments:
        return None
    return segments[0].lower(), segments[1] if len(segments) > 1 else ""


def parse_spotify_ref(text: str, expected_kind: str | None = None) -> SpotifyRef | None:
    """The reference named by ``text``, or None when it names no supported Spotify item.

    A bare id needs ``expected_kind``; with ``expected_kind`` a link of another kind gives None.
    """
    try:
        return parse_spotify_ref_or_raise(text, expected_kind)
    except ValueError:
        return None


def parse_spotify_id(text: str, kind: str) -> str:
    """The id of a ``kind`` item given as id, URI or URL; ValueError says what is wrong."""
    return parse_spotify_ref_or_raise(text, kind).id


def parse_spotify_ref_or_raise(text: str, expected_kind: str | None = None) -> SpotifyRef:
    """Like ``parse_spotify_ref`` but raising ValueError with the reason the text was refused."""
    if expected_kind is not None and expected_kind not in SUPPORTED_KINDS:
        raise ValueError(f"unknown Spotify kind {expected_kind!r}; expected one of {', '.join(SUPPORTED_KINDS)}")
    cleaned = text.strip(_WRAPPING)
    if not cleaned:
        raise ValueError("empty Spotify reference")
    if is_spotify_id(cleaned):
        if expected_kind is None:
            raise ValueError(f"{cleaned!r} is a bare id; its kind (track, album, …) is unknown")
        return SpotifyRef(expected_kind, cleaned)  # type: ignore[arg-type]
    split = split_spotify_link(cleaned)
    if split is None:
        wanted = f"a Spotify {expected_kind}" if expected_kind else "a Spotify item"
        raise ValueError(f"{_shorten(cleaned)!r} is not {wanted} id, URI or open.spotify.com URL")
    kind, item_id = split
    if kind == "short-link":
        raise ValueError(f"shortened link {_shorten(cleaned)!r} cannot be resolved offline; paste the open.spotify.com URL")
    if kind not in SUPPORTED_KINDS:
        raise ValueError(f"unsupported Spotify link ({kind})")
    if expected_kind is not None and kind != expected_kind:
        raise ValueError(f"expected a Spotify {expected_kind}, got a {kind} link")
    if not is_spotify_id(item_id):
        raise ValueError(f"invalid Spotify {kind} id {_shorten(item_id)!r}: expected 22 letters and digits")
    return SpotifyRef(kind, item_id)  # type: ignore[arg-type]


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
