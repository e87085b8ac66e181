"""Credits from MusicBrainz JSON shaped like the real web service (api-contracts.md §5.2–5.3)."""

from __future__ import annotations

from typing import Any

from harmony_pipeline.enrichment.credits import (
    Credits,
    choose_recording,
    choose_release,
    extract_credits,
    extract_genres,
)

PRODUCER_TYPE_ID = "5c0ceac3-feb4-41f0-868d-dc06f6e27fc0"
COMPOSER_TYPE_ID = "d59d99ea-23d4-4a80-b066-edca32ee158f"
PERFORMANCE_TYPE_ID = "a3005666-a872-32c3-ad06-98af558e99b0"


def _artist(name: str, number: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "name": name,
        "sort-name": name,
        "disambiguation": "",
    }


def _artist_relation(
    kind: str,
    name: str,
    number: int,
    credit: str = "",
    attributes: list[str] | None = None,
    type_id: str = "",
) -> dict[str, Any]:
    return {
        "type": kind,
        "type-id": type_id,
        "target-type": "artist",
        "direction": "backward",
        "attributes": attributes or [],
        "attribute-values": {},
        "target-credit": credit,
        "source-credit": "",
        "begin": None,
        "end": None,
        "ended": False,
        "artist": _artist(name, number),
    }


def _work_relation(title: str, number: int, relations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "performance",
        "type-id": PERFORMANCE_TYPE_ID,
        "target-type": "work",
        "direction": "forward",
        "attributes": [],
        "attribute-values": {},
        "target-credit": "",
        "source-credit": "",
        "begin": None,
        "end": None,
        "ended": False,
        "work": {
            "id": f"11111111-0000-4000-8000-{number:012d}",
            "title": title,
            "type": "Song",
            "language": "eng",
            "iswcs": ["T-123.456.789-0"],
            "disambiguation": "",
            "relations": relations,
        },
    }


def _recording(relations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    recording = {
        "id": "bf7845cc-eac3-48a3-8b06-543b4b7ba117",
        "title": "Title",
        "length": 207959,
        "video": False,
        "disambiguation": "",
        "first-release-date": "2019-03-01",
        "artist-credit": [{"name": "Artist", "joinphrase": "", "artist": _artist("Artist", 1)}],
        "isrcs": ["USUM71703861"],
        "relations": relations,
        "genres": [],
        "tags": [],
    }
    recording.update(extra)
    return recording


def _release(**extra: Any) -> dict[str, Any]:
    release = {
        "id": "76df3287-6cda-33eb-8e9a-044b5e15ffdd",
        "title": "Album",
        "status": "Official",
        "date": "2019-03-01",
        "country": "XW",
        "barcode": "602577427663",
        "relations": [],
        "label-info": [],
        "release-group": {"id": "rg", "title": "Album", "genres": [], "tags": []},
    }
    release.update(extra)
    return release


def test_writers_come_from_work_relations_and_producers_from_recording_relations() -> None:
    recording = _recording(
        [
            _artist_relation("producer", "Producer P", 10, type_id=PRODUCER_TYPE_ID),
            _artist_relation("producer", "Pat Second", 11, credit="P. Second", attributes=["co"]),
            _artist_relation("producer", "Money Person", 12, attributes=["executive"]),
            _artist_relation("engineer", "Engineer E", 13),
            _artist_relation("vocal", "Artist", 1, attributes=["lead vocals"]),
            _work_relation(
                "Title",
                1,
                [
                    _artist_relation("composer", "Composer C", 20, type_id=COMPOSER_TYPE_ID),
                    _artist_relation("lyricist", "Lyricist Legal Name", 21, credit="Lyricist L"),
                    _artist_relation("writer", "Writer W", 22),
                    _artist_relation("arranger", "Arranger A", 23),
                ],
            ),
            _work_relation(
                "Title (interlude)",
                2,
                [
                    _artist_relation("composer", "Composer C", 20),
                    _artist_relation("librettist", "Librettist B", 24),
                ],
            ),
        ],
        genres=[
            {"id": "g1", "name": "synth-pop", "count": 3, "disambiguation": ""},
            {"id": "g2", "name": "electronic", "count": 5, "disambiguation": ""},
        ],
        tags=[
            {"name": "Electronic", "count": 2},
            {"name": "80s", "count": 4},
            {"name": "seen live", "count": 0},
        ],
    )

    credits = extract_credits(recording)

    assert credits == Credits(
        composers=["Composer C", "Writer W"],
        lyricists=["Lyricist L", "Librettist B"],
        producers=["Producer P", "P. Second"],
        genres=["electronic", "synth-pop", "80s"],
        label="",
    )


def test_release_supplies_producers_label_and_more_genres_when_the_recording_lacks_them() -> None:
    recording = _recording([], tags=[{"name": "indie", "count": 1}])
    release = _release(
        relations=[
            _artist_relation("producer", "Album Producer", 30),
            _artist_relation("mix", "Mixer M", 31),
        ],
        **{
            "label-info": [
                {
                    "catalog-number": None,
                    "label": {"id": "157afde4-4bf5-4039-8ad2-5a15acc85176", "name": "[no label]"},
                },
                {"catalog-number": "CAT-1", "label": None},
                {"catalog-number": "XL123", "label": {"id": "l1", "name": "XL Recordings"}},
            ]
        },
        genres=[{"name": "indie rock", "count": 2}],
    )
    release["release-group"]["genres"] = [{"name": "alternative rock", "count": 7}]

    credits = extract_credits(recording, release)

    assert credits.producers == ["Album Producer"]
    assert credits.label == "XL Recordings"
    assert credits.genres == ["indie rock", "alternative rock", "indie"]
    assert (credits.composers, credits.lyricists) == ([], [])


def test_recording_producers_win_over_release_producers() -> None:
    recording = _recording([_artist_relation("producer", "Track Producer", 40)])
    release = _release(relations=[_artist_relation("producer", "Album Producer", 41)])
    assert extract_credits(recording, release).producers == ["Track Producer"]


def test_genre_list_is_capped() -> None:
    tags = [{"name": f"tag{n}", "count": 10 - n} for n in range(8)]
    assert extract_genres([{"tags": tags}], max_genres=3) == ["tag0", "tag1", "tag2"]


def _isrc_recording(number: int, artist: str, length: int | None) -> dict[str, Any]:
    return {
        "id": f"22222222-0000-4000-8000-{number:012d}",
        "title": "Title",
        "length": length,
        "video": False,
        "disambiguation": "",
        "first-release-date": "2019-03-01",
        "artist-credit": [{"name": artist, "joinphrase": "", "artist": _artist(artist, number)}],
        "releases": [],
    }


def test_recording_choice_prefers_credited_artist_then_closest_length() -> None:
    lookup = {
        "isrc": "USUM71703861",
        "recordings": [
            _isrc_recording(1, "Somebody Else", 207_900),
            _isrc_recording(2, "Beyoncé", None),
            _isrc_recording(3, "Beyoncé", 212_000),
            _isrc_recording(4, "Beyoncé", 209_400),
        ],
    }

    assert choose_recording(lookup, 207_959, "Beyonce")["id"].endswith("4")
    assert choose_recording(lookup, None, "Somebody Else")["id"].endswith("1")


def test_recording_with_another_credit_needs_a_close_length() -> None:
    featured = _isrc_recording(5, "Artist", 207_000)
    featured["artist-credit"] = [
        {"name": "Artist", "joinphrase": " feat. ", "artist": _artist("Artist", 5)},
        {"name": "Guest", "joinphrase": "", "artist": _artist("Guest", 6)},
    ]
    transliterated = {"recordings": [_isrc_recording(7, "宇多田ヒカル", 207_000)]}
    far = {"recordings": [_isrc_recording(8, "Unrelated", 100_000)]}

    assert choose_recording({"recordings": [featured]}, 207_959, "Guest") == featured
    assert choose_recording(transliterated, 207_959, "Hikaru Utada") == transliterated["recordings"][0]
    assert choose_recording(far, 207_959, "Hikaru Utada") is None
    assert choose_recording({"recordings": []}, 207_959, "Artist") is None
    assert choose_recording({"error": "Not Found"}, 207_959, "Artist") is None


def _release_entry(number: int, status: str | None, date: str, barcode: str | None) -> dict[str, Any]:
    return {
        "id": f"33333333-0000-4000-8000-{number:012d}",
        "title": "Album",
        "status": status,
        "date": date,
        "country": "GB",
        "barcode": barcode,
        "disambiguation": "",
        "packaging": None,
        "quality": "normal",
        "text-representation": {"language": "eng", "script": "Latn"},
    }


def test_release_choice_prefers_barcode_then_official_then_date() -> None:
    bootleg_same_day = _release_entry(1, "Bootleg", "2019-03-01", None)
    official_other_year = _release_entry(2, "Official", "2021-05-07", "")
    official_same_year = _release_entry(3, "Official", "2019-11-22", "602577000000")
    official_same_day = _release_entry(4, "Official", "2019-03-01", "602577427663")
    recording = {"releases": [bootleg_same_day, official_other_year, official_same_year, official_same_day]}

    assert choose_release(recording, "2019-03-01", None) == official_same_day
    assert choose_release(recording, "2019-11", None) == official_same_day  # same year: the earliest
    assert choose_release(recording, "2019-03-01", "00602577000000") == official_same_year
    assert (
        choose_release({"releases": [bootleg_same_day, official_other_year]}, "2019-03-01", None)
        == official_other_year
    )
    assert (
        choose_release({"releases": [official_other_year, official_same_year]}, None, None)
        == official_same_year
    )
    assert choose_release({"releases": []}, "2019-03-01", None) is None
