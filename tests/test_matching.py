"""Unit tests of the matching engine on small responses in slskd's shape (api-contracts §1.4)."""

from __future__ import annotations

from typing import Any

import pytest

from harmony_pipeline.matching import (
    MatchPreferences,
    WantedTrack,
    build_album_query,
    build_queries,
    candidates_from_responses,
    parse_candidate,
    rank,
)

SONG = WantedTrack(
    artist="The Doors", artists=("The Doors",), title="Light My Fire", album="The Doors",
    duration_ms=426_000, track_number=6, album_total_tracks=11, release_year=1967,
)


def audio(filename: str, length: int | None = 426, bitrate: int | None = 320, **extra: Any) -> dict[str, Any]:
    file = {"filename": filename, "size": 10_000_000, "code": 1, "extension": "", "isLocked": False}
    if length is not None:
        file["length"] = length
    if bitrate is not None:
        file["bitRate"] = bitrate
    file.update(extra)
    return file


def peer(username: str, files: list[dict[str, Any]], locked: list[dict[str, Any]] = (),
         free: bool = True, queue: int = 0, speed: int = 5_000_000) -> dict[str, Any]:
    return {
        "username": username, "token": 1, "hasFreeUploadSlot": free, "uploadSpeed": speed,
        "queueLength": queue, "fileCount": len(files), "lockedFileCount": len(locked),
        "files": list(files), "lockedFiles": list(locked),
    }


def best_pair(wanted: WantedTrack, responses: list[dict[str, Any]]) -> tuple[str, str] | None:
    decision = rank(wanted, responses)
    return (decision.best.username, decision.best.filename) if decision.best else None


# --- queries ---------------------------------------------------------------------------------

def test_query_drops_spotify_noise_and_featured_artists() -> None:
    remaster = WantedTrack("The Beatles", ("The Beatles",), "Yesterday - Remastered 2009", None, None)
    featured = WantedTrack("Daft Punk", ("Daft Punk",), "Get Lucky (feat. Pharrell Williams)", None, None)
    assert build_queries(remaster)[0] == "the beatles yesterday"
    assert build_queries(featured)[0] == "daft punk get lucky"


def test_query_adds_a_diacritics_free_variant_and_a_fallback() -> None:
    queries = build_queries(WantedTrack("Sigur Rós", ("Sigur Rós",), "Hoppípolla", None, None))
    assert queries == ["sigur rós hoppípolla", "sigur ros hoppipolla", "sigur hoppipolla"]


def test_query_removes_search_breaking_punctuation_and_single_letters() -> None:
    assert build_queries(WantedTrack("AC/DC", ("AC/DC",), "Highway to Hell", None, None))[0] == "ac dc highway to hell"
    assert build_queries(WantedTrack("P!nk", ("P!nk",), "So What", None, None))[0] == "pink so what"
    assert build_queries(WantedTrack("R.E.M.", ("R.E.M.",), "Losing My Religion", None, None))[0] == (
        "rem losing my religion"
    )


def test_query_adds_a_romanised_variant_for_other_scripts() -> None:
    queries = build_queries(WantedTrack("КИНО", ("КИНО",), "Группа крови", None, None))
    assert queries[:2] == ["кино группа крови", "kino gruppa krovi"]


def test_album_query_drops_edition_noise() -> None:
    assert build_album_query("Oasis", "Definitely Maybe (Remastered)") == "oasis definitely maybe"


# --- path parsing -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "disc", "track", "title"),
    [
        ("06 - Light My Fire.mp3", None, 6, "Light My Fire"),
        ("06. Light My Fire.mp3", None, 6, "Light My Fire"),
        ("06 Light My Fire.mp3", None, 6, "Light My Fire"),
        ("06-Light My Fire.mp3", None, 6, "Light My Fire"),
        ("1-06 Light My Fire.mp3", 1, 6, "Light My Fire"),
        ("A1 Light My Fire.mp3", None, 1, "Light My Fire"),
        ("B2. Light My Fire.mp3", None, 2, "Light My Fire"),
        ("Light My Fire.mp3", None, None, "Light My Fire"),
    ],
)
def test_numbering_styles(name: str, disc: int | None, track: int | None, title: str) -> None:
    candidate = parse_candidate(peer("u", []), audio("Music\\The Doors\\1967 - The Doors\\" + name), locked=False)
    assert (candidate.disc_number, candidate.track_number, candidate.title_guess) == (disc, track, title)


@pytest.mark.parametrize("folder", ["CD2", "Disc 2", "disc2"])
def test_disc_folders(folder: str) -> None:
    candidate = parse_candidate(peer("u", []), audio(f"Music\\Album\\{folder}\\03 Song.flac"), locked=False)
    assert (candidate.disc_number, candidate.track_number, candidate.folders[-1]) == (2, 3, folder)


def test_scene_release_names() -> None:
    name = "Shared\\The_Doors-The_Doors-WEB-1967-dh\\06-the_doors-light_my_fire-c9ebaa49.mp3"
    candidate = parse_candidate(peer("u", []), audio(name), locked=False)
    assert (candidate.track_number, candidate.artist_guess, candidate.title_guess) == (6, "the doors", "light my fire")


def test_va_compilation_artist_and_title() -> None:
    name = "@@abc\\VA - Summer Hits 1967 (1967)\\15. The Doors - Light My Fire.flac"
    candidate = parse_candidate(peer("u", []), audio(name), locked=False)
    assert (candidate.track_number, candidate.artist_guess, candidate.title_guess) == (
        15, "The Doors", "Light My Fire"
    )
    assert candidate.folders == ("@@abc", "VA - Summer Hits 1967 (1967)")


def test_extension_from_filename_and_missing_attributes() -> None:
    name = "@@x\\Music\\Song.flac.flac"
    candidate = parse_candidate(peer("ü", []), {"filename": name, "extension": ""}, locked=False)
    assert candidate.filename == name and candidate.username == "ü"
    assert (candidate.extension, candidate.stem) == ("flac", "Song")
    assert (candidate.length, candidate.bitrate, candidate.size) == (None, None, None)


def test_locked_files_are_marked_by_the_list_they_are_in() -> None:
    response = peer("u", [audio("a\\01 Song.mp3")], locked=[audio("a\\02 Song.mp3", isLocked=False)])
    assert [c.locked for c in candidates_from_responses([response])] == [False, True]


# --- accepted spellings -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("wanted", "filename"),
    [
        (SONG, "Music\\Doors, The - 1967 - The Doors\\06 Light My Fire (Remaster).wav"),
        (SONG, "Music\\Various Artists\\Summer Hits 1967 (1967)\\15. The Doors - Light My Fire.flac"),
        (SONG, "Shared\\Doors-The_Doors-WEB-1967-dh\\06-doors-light_my_fire-c9ebaa49.mp3"),
        (WantedTrack("AC/DC", ("AC/DC",), "Highway to Hell", "Highway to Hell", 208_000), "Music\\AC_DC\\Highway to Hell.mp3"),
        (WantedTrack("AC/DC", ("AC/DC",), "Highway to Hell", "Highway to Hell", 208_000), "Music\\ACDC\\01 - Highway to Hell.mp3"),
        (WantedTrack("Mötley Crüe", ("Mötley Crüe",), "Kickstart My Heart", "Dr. Feelgood", 288_000),
         "Music\\Motley Crue\\Kickstart My Heart.mp3"),
        (WantedTrack("Simon & Garfunkel", ("Simon & Garfunkel",), "Mrs. Robinson", "Bookends", 244_000),
         "Music\\Simon and Garfunkel - Bookends\\07-Mrs Robinson.m4a"),
        (WantedTrack("Queen", ("Queen",), "Bohemian Rhapsody - Remastered 2011", "A Night At The Opera", 354_000),
         "Music\\Queen\\A Night at the Opera\\11 Bohemian Rhapsody.mp3"),
        (WantedTrack("Shawn Mendes", ("Shawn Mendes", "Camila Cabello"), "Señorita", "Señorita", 190_000),
         "Music\\New\\01 Shawn Mendes - Senorita (ft. Camila Cabello).mp3"),
        (WantedTrack("t.A.T.u.", ("t.A.T.u.",), "Нас не догонят", "200 по встречной", 265_000),
         "Music\\Tatu\\04 Tatu - Nas ne dogonyat.mp3"),
        (WantedTrack("YOASOBI", ("YOASOBI",), "夜に駆ける", "THE BOOK", 261_000),
         "Music\\YOASOBI\\THE BOOK\\01 Yoru ni Kakeru.flac"),
        (WantedTrack("Kenshi Yonezu", ("Kenshi Yonezu",), "Lemon", "STRAY SHEEP", 256_000),
         "Music\\Yonezu Kenshi\\Singles\\Lemon [Explicit].flac"),
        (WantedTrack("Avicii", ("Avicii",), "Levels - Radio Edit", "Levels", 199_000),
         "Music\\Avicii\\Levels\\01. Levels (Radio Version).flac"),
    ],
)
def test_spelling_variants_are_accepted(wanted: WantedTrack, filename: str) -> None:
    length = round(wanted.duration_ms / 1000)
    assert best_pair(wanted, [peer("u", [audio(filename, length=length)])]) == ("u", filename)


def test_file_without_attributes_is_judged_by_its_path() -> None:
    name = "Music\\The Doors\\1967 - The Doors\\06 - Light My Fire.flac"
    assert best_pair(SONG, [peer("u", [audio(name, length=None, bitrate=None)])]) == ("u", name)


# --- hard rejects --------------------------------------------------------------------------------

def assert_rejected(wanted: WantedTrack, file: dict[str, Any], reason: str, locked: bool = False) -> None:
    response = peer("u", [] if locked else [file], locked=[file] if locked else [])
    decision = rank(wanted, [response])
    assert decision.best is None and decision.accepted == []
    assert any(reason in text for text in decision.rejected[0].reasons), decision.rejected[0].reasons


def test_locked_files_are_rejected() -> None:
    assert_rejected(SONG, audio("Music\\The Doors\\06 Light My Fire.flac"), "locked", locked=True)


def test_paths_with_dotdot_are_rejected() -> None:
    assert_rejected(SONG, audio("Music\\..\\..\\The Doors\\06 Light My Fire.flac"), "'..'")


@pytest.mark.parametrize("extension", ["cue", "log", "jpg", "nfo", "txt"])
def test_non_audio_files_are_rejected(extension: str) -> None:
    assert_rejected(SONG, audio(f"Music\\The Doors\\06 Light My Fire.{extension}"), "not audio")


@pytest.mark.parametrize(("length", "reason"), [(430, "duration +4s"), (400, "duration -26s"), (429, "beyond ±2s")])
def test_lengths_too_far_off_are_rejected(length: int, reason: str) -> None:
    assert_rejected(SONG, audio("Music\\The Doors\\06 Light My Fire.mp3", length=length), reason)


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        ("(Live)", "live"), ("[Live 1968]", "live"), ("(Echo Parade Remix)", "remix"),
        ("(Extended Mix)", "extended"), ("(12' Version)", "extended"), ('(12" Version)', "extended"),
        ("(Radio Edit)", "edit"), ("(Instrumental)", "instrumental"), ("[Karaoke Version]", "instrumental"),
        ("(Acoustic)", "acoustic"), ("(Cover)", "cover"), ("(Demo Version)", "demo"), ("(Sped Up)", "sped up"),
        ("(Jim's Version)", "re-recorded"), ("(Reprise)", "reprise"), ("(Spanish Version)", "other language"),
    ],
)
def test_version_words_in_the_file_name_are_rejected(tag: str, kind: str) -> None:
    assert_rejected(SONG, audio(f"Music\\The Doors\\06 Light My Fire {tag}.mp3"), f"{kind} version in file name")


@pytest.mark.parametrize("folder", ["The Doors - Live (1970)", "Karaoke Hits Vol. 3", "Acoustic Covers Vol. 2"])
def test_version_words_in_a_folder_are_rejected(folder: str) -> None:
    assert_rejected(SONG, audio(f"Music\\The Doors\\{folder}\\06 Light My Fire.mp3"), "version in folder")


def test_another_part_is_rejected() -> None:
    wanted = WantedTrack("Pink Floyd", ("Pink Floyd",), "Another Brick in the Wall, Pt. 2", "The Wall", 239_000)
    assert_rejected(wanted, audio("Music\\Pink Floyd\\The Wall\\Another Brick in the Wall, Part 1.mp3", length=239),
                    "title not in file name")
    good = "Music\\Pink Floyd\\The Wall\\05 Another Brick in the Wall (Part II).mp3"
    assert best_pair(wanted, [peer("u", [audio(good, length=239)])]) == ("u", good)


def test_other_artists_songs_with_the_same_title_are_rejected() -> None:
    assert_rejected(SONG, audio("Music\\Lena Havik\\Singles\\Lena Havik - Light My Fire.mp3"), "other words")
    assert_rejected(SONG, audio("Music\\Lena Havik\\Paper Houses\\03 Light My Fire.mp3"), "neither artist nor album")
    assert_rejected(SONG, audio("Music\\The Doors\\Light My Fire No. 2.mp3"), "another part")


def test_a_wanted_version_rejects_the_original() -> None:
    wanted = WantedTrack("Avicii", ("Avicii",), "Levels - Radio Edit", "Levels", 199_000)
    assert_rejected(wanted, audio("Music\\Avicii\\Levels (Original Mix).flac", length=338), "duration")
    assert_rejected(wanted, audio("Music\\Avicii\\Levels (Original Version).flac", length=None), "original")
    assert_rejected(wanted, audio("Music\\Avicii\\Levels.flac", length=None), "version not named")


# --- ranking order ---------------------------------------------------------------------------------

NAME = "Music\\The Doors\\1967 - The Doors\\06 - Light My Fire"


def ranked_users(responses: list[dict[str, Any]], prefs: MatchPreferences = MatchPreferences()) -> list[str]:
    return [candidate.username for candidate in rank(SONG, responses, prefs).accepted]


def test_format_and_bitrate_order() -> None:
    responses = [
        peer("mp3_128", [audio(NAME + ".mp3", bitrate=128)]),
        peer("m4a_256", [audio(NAME + ".m4a", bitrate=256)]),
        peer("mp3_320", [audio(NAME + ".mp3", bitrate=320)]),
        peer("flac", [audio(NAME + ".flac", bitrate=1000)]),
    ]
    assert ranked_users(responses) == ["flac", "mp3_320", "m4a_256", "mp3_128"]
    mp3_first = MatchPreferences(format_order=("mp3", "m4a", "flac"))
    assert ranked_users(responses, mp3_first) == ["mp3_320", "m4a_256", "flac", "mp3_128"]


def test_peer_order_free_slot_then_queue_then_speed() -> None:
    responses = [
        peer("busy", [audio(NAME + ".mp3")], free=False, queue=500),
        peer("slow", [audio(NAME + ".mp3")], speed=100_000),
        peer("queued", [audio(NAME + ".mp3")], queue=40),
        peer("fast", [audio(NAME + ".mp3")], speed=9_000_000),
    ]
    assert ranked_users(responses) == ["fast", "slow", "queued", "busy"]


def test_a_confirmed_length_outranks_a_nicer_unconfirmed_file() -> None:
    responses = [
        peer("unknown_length", [audio("Music\\Misc\\The Doors - Light My Fire.flac", length=None, bitrate=None)]),
        peer("exact", [audio(NAME + ".mp3", bitrate=320)], free=False, queue=20),
    ]
    decision = rank(SONG, responses)
    assert [c.username for c in decision.accepted] == ["exact", "unknown_length"]
    best = decision.best.as_dict()
    assert best["filename"] == NAME + ".mp3" and 0 <= best["score"] <= 100
    assert "duration +0s" in best["reasons"] and "title 100" in best["reasons"]


# --- abstention ------------------------------------------------------------------------------------

def test_abstains_on_empty_results() -> None:
    assert rank(SONG, []) == rank(SONG, [peer("u", [])])
    assert rank(SONG, []).best is None


def test_abstains_when_only_other_versions_exist() -> None:
    responses = [peer("u", [
        audio("Music\\The Doors\\Light My Fire (Live).mp3"),
        audio("Music\\The Doors\\Light My Fire (Maxi Version).mp3", length=618),
        audio("Music\\Karaoke\\The Doors\\Light My Fire (Karaoke).mp3"),
        audio("Music\\..\\The Doors\\Light My Fire.mp3"),
        audio("Music\\The Doors\\Light My Fire.cue"),
    ], locked=[audio("Music\\The Doors\\06 Light My Fire.flac")])]
    decision = rank(SONG, responses)
    assert decision.best is None and len(decision.rejected) == 6
    assert all(any(r.startswith("rejected:") for r in c.reasons) for c in decision.rejected)


def test_scene_names_keep_version_words_apart_from_the_group_tag() -> None:
    folder = "Music\\The_Doors-The_Doors-CD-FLAC-1967-GRP\\"
    assert_rejected(SONG, audio(folder + "06-the_doors-light_my_fire_live.flac", length=None), "live version")
    assert_rejected(SONG, audio(folder + "06-the_doors-light_my_fire-live.flac", length=None), "live version")
    good = folder + "06-the_doors-light_my_fire-grp.flac"
    assert best_pair(SONG, [peer("u", [audio(good, length=None)])]) == ("u", good)
