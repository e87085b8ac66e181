"""Version words: what makes a file another recording (live, remix, karaoke, …) and what is noise.

All words are in the token form of `normalize.tokens`.
"""

from __future__ import annotations

import re

# Words that mark another recording of the song when they appear in a file name.
VERSION_WORDS: dict[str, str] = {
    **dict.fromkeys(["live", "concert", "unplugged", "session", "sessions", "vivo"], "live"),
    **dict.fromkeys(
        ["remix", "remixes", "rmx", "mix", "mixes", "rework", "refix", "bootleg",
         "mashup", "dub", "club", "vip", "flip", "megamix", "medley"],
        "remix",
    ),
    **dict.fromkeys(["extended", "maxi", "long", "12inch"], "extended"),
    **dict.fromkeys(["edit", "edits", "radio", "single", "short", "shortened"], "edit"),
    **dict.fromkeys(
        ["instrumental", "instrumentals", "inst", "karaoke", "acapella", "acappella", "backing",
         "minus"],
        "instrumental",
    ),
    **dict.fromkeys(["acoustic", "stripped", "piano", "orchestral", "symphonic", "lullaby"], "acoustic"),
    **dict.fromkeys(["cover", "covers", "tribute", "originally", "style"], "cover"),
    **dict.fromkeys(["demo", "demos", "rough", "outtake", "alternate", "alt", "rehearsal"], "demo"),
    **dict.fromkeys(["sped", "speed", "slowed", "reverb", "nightcore", "8d", "chopped", "screwed"], "sped up"),
    **dict.fromkeys(["reprise", "interlude"], "reprise"),
    **dict.fromkeys(["rerecorded", "rerecording"], "re-recorded"),
    **dict.fromkeys(
        ["english", "spanish", "french", "german", "italian", "portuguese", "japanese", "korean",
         "russian", "chinese", "espanol"],
        "other language",
    ),
}

# Words that mark a whole folder as another kind of release. Narrower than the file list:
# folders called "Singles", "Sessions" or "Mix" collections hold ordinary studio copies.
FOLDER_VERSION_WORDS: dict[str, str] = {
    word: kind
    for word, kind in VERSION_WORDS.items()
    if word in {"live", "concert", "unplugged", "remix", "remixes", "rmx", "karaoke", "instrumental",
                "instrumentals", "acoustic", "cover", "covers", "tribute", "demo", "demos", "sped",
                "slowed", "nightcore", "lullaby", "bootleg"}
}

# Words that never change the recording: remaster tags, edition names, rip details, `feat.`.
NOISE_WORDS = frozenset(
    """remaster remastered remasters remastering master mastered version versions album original
    explicit clean dirty mono stereo deluxe edition expanded anniversary bonus track feat ft featuring
    with and official audio digital hd hq lp ep cd cd1 cd2 cd3 cd4 disc disk web flac mp3 m4a ogg
    wav kbps 320 v0 v2 vbr vinyl from soundtrack ost motion picture 16bit 24bit lossless""".split()
)

# Tags that look like version markers but keep the recording.
_HARMLESS_PHRASES = [("original", "mix"), ("album", "mix"), ("main", "mix")]

_REREC_RE = re.compile(r"\b\w+['’]s\s+version\b", re.IGNORECASE)  # "(Taylor's Version)"
_INCH_RE = re.compile(r"\b(?:7|10|12)\s*(?:\"|''|'|”|″|inch\b|in\b)", re.IGNORECASE)
_INCH_TOKENS = re.compile(r"^(?:7|10|12)$")
_PART_RE = re.compile(r"\b(?:pt|part|parts|vol|volume|no|nr)\.?\s*([0-9]+|[ivx]+)\b", re.IGNORECASE)
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}


def raw_version_markers(text: str) -> set[str]:
    """Markers only visible before normalisation: 12" / 7' versions and "(X's Version)"."""
    markers = set()
    if _INCH_RE.search(text):
        markers.add("extended")
    if _REREC_RE.search(text) and not re.search(r"\b(?:album|radio|single)['’]s", text, re.I):
        markers.add("re-recorded")
    return markers


def drop_harmless_phrases(words: list[str]) -> list[str]:
    """Removes "(Original Mix)"-style pairs, which name the standard recording."""
    kept: list[str] = []
    index = 0
    while index < len(words):
        pair = tuple(words[index:index + 2])
        if pair in _HARMLESS_PHRASES:
            index += 2
            continue
        kept.append(words[index])
        index += 1
    return kept


def version_kinds(words: list[str] | tuple[str, ...], vocabulary: dict[str, str] = VERSION_WORDS) -> set[str]:
    """Kinds of version named by the words; "12 version"/"7 edit" count as extended."""
    kinds = {vocabulary[word] for word in words if word in vocabulary}
    for first, second in zip(words, words[1:]):
        if _INCH_TOKENS.match(first) and second in {"version", "mix", "edit", "inch", "vinyl"}:
            kinds.add("extended")
    return kinds


def part_numbers(text: str) -> set[int]:
    """Numbers of "Pt. 2", "Part II", "No. 2" in a raw name."""
    numbers = set()
    for match in _PART_RE.finditer(text):
        value = match.group(1).lower()
        numbers.add(int(value) if value.isdigit() else _ROMAN.get(value, 0))
    return numbers
