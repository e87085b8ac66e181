import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmony_pipeline.ingest.parser import (
    MAX_LINE_CHARS,
    MAX_SUBMISSION_BYTES,
    IngestError,
    IngestItem,
    parse_csv,
    parse_duration,
    parse_json,
    parse_submission,
    parse_text,
)
from harmony_pipeline.spotify.ids import SpotifyRef

CORPUS = Path(__file__).parent / "data" / "ingest"
NO_SEPARATOR = "no ' - ' separator between artist and title"


def parse_corpus(name: str):
    return parse_submission((CORPUS / name).read_bytes(), name)


def fields(item: IngestItem) -> tuple:
    return (item.artist, item.title, item.album, item.year, item.duration_ms, item.isrc, item.spotify_ref)


def by_line(result) -> dict[int, IngestItem]:
    return {item.line_number: item for item in result.items}


def reasons(result) -> dict[int, str]:
    return {rejection.line_number: rejection.reason for rejection in result.rejections}


# --- text ------------------------------------------------------------------------------------

def test_messy_paste_every_text_form():
    result = parse_corpus("messy_paste.txt")
    assert result.format == "text"
    items = by_line(result)
    assert {line: fields(item) for line, item in items.items()} == {
        4: ("Queen", "Bohemian Rhapsody", "A Night at the Opera", None, 355_000, None, None),
        5: ("Daft Punk", "One More Time", "Discovery", 2001, None, None, None),
        6: ("The Beatles", "Let It Be - Remastered 2009", None, None, None, None, None),
        7: ("311", "Amber", None, None, None, None, None),
        8: ("Sigur Rós", "Hoppípolla", None, None, 268_000, None, None),
        9: ("JAY-Z", "4:44", None, None, None, None, None),
        10: ("Pink Floyd", "Echoes", None, None, 3_723_000, None, None),
        11: ("Radiohead", "Paranoid Android", "OK Computer", 1997, None, None, None),
        12: ("Massive Attack", "Teardrop (Remastered 2006)", None, None, 330_000, None, None),
        13: ("Björk", "Jóga", "Homogenic", 1997, 305_000, None, None),
        14: ("Ben E. King", "Stand by Me", None, None, None, None, None),
        15: ("#1 Dads", "So Soldier", None, None, None, None, None),
        21: ("宇多田ヒカル", "First Love", None, None, None, None, None),
        22: ("Beyoncé", "Halo", None, None, 261_000, None, None),
    }
    assert items[4].raw == "1. Queen - Bohemian Rhapsody (A Night at the Opera) 5:55"


def test_messy_paste_rejections_name_line_and_reason():
    result = parse_corpus("messy_paste.txt")
    assert reasons(result) == {
        16: NO_SEPARATOR,
        17: "empty title after the ' - ' separator",
        18: NO_SEPARATOR,
        19: "duplicate of line 4",
        20: "unsupported Spotify link (episode)",
        23: f"line longer than {MAX_LINE_CHARS} characters",
        24: "duplicate of line 22",
    }
    long_line = next(r for r in result.rejections if r.line_number == 23)
    assert long_line.raw.startswith("Long Artist - xxx") and len(long_line.raw) <= 120


def test_blank_and_comment_lines_are_neither_items_nor_rejections():
    result = parse_text("# heading\n\n// note\n   \n## more\nA - B\n")
    assert [item.line_number for item in result.items] == [6]
    assert result.rejections == []


@pytest.mark.parametrize(
    ("line", "artist", "title"),
    [
        ("Artist - Title", "Artist", "Title"),
        ("Artist – Title", "Artist", "Title"),
        ("Artist — Title", "Artist", "Title"),
        ("Artist—Title", "Artist", "Title"),
        ("Artist -- Title", "Artist", "Title"),
        ("Blink-182 - All the Small Things", "Blink-182", "All the Small Things"),
        ("A-ha - Take On Me - 2015 Remaster", "A-ha", "Take On Me - 2015 Remaster"),
        ("1 - Artist - Title", "Artist", "Title"),
        ("10) Artist - Title", "Artist", "Title"),
        ("– Artist – Title", "Artist", "Title"),
        ("“Hallelujah” by Jeff Buckley", "Jeff Buckley", "Hallelujah"),
    ],
)
def test_artist_title_split(line, artist, title):
    (item,) = parse_text(line).items
    assert (item.artist, item.title) == (artist, title)


def test_title_by_artist_is_refused_when_ambiguous():
    assert reasons(parse_text("Stand by Me")) == {1: NO_SEPARATOR}


def test_version_parentheses_stay_in_the_title():
    items = parse_text("A - B (feat. C)\nA - B (Live at Wembley)\nA - B (Radio Edit) 3:10\nA - B (1984)").items
    assert [(i.title, i.album, i.year) for i in items] == [
        ("B (feat. C)", None, None),
        ("B (Live at Wembley)", None, None),
        ("B (Radio Edit)", None, None),
        ("B", None, 1984),
    ]


def test_link_with_text_keeps_both():
    (item,) = parse_text("Daft Punk - One More Time spotify:track:0DiWol3AO6WpXZgp0goxAV").items
    assert (item.artist, item.title, item.spotify_ref) == (
        "Daft Punk", "One More Time", SpotifyRef("track", "0DiWol3AO6WpXZgp0goxAV"))


def test_isrc_line():
    (item,) = parse_text("isrc: gb-um7-10-29604").items
    assert (item.artist, item.isrc) == (None, "GBUM71029604")


@pytest.mark.parametrize(("text", "ms"), [("3:45", 225_000), ("0:59", 59_000), ("1:02:03", 3_723_000),
                                          ("12:00", 720_000), ("3:75", None), ("1:60:00", None), ("345", None)])
def test_parse_duration(text, ms):
    assert parse_duration(text) == ms


def test_links_corpus():
    result = parse_corpus("links.txt")
    refs = {line: item.spotify_ref for line, item in by_line(result).items()}
    assert refs == {
        1: SpotifyRef("track", "4uLU6hMCjMI75M1A2tKUQC"),
        2: SpotifyRef("album", "2noRn2Aes5aoNVsU6iWThc"),
        3: SpotifyRef("playlist", "37i9dQZF1DXcBWIGoYBM5M"),
        4: SpotifyRef("artist", "4tZwfgrHOc3mvqYlEYSvVi"),
        5: SpotifyRef("track", "0DiWol3AO6WpXZgp0goxAV"),
        6: SpotifyRef("track", "6LgJvl0Xdtc73RJ1mmpotq"),
        7: SpotifyRef("playlist", "37i9dQZF1DX4JAvHpjipBk"),
        8: SpotifyRef("playlist", "37i9dQZF1DWXRqgorJj26U"),
        9: SpotifyRef("track", "7ouMYWpwJ422jRcDASZB7P"),
    }
    assert all(item.artist is None and item.title is None for item in result.items)
    assert reasons(result) == {
        10: "unsupported Spotify link (episode)",
        11: "invalid Spotify track id 'tooShort': expected 22 letters and digits",
        12: "shortened link 'https://spotify.link/AbCdEf123' cannot be resolved offline; "
            "paste the open.spotify.com URL",
        13: "duplicate of line 1",
        14: "unsupported link (www.youtube.com): only Spotify links are accepted",
    }


# --- CSV -------------------------------------------------------------------------------------

def test_exportify_export():
    result = parse_corpus("exportify.csv")
    assert result.format == "csv"
    items = by_line(result)
    assert {line: fields(item) for line, item in items.items()} == {
        2: ("Queen", "Bohemian Rhapsody - Remastered 2011", "A Night At The Opera (2011 Remaster)", 1975, 354_320,
            "GBUM71029604", SpotifyRef("track", "4u7EnebtmKWzUH433cf5Qv")),
        3: ("Tyler, The Creator", "See You Again (feat. Kali Uchis)", "Flower Boy", 2017, 180_386,
            "USRC12301811", SpotifyRef("track", "2iUXsYOEPhVqEBwsqP70rE")),
        4: ("Train", "Hey, Soul Sister", "Save Me, San Francisco (Golden Gate Edition)", 2010, 216_773,
            "USSM11000374", SpotifyRef("track", "4HlFJV71xXKIGcU3kRyttv")),
        6: ("Sigur Rós", "Hoppípolla", "Takk...", 2005, 268_333, "ISA010500020",
            SpotifyRef("track", "6eTGxxQxiTFE6LfZHC33Wm")),
        7: ("宇多田ヒカル", "First Love", "First Love", 1999, 259_240, "JPTO09900090",
            SpotifyRef("track", "3n3Ppam7vgaVa1iaRUc9Lp")),
        # A local file: its spotify:local URI is ignored, its names are used.
        8: ("Unknown Band", "Track #1", "Basement Tapes", None, 241_000, None, None),
    }
    assert items[3].artists == ("Tyler, The Creator", "Kali Uchis")
    assert reasons(result) == {
        5: "malformed CSV row: ',' expected after '\"'",
        9: "row has 7 fields, the header has 25",
        10: "duplicate of line 2",
    }


def test_older_exportify_layout_with_escaped_commas():
    result = parse_corpus("exportify_legacy.csv")
    items = by_line(result)
    assert [(i.artist, i.title, i.duration_ms, i.year) for i in items.values()] == [
        ("Earth, Wind & Fire", "September", 215_093, 1978),
        ("Daft Punk", "One More Time", 320_357, 2001),
        ("JAY-Z", "Numb / Encore", 205_733, 2004),
    ]
    assert items[4].artists == ("JAY-Z", "Linkin Park")
    assert result.rejections == []


def test_semicolon_csv_in_windows_1252():
    result = parse_corpus("semicolon.csv")
    assert result.format == "csv"
    assert result.notes == ["input is not valid UTF-8; decoded as Windows-1252"]
    assert [fields(i)[:5] for i in result.items] == [
        ("Motörhead", "Ace of Spades", "Ace of Spades", None, 169_000),
        ("Beyoncé", "Halo", "I Am... Sasha Fierce", None, 261_000),
        ("Crosby; Stills & Nash", "Suite: Judy Blue Eyes", "Crosby, Stills & Nash", None, 445_000),
        ("Kraftwerk", "Das Modell", "Die Mensch-Maschine", None, 218_000),
    ]
    assert reasons(result) == {5: "missing artist", 6: "row has 5 fields, the header has 4"}


def test_headerless_two_column_csv_is_artist_title():
    result = parse_submission("Queen,Bohemian Rhapsody\n\"Earth, Wind & Fire\",September\nOne,Two,Three\n")
    assert result.format == "csv"
    assert [(i.artist, i.title) for i in result.items] == [("Queen", "Bohemian Rhapsody"),
                                                          ("Earth, Wind & Fire", "September")]
    assert reasons(result) == {3: "row has 3 fields; a CSV without header needs 2 (artist, title)"}


def test_header_synonyms_and_tab_delimiter():
    text = "SONG\tArtists\tLength\tSpotify URI\nTeardrop\tMassive Attack\t5:30\t\n"
    (item,) = parse_csv(text).items
    assert (item.artist, item.title, item.duration_ms) == ("Massive Attack", "Teardrop", 330_000)


def test_comment_lines_before_the_header_are_skipped():
    result = parse_submission("# exported 2026-01-02\nArtist,Title\nA,B\n", "mine.csv")
    assert [(i.line_number, i.artist, i.title) for i in result.items] == [(3, "A", "B")]
    assert result.rejections == []


def test_quoted_field_spanning_lines_keeps_first_line_number_and_raw():
    text = 'artist,title\n"Multi\nLine Band",Song\nA,B\n'
    result = parse_csv(text)
    assert [(i.line_number, i.artist, i.raw) for i in result.items] == [
        (2, "Multi Line Band", '"Multi\nLine Band",Song'), (4, "A", "A,B")]


def test_unterminated_quote_costs_one_line_only():
    result = parse_csv('artist,title\n"Broken,Song\nA,B\n')
    assert [i.line_number for i in result.items] == [3]
    assert reasons(result) == {2: "malformed CSV row: unexpected end of data"}


def test_csv_header_without_usable_columns_is_one_rejection():
    result = parse_csv("Album Name,Popularity,Tempo\nDiscovery,12,120\n")
    assert result.items == []
    assert reasons(result) == {1: "CSV header names no artist and title or Spotify URI/ISRC column "
                                  "(found: Album Name, Popularity, Tempo)"}


# --- JSON ------------------------------------------------------------------------------------

def test_json_list_corpus():
    result = parse_corpus("list.json")
    assert result.format == "json"
    assert {line: fields(item) for line, item in by_line(result).items()} == {
        2: ("Queen", "Bohemian Rhapsody", "A Night at the Opera", None, 354_320, "GBUM71029604", None),
        3: ("OutKast", "Hey Ya!", "Speakerboxxx/The Love Below", None, 235_000, None, None),
        4: ("Radiohead", "Paranoid Android", "OK Computer", 1997, 387_426, "GBAYE9700137",
            SpotifyRef("track", "6LgJvl0Xdtc73RJ1mmpotq")),
        15: ("Daft Punk", "Digital Love", "Discovery", None, 298_000, None, None),
        16: (None, None, None, None, None, None, SpotifyRef("album", "2noRn2Aes5aoNVsU6iWThc")),
        19: ("Björk", "Jóga", None, 1997, None, None, None),
    }
    assert reasons(result) == {
        17: "expected an object or a string, got int",
        18: "missing title",
        20: "unsupported Spotify link (show)",
        21: "duplicate of line 3",
    }


@pytest.mark.parametrize("wrapper", ["tracks", "items"])
def test_json_wrapped_lists(wrapper):
    text = json.dumps({"name": "mix", wrapper: [{"artist": "A", "title": "B"}, "C - D"]}, indent=1)
    result = parse_json(text)
    assert [(i.artist, i.title) for i in result.items] == [("A", "B"), ("C", "D")]
    assert [i.line_number for i in result.items] == [4, 8]


def test_spotify_playlist_page_shape():
    page = {"tracks": {"items": [{"item": {"name": "B", "artists": [{"name": "A"}], "duration_ms": 1000}}]}}
    (item,) = parse_json(json.dumps(page)).items
    assert (item.artist, item.title, item.duration_ms) == ("A", "B", 1000)


def test_invalid_json_is_one_rejection_with_the_error_line():
    result = parse_submission('[\n  {"artist": "A", "title": "B"},\n  {"artist": "C" "title": "D"}\n]', "x.json")
    assert result.items == []
    assert reasons(result) == {3: "invalid JSON: Expecting ',' delimiter (line 3, column 18)"}


def test_deeply_nested_json_is_rejected_not_raised():
    result = parse_submission("[" * 100_000 + "]" * 100_000)
    assert result.format == "json" and result.items == []
    assert "invalid JSON" in result.rejections[0].reason


# --- detection, decoding, limits ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "filename", "format_"),
    [
        ("Artist - Title", None, "text"),
        ("Artist - Title", "paste.csv", "csv"),
        ('[{"artist": "A", "title": "B"}]', None, "json"),
        ('["A - B"]', "wishlist.TXT", "text"),
        ("Track Name,Artist Name(s)\nB,A", None, "csv"),
        ("A;B\nC;D\n", None, "csv"),
        ("[Intro] - Skit", None, "text"),
        ("https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC", None, "text"),
    ],
)
def test_format_detection(data, filename, format_):
    assert parse_submission(data, filename).format == format_


def test_utf8_bom_and_utf16_are_decoded():
    text = "Sigur Rós - Hoppípolla\n"
    for data in (("\ufeff" + text).encode("utf-8"), text.encode("utf-16")):
        result = parse_submission(data)
        assert [(i.artist, i.title) for i in result.items] == [("Sigur Rós", "Hoppípolla")]
        assert result.notes == []


def test_latin_1_fallback_is_noted():
    result = parse_submission("Mot\xf6rhead - Ace of Spades\x81\n".encode("latin-1"))
    assert result.notes == ["input is not valid UTF-8; decoded as Latin-1"]
    assert result.items[0].artist == "Motörhead"


def test_oversize_submission_is_refused():
    with pytest.raises(IngestError, match="limit is 5 MiB"):
        parse_submission(b"A - B\n" * (MAX_SUBMISSION_BYTES // 6 + 1))
    with pytest.raises(IngestError):
        parse_submission("é" * (MAX_SUBMISSION_BYTES // 2 + 1))


def test_submission_of_exactly_the_limit_is_parsed():
    data = b"Artist - Title\n" + b"#" * (MAX_SUBMISSION_BYTES - 15)
    assert len(data) == MAX_SUBMISSION_BYTES
    result = parse_submission(data)
    assert [(i.artist, i.title) for i in result.items] == [("Artist", "Title")]
    assert reasons(result) == {2: f"line longer than {MAX_LINE_CHARS} characters"}
    with pytest.raises(IngestError):
        parse_submission(data + b"#")


def test_overlong_csv_field_is_rejected():
    result = parse_csv("artist,title\nA," + "t" * (MAX_LINE_CHARS + 1) + "\n")
    assert reasons(result) == {2: f"title longer than {MAX_LINE_CHARS} characters"}


# --- fingerprints ------------------------------------------------------------------------------

def fingerprint(line: str) -> str:
    (item,) = parse_text(line).items
    return item.fingerprint


@pytest.mark.parametrize(
    "variant",
    [
        "Sigur Rós - Hoppípolla",
        "sigur rós – hoppípolla",
        "  SIGUR  RÓS   —   HOPPÍPOLLA  ",
        "Sigur Ros - Hoppipolla",
        "1. Sigur Rós - Hoppípolla [4:28]",
        "- Sigur Rós - Hoppípolla | 2005",
        "Sigur Ro\u0301s - Hoppi\u0301polla",  # decomposed accents
    ],
)
def test_same_item_spelled_differently_has_one_fingerprint(variant):
    assert fingerprint(variant) == fingerprint("Sigur Rós - Hoppípolla")


def test_quote_styles_share_a_fingerprint():
    assert fingerprint("Guns N’ Roses - Don’t Cry") == fingerprint("Guns N' Roses - Don't Cry")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Sigur Rós - Hoppípolla", "Sigur Rós - Glósóli"),
        ("Queen - Bohemian Rhapsody", "Queen - Bohemian Rhapsody (A Night at the Opera)"),
        ("Artist - Title", "Title - Artist"),
        ("ガガ - Song", "カカ - Song"),  # voicing marks change a Japanese word
        ("A - B C", "A B - C"),
    ],
)
def test_different_items_have_different_fingerprints(first, second):
    assert fingerprint(first) != fingerprint(second)


def test_a_link_fingerprint_is_its_kind_and_id_in_any_format():
    from_text = parse_text("https://open.spotify.com/intl-de/track/4u7EnebtmKWzUH433cf5Qv?si=1").items[0]
    from_exportify = by_line(parse_corpus("exportify.csv"))[2]
    assert from_text.fingerprint == from_exportify.fingerprint
    album = parse_text("spotify:album:4u7EnebtmKWzUH433cf5Qv").items[0]
    assert album.fingerprint != from_text.fingerprint


def test_an_isrc_fingerprint_is_the_isrc():
    from_text = parse_text("GBUM71029604").items[0]
    from_json = by_line(parse_corpus("list.json"))[2]
    assert from_text.fingerprint == from_json.fingerprint


# --- robustness --------------------------------------------------------------------------------

@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.sampled_from([None, "a.txt", "a.csv", "a.json", "a.tsv", "a.bin"]))
def test_arbitrary_bytes_never_raise(data, filename):
    result = parse_submission(data, filename)
    assert all(isinstance(item, IngestItem) and item.line_number >= 1 for item in result.items)


line_parts = st.sampled_from(["A", "b", " - ", " – ", "—", ",", ";", "\t", "\n", "\r", '"', "[", "]", "{", "}",
                              "(", ")", "|", ":", "3:45", "1999", "#", "//", "1. ", "é", "\u0301", "\ufeff",
                              "spotify:track:", "4uLU6hMCjMI75M1A2tKUQC", "https://open.spotify.com/", "\\,"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=500), st.lists(line_parts, max_size=60).map("".join)),
       st.sampled_from([None, "a.txt", "a.csv", "a.json"]))
def test_arbitrary_text_never_raises(text, filename):
    result = parse_submission(text, filename)
    lines = text.count("\n") + text.count("\r") + 1
    for outcome in [*result.items, *result.rejections]:
        assert 1 <= outcome.line_number <= lines
    assert len({item.fingerprint for item in result.items}) == len(result.items)
