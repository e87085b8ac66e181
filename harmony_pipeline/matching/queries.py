"""Search texts for slskd: what to type into Soulseek to find the wanted track."""

from __future__ import annotations

import re

from .models import WantedTrack
from .names import split_title
from .normalize import has_non_latin, romanise, search_text


def _unique(texts: list[str]) -> list[str]:
    return [text for text in dict.fromkeys(texts) if text]


def build_queries(wanted: WantedTrack) -> list[str]:
    """Ordered search texts: artist + title, then without diacritics, then a broader fallback.

    The title loses Spotify noise (`- Remastered 2011`, `(feat. X)`) and version tags, which peers
    spell in many ways (ranking judges versions); punctuation Soulseek would read as operators
    goes, and one-character terms, which the server drops, are left out.
    """
    full_title, short_title, _ = split_title(wanted.title)
    primary = search_text(f"{wanted.artist} {full_title}")
    plain = search_text(f"{wanted.artist} {full_title}", keep_diacritics=False)
    romanised = search_text(romanise(f"{wanted.artist} {full_title}")) if has_non_latin(primary) else ""
    artist_words = search_text(wanted.artist).split()
    main_word = max(artist_words, key=len) if artist_words else ""
    fallback_first = bool(re.search(r"\w[^\w\s]+\w", wanted.artist))
    if fallback_first:
        # Peers spell "P!nk" or "AC/DC" as "P_nk", "AC-DC", "ACDC": the title alone finds them,
        # and it comes second because the pipeline runs only the first two searches.
        main_word = ""
    fallback = search_text(f"{main_word} {short_title}", keep_diacritics=False)
    if fallback_first:
        # The title as spelled first ("Señorita"), the plain spelling after it.
        return _unique([primary, search_text(short_title), fallback, plain, romanised])
    return _unique([primary, plain, romanised, fallback])


def build_album_query(artist: str, album: str) -> str:
    """One search per album: artist + album name without edition noise."""
    full_album, _, _ = split_title(album)
    return search_text(f"{artist} {full_album}")
