"""FREE ingest parsing: pasted text, CSV (Exportify and others), JSON and Spotify links.

Every input record becomes either an ``IngestItem`` or a ``Rejection`` that names its line and
reason; blank and comment lines become neither. Each item carries a ``fingerprint`` that stays
the same however the same wish is spelled, so the ingest asset can deduplicate across
submissions:
- a Spotify link or URI: its kind and id (``spotify:track:ID``);
- otherwise an ISRC: the ISRC;
- otherwise artist, title and album, compared without regard to case, spacing, dash and quote
  style, or accents on Latin, Greek and Cyrillic letters (other scripts are kept as they are:
  dropping the voicing marks of kana would merge different words).
Duration and year are hints for matching, not identity, so they do not enter the fingerprint.
Within one submission a repeated fingerprint is rejected as "duplicate of line N".
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator, Literal

from harmony_pipeline.spotify.ids import SpotifyRef, parse_spotify_ref_or_raise, split_spotify_link

MAX_SUBMISSION_BYTES = 5 * 1024 * 1024
MAX_LINE_CHARS = 1000
DISPLAY_CHARS = 120
MIN_YEAR, MAX_YEAR = 1000, 2100

Format = Literal["text", "csv", "json"]


class IngestError(ValueError):
    """The whole submission is refused (for example: larger than MAX_SUBMISSION_BYTES)."""


@dataclass(frozen=True, slots=True)
class IngestItem:
    artist: str | None
    title: str | None
    line_number: int
    raw: str
    album: str | None = None
    year: int | None = None
    duration_ms: int | None = None
    isrc: str | None = None
    spotify_ref: SpotifyRef | None = None
    # Every credited artist when the source lists several (Exportify); ``artist`` is the first.
    artists: tuple[str, ...] = ()
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", _fingerprint(self))


@dataclass(frozen=True, slots=True)
class Rejection:
    line_number: int
    raw: str
    reason: str


Outcome = IngestItem | Rejection


@dataclass(slots=True)
class ParseResult:
    items: list[IngestItem]
    rejections: list[Rejection]
    format: Format
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Normalisation and fingerprints

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'}
_INVISIBLE_RE = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200d\u2060\ufeff]")
_SPACE_RE = re.compile(r"\s+")


def clean_field(text: str) -> str:
    """Display form of a field: NFC, invisible and control characters removed, spaces collapsed."""
    text = _INVISIBLE_RE.sub("", unicodedata.normalize("NFC", text))
    return _SPACE_RE.sub(" ", text).strip()


_FINGERPRINT_TABLE = {ord(dash): "-" for dash in _DASHES} | {ord(k): v for k, v in _QUOTES.items()}


def normalize_for_fingerprint(text: str) -> str:
    text = text.casefold()
    if not text.isascii():
        text = _fold_non_ascii(text)
    text = text.translate(_FINGERPRINT_TABLE)
    return _SPACE_RE.sub(" ", _INVISIBLE_RE.sub("", text)).strip()


def _fold_non_ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    kept: list[str] = []
    for char in text:
        # Accents go only from Latin, Greek and Cyrillic letters (all below U+0530, or the
        # Latin Extended Additional block); marks on other scripts change the word.
        if unicodedata.combining(char) and kept and (ord(kept[-1]) < 0x530 or 0x1E00 <= ord(kept[-1]) < 0x1F00):
            continue
        kept.append(char)
    return unicodedata.normalize("NFKC", "".join(kept))


def _fingerprint(item: IngestItem) -> str:
    if item.spotify_ref is not None:
        key = item.spotify_ref.uri
    elif item.isrc is not None:
        key = f"isrc:{item.isrc}"
    else:
        parts = (item.artist or "", item.title or "", item.album or "")
        key = "text:" + "\x1f".join(normalize_for_fingerprint(p) for p in parts)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _display(raw: str) -> str:
    raw = raw.rstrip("\r\n")
    return raw if len(raw) <= DISPLAY_CHARS else raw[: DISPLAY_CHARS - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Field parsers shared by all formats

_DURATION_RE = re.compile(r"(?:(\d{1,2}):)?(\d{1,3}):(\d{2})")
_ISRC_RE = re.compile(r"[A-Z]{2}[A-Z0-9]{3}\d{7}")
_YEAR_RE = re.compile(r"\d{4}")


def parse_duration(text: str) -> int | None:
    """Milliseconds of ``m:ss`` or ``h:mm:ss``; None when the text is not a valid duration."""
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        return None
    hours, minutes, seconds = int(match[1] or 0), int(match[2]), int(match[3])
    if seconds >= 60 or (match[1] is not None and minutes >= 60):
        return None
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


def _duration_value(value: Any, unit_is_ms: bool) -> int | None:
    """A duration from a CSV cell or JSON value: ``3:45``, seconds, or milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if ":" in value:
            return parse_duration(value)
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not 0 < value < 10**9:
        return None
    # Without a unit, a number this large can only be milliseconds (10000 s is 2¾ hours).
    return round(value) if unit_is_ms or value >= 10000 else round(value * 1000)


def parse_isrc(text: str) -> str | None:
    candidate = re.sub(r"[\s-]", "", text).upper()
    if candidate.startswith("ISRC:"):
        candidate = candidate[5:]
    return candidate if _ISRC_RE.fullmatch(candidate) else None


def _year_value(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        year = value
    elif isinstance(value, str) and (match := _YEAR_RE.match(value.strip())):
        year = int(match[0])
    else:
        return None
    return year if MIN_YEAR <= year <= MAX_YEAR else None


# ---------------------------------------------------------------------------------------------
# Text lines

# "# note" and "// note" are comments; "#1 Dads - So Soldier" is a band.
_COMMENT_RE = re.compile(r"//|#(?:\s|#|$)")
_BULLET_RE = re.compile(r"[-\u2013\u2014*•·‣▪◦]\s+")
_NUMBERING_RE = re.compile(r"\d{1,4}\s*[.)]\s+")
_DASH_NUMBERING_RE = re.compile(r"\d{1,4}\s+[-\u2013\u2014]\s+")
# Between artist and title: a spaced hyphen (or two), or a dash with or without spaces.
# A bare hyphen is part of names ("Jay-Z", "Blink-182").
_SEPARATOR_RE = re.compile(r"\s+-{1,2}(?:\s+|$)|\s*[\u2013\u2014\u2015]\s*")
_OTHER_LINK_RE = re.compile(r"<?https?://([^/\s>]+)\S*", re.IGNORECASE)
_QUOTED_BY_RE = re.compile(r"[\"\u201c](?P<title>[^\"\u201d]+)[\"\u201d]\s+by\s+(?P<artist>.+)", re.IGNORECASE)
_TRAILING_DURATION_RE = re.compile(r"(?:\s+[\[(]?|[\[(])((?:\d{1,2}:)?\d{1,3}:\d{2})[\])]?$")
_TRAILING_GROUP_RE = re.compile(r"\s*[(\[]([^()\[\]]+)[)\]]$")
# A trailing "(…)" is the album unless it describes the version of the song.
_VERSION_WORDS_RE = re.compile(
    r"\b(feat|ft|featuring|with|prod|remix|mix|edit|version|remaster(ed)?|live|acoustic|demo|mono|"
    r"stereo|instrumental|explicit|clean|bonus|extended|original|cover|unplugged|session|take|"
    r"reprise|interlude|intro|outro|radio|single|acapella|a cappella|karaoke|vip|dub|rework|"
    r"edition|deluxe|anniversary|from|ost|soundtrack|theme)\b",
    re.IGNORECASE,
)
NO_SEPARATOR_REASON = "no ' - ' separator between artist and title"


def parse_text(text: str) -> ParseResult:
    return _collect(_deduplicated(_text_outcomes(text)), "text")


def _text_outcomes(text: str) -> Iterator[Outcome]:
    for number, line in enumerate(_iter_lines(text), start=1):
        outcome = parse_line(line, number)
        if outcome is not None:
            yield outcome


def _split_lines(text: str) -> list[str]:
    # Only CR, LF and CRLF end lines, so numbers match what an editor shows.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_LINE_END_RE = re.compile(r"\r\n?|\n")


def _iter_lines(text: str) -> Iterator[str]:
    """The lines of _split_lines one at a time, without a copy of the whole text."""
    start = 0
    for end in _LINE_END_RE.finditer(text):
        yield text[start:end.start()]
        start = end.end()
    yield text[start:]


def parse_line(line: str, line_number: int, raw: str | None = None) -> IngestItem | Rejection | None:
    """One text line: an item, a rejection, or None for blank and comment lines."""
    raw = line if raw is None else raw
    if len(line) > MAX_LINE_CHARS:
        return Rejection(line_number, _display(raw), f"line longer than {MAX_LINE_CHARS} characters")
    text = clean_field(line)
    if not text or _COMMENT_RE.match(text):
        return None
    text = _strip_list_marker(text)
    try:
        return _parse_clean_line(text, line_number, raw)
    except ValueError as refused:
        return Rejection(line_number, _display(raw), str(refused))


def _strip_list_marker(text: str) -> str:
    for pattern in (_BULLET_RE, _NUMBERING_RE):
        if match := pattern.match(text):
            return text[match.end():]
    # "1 - Artist - Title" is numbered, but "311 - Amber" is the band 311: strip the number
    # only when a separator remains after it.
    match = _DASH_NUMBERING_RE.match(text)
    if match and _SEPARATOR_RE.search(text, match.end()):
        return text[match.end():]
    return text


def _parse_clean_line(text: str, line_number: int, raw: str) -> IngestItem:
    text, ref = _extract_spotify_link(text)
    if not text:  # the line was only a link
        return IngestItem(None, None, line_number, raw, spotify_ref=ref)
    if other_link := _OTHER_LINK_RE.fullmatch(text):
        raise ValueError(f"unsupported link ({other_link[1]}): only Spotify links are accepted")
    isrc = parse_isrc(text) if not _SEPARATOR_RE.search(text) else None
    if isrc is not None and ref is None:
        return IngestItem(None, None, line_number, raw, isrc=isrc)

    main, *extras = [part.strip() for part in text.split("|")]
    artist, title = _split_artist_title(main)
    title, album, year, duration_ms = _strip_title_tail(title)
    for extra in extras:
        if (extra_year := _year_value(extra)) is not None and len(extra) == 4:
            year = extra_year
        elif (extra_duration := parse_duration(extra)) is not None:
            duration_ms = extra_duration
        elif extra and album is None:
            album = extra
    return IngestItem(artist, title, line_number, raw, album=album, year=year,
                      duration_ms=duration_ms, spotify_ref=ref, artists=(artist,))


def _extract_spotify_link(text: str) -> tuple[str, SpotifyRef | None]:
    """The line without its Spotify link token, and the link; ValueError for a refused link."""
    if "spotify" not in text.lower():
        return text, None
    tokens = text.split(" ")
    for index, token in enumerate(tokens):
        if split_spotify_link(token) is not None:
            ref = parse_spotify_ref_or_raise(token)
            rest = " ".join(tokens[:index] + tokens[index + 1:]).strip()
            return rest, ref
    return text, None


def _split_artist_title(text: str) -> tuple[str, str]:
    match = _SEPARATOR_RE.search(text)
    if match is None:
        by_match = _QUOTED_BY_RE.fullmatch(text)
        if by_match is None:
            raise ValueError(NO_SEPARATOR_REASON)
        return by_match["artist"].strip(), by_match["title"].strip()
    artist, title = text[: match.start()].strip(), text[match.end():].strip()
    if not artist:
        raise ValueError("empty artist before the ' - ' separator")
    if not title:
        raise ValueError("empty title after the ' - ' separator")
    return artist, title


def _strip_title_tail(title: str) -> tuple[str, str | None, int | None, int | None]:
    """Peel a trailing duration, year and album off the title, never leaving it empty."""
    album: str | None = None
    year: int | None = None
    duration_ms: int | None = None
    while True:
        match = _TRAILING_DURATION_RE.search(title)
        if duration_ms is None and match and match.start() > 0 and (value := parse_duration(match[1])):
            duration_ms, title = value, title[: match.start()].rstrip()
            continue
        match = _TRAILING_GROUP_RE.search(title)
        if match is None or match.start() == 0:
            break
        group = match[1].strip()
        if year is None and (value := _year_value(group)) is not None and len(group) == 4:
            year, title = value, title[: match.start()].rstrip()
            continue
        if album is None and not _VERSION_WORDS_RE.search(group):
            album_part, _, year_part = group.rpartition(",")
            if album_part and year is None and len(year_part.strip()) == 4 and _year_value(year_part):
                album, year = album_part.strip(), _year_value(year_part)
            else:
                album = group
            title = title[: match.start()].rstrip()
            continue
        break
    return title, album, year, duration_ms


# ---------------------------------------------------------------------------------------------
# Columns shared by CSV headers and JSON keys

Column = Literal["artist", "artists", "title", "album", "duration", "duration_ms", "year", "isrc", "uri", "track_id"]

_COLUMN_NAMES: dict[str, Column] = {
    "artist": "artist", "artist name": "artist", "artistname": "artist", "performer": "artist",
    "artists": "artists", "artist names": "artists", "artist name(s)": "artists", "artist(s)": "artists",
    "title": "title", "track": "title", "track name": "title", "trackname": "title", "name": "title",
    "song": "title", "song name": "title", "song title": "title", "track title": "title",
    "album": "album", "album name": "album", "album title": "album", "release": "album",
    "duration": "duration", "length": "duration", "time": "duration",
    "duration (ms)": "duration_ms", "duration ms": "duration_ms", "durationms": "duration_ms",
    "track duration (ms)": "duration_ms", "length (ms)": "duration_ms",
    "year": "year", "release date": "year", "album release date": "year", "release year": "year", "date": "year",
    "isrc": "isrc", "track isrc": "isrc",
    "uri": "uri", "track uri": "uri", "spotify uri": "uri", "link": "uri", "url": "uri",
    "spotify url": "uri", "spotify link": "uri", "track url": "uri",
    "spotify id": "track_id", "track id": "track_id",
}


def _column_of(name: str) -> Column | None:
    key = _SPACE_RE.sub(" ", name.replace("\ufeff", "").replace("_", " ").strip().casefold())
    return _COLUMN_NAMES.get(key)


def split_artist_credits(text: str) -> list[str]:
    """Names in an "Artist Name(s)" cell.

    Exportify versions differ: the newest join names with ";" (names may hold commas: "Tyler,
    The Creator"); one joins with ", " and escapes commas inside a name as "\\,"; an older one
    joins with "," and escapes nothing, so a comma followed by a non-space separates names there.
    """
    if ";" in text:
        parts = text.split(";")
    elif re.search(r"(?<!\\),(?! )", text):
        parts = re.split(r"(?<!\\),(?! )", text)
    else:
        parts = re.split(r"(?<!\\), ", text)
    names = [clean_field(part.replace("\\,", ",")) for part in parts]
    return [name for name in names if name]


def _item_from_fields(fields: dict[Column, Any], line_number: int, raw: str) -> IngestItem:
    """An item from named fields (a CSV row or a JSON object); ValueError says what is missing."""
    for column, value in fields.items():
        if isinstance(value, str) and len(value) > MAX_LINE_CHARS:
            raise ValueError(f"{column} longer than {MAX_LINE_CHARS} characters")
    ref, link_problem = _ref_from_fields(fields)
    isrc_text = _text(fields.get("isrc"))
    isrc = parse_isrc(isrc_text) if isrc_text else None

    artists_value = fields.get("artists", fields.get("artist"))
    if isinstance(artists_value, str) and "artists" in fields:
        artists = split_artist_credits(artists_value)
    else:
        artists = _names(artists_value)
    title = _text(fields.get("title")) or None
    album = _text(fields.get("album")) or None
    artist = artists[0] if artists else None
    if ref is None and isrc is None:
        if link_problem and (artist is None or title is None):
            raise ValueError(link_problem)
        if isrc_text:
            raise ValueError(f"invalid ISRC {isrc_text!r}")
        if artist is None or title is None:
            missing = " and ".join(name for name, value in (("artist", artist), ("title", title)) if value is None)
            raise ValueError(f"missing {missing}")

    if "duration_ms" in fields:
        duration_ms = _duration_value(fields["duration_ms"], unit_is_ms=True)
    else:
        duration_ms = _duration_value(fields.get("duration"), unit_is_ms=False)
    return IngestItem(artist, title, line_number, raw, album=album, year=_year_value(fields.get("year")),
                      duration_ms=duration_ms, isrc=isrc, spotify_ref=ref, artists=tuple(artists))


def _ref_from_fields(fields: dict[Column, Any]) -> tuple[SpotifyRef | None, str | None]:
    """The Spotify reference of a record, or why its link was refused.

    A refused link is not fatal when artist and title are present: Exportify lists local files
    with a ``spotify:local:…`` URI next to their names.
    """
    try:
        if link := _text(fields.get("uri")):
            return parse_spotify_ref_or_raise(link), None
        if track_id := _text(fields.get("track_id")):
            return parse_spotify_ref_or_raise(track_id, "track"), None
    except ValueError as refused:
        return None, str(refused)
    return None, None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return clean_field(value)
    if isinstance(value, dict):
        return _text(value.get("name"))
    return ""


def _names(value: Any) -> list[str]:
    """Artist names from a string, a list of strings, or Spotify artist objects."""
    if isinstance(value, list):
        names = [_text(entry) for entry in value]
        return [name for name in names if name]
    name = _text(value)
    return [name] if name else []


# ---------------------------------------------------------------------------------------------
# CSV

_DELIMITERS = (",", ";", "\t")


def parse_csv(text: str, delimiter: str | None = None) -> ParseResult:
    return _collect(_deduplicated(_csv_outcomes(text, delimiter)), "csv")


def _csv_outcomes(text: str, delimiter: str | None = None) -> Iterator[Outcome]:
    lines = _split_lines(text)
    delimiter = delimiter or sniff_delimiter(lines)
    header: dict[int, Column] | None = None
    header_width = 0
    first = True
    for line_number, raw, row in _csv_records(lines, delimiter):
        if isinstance(row, str):
            yield Rejection(line_number, _display(raw), f"malformed CSV row: {row}")
            continue
        if not any(cell.strip() for cell in row) or _COMMENT_RE.match(row[0].lstrip()):
            continue
        if first:
            first = False
            header = _header_columns(row)
            if header is not None:
                header_width = len(row)
                if not _header_is_usable(header):
                    found = ", ".join(cell.strip() for cell in row)
                    reason = f"CSV header names no artist and title or Spotify URI/ISRC column (found: {found})"
                    yield Rejection(line_number, _display(raw), reason)
                    return
                continue
        outcome = _csv_row(row, header, header_width, line_number, raw)
        if outcome is not None:
            yield outcome


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the first lines into the same number (≥ 2) of fields."""
    sample = [line for line in lines[:50] if line.strip()][:10]
    best, best_score = ",", (False, 0)
    for delimiter in _DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(sample, delimiter=delimiter)]
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        score = (all(width == widths[0] for width in widths), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


class _LineSource:
    """Feeds csv.reader one line at a time and lets us resume after a malformed record."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.position = 0

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            raise StopIteration
        self.position += 1
        return self.lines[self.position - 1] + "\n"


def _csv_records(lines: list[str], delimiter: str) -> Iterator[tuple[int, str, list[str] | str]]:
    """(first line number, raw text, fields or error text) for every record."""
    source = _LineSource(lines)
    reader = csv.reader(source, delimiter=delimiter, strict=True)
    while True:
        start = source.position
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # Resume right after the record's first line, so an unterminated quote costs
            # one line instead of the rest of the file.
            yield start + 1, lines[start], str(error)
            source.position = start + 1
            reader = csv.reader(source, delimiter=delimiter, strict=True)
            continue
        yield start + 1, "\n".join(lines[start:source.position]), row


def _header_columns(row: list[str]) -> dict[int, Column] | None:
    """Recognised columns of a header row; None when the row is data.

    A one-cell row is a header only when it names an identifier column ("Track URI"): a lone
    "Time" or "Song" is more likely a title.
    """
    if len(row) == 1 and _column_of(row[0]) not in ("uri", "track_id", "isrc"):
        return None
    columns: dict[int, Column] = {}
    for index, cell in enumerate(row):
        column = _column_of(cell)
        if column is not None and column not in columns.values():
            columns[index] = column
    return columns or None


def _header_is_usable(columns: dict[int, Column]) -> bool:
    found = set(columns.values())
    has_artist = bool(found & {"artist", "artists"})
    return (has_artist and "title" in found) or bool(found & {"uri", "track_id", "isrc"})


def _csv_row(row: list[str], header: dict[int, Column] | None, header_width: int,
             line_number: int, raw: str) -> IngestItem | Rejection | None:
    if header is None:
        if len(row) == 1:
            return parse_line(row[0], line_number, raw)
        if len(row) != 2:
            reason = f"row has {len(row)} fields; a CSV without header needs 2 (artist, title)"
            return Rejection(line_number, _display(raw), reason)
        header, header_width = {0: "artist", 1: "title"}, 2
    if len(row) != header_width and not (len(row) > header_width and not "".join(row[header_width:]).strip()):
        reason = f"row has {len(row)} fields, the header has {header_width}"
        return Rejection(line_number, _display(raw), reason)
    fields = {column: row[index] for index, column in header.items()}
    try:
        return _item_from_fields(fields, line_number, raw)
    except ValueError as refused:
        return Rejection(line_number, _display(raw), str(refused))


# ---------------------------------------------------------------------------------------------
# JSON

_decoder = json.JSONDecoder()
_JSON_SPACE_RE = re.compile(r"[ \t\n\r]*")
_LIST_KEYS = ("tracks", "items", "links")


def parse_json(text: str) -> ParseResult:
    return _collect(_deduplicated(_json_outcomes(text)), "json")


def _json_outcomes(text: str) -> Iterator[Outcome]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        line = _LineCounter(text).line_at(error.pos)
        column = error.pos - max(text.rfind("\n", 0, error.pos), text.rfind("\r", 0, error.pos))
        reason = f"invalid JSON: {error.msg} (line {line}, column {column})"
        yield Rejection(line, _display(_line_at(text, line)), reason)
        return
    except RecursionError:
        yield Rejection(1, _display(_line_at(text, 1)), "invalid JSON: nested too deeply")
        return
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        yield Rejection(1, _display(_line_at(text, 1)), f"invalid JSON: {str(error).split(';')[0]}")
        return

    located = _locate_entries(text, document, _skip_json_space(text, 0), depth=0)
    if located is None:
        reason = "JSON must be a list, or an object with a list under " + ", ".join(f'"{k}"' for k in _LIST_KEYS)
        yield Rejection(1, _display(_line_at(text, 1)), reason)
        return
    position = located[1]
    del document, located  # each element is decoded again where it stands: memory holds one at a time
    lines = _LineCounter(text)
    for entry, start, end in _array_elements(text, position):
        outcome = _json_entry(entry, lines.line_at(start), text[start:end])
        if outcome is not None:
            yield outcome


class _LineCounter:
    """Line numbers of increasing offsets, counted from the previous offset (linear in the text).

    Lines end at CR, LF or CRLF, as in _split_lines. An offset never falls between CR and LF: it
    is the start of a JSON value or a decoding error at a non-space character.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0
        self.line = 1

    def line_at(self, offset: int) -> int:
        if offset < self.offset:  # not expected; stay correct rather than fast
            self.offset, self.line = 0, 1
        text, start = self.text, self.offset
        self.line += text.count("\n", start, offset) + text.count("\r", start, offset) \
            - text.count("\r\n", start, offset)
        self.offset = offset
        return self.line


def _json_entry(entry: Any, line_number: int, raw: str) -> IngestItem | Rejection | None:
    if isinstance(entry, str):
        return parse_line(entry, line_number, raw)
    if not isinstance(entry, dict):
        return Rejection(line_number, _display(raw), f"expected an object or a string, got {type(entry).__name__}")
    # Spotify playlist items wrap the track object under "track" (or "item" since 2026).
    for wrapper in ("track", "item"):
        if isinstance(entry.get(wrapper), dict):
            entry = entry[wrapper]
            break
    try:
        return _item_from_fields(_json_fields(entry), line_number, raw)
    except ValueError as refused:
        return Rejection(line_number, _display(raw), str(refused))


def _json_fields(entry: dict[str, Any]) -> dict[Column, Any]:
    fields: dict[Column, Any] = {}
    for key, value in entry.items():
        column = _column_of(key) if isinstance(key, str) else None
        if column is not None and column not in fields and value not in (None, ""):
            fields[column] = value
    # The shape of a Spotify track object.
    if "duration_ms" in entry and "duration_ms" not in fields:
        fields["duration_ms"] = entry["duration_ms"]
    if isinstance(entry.get("external_ids"), dict) and "isrc" not in fields:
        fields["isrc"] = entry["external_ids"].get("isrc")
    if isinstance(entry.get("external_urls"), dict) and "uri" not in fields:
        fields["uri"] = entry["external_urls"].get("spotify")
    album = entry.get("album")
    if isinstance(album, dict) and "year" not in fields:
        fields["year"] = album.get("release_date")
    if "artists" in fields and not isinstance(fields["artists"], str):
        fields["artist"] = fields.pop("artists")
    return {column: value for column, value in fields.items() if value is not None}


def _locate_entries(text: str, document: Any, position: int, depth: int) -> tuple[list[Any], int] | None:
    """The list of entries and where it starts: the document itself or a list under a known key."""
    if isinstance(document, list):
        return document, position
    if not isinstance(document, dict) or depth > 1:
        return None
    members = _object_member_positions(text, position)
    for key in _LIST_KEYS:
        if isinstance(document.get(key), (list, dict)):
            return _locate_entries(text, document[key], members[key], depth + 1)
    return None


def _skip_json_space(text: str, position: int) -> int:
    return _JSON_SPACE_RE.match(text, position).end()  # type: ignore[union-attr]


def _object_member_positions(text: str, position: int) -> dict[str, int]:
    """Start of each member value of the (already validated) object at ``position``."""
    members: dict[str, int] = {}
    position = _skip_json_space(text, position + 1)
    while text[position] != "}":
        key, position = _decoder.raw_decode(text, position)
        position = _skip_json_space(text, _skip_json_space(text, position) + 1)  # past ':'
        members[key] = position  # a repeated key keeps its last value, as in json.loads
        _, position = _decoder.raw_decode(text, position)
        position = _skip_json_space(text, position)
        if text[position] == ",":
            position = _skip_json_space(text, position + 1)
    return members


def _array_elements(text: str, position: int) -> Iterator[tuple[Any, int, int]]:
    """(value, start, end) of each element of the (already validated) array at ``position``."""
    position = _skip_json_space(text, position + 1)
    while text[position] != "]":
        value, end = _decoder.raw_decode(text, position)
        yield value, position, end
        position = _skip_json_space(text, end)
        if text[position] == ",":
            position = _skip_json_space(text, position + 1)


def _line_at(text: str, line_number: int) -> str:
    for number, line in enumerate(_iter_lines(text), start=1):
        if number == line_number:
            return line
    return ""


# ---------------------------------------------------------------------------------------------
# Submissions

_EXTENSIONS: dict[str, Format] = {
    ".txt": "text", ".text": "text", ".list": "text", ".md": "text",
    ".csv": "csv", ".tsv": "csv", ".json": "json",
}


@dataclass(slots=True)
class ParsedSubmission:
    """A submission parsed one record at a time: `outcomes` yields items and rejections in line
    order (duplicates within the submission turned into rejections unless asked otherwise). Memory
    stays that of the text, whatever the number of records."""

    format: Format
    notes: list[str]
    outcomes: Iterator[Outcome]


def parse_submission(data: bytes | str, filename: str | None = None) -> ParseResult:
    """Parse one submitted file or paste; IngestError when it is larger than MAX_SUBMISSION_BYTES."""
    parsed = iter_submission(data, filename)
    result = _collect(parsed.outcomes, parsed.format)
    result.notes[:0] = parsed.notes
    return result


def iter_submission(data: bytes | str, filename: str | None = None, *, deduplicate: bool = True) -> ParsedSubmission:
    """parse_submission without holding every record: for recording large files. `deduplicate=False`
    leaves repeated fingerprints to the caller (ingest_store finds them in DuckDB instead of memory)."""
    notes: list[str] = []
    if isinstance(data, bytes):
        if len(data) > MAX_SUBMISSION_BYTES:
            raise IngestError(_too_large(len(data)))
        text = decode_submission(data, notes)
    else:
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_SUBMISSION_BYTES:
            raise IngestError(_too_large(size))
        text = data.removeprefix("\ufeff")
    format_ = detect_format(text, filename)
    if format_ == "json":
        outcomes = _json_outcomes(text)
    elif format_ == "csv":
        outcomes = _csv_outcomes(text, "\t" if (filename or "").lower().endswith(".tsv") else None)
    else:
        outcomes = _text_outcomes(text)
    return ParsedSubmission(format_, notes, _deduplicated(outcomes) if deduplicate else outcomes)


def _too_large(size: int) -> str:
    return f"submission is {size / 1048576:.1f} MiB; the limit is {MAX_SUBMISSION_BYTES // 1048576} MiB"


def decode_submission(data: bytes, notes: list[str]) -> str:
    """UTF-8 (BOM optional) or UTF-16 with BOM; otherwise Windows-1252/Latin-1, with a note."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
        notes.append("input is not valid UTF-8; decoded as Windows-1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        notes.append("input is not valid UTF-8; decoded as Latin-1")
    return text


def detect_format(text: str, filename: str | None = None) -> Format:
    """By file extension first, then by content."""
    if filename:
        for extension, format_ in _EXTENSIONS.items():
            if filename.lower().endswith(extension):
                return format_
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            json.loads(stripped)
            return "json"
        except (ValueError, RecursionError):
            first_line = next(_iter_lines(stripped))
            if not _SEPARATOR_RE.search(first_line):
                return "json"
    return "csv" if _looks_like_csv(list(islice(_iter_lines(text), 50))) else "text"


def _looks_like_csv(lines: list[str]) -> bool:
    content = [line for line in lines[:50] if line.strip() and not _COMMENT_RE.match(line.lstrip())][:10]
    if not content:
        return False
    delimiter = sniff_delimiter(content)
    try:
        rows = list(csv.reader(content, delimiter=delimiter))
    except csv.Error:
        return False
    if len(rows[0]) >= 2 and _header_columns(rows[0]) is not None:
        return True
    # Rows mostly of one width ≥ 2, with no "Artist - Title" separator, are a headerless table.
    width, count = Counter(len(row) for row in rows).most_common(1)[0]
    return (width >= 2 and count * 3 >= len(rows) * 2
            and not any(_SEPARATOR_RE.search(line.replace("\t", " ")) for line in content))


def _deduplicated(outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
    """A repeated fingerprint becomes "duplicate of line N"."""
    first_line: dict[bytes, int] = {}  # half a fingerprint as bytes: a third of the memory of the hex text
    for outcome in outcomes:
        if isinstance(outcome, IngestItem):
            key = bytes.fromhex(outcome.fingerprint[:32])
            if key in first_line:
                outcome = Rejection(outcome.line_number, _display(outcome.raw), f"duplicate of line {first_line[key]}")
            else:
                first_line[key] = outcome.line_number
        yield outcome


def _collect(outcomes: Iterable[Outcome], format_: Format) -> ParseResult:
    items: list[IngestItem] = []
    rejections: list[Rejection] = []
    for outcome in outcomes:
        (items if isinstance(outcome, IngestItem) else rejections).append(outcome)  # type: ignore[arg-type]
    rejections.sort(key=lambda rejection: rejection.line_number)
    return ParseResult(items, rejections, format_)
