"""Credits from MusicBrainz JSON: composer, lyricist, producer, genres, label.

Input shapes are those of `/ws/2/isrc`, `/ws/2/recording/{id}?inc=…+artist-rels+work-rels+
work-level-rels+genres+tags` and `/ws/2/release/{id}?inc=artist-rels+labels…` (api-contracts.md
§5.2–5.3). Writers live on the work, producers on the recording or, often, on the release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anyascii import anyascii
from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

COMPOSER_TYPES = ("composer", "writer")  # "writer": wrote the song, music/lyrics split unknown
LYRICIST_TYPES = ("lyricist", "librettist")
PRODUCER_TYPE = "producer"
NO_LABEL_ID = "157afde4-4bf5-4039-8ad2-5a15acc85176"  # MusicBrainz's special "[no label]" entry
ARTIST_MATCH_THRESHOLD = 90
LENGTH_TOLERANCE_MS = 3000  # how close a recording must be when its artist credit does not match
MAX_GENRES = 5

Json = dict[str, Any]


@dataclass(frozen=True)
class Credits:
    composers: list[str] = field(default_factory=list)
    lyricists: list[str] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    label: str = ""


def _dicts(value: Any) -> list[dict]:
    """The objects of a list in an answer; a field of the wrong type reads as empty."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def extract_credits(recording: Json, release: Json | None = None, max_genres: int = MAX_GENRES) -> Credits:
    """Credits of one recording, completed by its release when the recording lacks them. Parts of an
    answer of the wrong type (a null list, a string for an object) read as absent."""
    recording, release = _object(recording), (_object(release) if release is not None else None)
    work_relations = [
        work_relation
        for relation in _dicts(recording.get("relations"))
        if relation.get("target-type") == "work" and relation.get("type") == "performance"
        for work_relation in _dicts(_object(relation.get("work")).get("relations"))
    ]
    producers = _producers(_dicts(recording.get("relations")))
    if not producers and release is not None:
        producers = _producers(_dicts(release.get("relations")))
    genre_sources = [recording]
    if release is not None:
        genre_sources += [release, _object(release.get("release-group"))]
    return Credits(
        composers=_artist_names(work_relations, COMPOSER_TYPES),
        lyricists=_artist_names(work_relations, LYRICIST_TYPES),
        producers=producers,
        genres=extract_genres(genre_sources, max_genres),
        label=_label(release) if release is not None else "",
    )


def extract_genres(entities: list[Json], max_genres: int = MAX_GENRES) -> list[str]:
    """Curated genres of every entity first, then folksonomy tags; each group by vote count.

    `entities` are in order of relevance (recording, release, release-group, artist); tags with no
    positive votes are ignored, names are deduplicated case-insensitively.
    """
    names: list[str] = []
    for key in ("genres", "tags"):
        for entity in entities:
            voted = [item for item in _dicts(_object(entity).get(key))
                     if _count(item) > 0 and isinstance(item.get("name"), str) and item["name"]]
            names += [item["name"] for item in sorted(voted, key=lambda item: -_count(item))]
    return _unique(names, key=str.casefold)[:max_genres]


def _count(item: dict) -> int:
    count = item.get("count", 0)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def choose_recording(isrc_lookup: Json, duration_ms: int | None, artist: str) -> Json | None:
    """The recording of an ISRC lookup that best fits the track: credited artist, then closest length.

    A recording whose credit does not name `artist` is accepted only when its length is within
    3 s of `duration_ms` (transliterated names differ; a wrongly assigned ISRC rarely keeps the length).
    """

    def distance(recording: Json) -> float:
        length = recording.get("length")
        return abs(length - duration_ms) if length is not None and duration_ms is not None else float("inf")

    recordings = isrc_lookup.get("recordings") or []
    if not recordings:
        return None
    best = min(
        recordings, key=lambda recording: (not _credits_artist(recording, artist), distance(recording))
    )
    if _credits_artist(best, artist) or distance(best) <= LENGTH_TOLERANCE_MS:
        return best
    return None


def choose_release(recording: Json, release_date: str | None, upc: str | None) -> Json | None:
    """The recording's release that best matches the track's album.

    Same barcode first, then Official status, then the same date (else the same year); remaining
    ties go to the earliest release, the original edition.
    """
    wanted_barcode = _barcode(upc)

    def rank(release: Json) -> tuple[bool, bool, int, str]:
        date = release.get("date") or ""
        if release_date and date == release_date:
            date_match = 2
        elif release_date and date[:4] == release_date[:4]:
            date_match = 1
        else:
            date_match = 0
        same_barcode = bool(wanted_barcode) and _barcode(release.get("barcode")) == wanted_barcode
        return not same_barcode, release.get("status") != "Official", -date_match, date or "9999"

    releases = recording.get("releases") or []
    return min(releases, key=rank) if releases else None


def _producers(relations: list[Json]) -> list[str]:
    # Executive producers are a business role, not the person who produced the sound.
    producing = [relation for relation in relations
                 if "executive" not in (relation.get("attributes") if isinstance(relation.get("attributes"), list)
                                        else [])]
    return _artist_names(producing, (PRODUCER_TYPE,))


def _artist_names(relations: list[Json], types: tuple[str, ...]) -> list[str]:
    names = []
    for relation in relations:
        if relation.get("target-type") != "artist" or relation.get("type") not in types:
            continue
        credited = relation.get("target-credit")
        name = credited if isinstance(credited, str) and credited else _object(relation.get("artist")).get("name")
        if isinstance(name, str) and name:
            names.append(name)
    return _unique(names)


def _label(release: Json) -> str:
    for info in _dicts(release.get("label-info")):
        label = _object(info.get("label"))
        if isinstance(label.get("name"), str) and label["name"] and label.get("id") != NO_LABEL_ID:
            return label["name"]
    return ""


def _credits_artist(recording: Json, artist: str) -> bool:
    credit = recording.get("artist-credit") or []
    phrase = "".join(part.get("name", "") + part.get("joinphrase", "") for part in credit)
    names = [phrase] + [part.get("name", "") for part in credit]
    names += [(part.get("artist") or {}).get("name", "") for part in credit]
    wanted = _comparable(artist)
    return any(fuzz.ratio(wanted, _comparable(name)) >= ARTIST_MATCH_THRESHOLD for name in names if name)


def _comparable(text: str) -> str:
    return default_process(anyascii(text))


def _barcode(value: str | None) -> str:
    # A Spotify UPC may carry leading zeros (EAN-13 / GTIN-14) that the MusicBrainz barcode lacks.
    return "".join(char for char in value or "" if char.isdigit()).lstrip("0")


def _unique(values: list[str], key: Callable[[str], str] = str) -> list[str]:
    seen: set[str] = set()
    unique: list[str] = []
    for value in values:
        if key(value) not in seen:
            seen.add(key(value))
            unique.append(value)
    return unique
