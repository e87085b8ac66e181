"""Text normalisation shared by query building and scoring.

Names on Soulseek are spelled many ways (`AC_DC`, `ACDC`, `Beatles, The`, `Motley Crue`,
`Nas ne dogonyat`). Everything is reduced to lower-case ASCII word tokens so that both sides
of a comparison are spelled the same way; "compact" forms (tokens joined without spaces)
absorb spacing differences such as `AC DC` / `ACDC` or `B-52s` / `B52s`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from anyascii import anyascii


@lru_cache(maxsize=1)
def _kakasi():
    """Japanese kana/kanji to Hepburn romaji (anyascii alone reads kanji as Chinese). Its dictionaries
    cost ~0.5 s and ~100 MB, so they load the first time Japanese text is romanised, not at import."""
    try:
        import pykakasi
    except ImportError:  # pragma: no cover - the matcher still works, romanised names match less often
        return None
    return pykakasi.kakasi()


_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_NON_LATIN_LETTER = re.compile(r"[^\W\d_a-zA-Z\u00c0-\u024f]")
# A dot right after a single letter joins acronyms: R.E.M. -> rem, t.A.T.u. -> tatu.
_ACRONYM_DOT = re.compile(r"(?<![^\W\d_])([^\W\d_])\.")
_LEET = {"!": "i", "$": "s"}  # P!nk, Ke$ha: only between letters
_LEET_RE = re.compile(r"(?<=[a-z])[!$](?=[a-z])")
_APOSTROPHES = re.compile(r"['’`´]")
_AND = re.compile(r"\s*[&+]\s*")
_NON_WORD = re.compile(r"[\W_]+")
_DROPPED_TOKENS = frozenset({"the"})
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "x": "10"}


def has_japanese(text: str) -> bool:
    return bool(_JAPANESE.search(text))


def has_non_latin(text: str) -> bool:
    """True when the text holds letters of another script (Cyrillic, kana, kanji, …)."""
    return bool(_NON_LATIN_LETTER.search(text))


def romanise(text: str) -> str:
    """Latin-script rendering of any text; Japanese through kakasi, the rest through anyascii."""
    text = unicodedata.normalize("NFKC", text)
    if has_japanese(text) and (kakasi := _kakasi()) is not None:
        # kakasi leaves simplified Chinese characters it does not know empty ("现场"); anyascii reads them.
        text = " ".join(item["hepburn"] or item["orig"] for item in kakasi.convert(text))
    return anyascii(text)


@lru_cache(maxsize=65536)
def tokens(text: str) -> tuple[str, ...]:
    """Lower-case ASCII word tokens; `&`/`+` read as `and`; `the` dropped (`Beatles, The`)."""
    # Most names are plain ASCII: NFKC and anyascii leave ASCII as it is, and each rewrite below
    # is skipped when the characters it acts on are absent.
    if not text.isascii():
        text = romanise(text)
    if "." in text:
        text = _ACRONYM_DOT.sub(r"\1", text)
    text = text.lower()
    if "!" in text or "$" in text:
        text = _LEET_RE.sub(lambda match: _LEET[match.group()], text)
    if "'" in text or "`" in text or not text.isascii():
        text = _APOSTROPHES.sub("", text)
    if "&" in text or "+" in text:
        text = _AND.sub(" and ", text)
    words = [word for word in _NON_WORD.sub(" ", text).split() if word not in _DROPPED_TOKENS]
    if "part" not in words and "pt" not in words:
        return tuple(words)
    return tuple(_part_numbers_as_digits(words))


def _part_numbers_as_digits(words: list[str]) -> list[str]:
    """"Part II" and "Pt. 2" read the same: `pt 2`."""
    result: list[str] = []
    for word in words:
        if word == "part":
            word = "pt"
        elif result and result[-1] == "pt" and word in _ROMAN:
            word = _ROMAN[word]
        result.append(word)
    return result


def normalize(text: str) -> str:
    return " ".join(tokens(text))


def compact(text: str) -> str:
    return "".join(tokens(text))


def search_text(text: str, keep_diacritics: bool = True) -> str:
    """Text safe for a Soulseek search: letters and digits only, one-character terms dropped."""
    text = unicodedata.normalize("NFKC", text)
    text = _ACRONYM_DOT.sub(r"\1", text)
    text = _LEET_RE.sub(lambda match: _LEET[match.group()], text.lower())
    # Peers write "Don't" and "Dont"; "don" (the "t" is dropped below) finds both, "dont" only one.
    text = _APOSTROPHES.sub(" ", text)
    if not keep_diacritics:
        text = "".join(
            char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char)
        )
    words = _NON_WORD.sub(" ", text).lower().split()
    return " ".join(word for word in words if len(word) > 1)
