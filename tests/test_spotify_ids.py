import pytest
from hypothesis import given
from hypothesis import strategies as st

from harmony_pipeline.spotify.ids import SpotifyRef, parse_spotify_id, parse_spotify_ref, split_spotify_link

TRACK = "4uLU6hMCjMI75M1A2tKUQC"
PLAYLIST = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"spotify:track:{TRACK}", SpotifyRef("track", TRACK)),
        (f"SPOTIFY:Album:{TRACK}", SpotifyRef("album", TRACK)),
        (f"https://open.spotify.com/track/{TRACK}", SpotifyRef("track", TRACK)),
        (f"http://open.spotify.com/artist/{TRACK}", SpotifyRef("artist", TRACK)),
        (f"open.spotify.com/intl-de/album/{TRACK}?si=0a1b2c3d4e5f", SpotifyRef("album", TRACK)),
        (f"https://open.spotify.com/intl-pt-BR/playlist/{PLAYLIST}", SpotifyRef("playlist", PLAYLIST)),
        (f"https://open.spotify.com/playlist/{PLAYLIST}/", SpotifyRef("playlist", PLAYLIST)),
        (f"https://open.spotify.com/embed/track/{TRACK}?utm_source=generator", SpotifyRef("track", TRACK)),
        (f"https://open.spotify.com/track/{TRACK}#anchor", SpotifyRef("track", TRACK)),
        (f"spotify:user:spotify:playlist:{PLAYLIST}", SpotifyRef("playlist", PLAYLIST)),
        (f"https://open.spotify.com/user/someone/playlist/{PLAYLIST}", SpotifyRef("playlist", PLAYLIST)),
        (f"https://play.spotify.com/track/{TRACK}", SpotifyRef("track", TRACK)),
        (f"  <https://open.spotify.com/track/{TRACK}>  ", SpotifyRef("track", TRACK)),
    ],
)
def test_every_link_form_names_the_item(text, expected):
    assert parse_spotify_ref(text) == expected


def test_bare_id_needs_its_kind():
    assert parse_spotify_ref(TRACK) is None
    assert parse_spotify_ref(TRACK, "artist") == SpotifyRef("artist", TRACK)


def test_expected_kind_refuses_other_kinds():
    assert parse_spotify_ref(f"spotify:track:{TRACK}", "artist") is None
    assert parse_spotify_ref(f"spotify:artist:{TRACK}", "artist") == SpotifyRef("artist", TRACK)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a link",
        f"https://example.com/track/{TRACK}",
        f"ftp://open.spotify.com/track/{TRACK}",
        "https://open.spotify.com/",
        "spotify:track:short",
        f"spotify:track:{TRACK}X",
        f"https://open.spotify.com/episode/{TRACK}",
        f"spotify:show:{TRACK}",
    ],
)
def test_non_items_give_none(text):
    assert parse_spotify_ref(text) is None


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("", "artist", "empty Spotify reference"),
        (f"spotify:track:{TRACK}", "artist", "expected a Spotify artist, got a track link"),
        (f"https://open.spotify.com/episode/{TRACK}", "track", "unsupported Spotify link (episode)"),
        ("https://open.spotify.com/artist/abc", "artist", "invalid Spotify artist id 'abc'"),
        ("https://spotify.link/AbC123", "artist", "cannot be resolved offline"),
        ("Daft Punk", "artist", "is not a Spotify artist id, URI or open.spotify.com URL"),
        (TRACK, "song", "unknown Spotify kind 'song'"),
    ],
)
def test_parse_spotify_id_explains_refusals(text, kind, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spotify_id(text, kind)


def test_parse_spotify_id_accepts_every_spelling_of_one_artist():
    spellings = [TRACK, f"spotify:artist:{TRACK}", f"https://open.spotify.com/intl-fr/artist/{TRACK}?si=x"]
    assert {parse_spotify_id(text, "artist") for text in spellings} == {TRACK}


def test_split_reports_unsupported_kinds_for_explanations():
    assert split_spotify_link(f"https://open.spotify.com/episode/{TRACK}") == ("episode", TRACK)
    assert split_spotify_link("spotify:local:Band:Album:Title:241") == ("local", "Band")
    assert split_spotify_link("https://www.youtube.com/watch?v=x") is None


def test_uri_and_url_round_trip():
    ref = SpotifyRef("album", TRACK)
    assert parse_spotify_ref(ref.uri) == ref
    assert parse_spotify_ref(ref.url) == ref


@given(st.text())
def test_parsing_never_raises_anything_but_value_error(text):
    assert parse_spotify_ref(text) is None or parse_spotify_ref(text).kind in ("track", "album", "playlist", "artist")
    try:
        parse_spotify_id(text, "playlist")
    except ValueError:
        pass
