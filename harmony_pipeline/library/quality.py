"""The quality profile (HARMONY_QUALITY): which of the correct candidates is downloaded first.

The matching engine decides which files are the wanted recording; the profile only orders those and
drops the ones the user never wants. Form: tiers from best to worst separated by `>`, each a format with
an optional minimum bitrate in kbps, then options after `;`:

    flac>mp3:320>m4a:256>mp3:256;min_bitrate=192;lossy=yes

- a candidate takes the first tier it satisfies (format, and bitrate at least the tier's); candidates in
  no tier come after every tier; within a tier the engine's order (its score) is kept;
- `min_bitrate`: lossy files reported below it are never taken (an unreported bitrate is not held
  against a file: it is checked when it is downloaded);
- `lossy=no`: only lossless files (FLAC, WAV, AIFF, ALAC, APE, WavPack) are taken;
- `cutoff=TIER` (one of the tiers): a library file ranked below it is searched again at a low priority and
  replaced when a better correct file is found (harmony_pipeline/library/upgrades.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LOSSLESS = frozenset({"flac", "wav", "aiff", "aif", "alac", "ape", "wv"})
FORMATS = frozenset({"flac", "mp3", "m4a", "ogg", "opus", "aac", "wav", "aiff", "aif", "alac", "ape", "wv",
                     "wma", "mp4"})
_TIER = re.compile(r"^([a-z0-9]+)(?::(\d{2,4}))?$")


@dataclass(frozen=True)
class Tier:
    format: str
    min_kbps: int | None = None

    def __str__(self) -> str:
        return f"{self.format}:{self.min_kbps}" if self.min_kbps else self.format


@dataclass(frozen=True)
class QualityProfile:
    tiers: tuple[Tier, ...]
    min_bitrate: int | None = None
    lossy: bool = True
    cutoff: int | None = None  # index into tiers

    def __str__(self) -> str:
        options = [f"min_bitrate={self.min_bitrate}"] if self.min_bitrate else []
        options += [] if self.lossy else ["lossy=no"]
        options += [f"cutoff={self.tiers[self.cutoff]}"] if self.cutoff is not None else []
        return ";".join([">".join(str(t) for t in self.tiers), *options])

    def tier_of(self, extension: str, bitrate: int | None) -> int:
        """Index of the first tier the file satisfies; len(tiers) when none."""
        for index, tier in enumerate(self.tiers):
            if extension == tier.format and (tier.min_kbps is None or (bitrate or 0) >= tier.min_kbps):
                return index
        return len(self.tiers)

    def below_cutoff(self, extension: str, bitrate: int | None) -> bool:
        return self.cutoff is not None and self.tier_of(extension, bitrate) > self.cutoff

    def acceptable(self, extension: str, bitrate: int | None) -> bool:
        if extension in LOSSLESS:
            return True
        if not self.lossy:
            return False
        return not (self.min_bitrate and bitrate and bitrate < self.min_bitrate)

    def order(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Correct candidates (best first by the engine) filtered and ordered by the profile."""
        kept = [c for c in candidates if self.acceptable(_extension(c), c.get("bitrate"))]
        return sorted(kept, key=lambda c: self.tier_of(_extension(c), c.get("bitrate")))  # stable


def _extension(candidate: dict[str, Any]) -> str:
    return (candidate.get("extension") or "").lower().lstrip(".")


def parse_quality(text: str) -> QualityProfile:
    """ValueError naming the problem for a malformed profile."""
    tiers_text, *options = [part.strip() for part in text.strip().lower().split(";")]
    tiers = []
    for part in tiers_text.split(">"):
        match = _TIER.match(part.strip())
        if not match or match.group(1) not in FORMATS:
            raise ValueError(f"{part.strip()!r} is not FORMAT or FORMAT:KBPS (formats: {', '.join(sorted(FORMATS))})")
        tiers.append(Tier(match.group(1), int(match.group(2)) if match.group(2) else None))
    min_bitrate, lossy, cutoff = None, True, None
    for option in options:
        if not option:
            continue
        name, _, value = (s.strip() for s in option.partition("="))
        if name == "min_bitrate" and value.isdigit():
            min_bitrate = int(value)
        elif name == "lossy" and value in ("yes", "no", "true", "false", "1", "0"):
            lossy = value in ("yes", "true", "1")
        elif name == "cutoff" and value in [str(t) for t in tiers]:
            cutoff = [str(t) for t in tiers].index(value)
        else:
            raise ValueError(f"unknown option {option!r}; expected min_bitrate=KBPS, lossy=yes|no or "
                             "cutoff=TIER (one of the tiers)")
    if not lossy and not any(t.format in LOSSLESS for t in tiers):
        raise ValueError("lossy=no but no lossless format among the tiers")
    return QualityProfile(tuple(tiers), min_bitrate, lossy, cutoff)
