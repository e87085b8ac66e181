"""Version markers in any language, unexplained qualifiers, and the marker perturbation of the dev set."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harmony_pipeline.matching import WantedTrack, rank
from harmony_pipeline.matching.normalize import tokens
from harmony_pipeline.matching.versions import VERSION_WORDS, raw_version_markers, version_kinds

REPO = Path(__file__).resolve().parent.parent
DEV_SET = REPO.parent / "shared" / "matching-dev-set" / "dev.jsonl"

SONG = WantedTrack(
    artist="The Doors", artists=("The Doors",), title="Light My Fire", album="The Doors",
    duration_ms=426_000, track_number=6, album_total_tracks=11, release_year=1967,
)


def _file(filename: str, length: int | None = 426, bitrate: int = 320) -> dict[str, Any]:
    file: dict[str, Any] = {"filename": filename, "size": 10_000_000, "code": 1, "extension": "", "bitRate": bitrate}
    if length is not None:
        file["length"] = length
    return file


def _peer(username: str, *files: dict[str, Any], free: bool = True) -> dict[str, Any]:
    return {"username": username, "token": 1, "hasFreeUploadSlot": free, "uploadSpeed": 5_000_000,
            "queueLength": 0, "files": list(files), "lockedFiles": []}


def _best(wanted: WantedTrack, *responses: dict[str, Any]) -> str | None:
    decision = rank(wanted, list(responses))
    return decision.best.filename if decision.best else None


@pytest.mark.parametrize("marker, kind", [
    ("En Vivo", "live"), ("Ao Vivo", "live"), ("En Directo", "live"), ("en direct", "live"),
    ("Dal Vivo", "live"), ("Na Żywo", "live"), ("Живьём", "live"), ("ライブ", "live"), ("라이브", "live"),
    ("Canlı", "live"), ("现场版", "live"), ("Acústico", "acoustic"), ("Akustik", "acoustic"),
    ("アコースティック", "acoustic"), ("어쿠스틱", "acoustic"), ("Ремикс", "remix"), ("リミックス", "remix"),
    ("Sped Up", "sped up"), ("Slowed + Reverb", "sped up"), ("Bass Boosted", "sped up"), ("8D Audio", "sped up"),
    ("Nightcore", "sped up"), ("TikTok Version", "edit"), ("Versión Extendida", "extended"),
    ("オフボーカル", "instrumental"), ("Минусовка", "instrumental"),
])
def test_vocabulary_names_versions_in_other_languages_and_edits(marker: str, kind: str) -> None:
    assert kind in version_kinds(tokens(f"Light My Fire ({marker})"))


@pytest.mark.parametrize("marker", ["En Vivo", "Ao Vivo", "ライブ", "Sped Up", "Slowed + Reverb", "Akustik"])
def test_a_foreign_or_edited_version_is_rejected_even_alone_with_the_right_length(marker: str) -> None:
    name = f"Music\\The Doors\\The Doors (1967)\\06 - The Doors - Light My Fire ({marker}).flac"
    assert _best(SONG, _peer("u", _file(name))) is None


def test_vocabulary_is_data_every_marker_in_token_form() -> None:
    data = (REPO / "harmony_pipeline" / "matching" / "version_markers.toml").read_text(encoding="utf-8")
    assert "en vivo" in data and "ライブ" in data
    assert ("en", "vivo") in VERSION_WORDS and ("raibu",) in VERSION_WORDS
    assert all(words and all(word == word.lower() for word in words) for words in VERSION_WORDS)


@pytest.mark.parametrize("stem", ["12 In the End", "10 In Bloom", "12 Into the Void", "10 Inside Out"])
def test_track_ten_or_twelve_titled_in_is_no_extended_version(stem: str) -> None:
    assert raw_version_markers(stem) == set()


@pytest.mark.parametrize("stem", ['Blue Monday (12" Version)', "Blue Monday (12in)", "Blue Monday 12 inch mix",
                                  "Blue Monday (7' Edit)", "Blue Monday 12in version"])
def test_inch_versions_are_still_extended(stem: str) -> None:
    assert raw_version_markers(stem) == {"extended"}


def test_track_twelve_starting_with_in_is_matched() -> None:
    wanted = WantedTrack("Linkin Park", ("Linkin Park",), "In the End", "Hybrid Theory", 216_000, track_number=8)
    name = "Music\\Linkin Park\\Hybrid Theory (Deluxe)\\12 In the End.flac"
    assert _best(wanted, _peer("u", _file(name, 216))) == name


ALBUM_DIR = "Music\\The Doors\\The Doors (1967)\\"


def test_a_file_without_qualifier_beats_one_with_an_unexplained_qualifier_whatever_the_format() -> None:
    qualified = ALBUM_DIR + "06 - Light My Fire (Zonder Zang).flac"
    plain = "Share\\The Doors - Light My Fire.mp3"
    decision = rank(SONG, [_peer("flac_peer", _file(qualified, 426, 1000)),
                           _peer("mp3_peer", _file(plain, 426, 192), free=False)])
    assert decision.best.filename == plain
    assert [c.filename for c in decision.accepted] == [plain, qualified]
    assert decision.accepted[1].qualifier == "zonder zang"


def test_an_unexplained_qualifier_with_only_the_name_behind_it_is_not_accepted() -> None:
    outside_album = "Share\\Singles\\The Doors - Light My Fire (Zonder Zang).flac"
    assert _best(SONG, _peer("u", _file(outside_album))) is None
    reasons = rank(SONG, [_peer("u", _file(outside_album))]).rejected[0].reasons
    assert any("unexplained qualifier 'zonder zang'" in reason for reason in reasons)


def test_an_unexplained_qualifier_needs_an_exact_length() -> None:
    name = ALBUM_DIR + "06 - Light My Fire (Zonder Zang).flac"
    assert _best(SONG, _peer("u", _file(name, 424))) is None  # 2 s off: a plain name would pass
    assert _best(SONG, _peer("u", _file(ALBUM_DIR + "06 - Light My Fire.flac", 424))) is not None


def test_a_subtitle_in_the_album_with_the_exact_length_is_still_accepted() -> None:
    wanted = WantedTrack("Radiohead", ("Radiohead",), "2 + 2 = 5", "Hail To the Thief", 199_000, track_number=1)
    name = "mp3\\Radiohead\\2003 Hail To the Thief\\01 - 2 + 2 = 5 (The Lukewarm.).mp3"
    assert _best(wanted, _peer("u", _file(name, 199))) == name


def test_harmless_qualifiers_are_explained() -> None:
    for qualifier in ("Remastered 2011", "Explicit", "Original Mix", "Album Version", "Remasterizado"):
        name = f"Share\\The Doors - Light My Fire ({qualifier}).mp3"
        decision = rank(SONG, [_peer("u", _file(name))])
        assert decision.best is not None and decision.best.qualifier is None, qualifier


def _load_benchmark():
    path = REPO / "benchmarks" / "matching_sandbox_eval.py"
    spec = importlib.util.spec_from_file_location("matching_sandbox_eval_markers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not DEV_SET.exists(), reason="shared development set not present")
def test_marker_perturbation_of_the_dev_set_has_no_false_accepts() -> None:
    bench = _load_benchmark()
    cases = [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    rewritten = bench.PERTURBATIONS["markers: languages and edits"](cases[0])
    assert rewritten != cases[0]  # the perturbation really renames decoys
    results = bench.evaluate_perturbations(cases)
    with_correct = sum(1 for case in cases if case["correct"])
    for name in ("markers: languages and edits", "markers: unseen ones"):
        tally = results[name]
        assert tally.wrong == 0, tally.errors
        assert tally.right / with_correct == 1.0, tally.errors


def test_a_dash_separated_unexplained_qualifier_is_not_accepted() -> None:
    name = ALBUM_DIR + "06 - The Doors - Light My Fire - Zonder Zang.flac"
    assert _best(SONG, _peer("u", _file(name))) is None
    harmless = ALBUM_DIR + "06 - The Doors - Light My Fire - Remastered 2011.flac"
    assert _best(SONG, _peer("u", _file(harmless))) == harmless


def test_romanised_markers_in_the_data_file_are_what_tokens_gives():
    """The vocabulary reads Japanese and Chinese markers from a table (no kakasi at import): each entry
    must stay what `tokens` makes of the marker, or the marker would never be found in a file name."""
    import tomllib
    from importlib import resources

    from harmony_pipeline.matching.normalize import has_japanese, tokens

    with resources.files("harmony_pipeline.matching").joinpath("version_markers.toml").open("rb") as handle:
        data = tomllib.load(handle)
    markers = [m for group in data["kinds"].values() for m in group] + data["folders"]["markers"]
    scripted = {m for m in markers if has_japanese(m)}
    assert scripted and scripted <= set(data["romanised"])
    for marker, romanised in data["romanised"].items():
        assert tuple(romanised.split()) == tokens(marker), marker
