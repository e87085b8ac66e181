"""Matching throughput: candidates scored per second on one core, next to a spotDL-style baseline scorer.

Every case of the development set (shared/matching-dev-set/dev.jsonl) is ranked by
`harmony_pipeline.matching.rank` and by `baseline_rank` below, over several passes; the figure is
candidate files per CPU second (process time, one thread). `harmony` empties the matcher's memo caches
before each pass (the Japanese dictionary excepted), so repeated names are not free; `harmony_warm`
keeps them, as a long run over one library would. The accuracy of each on
the same cases (top-1 right, false accepts) is printed too, as context for the speed.

The baseline follows spotDL's published matching approach (spotdl/utils/matching.py, `order_results`),
written here for Soulseek files: names slugified; a result must share a word with the title; the main
artist's fuzzy ratio, averaged with the other artists'; a fallback that looks for the artists in the
file name; the title's ratio on sorted words, retried with the artists' words filled in when low;
15 points off per "forbidden" word (live, remix, …) the title lacks; a time match of 100 − |Δ seconds|;
results under 60 (name) or 70 (artists) dropped; average of artists and name, with time averaged in
when both are at most 85.

    .venv/bin/python benchmarks/matching_throughput.py [--passes 5] [--data FILE.jsonl]
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import time
from pathlib import Path

from _common import REPO, emit
from anyascii import anyascii
from rapidfuzz import fuzz

from harmony_pipeline import matching
from harmony_pipeline.matching import WantedTrack, rank

DEFAULT_DATA = REPO.parent / "shared" / "matching-dev-set" / "dev.jsonl"
AUDIO = {"flac", "mp3", "m4a", "ogg", "opus", "wav", "aiff", "alac", "ape", "wv", "aac"}
FORBIDDEN = ("bassboost", "remix", "remaster", "reverb", "live", "acoustic", "8daudio", "concert",
             "acapella", "slowed", "instrumental", "cover", "karaoke")
_NUMBER = re.compile(r"^\s*(?:\d{1,2}[-.])?\d{1,3}(?:\s*[-._)]\s*|\s+)")


# --- the spotDL-style baseline -------------------------------------------------------------------
def slug(text: str | None) -> str:
    """Transliterated, lower-case words joined by '-'."""
    return "-".join(re.findall(r"[a-z0-9]+", anyascii(text or "").lower()))


def _sorted_words(text: str) -> str:
    return "-".join(sorted(word for word in text.split("-") if word))


def _file_fields(filename: str) -> tuple[str, list[str], str, str]:
    """(name, artists, album, compact path) read from a Soulseek path: 'Artist - Title' or folders."""
    parts = [p for p in filename.replace("/", "\\").split("\\") if p]
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    stem = _NUMBER.sub("", stem, count=1)
    album = parts[-2] if len(parts) > 1 else ""
    if " - " in stem:
        artist, name = stem.split(" - ", 1)
    else:
        artist, name = (parts[-3] if len(parts) > 2 else ""), stem
    return name, [artist] if artist else [], album, slug(filename).replace("-", "")


def _artists_match(wanted: WantedTrack, artists: list[str], name: str) -> float:
    if not artists:
        main = 0.0
    else:
        main = fuzz.ratio(slug(wanted.artists[0]), slug(artists[0]))
        if main < 50 and len(wanted.artists) > 1:
            main = max(fuzz.ratio(slug(a), slug(b)) for a in wanted.artists[:2] for b in artists[:2])
    score = main
    if len(wanted.artists) > 1 and artists:
        mine, theirs = sorted(map(slug, wanted.artists)), sorted(map(slug, artists))
        others = sum(fuzz.ratio(mine[i], theirs[i] if i < len(theirs) else "") for i in range(len(mine)))
        score = (main + others / len(mine)) / 2
    if score <= 50:  # unverified result: look for the artists in its name
        compact = slug(name).replace("-", "")
        found = sum(slug(a).replace("-", "") in compact for a in wanted.artists)
        score = max(score, 100 * found / len(wanted.artists))
    return score


def _name_match(wanted: WantedTrack, name: str) -> float:
    result, title = slug(name), slug(wanted.title)
    match = fuzz.ratio(_sorted_words(result), _sorted_words(title))
    if match <= 75:  # retry with the artists' words filled in on both sides
        filled_result, filled_title = result, f"{slug(wanted.artist)}-{title}"
        for artist in map(slug, wanted.artists):
            if artist and artist.replace("-", "") in filled_title.replace("-", "") \
                    and artist.replace("-", "") not in filled_result.replace("-", ""):
                filled_result += f"-{artist}"
        match = max(match, fuzz.ratio(_sorted_words(filled_result), _sorted_words(filled_title)))
    return match


def baseline_score(wanted: WantedTrack, file: dict) -> float | None:
    """The candidate's match (0–100), or None when the baseline drops it."""
    if file["filename"].rsplit(".", 1)[-1].lower() not in AUDIO:
        return None
    name, artists, _album, compact_path = _file_fields(file["filename"])
    title_words = [w for w in slug(wanted.title).split("-") if w]
    compact_name = slug(name).replace("-", "")
    if not any(word in compact_name for word in title_words):
        return None
    artists_match = _artists_match(wanted, artists, name)
    name_match = _name_match(wanted, name)
    compact_title = slug(wanted.title).replace("-", "")
    name_match -= 15 * sum(word in compact_name and word not in compact_title for word in FORBIDDEN)
    if name_match <= 60 or artists_match < 70:
        return None
    average = (artists_match + name_match) / 2
    length, wanted_s = file.get("length"), (wanted.duration_ms or 0) / 1000
    time_match = 100 - abs(length - wanted_s) if length and wanted_s else 0.0
    if time_match < 50 and average < 75:
        return None
    if average <= 85 and time_match <= 85:
        average = (average + time_match) / 2
    return min(average, 100.0)


def baseline_rank(wanted: WantedTrack, responses: list[dict]) -> tuple[str, str] | None:
    best, pick = None, None
    for response in responses:
        for file in response.get("files") or []:
            score = baseline_score(wanted, file)
            if score is not None and (best is None or score > best):
                best, pick = score, (response["username"], file["filename"])
    return pick


# --- measuring ---------------------------------------------------------------------------------
def _clear_matching_caches() -> None:
    for module in vars(matching).values():
        for value in vars(module).values() if hasattr(module, "__dict__") else ():
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__name__", "") != "_kakasi":
                value.cache_clear()


def harmony_pick(wanted: WantedTrack, responses: list[dict]) -> tuple[str, str] | None:
    best = rank(wanted, responses).best
    return (best.username, best.filename) if best else None


def measure(pick, cases: list[dict], passes: int, clear) -> tuple[float, list]:
    gc.collect()
    spent, picks = 0.0, []
    for _ in range(passes):
        clear()
        started = time.process_time()
        picks = [pick(wanted, case["responses"]) for wanted, case in cases]
        spent += time.process_time() - started
    return spent, picks


def accuracy(cases: list[dict], picks: list) -> tuple[float, int]:
    right = wrong = 0
    for (_, case), pick in zip(cases, picks):
        correct = {tuple(pair) for pair in case["correct"]}
        right += pick is not None and pick in correct
        wrong += pick is not None and pick not in correct
    return right / len(cases), wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    raw = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    cases = [(WantedTrack.from_dict(case["wanted"]), case) for case in raw]
    candidates = sum(len(r.get("files") or []) + len(r.get("lockedFiles") or [])
                     for case in raw for r in case["responses"])
    # One untimed pass over every case: lazy imports and dictionaries (pykakasi's, loaded by the first
    # Japanese name) are not part of the figure.
    for wanted, case in cases:
        harmony_pick(wanted, case["responses"])
    results = {}
    for label, pick, clear in (("harmony", harmony_pick, _clear_matching_caches),
                               ("harmony_warm", harmony_pick, lambda: None),
                               ("spotdl_style_baseline", baseline_rank, lambda: None)):
        spent, picks = measure(pick, cases, args.passes, clear)
        top1, false_accepts = accuracy(cases, picks)
        results[label] = {"candidates_per_s": round(candidates * args.passes / spent),
                          "top1": round(top1, 3), "false_accepts": false_accepts}
        print(f"{label:22} {results[label]['candidates_per_s']:>7} candidates/s on one core "
              f"(top-1 {top1:.3f}, {false_accepts} false accepts; {len(cases)} cases, "
              f"{candidates} candidates, {args.passes} passes)")
    emit({"cases": len(cases), "candidates": candidates, "passes": args.passes, **{
        f"{label}_{key}": value for label, figures in results.items() for key, value in figures.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
