"""Judging each candidate against the wanted track, and ranking the ones that pass.

A candidate is accepted only when nothing says it is another recording: hard rejects first
(locked, `..` path, not audio, length, version words in the name or a folder, another part,
words of another song or artist), then a match score from title, artist, album and length.
Among accepted files the user's preferences (format, bit rate, free slot, queue, speed) order
the list. When nothing is accepted the decision abstains: a wrong song in a library is worse
than a miss.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .models import AUDIO_EXTENSIONS, Candidate, MatchDecision, MatchPreferences, ScoredCandidate, WantedTrack
from .names import WantedTerms, analyse_wanted, find_any
from .normalize import tokens
from .paths import extension_of, int_or_none, is_hostile, parse_candidate
from .versions import (
    FOLDER_MARKER_WORDS,
    FOLDER_VERSION_WORDS,
    VERSION_WORDS,
    drop_harmless_phrases,
    part_numbers,
    raw_version_markers,
    version_kinds,
)

_NUMBERING_WORD = re.compile(r"^(?:\d{1,3}|(?:19|20)\d\d|[a-d]\d{1,2}|cd\d{1,2})$")
# After the title a number is no track number: "Blue Monday '88", "Song 2" are other recordings.
_TRAILING_YEAR = re.compile(r"^(?:19|20)\d\d$")
_HASH_WORD = re.compile(r"^(?=.*\d)[0-9a-f]{6,}$")  # scene names end in a crc like "c9ebaa49"
_SCENE_STEM = re.compile(r"^\S+-\S+$")
_VERSION_NOUNS = frozenset({"version", "mix", "edit", "take", "recording", "rendition", "cut"})
_BRACKETS = re.compile(r"[(\[]([^()\[\]]*)[)\]]")

# Weights of the match score; they add up to 1.
_TITLE_WEIGHT, _ARTIST_WEIGHT, _DURATION_WEIGHT, _ALBUM_WEIGHT = 0.4, 0.25, 0.25, 0.1
# A title followed by an unexplained bracketed qualifier is less certain.
_SUBTITLE_FACTOR = 0.75
# An unexplained qualifier may be a subtitle ("2 + 2 = 5 (The Lukewarm.)") or a version named in words
# no list knows ("(Zonder Zang)"): it is taken only when the length agrees this closely and the album does.
_QUALIFIER_LENGTH_S = 1.0
# The final score: how sure the match is matters more than how nice the file is.
_MATCH_SHARE = 0.8


class _Rejected(Exception):
    """A hard reject, carrying its reason."""


def _duration_score(delta: float | None) -> float:
    if delta is None:
        return 75.0
    distance = abs(delta)
    if distance <= 1:
        return 100.0
    if distance <= 2:
        return 90.0
    return 50.0


def _residual_words(candidate: Candidate, stem_words: tuple[str, ...], start: int, end: int,
                    terms: WantedTerms) -> tuple[list[str], list[str]]:
    """The words of the file name before and after the title that are not one of the wanted artists."""
    parts = [list(stem_words[:start]), list(stem_words[end:])]
    for words in parts:
        while words and (span := find_any(tuple(words), terms.artist_variants, any_order=True)):
            del words[span.start:span.end]
    leading, trailing = (drop_harmless_phrases(words) for words in parts)
    group_tag = candidate.stem.rsplit("-", 1)[-1].strip()
    # The release group closes a scene name ("…-title-grp"); respaced copies ("… - title - grp") are
    # known by the same tag closing their folder ("Artist-Album-WEB-1997-GRP").
    folder_tag = tokens(candidate.folders[-1])[-1:] if candidate.folders else ()
    tagged = _SCENE_STEM.match(candidate.stem) or folder_tag == (group_tag.lower(),)
    if (tagged and "_" not in group_tag and trailing
            and trailing[-1] == group_tag.lower() and (group_tag.lower(),) not in VERSION_WORDS):
        trailing = trailing[:-1]
    return leading, trailing


@lru_cache(maxsize=4096)
def _path_words(folders: tuple[str, ...]) -> tuple[str, ...]:
    """The folders' words, each folder closed by "/"; worked out once for all files of a folder."""
    return tuple(word for folder in folders for word in tokens(folder) + ("/",))


def _check_folders(candidate: Candidate, terms: WantedTerms) -> None:
    for folder in candidate.folders:
        words = tokens(folder)
        if FOLDER_MARKER_WORDS.isdisjoint(words):
            continue
        words = [word for word in words if word not in terms.context_words]
        kinds = version_kinds(words, FOLDER_VERSION_WORDS) - terms.version_kinds
        if kinds:
            raise _Rejected(f"rejected: {sorted(kinds)[0]} version in folder")


def _check_file_name(candidate: Candidate, leading: list[str], trailing: list[str], terms: WantedTerms,
                     verified: bool) -> str | None:
    """Raises _Rejected for version words, other parts and other songs' words.

    Returns the words of an unexplained bracketed qualifier that the length confirmed, else None.
    """
    residual = leading + trailing
    kinds = (version_kinds(residual) | raw_version_markers(candidate.stem)) - terms.version_kinds
    if kinds:
        raise _Rejected(f"rejected: {sorted(kinds)[0]} version in file name")
    if terms.version_kinds and "original" in residual:
        raise _Rejected("rejected: original version, another version is wanted")
    other_parts = part_numbers(candidate.stem) - terms.part_numbers
    if other_parts:
        raise _Rejected(f"rejected: another part ({min(other_parts)})")
    unknown = [
        word for words, numbering in ((leading, _NUMBERING_WORD), (trailing, _TRAILING_YEAR)) for word in words
        if word not in terms.allowed_words and not numbering.match(word) and not _HASH_WORD.match(word)
    ]
    if not unknown:
        return None
    # Words in brackets may be a subtitle ("2 + 2 = 5 (The Lukewarm.)"): the length must confirm,
    # and "(Band Version)"-style groups name another version.
    groups = [tokens(group) for group in _BRACKETS.findall(candidate.stem)]
    bracketed = {word for group in groups for word in group}
    if any(set(group) & _VERSION_NOUNS for group in groups if set(group) & set(unknown)):
        raise _Rejected(f"rejected: other version '{' '.join(unknown[:4])}'")
    if not verified or not set(unknown) <= bracketed:
        raise _Rejected(f"rejected: other words in file name '{' '.join(unknown[:4])}'")
    return " ".join(unknown[:4])


def _preference_reasons(extension: str, bitrate: int | None, has_free_slot: bool, queue_length: int) -> list[str]:
    return [extension + (f" {bitrate} kbps" if bitrate else ""),
            "free slot" if has_free_slot else f"queue {queue_length}"]


def _preference_score(candidate: Candidate, prefs: MatchPreferences, reasons: list[str]) -> float:
    """0..100 from format and bit rate (60), free slot (20), queue (10) and speed (10)."""
    order = prefs.format_order
    rank = order.index(candidate.extension) if candidate.extension in order else len(order)
    if candidate.extension == "mp3" and candidate.bitrate is not None and candidate.bitrate < prefs.min_mp3_bitrate:
        rank = len(order)  # a low-rate MP3 comes after every other format
    quality = 50.0 * (1 - rank / (len(order) + 1))
    quality += 10.0 * min(candidate.bitrate or 0, 1411) / 1411
    reasons += _preference_reasons(candidate.extension, candidate.bitrate, candidate.has_free_slot,
                                   candidate.queue_length)
    slot = 20.0 if candidate.has_free_slot else 0.0
    queue = 10.0 / (1 + candidate.queue_length / 10)
    speed = 10.0 * min(candidate.upload_speed, 10_000_000) / 10_000_000
    return quality + slot + queue + speed


def _length_delta(length: int | None, wanted: WantedTrack) -> float | None:
    return length - wanted.duration_ms / 1000 if length is not None and wanted.duration_ms else None


def _early_reject(locked: bool, filename: str, extension: str, length: int | None, wanted: WantedTrack,
                  prefs: MatchPreferences) -> str | None:
    """Why a file is out before its name is read (locked, `..`, not audio, length far off), else None."""
    if locked:
        return "rejected: locked file"
    if is_hostile(filename):
        return "rejected: '..' segment in path"
    if extension not in AUDIO_EXTENSIONS:
        return f"rejected: not audio (.{extension})"
    delta = _length_delta(length, wanted)
    if delta is not None and abs(delta) > prefs.duration_reject_s:
        return f"rejected: duration {delta:+.0f}s"
    return None


def _rejected_early(response: dict[str, Any], file: dict[str, Any], locked: bool, wanted: WantedTrack,
                    prefs: MatchPreferences) -> ScoredCandidate | None:
    """The rejected file when the cheap checks already rule it out, else None; its path is not parsed."""
    filename = file["filename"]
    extension = extension_of(filename.rpartition("\\")[2])
    length = int_or_none(file.get("length"))
    reason = _early_reject(locked, filename, extension, length, wanted, prefs)
    if reason is None:
        return None
    bitrate = int_or_none(file.get("bitRate"))
    has_free_slot = bool(response.get("hasFreeUploadSlot", False))
    queue_length = int_or_none(response.get("queueLength")) or 0
    return ScoredCandidate(
        username=response["username"],
        filename=filename,
        size=int_or_none(file.get("size")),
        extension=extension,
        bitrate=bitrate,
        length=length,
        score=0.0,
        reasons=[reason, *_preference_reasons(extension, bitrate, has_free_slot, queue_length)],
        qualifier=None,
    )


def _match(candidate: Candidate, wanted: WantedTrack, terms: WantedTerms,
           prefs: MatchPreferences, reasons: list[str]) -> tuple[float, str | None]:
    """(match score 0..100, unexplained qualifier or None), or _Rejected."""
    early = _early_reject(candidate.locked, candidate.filename, candidate.extension, candidate.length, wanted, prefs)
    if early:
        raise _Rejected(early)
    delta = _length_delta(candidate.length, wanted)
    _check_folders(candidate, terms)

    stem_words = tokens(candidate.stem)
    title = find_any(stem_words, terms.title_variants)
    if title is None:
        raise _Rejected("rejected: title not in file name")
    leading, trailing = _residual_words(candidate, stem_words, title.start, title.end, terms)
    residual = leading + trailing
    verified = delta is not None and abs(delta) <= prefs.duration_accept_s
    qualifier = _check_file_name(candidate, leading, trailing, terms, verified)
    if qualifier and abs(delta) > _QUALIFIER_LENGTH_S:
        raise _Rejected(f"rejected: unexplained qualifier '{qualifier}', length {delta:+.1f}s not exact")

    path_words = _path_words(candidate.folders)
    artist = find_any(stem_words, terms.artist_variants, any_order=True) or find_any(
        path_words, terms.artist_variants, any_order=True
    )
    album = find_any(path_words, terms.album_variants)
    if artist is None and album is None:
        raise _Rejected("rejected: neither artist nor album in path")
    if qualifier and album is None:
        raise _Rejected(f"rejected: unexplained qualifier '{qualifier}' and only the name behind it")

    # A wanted version (radio edit, remix, live) shared without its tag is only that version
    # when its length says so.
    marked = terms.version_kinds & (version_kinds(residual) | raw_version_markers(candidate.stem))
    if terms.version_kinds and not marked and delta is None:
        raise _Rejected("rejected: version not named and length unknown")
    if delta is not None and abs(delta) > prefs.duration_accept_s:
        raise _Rejected(f"rejected: duration {delta:+.1f}s, beyond ±{prefs.duration_accept_s:g}s")

    title_score = title.similarity * (_SUBTITLE_FACTOR if qualifier else 1.0)
    reasons.append(f"title {title_score:.0f}" + (f" (unexplained qualifier '{qualifier}')" if qualifier else ""))
    reasons.append(f"artist {artist.similarity:.0f}" if artist else "artist not in path")
    if album:
        reasons.append(f"album {album.similarity:.0f}")
    reasons.append(f"duration {delta:+.0f}s" if delta is not None else "no length")
    return (
        _TITLE_WEIGHT * title_score
        + _ARTIST_WEIGHT * (artist.similarity if artist else 70.0)
        + _DURATION_WEIGHT * _duration_score(delta)
        + _ALBUM_WEIGHT * (album.similarity if album else 60.0)
    ), qualifier


def score_candidate(candidate: Candidate, wanted: WantedTrack, terms: WantedTerms,
                    prefs: MatchPreferences) -> tuple[ScoredCandidate, bool]:
    """The scored candidate and whether it is accepted."""
    reasons: list[str] = []
    qualifier = None
    try:
        match, qualifier = _match(candidate, wanted, terms, prefs, reasons)
        accepted = match >= prefs.accept_score
        if not accepted:
            reasons.append(f"rejected: match {match:.0f} below {prefs.accept_score:g}")
    except _Rejected as reject:
        match, accepted = 0.0, False
        reasons.append(str(reject))
    preference = _preference_score(candidate, prefs, reasons)
    score = _MATCH_SHARE * match + (1 - _MATCH_SHARE) * preference if accepted else 0.0
    scored = ScoredCandidate(
        username=candidate.username,
        filename=candidate.filename,
        size=candidate.size,
        extension=candidate.extension,
        bitrate=candidate.bitrate,
        length=candidate.length,
        score=round(score, 2),
        reasons=reasons,
        qualifier=qualifier if accepted else None,
    )
    return scored, accepted


def rank(wanted: WantedTrack, responses: list[dict[str, Any]],
         prefs: MatchPreferences = MatchPreferences()) -> MatchDecision:
    """Judges every file of one search; `accepted` (best first) are the retry candidates."""
    terms = analyse_wanted(wanted)
    accepted: list[ScoredCandidate] = []
    rejected: list[ScoredCandidate] = []
    # Files in the order of candidates_from_responses; cheap rejects skip parsing and scoring.
    for response in responses:
        if not isinstance(response, dict) or not isinstance(response.get("username"), str):
            continue  # a malformed answer is no candidate (as in candidates_from_responses)
        for locked, files in ((False, response.get("files")), (True, response.get("lockedFiles"))):
            for file in files if isinstance(files, list) else []:
                if not isinstance(file, dict) or not isinstance(file.get("filename"), str):
                    continue
                early = _rejected_early(response, file, locked, wanted, prefs)
                if early is not None:
                    rejected.append(early)
                    continue
                scored, ok = score_candidate(parse_candidate(response, file, locked), wanted, terms, prefs)
                (accepted if ok else rejected).append(scored)
    # A file without unexplained qualifiers beats every file with one, whatever their formats.
    accepted.sort(key=lambda scored: (scored.qualifier is None, scored.score), reverse=True)
    return MatchDecision(best=accepted[0] if accepted else None, accepted=accepted, rejected=rejected)
