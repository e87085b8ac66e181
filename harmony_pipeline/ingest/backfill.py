"""Backfill of FREE ingest items from Spotify, without Dagster: search queries and candidate scoring.

An item with an ISRC is looked up by `isrc:` first; otherwise (or when that finds nothing) by
`track:"…" artist:"…"` with `album:"…"` when known, then without the album. Each candidate is scored
with rapidfuzz on title, artist and album (normalised the same way as Soulseek matching: romanised,
feat./remaster noise dropped), plus duration: within ±2 s is strong evidence, within ±5 s weak, beyond
that a penalty growing with the gap; another version (live, remix, edit…) costs a fixed penalty.
A candidate is accepted at MATCH_THRESHOLD or above; every score comes with its reasons so an
unmatched item says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from harmony_pipeline.matching.names import split_title
from harmony_pipeline.matching.normalize import normalize
from harmony_pipeline.spotify.playlist_sync import PlaylistTrack, track_from_item

MATCH_THRESHOLD = 75.0
MIN_TITLE_SIMILARITY = 70.0  # below this a candidate is another song whatever else agrees
MIN_ARTIST_SIMILARITY = 60.0
STRONG_DURATION_MS = 2000
WEAK_DURATION_MS = 5000
STRONG_DURATION_BONUS = 10.0
WEAK_DURATION_BONUS = 4.0
DURATION_PENALTY_PER_SECOND = 1.5
MAX_DURATION_PENALTY = 40.0
VERSION_MISMATCH_PENALTY = 30.0
ISRC_BASE_SCORE = 100.0
# Title, artist and album weights; without an album the first two share its weight.
WEIGHTS = (0.5, 0.35, 0.15)


@dataclass(frozen=True)
class Wanted:
    """What an ingest item tells about the track it wants."""

    artist: str | None = None
    title: str | None = None
    album: str | None = None
    artists: tuple[str, ...] = ()
    duration_ms: int | None = None
    isrc: str | None = None


@dataclass
class Scored:
    track: dict[str, Any]
    score: float
    reasons: list[str] = field(default_factory=list)
    rejected: bool = False

    @property
    def accepted(self) -> bool:
        return not self.rejected and self.score >= MATCH_THRESHOLD


def _quoted(value: str) -> str:
    # Spotify's field filters take a quoted phrase; a double quote inside would end it early.
    return '"' + " ".join(value.replace('"', " ").split()) + '"'


def isrc_query(isrc: str) -> str:
    return f"isrc:{isrc.strip().upper()}"


def search_queries(wanted: Wanted) -> list[str]:
    """Field-filtered searches to try in order: with the album when known, then without it."""
    if not (wanted.artist and wanted.title):
        return []
    base = f"track:{_quoted(wanted.title)} artist:{_quoted(wanted.artist)}"
    queries = [f"{base} album:{_quoted(wanted.album)}"] if wanted.album else []
    queries.append(base)
    # Spotify spells versions its own way ("- 2011 Remaster"); the bare title finds those.
    _, short_title, _ = split_title(wanted.title)
    short_title = " ".join(short_title.split())
    if short_title and short_title != wanted.title:
        queries.append(f"track:{_quoted(short_title)} artist:{_quoted(wanted.artist)}")
    return queries


def _similarity(a: str, b: str) -> float:
    return fuzz.token_sort_ratio(normalize(a), normalize(b))


def _names(track: dict[str, Any]) -> list[str]:
    return [a.get("name", "") for a in track.get("artists") or [] if a.get("name")]


def _artist_similarity(wanted: Wanted, track: dict[str, Any]) -> float:
    wanted_names = list(wanted.artists) or ([wanted.artist] if wanted.artist else [])
    names = _names(track)
    if not wanted_names or not names:
        return 0.0
    # "Artist A, Artist B" in one cell, or only the main artist given: the best pairing counts.
    pairs = [_similarity(w, n) for w in wanted_names for n in names]
    pairs.append(fuzz.token_set_ratio(normalize(" ".join(wanted_names)), normalize(" ".join(names))))
    return max(pairs)


def duration_points(wanted_ms: int | None, found_ms: int | None) -> tuple[float, str | None]:
    """Bonus or penalty for the duration gap, and a reason; (0, None) when either is unknown."""
    if wanted_ms is None or found_ms is None:
        return 0.0, None
    gap = abs(wanted_ms - found_ms)
    if gap <= STRONG_DURATION_MS:
        return STRONG_DURATION_BONUS, f"duration within {gap / 1000:.1f}s"
    if gap <= WEAK_DURATION_MS:
        return WEAK_DURATION_BONUS, f"duration off by {gap / 1000:.1f}s"
    return -min(gap / 1000 * DURATION_PENALTY_PER_SECOND, MAX_DURATION_PENALTY), f"duration off by {gap / 1000:.0f}s"


def score_candidate(wanted: Wanted, track: dict[str, Any]) -> Scored:
    """Score a Spotify track object against the wanted item (0–100 plus duration points)."""
    reasons: list[str] = []
    if wanted.isrc and ((track.get("external_ids") or {}).get("isrc") or "").upper() == wanted.isrc.upper():
        return _score_isrc_hit(wanted, track)

    wanted_title, _, wanted_kinds = split_title(wanted.title or "")
    found_title, _, found_kinds = split_title(track.get("name") or "")
    title = _similarity(wanted_title, found_title)
    artist = _artist_similarity(wanted, track)
    album_name = (track.get("album") or {}).get("name") or ""
    reasons += [f"title {title:.0f}", f"artist {artist:.0f}"]
    if wanted.album:
        album = max(_similarity(wanted.album, album_name), _similarity(split_title(wanted.album)[0], album_name))
        reasons.append(f"album {album:.0f}")
        score = WEIGHTS[0] * title + WEIGHTS[1] * artist + WEIGHTS[2] * album
    else:
        total = WEIGHTS[0] + WEIGHTS[1]
        score = (WEIGHTS[0] * title + WEIGHTS[1] * artist) / total
    points, reason = duration_points(wanted.duration_ms, track.get("duration_ms"))
    score += points
    if reason:
        reasons.append(reason)
    if wanted_kinds != found_kinds:
        score -= VERSION_MISMATCH_PENALTY
        reasons.append("other version: " + ", ".join(sorted(wanted_kinds ^ found_kinds)))
    rejected = False
    if title < MIN_TITLE_SIMILARITY:
        rejected = True
        reasons.append("title differs")
    if artist < MIN_ARTIST_SIMILARITY:
        rejected = True
        reasons.append("artist differs")
    return Scored(track, round(score, 1), reasons, rejected)


def _score_isrc_hit(wanted: Wanted, track: dict[str, Any]) -> Scored:
    """Several releases share an ISRC (album, single, compilation): album and duration break ties."""
    score, reasons = ISRC_BASE_SCORE, ["ISRC equal"]
    album = track.get("album") or {}
    if wanted.album:
        similarity = _similarity(wanted.album, album.get("name") or "")
        score += similarity / 10
        reasons.append(f"album {similarity:.0f}")
    elif album.get("album_type") == "album":
        score += 1  # without a hint, prefer the album release over the single
        reasons.append("album release")
    points, reason = duration_points(wanted.duration_ms, track.get("duration_ms"))
    if reason:
        score += points
        reasons.append(reason)
    return Scored(track, round(score, 1), reasons)


def choose(wanted: Wanted, tracks: list[dict[str, Any]]) -> tuple[Scored | None, list[Scored]]:
    """(best accepted candidate or None, every candidate scored, best first)."""
    unique = {t["id"]: t for t in tracks if isinstance(t, dict) and t.get("id")}
    scored = sorted((score_candidate(wanted, t) for t in unique.values()),
                    key=lambda s: (not s.rejected, s.score), reverse=True)
    best = scored[0] if scored and scored[0].accepted else None
    return best, scored


def unmatched_reason(scored: list[Scored], queries: list[str]) -> str:
    if not scored:
        return f"no Spotify results for {' / '.join(queries)}" if queries else "nothing to search by"
    best = scored[0]
    label = f"{', '.join(_names(best.track))} – {best.track.get('name')}"
    return f"best candidate {label!r} scored {best.score:.0f} < {MATCH_THRESHOLD:.0f} ({'; '.join(best.reasons)})"


def resolved_track(track: dict[str, Any]) -> PlaylistTrack | None:
    """The columns wanted_tracks needs, from a full Spotify track object."""
    return track_from_item({"item": track}, 0)
