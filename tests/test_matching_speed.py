"""The matching engine's fast paths give what the plain computations give, and the speed benchmark runs.

Each fast path (span search, version look-up, ASCII tokens, cheap rejects in `rank`) is checked
against the straightforward computation it replaced, on generated inputs and on the development set.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from harmony_pipeline.matching import MatchPreferences, WantedTrack, candidates_from_responses, rank
from harmony_pipeline.matching import normalize
from harmony_pipeline.matching.names import FUZZY_MIN, Span, analyse_wanted, find_span
from harmony_pipeline.matching.normalize import tokens
from harmony_pipeline.matching.scoring import score_candidate
from harmony_pipeline.matching.versions import FOLDER_VERSION_WORDS, VERSION_WORDS, version_kinds

REPO = Path(__file__).resolve().parent.parent
DEV_SET = REPO.parent / "shared" / "matching-dev-set" / "dev.jsonl"
SPEED_SCRIPT = REPO / "benchmarks" / "matching_speed.py"
_NON_DIGIT = re.compile(r"\D")


# ------------------------------------------------------------------------------------------------
# find_span: the scan of every word span, as it was written first
# ------------------------------------------------------------------------------------------------
def plain_find_span(words, target, any_order=False):
    wanted = "".join(target)
    wanted_digits = _NON_DIGIT.sub("", wanted)
    best = None
    for start in range(len(words)):
        joined = ""
        for end in range(start + 1, len(words) + 1):
            joined += words[end - 1]
            if joined == wanted:
                return Span(start, end, 100.0)
            if any_order and sorted(words[start:end]) == sorted(target):
                return Span(start, end, 100.0)
            if len(joined) > len(wanted) * 1.3 + 2:
                break
            close_length = abs(len(joined) - len(wanted)) <= max(2, len(wanted) // 5)
            if len(wanted) >= 5 and close_length and _NON_DIGIT.sub("", joined) == wanted_digits:
                similarity = fuzz.ratio(joined, wanted)
                if similarity >= FUZZY_MIN and (best is None or similarity > best.similarity):
                    best = Span(start, end, similarity)
    return best


# Few letters, so that exact, reordered and misspelt spans all turn up.
_word = st.text(alphabet="abcde12", min_size=1, max_size=6)


@st.composite
def words_and_target(draw):
    words = draw(st.lists(_word, min_size=0, max_size=12))
    if draw(st.booleans()):
        words = words + words[: draw(st.integers(0, len(words)))]  # repeats: ties between spans
    if words and draw(st.booleans()):
        start = draw(st.integers(0, len(words) - 1))
        end = draw(st.integers(start + 1, len(words)))
        target = list(words[start:end])
        edit = draw(st.sampled_from(["none", "shuffle", "respace", "misspell"]))
        if edit == "shuffle":
            target = draw(st.permutations(target))
        elif edit == "respace":
            target = ["".join(target)]
        elif edit == "misspell":
            index = draw(st.integers(0, len(target) - 1))
            word = target[index]
            position = draw(st.integers(0, len(word) - 1))
            target[index] = word[:position] + draw(st.sampled_from("abcde")) + word[position + 1:]
    else:
        target = draw(st.lists(_word, min_size=1, max_size=4))
    return tuple(words), tuple(target), draw(st.booleans())


@settings(max_examples=3000, deadline=None)
@given(words_and_target())
def test_find_span_agrees_with_the_scan_of_every_span(case) -> None:
    words, target, any_order = case
    assert find_span(words, target, any_order) == plain_find_span(words, target, any_order)
    assert find_span(list(words), target, any_order) == plain_find_span(list(words), target, any_order)


def test_find_span_examples() -> None:
    assert find_span(("01", "ac", "dc", "back", "in", "black"), ("acdc",)) == Span(1, 3, 100.0)
    assert find_span(("yonezu", "kenshi", "lemon"), ("kenshi", "yonezu"), any_order=True) == Span(0, 2, 100.0)
    assert find_span(("yonezu", "kenshi", "lemon"), ("kenshi", "yonezu")) is None
    slip = find_span(("02", "hoppipola"), ("hoppipolla",))
    assert slip is not None and (slip.start, slip.end) == (1, 2) and FUZZY_MIN <= slip.similarity < 100
    assert find_span(("song", "3"), ("song", "2")) is None  # digits never fuzzy


# ------------------------------------------------------------------------------------------------
# version_kinds: the indexed look-up of the module's vocabularies against the scan of every phrase
# ------------------------------------------------------------------------------------------------
_VOCABULARY_WORDS = sorted({word for marker in VERSION_WORDS for word in marker})
_version_word = st.one_of(
    st.sampled_from(_VOCABULARY_WORDS), st.sampled_from(["7", "10", "12", "inch", "version", "mix", "song"]), _word
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_version_word, max_size=10))
def test_version_kinds_index_agrees_with_the_phrase_scan(words) -> None:
    # A copy of a vocabulary is not one of the module's own: version_kinds scans it phrase by phrase.
    assert version_kinds(words) == version_kinds(words, dict(VERSION_WORDS))
    assert version_kinds(words, FOLDER_VERSION_WORDS) == version_kinds(words, dict(FOLDER_VERSION_WORDS))


def test_version_kinds_examples() -> None:
    assert version_kinds(("live", "at", "wembley")) == {"live"}
    assert version_kinds(("sped", "up")) == {"sped up"}
    assert version_kinds(("12", "version")) == {"extended"}
    assert version_kinds(("mix",), FOLDER_VERSION_WORDS) == set()  # not a folder marker
    assert version_kinds(("love", "song")) == set()


# ------------------------------------------------------------------------------------------------
# tokens: every rewrite applied, whatever the text holds
# ------------------------------------------------------------------------------------------------
def plain_tokens(text: str) -> tuple[str, ...]:
    text = normalize.romanise(text)
    text = normalize._ACRONYM_DOT.sub(r"\1", text).lower()
    text = normalize._LEET_RE.sub(lambda match: normalize._LEET[match.group()], text)
    text = normalize._APOSTROPHES.sub("", text)
    text = normalize._AND.sub(" and ", text)
    words = [word for word in normalize._NON_WORD.sub(" ", text).split() if word not in normalize._DROPPED_TOKENS]
    return tuple(normalize._part_numbers_as_digits(words))


_name_piece = st.sampled_from(
    list("abcPRTxyz 0123456789.'`!$&+-_()[]/\\,") + ["part", "Pt.", " II", "The ", "R.E.M."]
    + list("éüñ’´ßÆ") + ["ライブ", "Нас", "现场"]
)
_name_text = st.lists(_name_piece, max_size=20).map("".join)


@settings(max_examples=2000, deadline=None)
@given(_name_text)
def test_tokens_agree_with_every_rewrite_applied(text) -> None:
    assert tokens(text) == plain_tokens(text)


def test_romanising_leaves_ascii_alone() -> None:
    # tokens() skips romanise() for ASCII names: this is why that is safe.
    ascii_text = "".join(chr(code) for code in range(128))
    assert unicodedata.normalize("NFKC", ascii_text) == ascii_text
    assert normalize.romanise(ascii_text) == ascii_text


def test_tokens_examples() -> None:
    assert tokens("AC/DC - Back In Black") == ("ac", "dc", "back", "in", "black")
    assert tokens("R.E.M. & The Beatles, Part II") == ("rem", "and", "beatles", "pt", "2")
    assert tokens("P!nk Don't") == ("pink", "dont")


# ------------------------------------------------------------------------------------------------
# rank: cheap rejects give the entries full scoring gives
# ------------------------------------------------------------------------------------------------
def full_rank(wanted: WantedTrack, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """Every file parsed and scored, as rank() did before it rejected cheaply."""
    prefs = MatchPreferences()
    terms = analyse_wanted(wanted)
    accepted, rejected = [], []
    for candidate in candidates_from_responses(responses):
        scored, ok = score_candidate(candidate, wanted, terms, prefs)
        (accepted if ok else rejected).append(scored)
    accepted.sort(key=lambda scored: (scored.qualifier is None, scored.score), reverse=True)
    return {
        "best": accepted[0].as_dict() if accepted else None,
        "accepted": [s.as_dict() for s in accepted],
        "rejected": [s.as_dict() for s in rejected],
    }


def _file(filename: str, length: int | None, bitrate: int | None = 320) -> dict[str, Any]:
    file: dict[str, Any] = {"filename": filename, "size": 9_000_000, "extension": ""}
    if length is not None:
        file["length"] = length
    if bitrate is not None:
        file["bitRate"] = bitrate
    return file


def test_cheap_rejects_keep_the_reasons_and_order_of_full_scoring() -> None:
    wanted = WantedTrack.from_dict({"artist": "Radiohead", "title": "Karma Police", "album": "OK Computer",
                                    "duration_ms": 264_000})
    responses = [
        {"username": "a", "hasFreeUploadSlot": False, "queueLength": 4, "uploadSpeed": 2_000_000,
         "files": [_file("Music\\Radiohead\\OK Computer\\06 Karma Police.flac", 264, 900),
                   _file("Music\\Radiohead\\OK Computer\\06 Karma Police.cue", None, None),
                   _file("Music\\Radiohead\\..\\06 Karma Police.mp3", 264),
                   _file("Music\\Radiohead\\OK Computer\\06 Karma Police.mp3", 290)],
         "lockedFiles": [_file("Music\\Radiohead\\OK Computer\\06 Karma Police.mp3", 264)]},
        {"username": "b", "hasFreeUploadSlot": True, "queueLength": 0, "uploadSpeed": 9_000_000,
         "files": [_file("Radiohead - Karma Police (Live).mp3", 266),
                   _file("Radiohead - Karma Police.mp3", None, 256)]},
    ]
    decision = rank(wanted, responses)
    assert decision.as_dict() == full_rank(wanted, responses)
    reasons = [entry.reasons[0] for entry in decision.rejected]
    assert reasons == ["rejected: not audio (.cue)", "rejected: '..' segment in path", "rejected: duration +26s",
                       "rejected: locked file", "rejected: live version in file name"]
    assert decision.rejected[0].reasons[1:] == ["cue", "queue 4"]
    assert decision.best is not None and decision.best.filename.endswith("06 Karma Police.flac")


@pytest.mark.skipif(not DEV_SET.exists(), reason="shared development set not present")
def test_rank_gives_full_scoring_decisions_on_the_development_set() -> None:
    with DEV_SET.open(encoding="utf-8") as handle:
        cases = [json.loads(line) for line in handle if line.strip()]
    for case in cases:
        wanted = WantedTrack.from_dict(case["wanted"])
        assert rank(wanted, case["responses"]).as_dict() == full_rank(wanted, case["responses"]), case["id"]


# ------------------------------------------------------------------------------------------------
# benchmarks/matching_speed.py
# ------------------------------------------------------------------------------------------------
def test_speed_benchmark_prints_its_summary_line(tmp_path: Path) -> None:
    case = {
        "wanted": {"artist": "Radiohead", "title": "Karma Police", "album": "OK Computer", "duration_ms": 264_000},
        "responses": [{"username": "a", "hasFreeUploadSlot": True, "queueLength": 0, "uploadSpeed": 1,
                       "files": [_file("Music\\Radiohead\\OK Computer\\06 Karma Police.flac", 264),
                                 _file("Music\\Radiohead\\OK Computer\\cover.jpg", None)],
                       "lockedFiles": [_file("Music\\Radiohead\\OK Computer\\06 Karma Police.mp3", 264)]}],
    }
    data = tmp_path / "cases.jsonl"
    data.write_text(json.dumps(case) + "\n" + json.dumps(case) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(SPEED_SCRIPT), str(data), "--seconds", "0.2"],
                            capture_output=True, text=True, timeout=120, check=True)
    lines = result.stdout.strip().splitlines()
    match = re.fullmatch(r"matching_speed: candidates_per_second=(\d+) cases=2 candidates=6", lines[-1])
    assert match and int(match.group(1)) > 0, result.stdout
    # Each pass starts cold: the matching package's memo caches are found and emptied.
    caches = re.search(r"cleared each pass \((\d+) caches\)", result.stdout)
    assert caches and int(caches.group(1)) >= 4, result.stdout  # tokens, targets, folders, path words


def test_speed_benchmark_without_data_says_so(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SPEED_SCRIPT), str(tmp_path / "missing.jsonl")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"matching_speed: no data set at {tmp_path / 'missing.jsonl'}"]
