"""What the wanted track's names look like in tokens, and how to find them in a file's path."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz
from rapidfuzz.distance import Indel

from .models import WantedTrack
from .normalize import tokens
from .versions import FOLDER_VERSION_WORDS, NOISE_WORDS, part_numbers, raw_version_markers, version_kinds

_SUFFIX_SPLIT = re.compile(r"\s+[-–—]\s+")
_GROUP = re.compile(r"\(([^()]*)\)|\[([^\[\]]*)\]")
_FEAT_GROUP = re.compile(r"^\s*(?:feat\.?|ft\.?|featuring|with)\s", re.IGNORECASE)
_FEAT_TAIL = re.compile(r"\s(?:feat\.?|ft\.?|featuring)\s.*$", re.IGNORECASE)
_ARTIST_SPLIT = re.compile(r"\s*(?:&|\band\b|,|\bx\b|\+|/)\s*", re.IGNORECASE)
_NON_DIGIT = re.compile(r"\D")
_YEAR = re.compile(r"^(?:19|20)\d\d$")

# Fuzzy matches must be at least this similar (rapidfuzz ratio on compact strings).
FUZZY_MIN = 88.0


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    similarity: float


@dataclass(frozen=True)
class WantedTerms:
    """The wanted track reduced to token forms, computed once per ranking."""

    title_variants: tuple[tuple[str, ...], ...]  # longest first: with and without "(…)" parts
    version_kinds: frozenset[str]  # versions the wanted track itself is (remix, live, edit, …)
    context_words: frozenset[str]  # every word of the wanted title, album and artists
    allowed_words: frozenset[str]  # words a file name may carry besides the title
    artist_variants: tuple[tuple[str, ...], ...]
    album_variants: tuple[tuple[str, ...], ...]
    part_numbers: frozenset[int]


def _is_noise(words: tuple[str, ...]) -> bool:
    return all(word in NOISE_WORDS or _YEAR.match(word) for word in words)


def split_title(title: str) -> tuple[str, str, set[str]]:
    """(title with its "(…)" parts, title without them, version kinds the title names).

    Spotify appends `- Remastered 2011`, `- Radio Edit`, `(feat. X)`; noise and featured artists
    are dropped, version tags become version kinds, other brackets are optional title parts
    ("(I Can't Get No) Satisfaction" is often shared as "Satisfaction").
    """
    parts = _SUFFIX_SPLIT.split(title)
    core, suffixes = parts[0], parts[1:]
    kinds: set[str] = set(raw_version_markers(title))
    for suffix in suffixes:
        kinds |= version_kinds(tokens(suffix))
    core = _FEAT_TAIL.sub("", core)
    full, short = core, core
    for match in _GROUP.finditer(core):
        content = match.group(1) if match.group(1) is not None else match.group(2)
        words = tokens(content)
        group_kinds = version_kinds(words)
        if _FEAT_GROUP.match(content) or group_kinds or _is_noise(words):
            kinds |= group_kinds
            full = full.replace(match.group(0), " ")
        short = short.replace(match.group(0), " ")
    return full, short, kinds


def _artist_variants(artists: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    variants: list[tuple[str, ...]] = []
    for artist in artists:
        variants.append(tokens(artist))
        # "Bob Marley & The Wailers" is often filed as "Bob Marley"; one-word parts are too vague.
        for part in _ARTIST_SPLIT.split(artist):
            if len(tokens(part)) >= 2:
                variants.append(tokens(part))
    return tuple(dict.fromkeys(variant for variant in variants if variant))


def _album_variants(album: str | None) -> tuple[tuple[str, ...], ...]:
    if not album:
        return ()
    short = _GROUP.sub(" ", _SUFFIX_SPLIT.split(album)[0])
    return tuple(dict.fromkeys(variant for variant in (tokens(album), tokens(short)) if variant))


def analyse_wanted(wanted: WantedTrack) -> WantedTerms:
    full, short, kinds = split_title(wanted.title)
    album = wanted.album or ""
    # An acoustic or live album makes its tracks that version ("MTV Unplugged").
    kinds |= version_kinds(tokens(album), FOLDER_VERSION_WORDS)
    context = set(tokens(wanted.title)) | set(tokens(album))
    for artist in wanted.artists:
        context |= set(tokens(artist))
    return WantedTerms(
        title_variants=tuple(dict.fromkeys(v for v in (tokens(full), tokens(short)) if v)),
        version_kinds=frozenset(kinds),
        context_words=frozenset(context),
        allowed_words=frozenset(context | NOISE_WORDS),
        artist_variants=_artist_variants(wanted.artists),
        album_variants=_album_variants(wanted.album),
        part_numbers=frozenset(part_numbers(full)),
    )


@dataclass(frozen=True)
class _Target:
    """What find_span needs of one target, worked out once per target rather than per word span."""

    text: str
    length: int
    tolerance: int  # a fuzzy match may differ in length by this much
    fuzzy: bool  # short names are matched exactly only
    digits: str
    word_count: int
    words: frozenset[str]
    sorted_words: list[str]


@lru_cache(maxsize=4096)
def _target(target: tuple[str, ...]) -> _Target:
    text = "".join(target)
    return _Target(
        text=text,
        length=len(text),
        tolerance=max(2, len(text) // 5),
        fuzzy=len(text) >= 5,
        digits=_NON_DIGIT.sub("", text),
        word_count=len(target),
        words=frozenset(target),
        sorted_words=sorted(target),
    )


def find_span(words: tuple[str, ...] | list[str], target: tuple[str, ...], any_order: bool = False) -> Span | None:
    """Where `target` occurs in `words` (non-empty tokens) on word boundaries, ignoring spacing ("ac dc" = "acdc").

    Falls back to the most similar span (rapidfuzz ratio >= FUZZY_MIN) for spelling slips;
    `any_order` also accepts the words in another order ("Yonezu Kenshi" for "Kenshi Yonezu").
    The first exact span (by start word) wins; else the first of the most similar ones.
    """
    spec = _target(target)
    if not spec.length:
        return None
    whole = "".join(words)
    offsets = [0]  # offsets[i]: where word i starts in `whole`
    for word in words:
        offsets.append(offsets[-1] + len(word))
    exact = _first_exact(words, whole, offsets, spec, any_order)
    if exact is not None or not spec.fuzzy:
        return exact
    return _most_similar(words, whole, offsets, spec)


def _first_exact(words: tuple[str, ...] | list[str], whole: str, offsets: list[int], spec: _Target,
                 any_order: bool) -> Span | None:
    """The span with the lowest start whose words spell the target, or hold its words in another order."""
    first, first_end = len(words), 0
    if spec.text in whole:  # else no span can spell it: each is a piece of the whole
        start_at = {offset: index for index, offset in enumerate(offsets)}
        found = whole.find(spec.text)
        while found != -1:
            start, end = start_at.get(found), start_at.get(found + spec.length)
            if start is not None and end is not None:
                first, first_end = start, end
                break
            found = whole.find(spec.text, found + 1)
    if any_order and spec.words.issubset(words):
        size = spec.word_count
        for start in range(first):
            end = start + size
            if end > len(words):
                break
            if offsets[end] - offsets[start] == spec.length and sorted(words[start:end]) == spec.sorted_words:
                return Span(start, end, 100.0)
    return Span(first, first_end, 100.0) if first < len(words) else None


def _most_similar(words: tuple[str, ...] | list[str], whole: str, offsets: list[int], spec: _Target) -> Span | None:
    """The first most similar span of about the target's length, for spelling slips only."""
    # ratio = 200 * LCS / (span + target length), and no span shares more with the target than the
    # whole name does: when even the whole name falls short for the shortest span scored, nothing can
    # reach FUZZY_MIN (one bit-parallel distance instead of scanning the spans).
    most_apart = len(whole) + spec.length - FUZZY_MIN / 100 * (2 * spec.length - spec.tolerance) + 1e-6
    if most_apart < 0 or Indel.distance(whole, spec.text, score_cutoff=int(most_apart)) > most_apart:
        return None
    # "Song 2" is never "Song 3": a span's digits must be the target's.
    whole_digits = _NON_DIGIT.sub("", whole)
    if spec.digits not in whole_digits:
        return None
    digit_offsets = None  # without digits in the whole, every span agrees with a target without any
    if whole_digits:
        digit_offsets = [0]
        for word in words:
            digit_offsets.append(digit_offsets[-1] + len(_NON_DIGIT.sub("", word)))
    shortest, longest = spec.length - spec.tolerance, spec.length + spec.tolerance
    best: Span | None = None
    best_similarity = FUZZY_MIN
    for start in range(len(words)):
        base = offsets[start]
        # Spans from `start` of a close length: ends between these two.
        for end in range(bisect_left(offsets, base + shortest, start + 1), bisect_right(offsets, base + longest)):
            if digit_offsets is not None and whole_digits[digit_offsets[start]:digit_offsets[end]] != spec.digits:
                continue
            similarity = fuzz.ratio(whole[base:offsets[end]], spec.text, score_cutoff=best_similarity)
            if similarity and (best is None or similarity > best.similarity):
                best = Span(start, end, similarity)
                best_similarity = similarity
    return best


def find_any(words: tuple[str, ...], variants: tuple[tuple[str, ...], ...], any_order: bool = False) -> Span | None:
    spans = [span for variant in variants if (span := find_span(words, variant, any_order))]
    return max(spans, key=lambda span: (span.similarity, span.end - span.start), default=None)
