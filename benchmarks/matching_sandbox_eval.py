"""Matching accuracy beyond the development set: sandbox peers, and perturbed development cases.

Usage: python benchmarks/matching_sandbox_eval.py [--seeds 7 11 23] [--album-search] [--errors]
                                                  [--perturb] [--dev FILE.jsonl]

Sandbox part: for every catalog track of each seed, the pipeline's searches (optionally the album
search first, then `build_queries(wanted)[:2]` as `acquisition.search.decide_match` runs them) go to the
sandbox's `PeerNetwork`; the pick of `rank` is judged by the network's ground truth
(`copies_track`). Metrics follow shared/matching-dev-set/README.md: top-1 over tracks that have a
correct file somewhere, false accepts over every track, abstain over every track. Wrong picks are
tabled by the `kind` of the file picked (and whether it imitates the wanted track or another one).

Perturbation part (`--perturb`): development cases are changed in ways that keep the right answer
(response order, roots, case, separators, bit rates, lengths) and judged again. The two "markers:"
perturbations rewrite the decoys' English version markers into other languages and internet-era edits,
once with markers the vocabulary knows and once with markers it does not; their summary line is
marker-perturbation: top1=<fraction> false_accepts=<count> unseen_top1=<fraction> unseen_false_accepts=<count>

The last line printed is the sandbox summary:
sandbox-matching: top1=<fraction> false_accepts=<count> abstain=<fraction> cases=<count>
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harmony_pipeline.matching import WantedTrack, build_album_query, build_queries, rank  # noqa: E402
from harmony_pipeline.sandbox.catalog import Catalog, Track, build_catalog  # noqa: E402
from harmony_pipeline.sandbox.soulseek_peers import PeerNetwork  # noqa: E402
from harmony_pipeline.acquisition.search import MAX_QUERIES_PER_TRACK  # noqa: E402

DEFAULT_DEV = REPO.parent / "shared" / "matching-dev-set" / "dev.jsonl"
DEFAULT_SEEDS = (7, 11, 23)


# ------------------------------------------------------------------------------------------------
# Sandbox
# ------------------------------------------------------------------------------------------------
@dataclass
class SandboxTally:
    cases: int = 0
    with_correct: int = 0  # tracks whose recording has a correct file somewhere on the network
    reachable: int = 0  # … and a correct file among the responses the searches returned
    right: int = 0
    wrong: int = 0  # a pick that is not a correct copy (wherever a correct file exists or not)
    missed: int = 0  # no pick although a correct file exists
    abstained: int = 0  # no pick and no correct file: the right answer
    wrong_kinds: Counter = field(default_factory=Counter)
    missed_reasons: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, other: SandboxTally) -> None:
        for name in ("cases", "with_correct", "reachable", "right", "wrong", "missed", "abstained"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.wrong_kinds.update(other.wrong_kinds)
        self.missed_reasons.update(other.missed_reasons)
        self.errors.extend(other.errors)

    @property
    def top1(self) -> float:
        return self.right / self.with_correct if self.with_correct else 0.0

    @property
    def abstain(self) -> float:
        return (self.missed + self.abstained) / self.cases if self.cases else 0.0

    def summary(self, label: str) -> str:
        return (f"{label}: top1={self.top1:.4f} false_accepts={self.wrong} "
                f"abstain={self.abstain:.4f} cases={self.cases}")


def wanted_from_catalog(catalog: Catalog, track: Track) -> WantedTrack:
    """The wanted track as the pipeline builds it from Spotify's answer."""
    album = catalog.albums[track.album_id]
    artists = tuple(artist.name for artist in catalog.track_artists(track))
    return WantedTrack(
        artist=artists[0], artists=artists, title=track.name, album=album.name,
        duration_ms=track.duration_ms, isrc=track.isrc, track_number=track.track_number,
        album_total_tracks=len(album.track_ids), release_year=int(album.release_date[:4]),
    )


def _first_reject(decision: Any, key: tuple[str, str]) -> str:
    for scored in decision.rejected:
        if (scored.username, scored.filename) == key:
            return next((r for r in scored.reasons if r.startswith("rejected")), "rejected")
    return "accepted below another file"


def _reason_family(reason: str) -> str:
    """Groups reasons such as "rejected: other words in file name 'x y'" by their fixed part."""
    return re.split(r" '|\(|:? [+-]?\d", reason, maxsplit=1)[0].strip()


def judge_track(network: PeerNetwork, catalog: Catalog, track: Track, album_search: bool,
                search: Callable[[str], list[dict]]) -> SandboxTally:
    """One track through the pipeline's searches and `rank`, judged by the network's ground truth."""
    tally = SandboxTally(cases=1)
    wanted = wanted_from_catalog(catalog, track)
    album = catalog.albums[track.album_id]
    queries: list[str] = []
    if album_search and len(album.track_ids) > 1:
        queries.append(build_album_query(catalog.album_artists(album)[0].name, album.name))
    queries += build_queries(wanted)[:MAX_QUERIES_PER_TRACK]
    decision = None
    seen: list[tuple[Any, tuple[str, str]]] = []  # (decision, correct file) for miss analysis
    for query in queries:
        responses = search(query)
        decision = rank(wanted, responses)
        for response in responses:
            for file in response.get("files") or []:
                key = (response["username"], file["filename"])
                if network.copies_track(*key, track.id):
                    seen.append((decision, key))
        if decision.best is not None:
            break
    has_correct = network.scenario(track.id) == "normal"
    tally.with_correct = int(has_correct)
    tally.reachable = int(bool(seen))
    best = decision.best if decision else None
    label = f"seed {network.seed} {track.id} {wanted.artist} - {wanted.title}"
    if best is None:
        if has_correct:
            tally.missed = 1
            reason = _first_reject(*seen[0]) if seen else "no correct file in the responses"
            tally.missed_reasons[_reason_family(reason)] += 1
            tally.errors.append(f"MISSED {label}: {reason}" + (f" [{seen[0][1][1]}]" if seen else ""))
        else:
            tally.abstained = 1
        return tally
    if network.copies_track(best.username, best.filename, track.id):
        tally.right = 1
        return tally
    tally.wrong = 1
    shared = network.find(best.username, best.filename)
    kind = shared.kind if shared else "unknown"
    if kind.startswith("target") or shared and shared.imitates not in (None, network.canonical_track_id(track.id)):
        kind += " (other track)"
    elif shared and kind == "decoy:wrong_duration" and "length" not in shared.attributes:
        # Named exactly like a copy and sent without a length: right by path under the README's rule 4.
        kind += ", no length sent"
    tally.wrong_kinds[kind] += 1
    tally.errors.append(f"WRONG {label}: picked {kind} {best.filename!r} ({'; '.join(best.reasons)})")
    return tally


def evaluate_seed(seed: int, album_search: bool = False) -> SandboxTally:
    catalog = build_catalog(seed)
    network = PeerNetwork(catalog, seed)
    cache: dict[str, list[dict]] = {}

    def search(query: str) -> list[dict]:
        if query not in cache:
            cache[query] = network.search(query)
        return cache[query]

    tally = SandboxTally()
    for track in catalog.tracks.values():
        tally.add(judge_track(network, catalog, track, album_search, search))
    return tally


def print_sandbox(tallies: dict[int, SandboxTally], show_errors: bool) -> SandboxTally:
    total = SandboxTally()
    print(f"{'seed':>4} {'cases':>5} {'w/corr':>6} {'reach':>5} {'right':>5} {'wrong':>5} {'missed':>6} "
          f"{'abst':>5}  top1")
    for seed, tally in tallies.items():
        total.add(tally)
        print(f"{seed:4} {tally.cases:5} {tally.with_correct:6} {tally.reachable:5} {tally.right:5} "
              f"{tally.wrong:5} {tally.missed:6} {tally.abstained:5}  {tally.top1:.4f}")
    print("wrong picks by kind of file picked:")
    for kind, count in total.wrong_kinds.most_common() or [("(none)", 0)]:
        print(f"  {kind:40} {count:5}")
    print("misses by why the first correct file was not taken:")
    for reason, count in total.missed_reasons.most_common() or [("(none)", 0)]:
        print(f"  {reason:60} {count:5}")
    if show_errors:
        for line in total.errors:
            print(line)
    return total


# ------------------------------------------------------------------------------------------------
# Perturbations of the development set
# ------------------------------------------------------------------------------------------------
OTHER_ROOTS = ["@@qzvkr", "Shared Music", "!SHARE", "D:\\Audio", "@@mnbvc\\Downloads\\complete", "flac"]
RATE_FIELDS = ("bitRate", "bitDepth", "sampleRate", "isVariableBitRate")


def _rename(case: dict, rename: Callable[[str], str]) -> dict:
    """The case with every filename renamed, `correct` following the renames."""
    case = copy.deepcopy(case)
    for response in case["responses"]:
        for file in (response.get("files") or []) + (response.get("lockedFiles") or []):
            file["filename"] = rename(file["filename"])
    case["correct"] = [[user, rename(name)] for user, name in case["correct"]]
    return case


def _beyond_root(change: Callable[[str], str]) -> Callable[[str], str]:
    """Applies `change` to every path segment after the root (a `..` root is kept as it is)."""
    def rename(filename: str) -> str:
        root, _, rest = filename.partition("\\")
        return f"{root}\\{change(rest)}" if rest else change(root)
    return rename


def _other_root(filename: str) -> str:
    root, _, rest = filename.partition("\\")
    if root == ".." or not rest:
        return filename
    choice = random.Random(filename).choice([r for r in OTHER_ROOTS if r != root])
    return f"{choice}\\{rest}"


def _shuffle(case: dict) -> dict:
    case = copy.deepcopy(case)
    rng = random.Random(case["id"])
    rng.shuffle(case["responses"])
    for response in case["responses"]:
        rng.shuffle(response.get("files") or [])
    return case


def _drop_fields(names: tuple[str, ...]) -> Callable[[dict], dict]:
    def perturb(case: dict) -> dict:
        case = copy.deepcopy(case)
        for response in case["responses"]:
            for file in (response.get("files") or []) + (response.get("lockedFiles") or []):
                for name in names:
                    file.pop(name, None)
        return case
    return perturb


def _stem_only(change: Callable[[str], str]) -> Callable[[str], str]:
    """Applies `change` to the path without the file's extension (which keeps its dot)."""
    def rename(path: str) -> str:
        stem, dot, extension = path.rpartition(".")
        return change(stem) + dot + extension if dot and "\\" not in extension else change(path)
    return rename


# English version markers of decoy files and what they become: the same kind of version named in another
# language or as an internet-era edit. "known" markers are in matching/version_markers.toml; "unseen" ones are
# not (other languages, new edit names): they test the unexplained-qualifier rule, not the word list.
_MARKER_SOURCES: dict[str, str] = {
    r"live(?:[ _]version)?": "live",
    r"acoustic(?:[ _]version)?": "acoustic",
    r"(?:radio[ _]edit|radio[ _]version|single[ _]edit|single[ _]version)": "edit",
    r"(?:instrumental|karaoke)(?:[ _]version)?": "instrumental",
    r"(?:extended|long|maxi)(?:[ _]version|[ _]mix)?": "extended",
    r"demo(?:[ _]version)?": "demo",
    r"remix": "remix",
}
_MARKER_RE = re.compile(r"(?<![^\W_])(" + "|".join(f"(?:{source})" for source in _MARKER_SOURCES) + r")(?![^\W_])",
                        re.IGNORECASE)
MARKER_POOLS: dict[str, dict[str, list[str]]] = {
    "known": {
        "live": ["En Vivo", "Ao Vivo", "En Directo", "En Concierto", "en direct", "Dal Vivo", "Na Żywo",
                 "Живьём", "ライブ", "라이브", "Canlı", "现场版", "Konzert"],
        "acoustic": ["Acústico", "Versión Acústica", "Acoustique", "Akustik", "Acustica", "Akustycznie",
                     "Акустика", "アコースティック", "어쿠스틱"],
        "edit": ["Sped Up", "Slowed + Reverb", "Bass Boosted", "8D Audio", "Nightcore", "TikTok Version",
                 "Super Slowed", "Daycore", "Lo-Fi", "TV Size"],
        "instrumental": ["Instrumentale", "Minus", "Минусовка", "オフボーカル", "インスト", "반주", "伴奏", "Playback"],
        "extended": ["Versión Extendida", "Version Longue", "Versione Estesa", "Extended Mix"],
        "demo": ["Maqueta", "デモ"],
        "remix": ["Remezcla", "Remixado", "Ремикс", "リミックス", "리믹스", "Phonk", "Jersey Club"],
    },
    "unseen": {
        "live": ["Liveopname", "Živě", "Ζωντανά", "Élő", "Livenä", "Trực Tiếp", "Uživo"],
        "acoustic": ["Akoestisch", "Akustisk", "Akustinen", "Ακουστικό", "Akusztikus"],
        "edit": ["Reverbed", "Underwater", "Muffled", "Pitch Shifted", "Speedup Ver"],
        "instrumental": ["Zonder Zang", "Utan Sång", "Bez Vokálu", "Οργανικό"],
        "extended": ["Verlengde Versie", "Förlängd", "Pidennetty"],
        "demo": ["Proefopname", "Ukázka"],
        "remix": ["Remiksi", "Bewerking", "Uudelleenmiksaus"],
    },
}


def _kind_of_marker(marker: str) -> str:
    return next(kind for source, kind in _MARKER_SOURCES.items() if re.fullmatch(source, marker, re.IGNORECASE))


def _rewrite_markers(pool: str) -> Callable[[dict], dict]:
    """Decoys' version markers (file names only) rewritten into another language or an edit of the same kind.

    Correct files are left alone, so the right answer is unchanged; a decoy stays a decoy.
    """
    def perturb(case: dict) -> dict:
        case = copy.deepcopy(case)
        correct = {tuple(pair) for pair in case["correct"]}
        for response in case["responses"]:
            for file in (response.get("files") or []) + (response.get("lockedFiles") or []):
                if (response["username"], file["filename"]) in correct:
                    continue
                folder, sep, basename = file["filename"].rpartition("\\")
                rng = random.Random(file["filename"])

                # Qualifiers only: inside brackets, or after "_" / " - " ("teardrop_instrumental-grp").
                groups = [m.span() for m in re.finditer(r"[(\[][^()\[\]]*[)\]]", basename)]

                def replace(match: re.Match, rng: random.Random = rng, basename: str = basename,
                            groups: list = groups) -> str:
                    inside = any(start < match.start() < end for start, end in groups)
                    if not inside and not re.search(r"(?:_| - )$", basename[:match.start()]):
                        return match.group(0)
                    marker = rng.choice(MARKER_POOLS[pool][_kind_of_marker(match.group(1))])
                    return marker.replace(" ", "_") if "_" in basename and " " not in basename else marker

                file["filename"] = folder + sep + _MARKER_RE.sub(replace, basename)
        return case
    return perturb


PERTURBATIONS: dict[str, Callable[[dict], dict]] = {
    "shuffle responses and files": _shuffle,
    "other roots": lambda case: _rename(case, _other_root),
    "upper case": lambda case: _rename(case, _beyond_root(str.upper)),
    "lower case": lambda case: _rename(case, _beyond_root(str.lower)),
    "swapped case": lambda case: _rename(case, _beyond_root(str.swapcase)),
    "' - ' -> '-'": lambda case: _rename(case, _beyond_root(lambda p: p.replace(" - ", "-"))),
    "'-' -> ' - '": lambda case: _rename(case, _beyond_root(lambda p: re.sub(r"\s*-\s*", " - ", p))),
    "spaces -> '_'": lambda case: _rename(case, _beyond_root(lambda p: p.replace(" ", "_"))),
    "spaces -> '.'": lambda case: _rename(case, _beyond_root(_stem_only(lambda p: p.replace(" ", ".")))),
    "no bit rates": _drop_fields(RATE_FIELDS),
    "no lengths": _drop_fields(("length",)),
    "no attributes": _drop_fields(RATE_FIELDS + ("length", "size")),
    "markers: languages and edits": _rewrite_markers("known"),
    "markers: unseen ones": _rewrite_markers("unseen"),
}


@dataclass
class PerturbTally:
    right: int = 0
    wrong: int = 0  # false accepts that are wrong whatever the lengths say
    length_only: int = 0  # picks wrong only by their (removed) length: right by path under rule 4
    missed: int = 0
    abstained: int = 0
    flips: int = 0  # cases right before the change and not after
    errors: list[str] = field(default_factory=list)


def _length_was_off(case: dict, pick: tuple[str, str]) -> bool:
    seconds = case["wanted"]["duration_ms"] / 1000
    for response in case["responses"]:
        if response["username"] == pick[0]:
            for file in response.get("files") or []:
                if file["filename"] == pick[1] and "length" in file:
                    return abs(file["length"] - seconds) > 2
    return False


def judge_case(case: dict, original: dict) -> tuple[str, tuple[str, str] | None]:
    decision = rank(WantedTrack.from_dict(case["wanted"]), case["responses"])
    correct = {tuple(pair) for pair in case["correct"]}
    pick = (decision.best.username, decision.best.filename) if decision.best else None
    if pick is None:
        return ("missed" if correct else "abstained"), None
    if pick in correct:
        return "right", pick
    # Without lengths, a file wrong only by its length is judged by its path (README rule 4).
    removed_length = not any("length" in f for r in case["responses"] for f in r.get("files") or [])
    if removed_length and _length_was_off(original, pick):
        return "length_only", pick
    return "wrong", pick


def evaluate_perturbations(cases: list[dict]) -> dict[str, PerturbTally]:
    baseline = {case["id"]: judge_case(case, case)[0] for case in cases}
    results: dict[str, PerturbTally] = {}
    for name, perturb in PERTURBATIONS.items():
        tally = PerturbTally()
        for case in cases:
            outcome, pick = judge_case(perturb(case), case)
            setattr(tally, outcome, getattr(tally, outcome) + 1)
            if baseline[case["id"]] == "right" and outcome != "right":
                tally.flips += 1
            if outcome in ("wrong", "length_only") or (baseline[case["id"]] == "right" and outcome != "right"):
                tally.errors.append(f"  {name}: {case['id']} {case['kind']} {outcome} {pick}")
        results[name] = tally
    return results


def print_perturbations(cases: list[dict], show_errors: bool) -> None:
    with_correct = sum(1 for case in cases if case["correct"])
    print(f"{'perturbation':30} {'top1':>6} {'false_acc':>9} {'len_only':>8} {'missed':>6} {'flips':>5}")
    results = evaluate_perturbations(cases)
    for name, tally in results.items():
        print(f"{name:30} {tally.right / with_correct:6.4f} {tally.wrong:9} {tally.length_only:8} "
              f"{tally.missed:6} {tally.flips:5}")
        if show_errors:
            for line in tally.errors:
                print(line)
    known, unseen = results["markers: languages and edits"], results["markers: unseen ones"]
    print(f"marker-perturbation: top1={known.right / with_correct:.4f} false_accepts={known.wrong} "
          f"unseen_top1={unseen.right / with_correct:.4f} unseen_false_accepts={unseen.wrong}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--album-search", action="store_true", help="search the album first, as for album groups")
    parser.add_argument("--perturb", action="store_true", help="also judge perturbed development cases")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--errors", action="store_true", help="print each wrong pick and miss")
    args = parser.parse_args()

    if args.perturb:
        with args.dev.open(encoding="utf-8") as handle:
            print_perturbations([json.loads(line) for line in handle if line.strip()], args.errors)
    tallies = {seed: evaluate_seed(seed, args.album_search) for seed in args.seeds}
    total = print_sandbox(tallies, args.errors)
    print(f"reachable: {total.reachable}/{total.with_correct} tracks with a correct file had one in the responses")
    print(total.summary("sandbox-matching"))


if __name__ == "__main__":
    main()
