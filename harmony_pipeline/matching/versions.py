"""Version words: what makes a file another recording (live, remix, karaoke, …) and what is noise.

All words are in the token form of `normalize.tokens`.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources

from .normalize import has_japanese, tokens

# A vocabulary maps a marker's tokens (one word, or a phrase of several) to the kind of version it names.
Vocabulary = dict[tuple[str, ...], str]


def _load_markers() -> dict:
    with resources.files(__package__).joinpath("version_markers.toml").open("rb") as handle:
        return tomllib.load(handle)


def _vocabulary(markers_by_kind: dict[str, list[str]]) -> Vocabulary:
    vocabulary: Vocabulary = {}
    for kind, markers in markers_by_kind.items():
        for marker in markers:
            words = _marker_tokens(marker)
            if words:
                vocabulary.setdefault(words, kind)
    return vocabulary


_MARKERS = _load_markers()


def _marker_tokens(marker: str) -> tuple[str, ...]:
    """A marker's token form; Japanese and Chinese ones from the table in the data file, so that
    importing the matcher never loads kakasi's dictionaries (~0.5 s, ~100 MB)."""
    if has_japanese(marker):
        return tuple(_MARKERS["romanised"][marker].split())
    return tokens(marker)


# Markers of another recording of the song when they appear in a file name (version_markers.toml).
VERSION_WORDS: Vocabulary = _vocabulary(_MARKERS["kinds"])

# Markers that make a whole folder another kind of release: a narrower list, same kinds.
FOLDER_VERSION_WORDS: Vocabulary = {
    words: VERSION_WORDS[words]
    for words in (_marker_tokens(marker) for marker in _MARKERS["folders"]["markers"])
    if words in VERSION_WORDS
}

# Words that never change the recording: remaster tags, edition names, rip details, `feat.`.
NOISE_WORDS = frozenset(_MARKERS["harmless"]["noise"].split())

# Tags that look like version markers but keep the recording.
_HARMLESS_PHRASES = [_marker_tokens(phrase) for phrase in _MARKERS["harmless"]["phrases"]]
_HARMLESS_FIRST = frozenset(phrase[0] for phrase in _HARMLESS_PHRASES if phrase)
_LONGEST_MARKER = max(len(words) for words in VERSION_WORDS)

_REREC_RE = re.compile(r"\b\w+['’]s\s+version\b", re.IGNORECASE)  # "(Taylor's Version)"
_NOT_REREC_RE = re.compile(r"\b(?:album|radio|single)['’]s", re.IGNORECASE)
# 12" / 7' / 12 inch / 12in; "12 In the End" is track 12, so a bare "in" counts only before a version word.
_INCH_RE = re.compile(
    r"\b(?:7|10|12)\s*(?:(?:\"|''|'|”|″)(?!\w)|inch\b|in\b(?=\.?\s*(?:[)\]]|$|version|mix|edit|vinyl|single|remix)))",
    re.IGNORECASE,
)
_INCH_TOKENS = re.compile(r"^(?:7|10|12)$")
_PART_RE = re.compile(r"\b(?:pt|part|parts|vol|volume|no|nr)\.?\s*([0-9]+|[ivx]+)\b", re.IGNORECASE)
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}


def raw_version_markers(text: str) -> set[str]:
    """Markers only visible before normalisation: 12" / 7' versions and "(X's Version)"."""
    markers = set()
    # The patterns cannot match without a 7/10/12, or without an apostrophe: most names skip them.
    if ("7" in text or "10" in text or "12" in text) and _INCH_RE.search(text):
        markers.add("extended")
    if ("'" in text or "’" in text) and _REREC_RE.search(text) and not _NOT_REREC_RE.search(text):
        markers.add("re-recorded")
    return markers


def drop_harmless_phrases(words: list[str]) -> list[str]:
    """Removes "(Original Mix)"-style pairs, which name the standard recording."""
    if _HARMLESS_FIRST.isdisjoint(words):
        return list(words)
    kept: list[str] = []
    index = 0
    while index < len(words):
        phrase = next((p for p in _HARMLESS_PHRASES if tuple(words[index:index + len(p)]) == p), None)
        if phrase:
            index += len(phrase)
            continue
        kept.append(words[index])
        index += 1
    return kept


def _index(vocabulary: Vocabulary) -> tuple[frozenset[str], dict[str, list[tuple[tuple[str, ...], str]]]]:
    """(every word that can start a finding, the vocabulary's markers by first word)."""
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for marker, kind in vocabulary.items():
        by_first.setdefault(marker[0], []).append((marker, kind))
    return frozenset(by_first) | _INCH_WORDS, by_first


_INCH_WORDS = frozenset({"version", "mix", "edit", "inch", "vinyl"})  # "12 version", "7 edit"
# The two vocabularies of this module are fixed at import: their look-up tables are built once.
_VERSION_INDEX, _FOLDER_INDEX = _index(VERSION_WORDS), _index(FOLDER_VERSION_WORDS)
# Names without any of these words name no folder version: the cheap test before looking closer.
FOLDER_MARKER_WORDS = _FOLDER_INDEX[0]


def version_kinds(words: list[str] | tuple[str, ...], vocabulary: Vocabulary = VERSION_WORDS) -> set[str]:
    """Kinds of version named by the words or phrases; "12 version"/"7 edit" count as extended."""
    words = tuple(words)
    index = None
    if vocabulary is VERSION_WORDS:
        index = _VERSION_INDEX
    elif vocabulary is FOLDER_VERSION_WORDS:
        index = _FOLDER_INDEX
    if index is not None:
        triggers, by_first = index
        if triggers.isdisjoint(words):  # most names: no word starts a marker
            return set()
        kinds = {
            kind
            for start, word in enumerate(words)
            for marker, kind in by_first.get(word, ())
            if words[start:start + len(marker)] == marker
        }
    else:
        kinds = {
            vocabulary[words[start:start + size]]
            for size in range(1, _LONGEST_MARKER + 1)
            for start in range(len(words) - size + 1)
            if words[start:start + size] in vocabulary
        }
    for first, second in zip(words, words[1:]):
        if second in _INCH_WORDS and _INCH_TOKENS.match(first):
            kinds.add("extended")
    return kinds


def part_numbers(text: str) -> set[int]:
    """Numbers of "Pt. 2", "Part II", "No. 2" in a raw name."""
    numbers: set[int] = set()
    lower = text.lower()
    if not any(word in lower for word in ("pt", "par", "vol", "no", "nr")):  # the pattern's words
        return numbers
    for match in _PART_RE.finditer(text):
        value = match.group(1).lower()
        numbers.add(int(value) if value.isdigit() else _ROMAN.get(value, 0))
    return numbers
