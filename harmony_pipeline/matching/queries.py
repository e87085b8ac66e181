"""Search texts for slskd: what to type into Soulseek to find the wanted track."""

from __future__ import annotations

from .models import WantedTrack
from .names import split_title
from .normalize import search_text


def _unique(texts: list[str]) -> list[str]:
    return [text for text in dict.fromkeys(texts) if text]


def build_queries(wanted: WantedTrack) -> list[str]:
    """Ordered search texts: artist + title, then without diacritics, then a broader fallback.

    The title loses Spotify noise (`- Remastered 2011`, `(feat. X)`) but keeps a wanted version
    word only through the artist + title text of the first query; punctuation that Soulseek
    treats as operators is removed and one-character terms (dropped by the server) are left out.
    """
    _, short_title, _ = split_title(wanted.title)
    primary = search_text(f"{wanted.artist} {short_title}")
    plain = search_text(f"{wanted.artist} {short_title}", keep_diacritics=False)
    artist_words = search_text(wanted.artist).split()
    main_word = max(artist_words, key=len) if artist_words else ""
    fallback = search_text(f"{main_word} {short_title}", keep_diacritics=False)
    return _unique([primary, plain, fallback])


def build_album_query(artist: str, album: str) -> str:
    """One search per album: artist + album name without edition noise."""
    _, short_album, _ = split_title(album)
    return search_text(f"{artist} {short_album}")
