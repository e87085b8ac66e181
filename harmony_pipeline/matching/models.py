"""Value types of the matching engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

AUDIO_EXTENSIONS = frozenset(
    {"mp3", "flac", "m4a", "ogg", "wav", "aac", "opus", "aiff", "aif", "alac", "ape", "wv", "wma", "mp4"}
)


@dataclass(frozen=True)
class WantedTrack:
    """A track as Spotify describes it."""

    artist: str
    artists: tuple[str, ...]
    title: str
    album: str | None
    duration_ms: int | None
    isrc: str | None = None
    track_number: int | None = None
    album_total_tracks: int | None = None
    release_year: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WantedTrack:
        artists = tuple(data.get("artists") or ()) or (data["artist"],)
        return cls(
            artist=data["artist"],
            artists=artists,
            title=data["title"],
            album=data.get("album"),
            duration_ms=data.get("duration_ms"),
            isrc=data.get("isrc"),
            track_number=data.get("track_number"),
            album_total_tracks=data.get("album_total_tracks"),
            release_year=data.get("release_year"),
        )


@dataclass(frozen=True)
class MatchPreferences:
    """What the user prefers among files that are all the wanted recording."""

    format_order: tuple[str, ...] = ("flac", "mp3", "m4a", "ogg", "opus", "aac", "wav", "aiff", "alac", "ape", "wv")
    min_mp3_bitrate: int = 256
    # Design rule: a file whose length is more than 3 s off is never taken.
    duration_reject_s: float = 3.0
    # Copies of one recording differ by at most 2 s; 2-3 s off is kept out of the accepted list.
    duration_accept_s: float = 2.0
    # Minimum match score (0..100) for a candidate to be accepted.
    accept_score: float = 80.0


@dataclass(frozen=True)
class Candidate:
    """One file of a search response, with what its path tells."""

    username: str
    filename: str  # byte for byte as the peer sent it: the enqueue key
    size: int | None
    extension: str
    bitrate: int | None
    length: int | None
    sample_rate: int | None
    bit_depth: int | None
    locked: bool
    has_free_slot: bool
    queue_length: int
    upload_speed: int
    folders: tuple[str, ...]
    stem: str
    disc_number: int | None
    track_number: int | None
    artist_guess: str | None
    title_guess: str


@dataclass
class ScoredCandidate:
    username: str
    filename: str
    size: int | None
    extension: str
    bitrate: int | None
    length: int | None
    score: float
    reasons: list[str] = field(default_factory=list)
    # Bracketed words of the file name that neither the wanted track nor the vocabulary explain.
    qualifier: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MatchDecision:
    best: ScoredCandidate | None
    accepted: list[ScoredCandidate]
    rejected: list[ScoredCandidate]

    def as_dict(self) -> dict[str, Any]:
        return {
            "best": self.best.as_dict() if self.best else None,
            "accepted": [candidate.as_dict() for candidate in self.accepted],
            "rejected": [candidate.as_dict() for candidate in self.rejected],
        }
