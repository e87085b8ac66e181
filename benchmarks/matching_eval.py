"""Matching accuracy on a data set in the format of shared/matching-dev-set (README there).

Usage: python benchmarks/matching_eval.py [FILE.jsonl] [--half even|odd] [--errors]
The last line printed is the summary:
matching: top1=<fraction> false_accepts=<count> abstain=<fraction> cases=<count>
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harmony_pipeline.matching import WantedTrack, rank  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "matching-dev-set" / "dev.jsonl"


def load_cases(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def judge(case: dict) -> tuple[str, tuple[str, str] | None]:
    """'right', 'wrong' (a false accept), 'missed' (abstained with a correct file) or 'abstained'."""
    decision = rank(WantedTrack.from_dict(case["wanted"]), case["responses"])
    correct = {tuple(pair) for pair in case["correct"]}
    pick = (decision.best.username, decision.best.filename) if decision.best else None
    if pick is None:
        return ("missed" if correct else "abstained"), None
    return ("right" if pick in correct else "wrong"), pick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--half", choices=["even", "odd"], help="only every other case (generalisation check)")
    parser.add_argument("--errors", action="store_true", help="print each wrong or missed case")
    args = parser.parse_args()

    cases = load_cases(args.data)
    if args.half:
        cases = cases[0 if args.half == "even" else 1::2]
    per_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in cases:
        outcome, pick = judge(case)
        per_kind[case["kind"]][outcome] += 1
        if args.errors and outcome in {"wrong", "missed"}:
            print(f"{case['id']} {case['kind']} {outcome}: {pick}")

    print(f"{'kind':32} {'cases':>5} {'right':>5} {'wrong':>5} {'missed':>6} {'abstained':>9}")
    totals: dict[str, int] = defaultdict(int)
    for kind in sorted(per_kind):
        counts = per_kind[kind]
        for key, value in counts.items():
            totals[key] += value
        print(f"{kind:32} {sum(counts.values()):5} {counts['right']:5} {counts['wrong']:5} "
              f"{counts['missed']:6} {counts['abstained']:9}")
    with_correct = totals["right"] + totals["wrong"] + totals["missed"]
    without_correct = len(cases) - with_correct
    abstain = totals["missed"] + totals["abstained"]
    false_accepts = totals["wrong"] + (without_correct - totals["abstained"])
    print(f"abstain with a correct file: {totals['missed']}/{with_correct}; "
          f"without: {totals['abstained']}/{without_correct}")
    top1 = totals["right"] / with_correct if with_correct else 0.0
    print(f"matching: top1={top1:.4f} false_accepts={false_accepts} "
          f"abstain={abstain / len(cases) if cases else 0.0:.4f} cases={len(cases)}")


if __name__ == "__main__":
    main()
