"""MusicBrainz, Cover Art Archive and LRCLIB emulators: real HTTP on loopback, real JPEGs measured."""

from __future__ import annotations

import http.client
import io
import re
import time

import pytest
import requests
from PIL import Image

from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.sandbox.catalog import Catalog, Track, build_catalog
from harmony_pipeline.sandbox.coverart import CoverArtEmulator
from harmony_pipeline.sandbox.lrclib import LrclibEmulator, prepare_input
from harmony_pipeline.sandbox.musicbrainz import MusicBrainzEmulator
from harmony_pipeline.sandbox.server import serve

UA = {"User-Agent": "HarmonyPipeline/0.1 ( https://example.org/harmony )"}
FULL_RECORDING_INC = "artist-credits+isrcs+releases+artist-rels+work-rels+work-level-rels+genres+tags"
RELEASE_INC = "artist-rels+labels+recordings+recording-level-rels+work-rels+work-level-rels+artist-credits"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog()


@pytest.fixture(scope="module")
def mb(catalog):
    with serve(MusicBrainzEmulator(catalog, rate_limit=None)) as running:
        yield running


@pytest.fixture(scope="module")
def caa(catalog):
    with serve(CoverArtEmulator(catalog)) as running:
        yield running


@pytest.fixture(scope="module")
def lrclib(catalog):
    with serve(LrclibEmulator(catalog)) as running:
        yield running


def mb_get(server, path: str, **params: str) -> requests.Response:
    return requests.get(f"{server.base_url}/ws/2/{path}", params={"fmt": "json", **params}, headers=UA, timeout=5)


def first_track(catalog: Catalog, condition) -> Track:
    return next(track for track in catalog.tracks.values() if condition(track))


def artist_names(catalog: Catalog, track: Track) -> str:
    return ", ".join(artist.name for artist in catalog.track_artists(track))


def jpeg_size(response: requests.Response) -> tuple[int, int]:
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG"
    return image.size


# -- MusicBrainz ------------------------------------------------------------------------------
def test_isrc_lookup_gives_recordings_with_credits_and_releases(mb, catalog):
    track = first_track(catalog, lambda t: t.recording is not None)
    response = mb_get(mb, f"isrc/{track.isrc}", inc="artist-credits+releases")
    assert response.status_code == 200
    body = response.json()
    assert body["isrc"] == track.isrc
    [recording] = body["recordings"]
    assert recording["id"] == track.recording.mbid
    assert recording["length"] == track.recording.length_ms
    assert recording["artist-credit"][0]["artist"]["id"] == catalog.artists[track.artist_ids[0]].mbid
    album = catalog.albums[track.album_id]
    release = next(r for r in recording["releases"] if r["id"] == album.release.mbid)
    assert (release["status"], release["date"], release["barcode"]) == ("Official", album.release_date, album.upc)


def test_isrc_lookup_errors(mb, catalog):
    unknown = first_track(catalog, lambda t: t.recording is None)
    missing = mb_get(mb, f"isrc/{unknown.isrc}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not Found" and "help" in missing.json()
    assert mb_get(mb, "isrc/NOT-AN-ISRC").json() == {"error": "Invalid isrc.", "help": missing.json()["help"]}
    assert mb_get(mb, "isrc/NOT-AN-ISRC").status_code == 400
    bad_inc = mb_get(mb, f"isrc/{unknown.isrc}", inc="artists+labels")
    assert bad_inc.status_code == 400 and "labels" in bad_inc.json()["error"]


def test_recording_carries_producers_and_work_writers(mb, catalog):
    track = first_track(
        catalog, lambda t: t.recording and t.recording.producers and t.recording.work and t.recording.work.lyricists
    )
    body = mb_get(mb, f"recording/{track.recording.mbid}", inc=FULL_RECORDING_INC).json()
    producers = [r for r in body["relations"] if r["type"] == "producer"]
    assert {r["artist"]["id"] for r in producers} == {p.mbid for p in track.recording.producers}
    assert all(r["type-id"] == "5c0ceac3-feb4-41f0-868d-dc06f6e27fc0" for r in producers)
    [performance] = [r for r in body["relations"] if r["target-type"] == "work"]
    assert performance["type"] == "performance" and performance["work"]["iswcs"] == [track.recording.work.iswc]
    writers = {(r["type"], r["artist"]["name"]) for r in performance["work"]["relations"]}
    expected = {("composer", p.name) for p in track.recording.work.composers}
    expected |= {("lyricist", p.name) for p in track.recording.work.lyricists}
    assert writers == expected
    assert body["isrcs"] == [track.isrc]
    assert [g["name"] for g in body["genres"]] == track.recording.genres


def test_work_relations_need_work_level_rels(mb, catalog):
    track = first_track(catalog, lambda t: t.recording and t.recording.work)
    body = mb_get(mb, f"recording/{track.recording.mbid}", inc="artist-rels+work-rels").json()
    [performance] = [r for r in body["relations"] if r["target-type"] == "work"]
    assert "relations" not in performance["work"]
    assert "relations" not in mb_get(mb, f"recording/{track.recording.mbid}", inc="artist-credits").json()


def test_some_credits_name_the_person_differently(mb, catalog):
    credits = []
    for track in [t for t in catalog.tracks.values() if t.recording and t.recording.producers][:40]:
        body = mb_get(mb, f"recording/{track.recording.mbid}", inc="artist-rels").json()
        credits += [r["target-credit"] for r in body["relations"] if r["type"] == "producer"]
    assert "" in credits and any(credit for credit in credits)


def test_producers_only_on_the_release(mb, catalog):
    track = first_track(catalog, lambda t: t.recording and not t.recording.producers)
    recording = mb_get(mb, f"recording/{track.recording.mbid}", inc="artist-rels").json()
    assert not [r for r in recording["relations"] if r["type"] == "producer"]
    album = catalog.albums[track.album_id]
    release = mb_get(mb, f"release/{album.release.mbid}", inc=RELEASE_INC).json()
    assert {r["artist"]["id"] for r in release["relations"] if r["type"] == "producer"} == {
        p.mbid for p in album.release.producers
    }
    assert release["label-info"][0]["label"]["name"] == album.release.label
    assert release["label-info"][0]["catalog-number"] == album.release.catalog_number
    tracks = [t for medium in release["media"] for t in medium["tracks"]]
    assert len(tracks) == len(album.track_ids)
    assert "relations" in tracks[0]["recording"]
    without_level_rels = mb_get(mb, f"release/{album.release.mbid}", inc="artist-rels+recordings").json()
    assert "relations" not in without_level_rels["media"][0]["tracks"][0]["recording"]


def test_unknown_and_invalid_mbids(mb):
    assert mb_get(mb, "recording/7d3b1c52-0b43-4a53-b1f4-3b2f8f0f0000").status_code == 404
    assert mb_get(mb, "release/not-a-uuid").status_code == 400
    assert mb_get(mb, "release/7d3b1c52-0b43-4a53-b1f4-3b2f8f0f0000", inc="bogus").status_code == 400


def test_recording_search_by_isrc_and_by_title_and_artist(mb, catalog):
    track = first_track(catalog, lambda t: t.recording is not None)
    by_isrc = mb_get(mb, "recording", query=f"isrc:{track.isrc}").json()
    assert by_isrc["count"] == 1 and by_isrc["offset"] == 0
    assert by_isrc["recordings"][0]["id"] == track.recording.mbid and by_isrc["recordings"][0]["score"] == 100

    # A track MusicBrainz knows without its ISRC: the ISRC lookup misses, the text search finds it.
    unknown = first_track(catalog, lambda t: t.recording is None)
    artist = catalog.artists[unknown.artist_ids[0]].name
    found = mb_get(mb, "recording", query=f'recording:"{unknown.name}" AND artist:"{artist}"').json()
    assert found["count"] >= 1
    top = found["recordings"][0]
    assert top["title"] == unknown.name and top["artist-credit"][0]["name"] == artist
    assert mb_get(mb, f"recording/{top['id']}").status_code == 200


def test_recording_search_pages_with_count_and_offset(mb):
    everything = mb_get(mb, "recording", query="artist:the", limit="5").json()
    assert everything["count"] > 5 and len(everything["recordings"]) == 5
    second_page = mb_get(mb, "recording", query="artist:the", limit="5", offset="5").json()
    assert second_page["offset"] == 5
    assert not {r["id"] for r in everything["recordings"]} & {r["id"] for r in second_page["recordings"]}
    scores = [r["score"] for r in everything["recordings"]]
    assert scores == sorted(scores, reverse=True)


def test_user_agent_is_required_and_json_only(mb, catalog):
    track = first_track(catalog, lambda t: t.recording is not None)
    url = f"{mb.base_url}/ws/2/isrc/{track.isrc}?fmt=json"
    # http.client sends no User-Agent of its own (requests/urllib3 always add one).
    connection = http.client.HTTPConnection("127.0.0.1", mb.port, timeout=5)
    connection.request("GET", f"/ws/2/isrc/{track.isrc}?fmt=json")
    assert connection.getresponse().status == 403
    connection.close()
    assert requests.get(url, headers=UA, timeout=5).status_code == 200
    accept_json = requests.get(url.removesuffix("?fmt=json"), headers={**UA, "Accept": "application/json"}, timeout=5)
    assert accept_json.status_code == 200
    assert requests.get(url.removesuffix("?fmt=json"), headers=UA, timeout=5).status_code == 406


def test_request_log_keeps_the_inc_parameter(catalog):
    emulator = MusicBrainzEmulator(catalog, rate_limit=None)
    track = first_track(catalog, lambda t: t.recording is not None)
    with serve(emulator) as running:
        mb_get(running, f"recording/{track.recording.mbid}", inc=FULL_RECORDING_INC)
    [logged] = emulator.requests()
    assert "work-level-rels" in re.split(r"[\s+]", logged.query["inc"])
    assert logged.headers["User-Agent"] == UA["User-Agent"]


def test_rate_limit_one_request_per_second_per_client(catalog):
    track = first_track(catalog, lambda t: t.recording is not None)
    with serve(MusicBrainzEmulator(catalog)) as running:  # the limit is on by default
        assert mb_get(running, f"isrc/{track.isrc}").status_code == 200
        burst = mb_get(running, f"isrc/{track.isrc}")
        assert burst.status_code == 503 and "rate limit" in burst.json()["error"]
        other_client = requests.get(
            f"{running.base_url}/ws/2/isrc/{track.isrc}?fmt=json", headers={**UA, "X-Forwarded-For": "10.0.0.2"}
        )
        assert other_client.status_code == 200
        time.sleep(1.0)  # one request per second passes
        assert mb_get(running, f"isrc/{track.isrc}").status_code == 200
        requests.post(f"{running.base_url}/_sandbox/rate-limit", json={"per_second": None}, timeout=5)
        assert [mb_get(running, f"isrc/{track.isrc}").status_code for _ in range(3)] == [200, 200, 200]


# -- Cover Art Archive -------------------------------------------------------------------------
def test_listing_points_back_at_the_emulator(caa, catalog):
    album = next(a for a in catalog.albums.values() if a.cover)
    response = requests.get(f"{caa.base_url}/release/{album.release.mbid}", timeout=5)
    assert response.status_code == 200
    [image] = response.json()["images"]
    assert image["front"] is True and image["types"] == ["Front"] and image["id"] == album.cover.image_id
    assert image["image"].startswith(caa.base_url + "/release/")
    assert set(image["thumbnails"]) >= {"250", "500", "1200", "small", "large"}
    assert jpeg_size(requests.get(image["image"], timeout=5)) == (album.cover.width, album.cover.height)
    assert jpeg_size(requests.get(image["thumbnails"]["250"], timeout=5)) == (250, 250)


def test_listing_errors(caa, catalog):
    assert requests.get(f"{caa.base_url}/release/not-a-uuid", timeout=5).status_code == 400
    no_art = next(a for a in catalog.albums.values() if a.cover is None)
    assert requests.get(f"{caa.base_url}/release/{no_art.release.mbid}", timeout=5).status_code == 404
    assert requests.get(f"{caa.base_url}/release/{no_art.release.mbid}/front", timeout=5).status_code == 404
    assert requests.get(f"{caa.base_url}/release/7d3b1c52-0b43-4a53-b1f4-3b2f8f0f0000", timeout=5).status_code == 404


@pytest.mark.parametrize("suffix, edge", [("", 1500), ("-1200", 1200), ("-500", 500), ("-250", 250)])
def test_front_redirects_to_a_real_jpeg(caa, catalog, suffix, edge):
    album = next(a for a in catalog.albums.values() if a.cover)
    hop = requests.get(f"{caa.base_url}/release/{album.release.mbid}/front{suffix}", allow_redirects=False, timeout=5)
    assert hop.status_code == 307
    assert hop.headers["Location"].startswith(f"{caa.base_url}/download/mbid-{album.release.mbid}/")
    followed = requests.get(f"{caa.base_url}/release/{album.release.mbid}/front{suffix}", timeout=5)
    assert followed.headers["Content-Type"] == "image/jpeg"
    assert jpeg_size(followed) == (edge, edge)


def test_release_group_front(caa, catalog):
    album = next(a for a in catalog.albums.values() if a.cover)
    response = requests.get(f"{caa.base_url}/release-group/{album.release.release_group_mbid}/front-500", timeout=5)
    assert response.history[0].status_code == 307
    assert jpeg_size(response) == (500, 500)


def test_thumbnails_are_not_upscaled():
    catalog = build_catalog()
    album = next(a for a in catalog.albums.values() if a.cover)
    album.cover.width = album.cover.height = 600
    with serve(CoverArtEmulator(catalog)) as running:
        front = f"{running.base_url}/release/{album.release.mbid}/front"
        assert jpeg_size(requests.get(front + "-1200", timeout=5)) == (600, 600)
        assert jpeg_size(requests.get(front + "-500", timeout=5)) == (500, 500)
        assert jpeg_size(requests.get(front, timeout=5)) == (600, 600)


# -- LRCLIB ------------------------------------------------------------------------------------
def lrclib_get(server, path: str = "get", **params) -> requests.Response:
    return requests.get(f"{server.base_url}/api/{path}", params=params, timeout=5)


def test_get_returns_the_record_shape(lrclib, catalog):
    track = first_track(catalog, lambda t: t.lyrics and t.lyrics.kind == "synced")
    album = catalog.albums[track.album_id]
    for path in ("get", "get-cached"):
        response = lrclib_get(lrclib, path, track_name=track.name, artist_name=artist_names(catalog, track),
                              album_name=album.name, duration=round(track.duration_ms / 1000))
        assert response.status_code == 200
        record = response.json()
        assert set(record) == {"id", "name", "trackName", "artistName", "albumName", "duration", "instrumental",
                               "plainLyrics", "syncedLyrics"}
        assert record["id"] == track.lyrics.lrclib_id and record["trackName"] == track.name
        assert isinstance(record["duration"], float) and record["instrumental"] is False
    assert lrclib_get(lrclib, f"get/{track.lyrics.lrclib_id}").json() == record


def test_get_matches_normalised_names(lrclib, catalog):
    track = first_track(catalog, lambda t: t.lyrics and catalog.artists[t.artist_ids[0]].name == "Sólveig Rós"
                        and len(t.artist_ids) == 1)
    response = lrclib_get(lrclib, track_name=f"  {track.name.upper()}!! ", artist_name="SOLVEIG   ros")
    assert response.status_code == 200 and response.json()["id"] == track.lyrics.lrclib_id
    assert prepare_input("Don't Stop – Ça Plane/Now") == "dont stop – ca plane now"
    wrong_album = lrclib_get(lrclib, track_name=track.name, artist_name="Sólveig Rós", album_name="Another Album")
    assert wrong_album.status_code == 404


def test_duration_must_be_within_two_seconds(lrclib, catalog):
    track = first_track(catalog, lambda t: t.lyrics is not None)
    params = {"track_name": track.name, "artist_name": artist_names(catalog, track)}
    recorded = track.lyrics.duration_s
    assert lrclib_get(lrclib, **params, duration=recorded + 1.9).status_code == 200
    assert lrclib_get(lrclib, **params, duration=recorded - 1.9).status_code == 200
    too_far = lrclib_get(lrclib, **params, duration=recorded + 2.5)
    assert too_far.status_code == 404
    assert too_far.json() == {"message": "Failed to find specified track", "name": "TrackNotFound", "statusCode": 404}


def test_validation_errors(lrclib):
    for params in ({"artist_name": "A"}, {"track_name": "", "artist_name": "A"}, {"track_name": "T"},
                   {"track_name": "T", "artist_name": "A", "duration": 0}):
        response = lrclib_get(lrclib, **params)
        assert response.status_code == 400
        assert response.json()["name"] == "ValidationError" and response.json()["statusCode"] == 400


def test_instrumental_plain_only_and_missing_tracks(lrclib, catalog):
    instrumental = first_track(catalog, lambda t: t.lyrics and t.lyrics.kind == "instrumental")
    record = lrclib_get(lrclib, f"get/{instrumental.lyrics.lrclib_id}").json()
    assert record["instrumental"] is True and record["plainLyrics"] is None and record["syncedLyrics"] is None

    plain = first_track(catalog, lambda t: t.lyrics and t.lyrics.kind == "plain")
    record = lrclib_get(lrclib, track_name=plain.name, artist_name=artist_names(catalog, plain)).json()
    assert record["plainLyrics"] and record["syncedLyrics"] is None and record["instrumental"] is False

    missing = first_track(catalog, lambda t: t.lyrics is None)
    assert lrclib_get(lrclib, track_name=missing.name, artist_name=artist_names(catalog, missing)).status_code == 404


def test_synced_lyrics_spread_over_the_track(lrclib, catalog):
    track = first_track(catalog, lambda t: t.lyrics and t.lyrics.kind == "synced")
    synced = lrclib_get(lrclib, f"get/{track.lyrics.lrclib_id}").json()["syncedLyrics"]
    times = [int(m) * 60 + float(s) for m, s in re.findall(r"^\[(\d{2}):(\d{2}\.\d{2})\] ", synced, re.MULTILINE)]
    assert len(times) == len(synced.splitlines()) and times == sorted(times)
    assert times[-1] < track.duration_ms / 1000 and times[-1] > track.duration_ms / 2000


def test_search_caps_at_twenty_and_ignores_duration(lrclib, catalog):
    assert len(lrclib_get(lrclib, "search", q="the").json()) == 20
    assert lrclib_get(lrclib, "search", artist_name="The").json() == []
    track = first_track(catalog, lambda t: t.lyrics is not None)
    results = lrclib_get(lrclib, "search", track_name=track.name, artist_name=artist_names(catalog, track),
                         duration=9).json()
    assert track.lyrics.lrclib_id in {record["id"] for record in results}


def test_sandbox_registers_the_three_emulators(tmp_path):
    with Sandbox(tmp_path, musicbrainz_rate_limit=None) as sandbox:
        env = sandbox.env
        assert env["MUSICBRAINZ_URL"] == sandbox.url("musicbrainz")
        assert env["COVERART_URL"] == sandbox.url("coverart")
        assert env["LRCLIB_URL"] == sandbox.url("lrclib")
        track = first_track(sandbox.catalog, lambda t: t.recording is not None)
        response = requests.get(f"{env['MUSICBRAINZ_URL']}/ws/2/isrc/{track.isrc}?fmt=json", headers=UA, timeout=5)
        assert response.status_code == 200
