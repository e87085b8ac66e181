"""Enrichment assets materialized against the sandbox: real audio files in a temporary library, tags read
back with mutagen, embedded covers measured, exact .lrc text, and the emulators' request logs."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile
from dagster import DagsterInstance, build_schedule_context, materialize

import assets.enrichment as enrichment
from assets.enrichment import track_artwork, track_lyrics, track_metadata, wiring
from harmony_pipeline.enrichment.batch import FAILURE_COOLDOWN, MISS_COOLDOWN
from harmony_pipeline import storage
from harmony_pipeline.enrichment.artwork import embed_cover, existing_cover, measure_image
from harmony_pipeline.definitions import build_resources
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.enrichment.lyrics import lrc_sidecar_path
from harmony_pipeline.sandbox.catalog import Album, Catalog, Person, Track
from harmony_pipeline.sandbox.server import Fault
from harmony_pipeline.settings import load_settings
from harmony_pipeline.enrichment.tagging import read_tags
from harmony_pipeline.wiring import Workers
from resources.musicbrainz import MusicBrainzResource
from sensors.enrichment import build_enrichment_schedule
from tests.audio_fixtures import image_bytes, write_m4a
from tests.response_cache import use_clock

EMULATORS = ("spotify", "musicbrainz", "coverart", "lrclib")
_SUBTYPES = {".mp3": ("MP3", "MPEG_LAYER_III"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
             ".opus": ("OGG", "OPUS")}


def write_track_audio(path: Path, seconds: float) -> Path:
    """A silent file of the track's real length (8 kHz mono keeps full-length files small and quick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".m4a":
        return write_m4a(path, seconds)
    container, subtype = _SUBTYPES[path.suffix]
    rate = 8000
    with soundfile.SoundFile(path, "w", rate, 1, format=container, subtype=subtype) as sound:
        remaining = int(seconds * rate)
        while remaining > 0:  # in blocks: libsndfile's Vorbis encoder crashes on one huge write
            block = min(remaining, rate * 10)
            sound.write(np.zeros(block))
            remaining -= block
    return path


def pick(catalog: Catalog, taken: list[Track], rule) -> Track:
    """The first album track (not a single's copy) meeting `rule`, on an album not used yet."""
    albums = {t.album_id for t in taken}
    isrcs = {t.isrc for t in catalog.tracks.values() if catalog.albums[t.album_id].album_type == "single"}
    for track in catalog.tracks.values():
        album = catalog.albums[track.album_id]
        if album.album_type != "album" or track.album_id in albums or track.isrc in isrcs:
            continue
        if rule(track, album, catalog.artists[track.artist_ids[0]]):
            taken.append(track)
            return track
    raise AssertionError("no catalog track fits the rule")


def choose_tracks(catalog: Catalog) -> dict[str, Track]:
    taken: list[Track] = []
    with_work = lambda t: t.recording is not None and t.recording.work is not None  # noqa: E731
    return {
        # CAA cover, recording-level producers, Spotify genres, synced lyrics
        ".mp3": pick(catalog, taken, lambda t, a, artist: with_work(t) and a.cover and t.recording.producers
                     and artist.genres and len(t.artist_ids) == 1 and t.lyrics and t.lyrics.kind == "synced"),
        # no Spotify genres (MusicBrainz fallback), plain lyrics, a low-resolution embed to replace
        ".flac": pick(catalog, taken, lambda t, a, artist: with_work(t) and not artist.genres and a.cover
                      and (t.recording.genres or t.recording.tags or a.release.genres)
                      and t.lyrics and t.lyrics.kind == "plain"),
        ".ogg": pick(catalog, taken, lambda t, a, artist: t.lyrics and t.lyrics.kind == "instrumental"),
        # no CAA cover: Spotify's 640 px image; LRCLIB knows nothing
        ".opus": pick(catalog, taken, lambda t, a, artist: a.cover is None and t.lyrics is None),
        # producers only on the release; a good embed that must be kept; synced lyrics
        ".m4a": pick(catalog, taken, lambda t, a, artist: with_work(t) and not t.recording.producers
                     and t.lyrics and t.lyrics.kind == "synced"),
    }


def library_rows(catalog: Catalog, track: Track, relative: str) -> tuple[dict, dict]:
    album = catalog.albums[track.album_id]
    artists = [catalog.artists[a].name for a in track.artist_ids]
    common = {
        "wanted_key": f"isrc:{track.isrc}", "spotify_track_id": track.id, "isrc": track.isrc, "title": track.name,
        "artist": artists[0], "album": album.name, "album_id": album.id,
        "album_artist": catalog.artists[album.artist_ids[0]].name, "track_number": track.track_number,
        "disc_number": track.disc_number, "release_date": album.release_date,
    }
    now = storage.utcnow()
    library = {**common, "path": relative, "format": Path(relative).suffix[1:], "source": "soulseek:peer",
               "imported_at": now - timedelta(minutes=5)}
    wanted = {**common, "artists": artists, "album_total_tracks": len(album.track_ids),
              "duration_ms": track.duration_ms, "sources": ["playlist:test"], "state": "in_library",
              "first_wanted_at": now, "updated_at": now}
    return library, wanted


@pytest.fixture
def library(sandbox, harmony_env, tmp_path, monkeypatch):
    """Five real files of five catalog tracks plus one corrupt file, registered in library_tracks."""
    monkeypatch.setenv("ENABLE_ARTWORK", "1")
    monkeypatch.setenv("ENABLE_LYRICS", "1")
    settings = load_settings()
    catalog = sandbox.catalog
    chosen = choose_tracks(catalog)
    files: dict[str, Path] = {}
    rows = []
    for suffix, track in chosen.items():
        relative = f"{track.album_id}/{track.track_number:02d} - track{suffix}"
        files[suffix] = write_track_audio(settings.library_dir / relative, track.duration_ms / 1000)
        rows.append(library_rows(catalog, track, relative))
    embed_cover(files[".flac"], image_bytes(300, 300), "image/jpeg")  # low resolution: replaced
    embed_cover(files[".m4a"], image_bytes(1200, 1200), "image/jpeg")  # good enough: kept
    corrupt_track = next(t for t in catalog.tracks.values() if t not in chosen.values() and t.recording)
    corrupt = f"{corrupt_track.album_id}/corrupt.mp3"
    (settings.library_dir / corrupt).parent.mkdir(parents=True, exist_ok=True)
    (settings.library_dir / corrupt).write_bytes(b"\x00not audio at all" * 64)
    rows.append(library_rows(catalog, corrupt_track, corrupt))
    with storage.connect(settings.duckdb_path) as conn:
        storage.upsert(conn, "library_tracks", [r[0] for r in rows], key=["wanted_key"])
        storage.upsert(conn, "wanted_tracks", [r[1] for r in rows], key=["wanted_key"])
    # MusicBrainz's 1 request/s is covered by the client tests; here it would only slow the run down.
    sandbox.emulator("musicbrainz").set_rate_limit(None)
    resources = {**build_resources(settings), **wiring(settings, Workers(False)).resources,
                 "musicbrainz": MusicBrainzResource(url=settings.musicbrainz_url, min_interval_seconds=0.01)}
    return {"settings": settings, "catalog": catalog, "tracks": chosen, "files": files,
            "corrupt_key": f"isrc:{corrupt_track.isrc}", "resources": resources}


class Clock:
    """The enrichment assets' clock (their response cache's): real time moved forward by `offset`."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return storage.utcnow() + self.offset


@pytest.fixture
def clock(monkeypatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(enrichment, "HttpCache", partial(HttpCache, now=moved))
    use_clock(monkeypatch, moved)  # the response cache's expiry too
    return moved


def run_enrichment(library, assets=(track_metadata, track_artwork, track_lyrics)) -> tuple:
    result = materialize(list(assets), resources=library["resources"], instance=DagsterInstance.ephemeral())
    assert result.success
    return result


def external_requests(sandbox) -> int:
    return sum(len(sandbox.emulator(name).requests()) for name in EMULATORS)


def clear_logs(sandbox) -> None:
    for name in EMULATORS:
        sandbox.emulator(name).clear_requests()


def table(settings, name: str) -> dict[str, dict]:
    with storage.connect(settings.duckdb_path) as conn:
        return {row["wanted_key"]: row for row in storage.fetch_dicts(conn, f"SELECT * FROM {name}")}


def credited(people: list[Person]) -> list[set[str]]:
    """Each person's acceptable names: MusicBrainz shows some credits as "A. Lastname"."""
    return [{p.name, f"{p.name.split(' ')[0][0]}. {p.name.partition(' ')[2]}"} for p in people]


def assert_names(written: list[str], people: list[Person]) -> None:
    assert len(written) == len(people)
    assert all(name in options for name, options in zip(written, credited(people))), (written, people)


def expected_copyright(album: Album) -> str:
    return "; ".join(text for kind in "PC" for text, type_ in album.copyrights if type_ == kind)


def expected_lrc(catalog: Catalog, track: Track, length_s: float) -> str:
    album = catalog.albums[track.album_id]
    artists = ", ".join(catalog.artists[a].name for a in track.artist_ids)
    total = int(length_s + 0.5)
    lines = [f"[ar:{artists}]", f"[ti:{track.name}]", f"[al:{album.name}]",
             f"[length:{total // 60:02d}:{total % 60:02d}]"]
    for line in track.lyrics.synced.splitlines():
        stamp, _, text = line.partition("] ")
        lines.append(f"{stamp}]{text.strip()}")
    return "\n".join(lines) + "\n"


def test_enrichment_writes_tags_artwork_and_lyrics_then_asks_nothing_again(sandbox, library):
    settings, catalog, tracks, files = library["settings"], library["catalog"], library["tracks"], library["files"]
    result = run_enrichment(library)
    first_requests = external_requests(sandbox)
    per_service = {name: len(sandbox.emulator(name).requests()) for name in EMULATORS}

    # --- tags: every field read back with mutagen -------------------------------------------------
    metadata = table(settings, "track_metadata")
    for suffix, track in tracks.items():
        album = catalog.albums[track.album_id]
        names = [catalog.artists[a].name for a in track.artist_ids]
        tags = read_tags(files[suffix])
        assert metadata[f"isrc:{track.isrc}"]["status"] == "tagged", suffix
        assert (tags.title, tags.artist, tags.artists, tags.album) == (track.name, ", ".join(names), names, album.name)
        assert tags.album_artist == catalog.artists[album.artist_ids[0]].name
        disc_tracks = [t for t in catalog.album_tracks(album) if t.disc_number == track.disc_number]
        assert (tags.track_number, tags.track_total) == (track.track_number, len(disc_tracks)), suffix
        assert (tags.disc_number, tags.disc_total) == (track.disc_number, album.disc_count), suffix
        assert tags.date == album.release_date
        assert tags.isrc == track.isrc
        assert tags.copyright == expected_copyright(album)
        if track.recording is None:
            continue
        assert tags.label == album.release.label
        assert tags.musicbrainz_recording_id == track.recording.mbid
        assert tags.musicbrainz_release_id == album.release.mbid
        work = track.recording.work
        assert_names(tags.composers, work.composers if work else [])
        assert_names(tags.lyricists, work.lyricists if work else [])
        assert_names(tags.producers, track.recording.producers or album.release.producers)
        artist = catalog.artists[track.artist_ids[0]]
        spotify_genres = list(dict.fromkeys(g for a in track.artist_ids for g in catalog.artists[a].genres))
        if spotify_genres:
            assert tags.genres == spotify_genres[:5]
        else:
            musicbrainz_genres = track.recording.genres + track.recording.tags + album.release.genres + artist.mb_genres
            assert tags.genres and set(tags.genres) <= set(musicbrainz_genres), (tags.genres, musicbrainz_genres)
    mp3_tags = read_tags(files[".mp3"])
    assert mp3_tags.genres and mp3_tags.producers and mp3_tags.composers  # the rich track really is rich
    assert not catalog.tracks[tracks[".m4a"].id].recording.producers and read_tags(files[".m4a"]).producers

    # --- artwork: the real dimensions of what is embedded ------------------------------------------
    artwork = table(settings, "track_artwork")
    by_suffix = {suffix: artwork[f"isrc:{track.isrc}"] for suffix, track in tracks.items()}
    for suffix in (".mp3", ".flac"):
        assert (by_suffix[suffix]["status"], by_suffix[suffix]["source"]) == ("embedded", "coverartarchive")
        cover = existing_cover(files[suffix])
        assert (cover.width, cover.height) == (1500, 1500)  # CAA's 1500 px beats Spotify's 640
        on_disk = measure_image((files[suffix].parent / "cover.jpg").read_bytes())
        assert (on_disk.width, on_disk.height) == (1500, 1500)
        assert Path(by_suffix[suffix]["cache_path"]).is_file()
    assert (by_suffix[".opus"]["source"], by_suffix[".opus"]["width"]) == ("spotify", 640)
    assert (existing_cover(files[".opus"]).width, existing_cover(files[".opus"]).height) == (640, 640)
    assert by_suffix[".m4a"]["status"] == "kept"
    assert existing_cover(files[".m4a"]).width == 1200  # a good embed is not replaced
    preview = result.asset_materializations_for_node("track_artwork")[0].metadata["preview"].value
    assert "](data:image/jpeg;base64," in preview

    # --- lyrics: exact .lrc (and its plain text in the tag), plain in the tag, instrumental and missing recorded
    lyrics = table(settings, "track_lyrics")
    status = {suffix: lyrics[f"isrc:{track.isrc}"] for suffix, track in tracks.items()}
    for suffix in (".mp3", ".m4a"):
        assert status[suffix]["status"] == "synced"
        text = lrc_sidecar_path(files[suffix]).read_text(encoding="utf-8")
        assert text == expected_lrc(catalog, tracks[suffix], status[suffix]["duration_s"])
        assert read_tags(files[suffix]).plain_lyrics == tracks[suffix].lyrics.plain
    assert status[".flac"]["status"] == "plain"
    assert read_tags(files[".flac"]).plain_lyrics == tracks[".flac"].lyrics.plain
    assert status[".ogg"]["status"] == "instrumental" and status[".ogg"]["next_attempt_at"] is None
    assert status[".opus"]["status"] == "missing" and status[".opus"]["next_attempt_at"] > storage.utcnow()
    for suffix in (".flac", ".ogg", ".opus"):
        assert not lrc_sidecar_path(files[suffix]).exists()
    snippet = result.asset_materializations_for_node("track_lyrics")[0].metadata["snippet"].value
    assert "[ar:" in snippet

    # --- the corrupt file is a recorded failure in every table; the batch went on -------------------
    for name in ("track_metadata", "track_artwork", "track_lyrics"):
        assert table(settings, name)[library["corrupt_key"]]["status"] == "failed", name
    with storage.connect(settings.duckdb_path) as conn:
        events = {row["type"] for row in storage.recent_activity(conn, 50)}
    assert {"artwork_embedded", "lyrics_generated"} <= events

    # --- a second run asks nothing; neither does a full re-enrichment from the cache ----------------
    clear_logs(sandbox)
    run_enrichment(library)
    second_requests = external_requests(sandbox)
    with storage.connect(settings.duckdb_path) as conn:
        for name in ("track_metadata", "track_artwork", "track_lyrics"):
            conn.execute(f"DELETE FROM {name}")
    run_enrichment(library)
    from_cache_requests = external_requests(sandbox)
    assert second_requests == 0 and from_cache_requests == 0
    assert read_tags(files[".mp3"]).composers == mp3_tags.composers

    enriched = len(tracks)
    print(f"\nexternal requests per enriched track ({enriched} tracks): first run "
          f"{first_requests / enriched:.1f} ({first_requests} requests), second run {second_requests / enriched:.1f}, "
          f"re-enrichment with emptied tables {from_cache_requests / enriched:.1f}; first run by service {per_service}")


def test_lyrics_misses_are_retried_by_the_nightly_schedule_after_their_cool_down(sandbox, library, clock):
    settings, catalog, tracks = library["settings"], library["catalog"], library["tracks"]
    with storage.connect(settings.duckdb_path) as conn:  # this test is about misses, not failures
        conn.execute("DELETE FROM library_tracks WHERE wanted_key = ?", [library["corrupt_key"]])
    # A longer edit than the one LRCLIB knows: its search finds the record, whose duration does not fit.
    longer = next(t for t in catalog.tracks.values() if t.lyrics and t.lyrics.kind == "synced"
                  and t.album_id not in {c.album_id for c in tracks.values()})
    relative = f"{longer.album_id}/{longer.track_number:02d} - extended.mp3"
    write_track_audio(settings.library_dir / relative, longer.duration_ms / 1000 + 10)
    with storage.connect(settings.duckdb_path) as conn:
        library_row, wanted_row = library_rows(catalog, longer, relative)
        storage.upsert(conn, "library_tracks", [library_row], key=["wanted_key"])
        storage.upsert(conn, "wanted_tracks", [wanted_row], key=["wanted_key"])
    run_enrichment(library)
    misses = {f"isrc:{tracks['.opus'].isrc}": tracks[".opus"].name, library_row["wanted_key"]: longer.name}
    lyrics = table(settings, "track_lyrics")
    assert {lyrics[key]["status"] for key in misses} == {"missing"}
    schedule = build_enrichment_schedule([track_metadata, track_artwork, track_lyrics], Workers(False))
    database = library["resources"]["database"]

    def tick():
        context = build_schedule_context(resources={"database": database}, scheduled_execution_time=clock())
        return schedule.evaluate_tick(context)

    assert tick().skip_message
    clock.offset = MISS_COOLDOWN - timedelta(hours=1)
    assert tick().skip_message

    # A week later the misses' cool-down has passed, and so has every LRCLIB answer cached for them.
    clock.offset = MISS_COOLDOWN + timedelta(minutes=1)
    assert [request.tags["harmony/trigger"] for request in tick().run_requests] == ["track_lyrics=2"]
    clear_logs(sandbox)
    run_enrichment(library)
    asked = [(entry.query["track_name"], entry.path) for entry in sandbox.emulator("lrclib").requests()]
    for title in misses.values():
        assert [path for name, path in asked if name == title] == ["/api/get-cached", "/api/get", "/api/search"]
    lyrics = table(settings, "track_lyrics")
    for key in misses:
        assert lyrics[key]["status"] == "missing"
        assert lyrics[key]["next_attempt_at"] > clock() + MISS_COOLDOWN - timedelta(minutes=1)
    assert external_requests(sandbox) == len(asked) == 6  # nothing else was due


def test_artwork_and_lyrics_assets_follow_their_flags(sandbox, harmony_env, monkeypatch):
    def asset_names(settings) -> set[str]:
        return {key.to_user_string() for a in wiring(settings, Workers(False)).assets for key in a.keys}

    assert asset_names(load_settings()) == {"track_metadata"}
    monkeypatch.setenv("ENABLE_LYRICS", "1")
    assert asset_names(load_settings()) == {"track_metadata", "track_lyrics"}
    monkeypatch.setenv("ENABLE_ARTWORK", "1")
    enabled = wiring(load_settings(), Workers(False))
    assert {key.to_user_string() for a in enabled.assets for key in a.keys} == {
        "track_metadata", "track_artwork", "track_lyrics"}
    sensor = enabled.sensors[0]
    assert sensor.name == "enrichment_automation_sensor"
    assert sensor.default_status.value == "RUNNING"
    assert wiring(load_settings(), Workers(True)).sensors[0].default_status.value == "STOPPED"


def test_enrichment_follows_library_tracks_by_declarative_automation(tmp_path):
    from dagster import AssetMaterialization, AssetSpec, Definitions, evaluate_automation_conditions

    settings = load_settings({"HARMONY_DATA_DIR": str(tmp_path), "ENABLE_ARTWORK": "1", "ENABLE_LYRICS": "1"})
    enrichment_wiring = wiring(settings, Workers(False))
    defs = Definitions(assets=[AssetSpec("library_tracks"), *enrichment_wiring.assets],
                       sensors=enrichment_wiring.sensors,
                       resources={**build_resources(settings), **enrichment_wiring.resources})
    instance = DagsterInstance.ephemeral()
    enrichment = [track_metadata.key, track_artwork.key, track_lyrics.key]

    before = evaluate_automation_conditions(defs=defs, instance=instance)
    assert before.total_requested == 0  # nothing in the library yet
    instance.report_runless_asset_event(AssetMaterialization("library_tracks"))
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    assert [after.get_num_requested(key) for key in enrichment] == [1, 1, 1]


def spotify_api_requests(sandbox) -> list[str]:
    return [entry.path for entry in sandbox.emulator("spotify").requests() if entry.path.startswith("/v1/")]


def test_tags_and_artwork_chosen_without_spotify_are_completed_by_a_later_run(sandbox, library, clock):
    settings, catalog, tracks, files = library["settings"], library["catalog"], library["tracks"], library["files"]
    sandbox.emulator("spotify").add_fault(Fault(r"^/v1/", status=401, message="Invalid access token"))
    run_enrichment(library, (track_metadata, track_artwork))

    assert len(spotify_api_requests(sandbox)) == 2  # unauthorised: asked once per asset, then not again
    soon = clock() + FAILURE_COOLDOWN
    metadata, artwork = table(settings, "track_metadata"), table(settings, "track_artwork")
    for track in tracks.values():
        row = metadata[f"isrc:{track.isrc}"]
        assert row["status"] == "partial" and "Spotify" in row["reason"]
        assert clock() < row["next_attempt_at"] <= soon
    mp3 = tracks[".mp3"]
    assert read_tags(files[".mp3"]).title == mp3.name and read_tags(files[".mp3"]).disc_total is None
    # The CAA cover went in, but Spotify's image was not weighed; the Spotify-only album has none yet.
    assert artwork[f"isrc:{mp3.isrc}"]["status"] == "embedded"
    assert clock() < artwork[f"isrc:{mp3.isrc}"]["next_attempt_at"] <= soon
    opus = artwork[f"isrc:{tracks['.opus'].isrc}"]
    assert opus["status"] == "missing" and clock() < opus["next_attempt_at"] <= soon
    assert existing_cover(files[".opus"]) is None

    sandbox.emulator("spotify").clear_faults()
    clock.offset = FAILURE_COOLDOWN + timedelta(minutes=1)
    run_enrichment(library, (track_metadata, track_artwork))

    metadata, artwork = table(settings, "track_metadata"), table(settings, "track_artwork")
    assert {metadata[f"isrc:{t.isrc}"]["status"] for t in tracks.values()} == {"tagged"}
    album = catalog.albums[mp3.album_id]
    tags = read_tags(files[".mp3"])
    assert (tags.disc_total, tags.copyright) == (album.disc_count, expected_copyright(album))
    assert tags.genres == list(dict.fromkeys(g for a in mp3.artist_ids for g in catalog.artists[a].genres))[:5]
    assert artwork[f"isrc:{mp3.isrc}"]["next_attempt_at"] is None
    opus = artwork[f"isrc:{tracks['.opus'].isrc}"]
    assert (opus["status"], opus["source"], opus["width"]) == ("embedded", "spotify", 640)
    assert existing_cover(files[".opus"]).width == 640


def test_a_spotify_rate_limit_is_respected_for_the_rest_of_the_run(sandbox, library, clock):
    settings, tracks = library["settings"], library["tracks"]
    sandbox.emulator("spotify").add_fault(Fault(r"^/v1/albums/", status=429, retry_after=3600))
    run_enrichment(library, (track_metadata,))

    assert spotify_api_requests(sandbox) == [spotify_api_requests(sandbox)[0]]  # one 429, then no more asking
    metadata = table(settings, "track_metadata")
    assert {metadata[f"isrc:{t.isrc}"]["status"] for t in tracks.values()} == {"partial"}
    assert all("rate-limited" in metadata[f"isrc:{t.isrc}"]["reason"] for t in tracks.values())

    # Nothing was cached as a miss: once the limit and the cool-down are over, Spotify is asked again.
    sandbox.emulator("spotify").clear_faults()
    clock.offset = FAILURE_COOLDOWN + timedelta(minutes=1)
    run_enrichment(library, (track_metadata,))
    metadata = table(settings, "track_metadata")
    assert {metadata[f"isrc:{t.isrc}"]["status"] for t in tracks.values()} == {"tagged"}


def test_lyrics_of_a_track_with_several_artists_stored_under_its_main_artist(sandbox, library, monkeypatch):
    settings, catalog = library["settings"], library["catalog"]
    track = next(t for t in catalog.tracks.values() if len(t.artist_ids) > 1 and t.lyrics
                 and t.lyrics.kind == "synced" and t.album_id not in {c.album_id for c in library["tracks"].values()})
    relative = f"{track.album_id}/{track.track_number:02d} - several artists.flac"
    path = write_track_audio(settings.library_dir / relative, track.duration_ms / 1000)
    library_row, wanted_row = library_rows(catalog, track, relative)
    with storage.connect(settings.duckdb_path) as conn:
        storage.upsert(conn, "library_tracks", [library_row], key=["wanted_key"])
        storage.upsert(conn, "wanted_tracks", [wanted_row], key=["wanted_key"])
    # LRCLIB keeps this record under the main artist only, as uploaders other than Spotify-based ones do.
    emulator = sandbox.emulator("lrclib")
    record_of = emulator._record
    main_artist = catalog.artists[track.artist_ids[0]].name
    monkeypatch.setattr(emulator, "_record", lambda t: {**record_of(t), "artistName": main_artist}
                        if t.lyrics.lrclib_id == track.lyrics.lrclib_id else record_of(t))

    run_enrichment(library, (track_lyrics,))

    row = table(settings, "track_lyrics")[library_row["wanted_key"]]
    assert (row["status"], row["lrclib_id"]) == ("synced", track.lyrics.lrclib_id)
    assert lrc_sidecar_path(path).read_text(encoding="utf-8") == expected_lrc(catalog, track, row["duration_s"])
