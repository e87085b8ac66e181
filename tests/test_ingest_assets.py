"""FREE ingest through Dagster against the sandbox: backfill checked against the catalog's truth, no
Spotify request on a second run, the inbox sensor, and ingest → library end to end."""

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import mutagen
import pytest
from conftest import materialize_assets, pipeline_environment, settle_acquisition
from dagster import build_sensor_context
from test_ingest_cli import UNKNOWN_LINE, _plain_tracks, write_corpus

from harmony_pipeline.ingest.resolve import ARTIST_LINK_REASON
from assets.ingest import wiring as ingest_wiring
from harmony_pipeline.spotify.playlist_flow import FORBIDDEN_REASON
from harmony_pipeline import storage
from harmony_pipeline.cli.main import main
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.ingest.store import ingest_inbox_file, waiting_inbox_files
from harmony_pipeline.sandbox import Fault, Sandbox
from harmony_pipeline.settings import load_settings
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from resources.inbox import IngestInbox
from tests.response_cache import cache_json_answer

BACKFILL = ["free_ingest_items", "backfilled_tracks", "wanted_tracks"]
CHAIN = ["free_ingest_items", "backfilled_tracks", "wanted_tracks", "soulseek_matches", "downloads", "library_tracks"]


def query(sql: str, params=()) -> list[dict]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        cursor = conn.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def item_at(source: str, line: int) -> dict:
    rows = query("SELECT i.* FROM free_ingest_items i JOIN free_ingest_submissions s ON s.id = i.submission_id "
                 "WHERE s.source = ? AND i.line_number = ?", [source, line])
    assert len(rows) == 1, (source, line)
    return rows[0]


def tracks_of(fingerprint: str) -> dict[str, dict]:
    return {r["spotify_track_id"]: r for r in query(
        "SELECT * FROM backfilled_tracks WHERE fingerprint = ? AND status = 'matched'", [fingerprint])}


def metadata_of(result, asset_name: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset_name)[0].metadata.items()}


def test_backfill_matches_the_catalog_and_a_second_run_asks_spotify_nothing(
        sandbox, harmony_env, instance, tmp_path, capsys):
    catalog = sandbox.catalog
    spotify = sandbox.emulator("spotify")
    corpus = write_corpus(catalog, tmp_path / "corpus")
    assert main(["--quiet", "ingest", *map(str, corpus.files)]) == 0
    spotify.clear_requests()

    first = materialize_assets(BACKFILL, instance)
    first_requests = spotify.requests()
    backfill_meta = metadata_of(first, "backfilled_tracks")
    assert backfill_meta["looked_up"] == corpus.items
    assert backfill_meta["spotify_requests"] == len([r for r in first_requests if r.path.startswith("/v1/")])

    # Every line resolves to the recording the catalog says it is.
    for (source, line), truth in corpus.truth.items():
        item = item_at(source, line)
        assert item["state"] == "matched", (source, line, item["reason"])
        resolved = tracks_of(item["fingerprint"])
        assert list(resolved) == [truth.id], (source, line, item["reason"])
        row = resolved[truth.id]
        album = catalog.albums[truth.album_id]
        assert (row["isrc"], row["duration_ms"], row["title"], row["album_id"]) == (
            truth.isrc, truth.duration_ms, truth.name, album.id)
        assert row["artists"] == [catalog.artists[a].name for a in truth.artist_ids]
        assert (row["track_number"], row["disc_number"], row["album_total_tracks"], row["release_date"]) == (
            truth.track_number, truth.disc_number, len(album.track_ids), album.release_date)
    assert tracks_of(item_at("wishlist.txt", 10)["fingerprint"]).popitem()[1]["via"] == "isrc"
    assert tracks_of(item_at("exportify.csv", 4)["fingerprint"]).popitem()[1]["via"] == "search"

    # Links: the album and the owned playlist expand to their tracks with ISRCs; the rest say why not.
    album_item = item_at("links.txt", 2)
    album_tracks = tracks_of(album_item["fingerprint"])
    assert album_item["state"] == "expanded"
    assert set(album_tracks) == set(catalog.albums[corpus.album_id].track_ids)
    assert all(r["isrc"] == catalog.tracks[t].isrc for t, r in album_tracks.items())
    playlist_item = item_at("links.txt", 4)
    assert playlist_item["state"] == "expanded"
    owned = catalog.playlist_tracks(catalog.playlists[corpus.owned_playlist_id])
    assert set(tracks_of(playlist_item["fingerprint"])) == {t.id for t in owned}

    foreign = item_at("links.txt", 3)
    assert (foreign["state"], foreign["reason"], foreign["next_lookup_at"]) == ("unmatched", FORBIDDEN_REASON, None)
    assert [r.status for r in first_requests if r.path.endswith(f"{corpus.foreign_playlist_id}/items")] == [403]
    artist = item_at("links.txt", 5)
    assert (artist["state"], artist["reason"], artist["next_lookup_at"]) == ("unmatched", ARTIST_LINK_REASON, None)
    unknown = item_at("wishlist.txt", 8)
    assert unknown["state"] == "unmatched" and unknown["reason"].startswith("no Spotify results for track:")
    assert unknown["next_lookup_at"] > storage.utcnow() + timedelta(days=6)
    assert all(int(r.query.get("limit", "5")) <= 10 for r in first_requests if r.path == "/v1/search")

    # wanted_tracks takes every resolved recording as free_ingest demand.
    wanted = {r["wanted_key"]: r for r in query("SELECT * FROM wanted_tracks")}
    resolved_isrcs = {r["isrc"] for r in query("SELECT isrc FROM backfilled_tracks")}
    assert {f"isrc:{isrc}" for isrc in resolved_isrcs} <= set(wanted)
    assert all("free_ingest" in wanted[f"isrc:{isrc}"]["sources"] for isrc in resolved_isrcs)

    # Second run: everything is resolved or cooling down, so Spotify hears nothing.
    spotify.clear_requests()
    second = materialize_assets(BACKFILL, instance)
    second_requests = spotify.requests()
    assert second_requests == []
    assert metadata_of(second, "backfilled_tracks")["spotify_requests"] == 0
    assert query("SELECT count(*) AS n FROM backfilled_tracks")[0]["n"] == len(
        query("SELECT DISTINCT fingerprint, spotify_track_id FROM backfilled_tracks"))

    with capsys.disabled():
        print(f"\nSpotify requests per backfilled item: first run {len(first_requests) / corpus.items:.2f} "
              f"({len(first_requests)} requests incl. token for {corpus.items} items, "
              f"{backfill_meta['tracks_resolved']} tracks, {backfill_meta['cache_hits']} cache hits), "
              f"second run {len(second_requests) / corpus.items:.2f} ({len(second_requests)} requests)")


def test_unmatched_item_is_looked_up_again_only_after_its_cooldown(sandbox, harmony_env, instance, tmp_path):
    spotify = sandbox.emulator("spotify")
    wish = tmp_path / "unknown.txt"
    wish.write_text(f"{UNKNOWN_LINE}\n", encoding="utf-8")
    assert main(["--quiet", "ingest", str(wish)]) == 0
    assert materialize_assets(BACKFILL, instance).success
    searches = [r for r in spotify.requests() if r.path == "/v1/search"]
    assert len(searches) == 1 and searches[0].query["q"].startswith('track:"Nothing At All Whatsoever"')

    spotify.clear_requests()
    assert materialize_assets(BACKFILL, instance).success
    assert spotify.requests() == []
    assert query("SELECT lookups FROM free_ingest_items")[0]["lookups"] == 1

    # Once the cool-down has passed the item is tried again (its search answer is still cached).
    with storage.connect(load_settings().duckdb_path) as conn:
        conn.execute("UPDATE free_ingest_items SET next_lookup_at = ?", [storage.utcnow() - timedelta(seconds=1)])
    result = materialize_assets(BACKFILL, instance)
    assert query("SELECT state, lookups FROM free_ingest_items") == [{"state": "unmatched", "lookups": 2}]
    assert metadata_of(result, "backfilled_tracks")["cache_hits"] == 1
    assert spotify.requests() == []


def test_rate_limit_leaves_items_pending_for_the_next_run(sandbox, harmony_env, instance, tmp_path):
    catalog = sandbox.catalog
    spotify = sandbox.emulator("spotify")
    tracks = _plain_tracks(catalog)[:2]
    wish = tmp_path / "two.txt"
    wish.write_text("".join(f"{catalog.artists[t.artist_ids[0]].name} - {t.name}\n" for t in tracks), encoding="utf-8")
    assert main(["--quiet", "ingest", str(wish)]) == 0
    spotify.add_fault(Fault("/v1/search", status=429, retry_after=3600))

    limited = metadata_of(materialize_assets(BACKFILL, instance), "backfilled_tracks")
    assert "rate_limited_until" in limited and limited["looked_up"] == 0
    assert [r["state"] for r in query("SELECT state FROM free_ingest_items")] == ["pending", "pending"]

    spotify.clear_faults()
    assert metadata_of(materialize_assets(BACKFILL, instance), "backfilled_tracks")["matched"] == 2
    assert {r["spotify_track_id"] for r in query("SELECT spotify_track_id FROM backfilled_tracks")} == {
        t.id for t in tracks}


def _cache_search(query_text: str, tracks: list[dict]) -> None:
    """The answer Spotify's search gives for `query_text`, placed in the response cache as if it had sent it."""
    settings = load_settings()
    api_url = settings.spotify_api_url.rstrip("/") + "/search"
    cache_json_answer(HttpCache(settings.duckdb_path), api_url,
                      {"q": query_text, "limit": 10, "offset": 0, "type": "track"},
                      {"tracks": {"items": tracks, "next": None}}, storage.utcnow() + timedelta(days=1))


def test_malformed_spotify_tracks_make_their_item_unmatched_and_the_batch_goes_on(
        sandbox, harmony_env, instance, tmp_path):
    catalog = sandbox.catalog
    good = _plain_tracks(catalog)[0]
    wish = tmp_path / "odd.txt"
    wish.write_text(f"Broken Artist - Broken Title\nZZAAA2600001\n"
                    f"{catalog.artists[good.artist_ids[0]].name} - {good.name}\n", encoding="utf-8")
    assert main(["--quiet", "ingest", str(wish)]) == 0
    # Answers as they might come back: an artist entry that is null, an ISRC that is null.
    _cache_search('track:"Broken Title" artist:"Broken Artist"',
                  [{"id": "broken", "name": "Broken Title", "artists": [None], "duration_ms": 1000}])
    _cache_search("isrc:ZZAAA2600001", [{"id": "noisrc", "name": "Other Song", "artists": [{"name": "Other"}],
                                         "external_ids": {"isrc": None}, "duration_ms": 1000}])

    meta = metadata_of(materialize_assets(BACKFILL, instance), "backfilled_tracks")

    assert (meta["looked_up"], meta["matched"], meta["unmatched"]) == (3, 1, 2)
    broken, no_isrc, matched = (item_at("odd.txt", line) for line in (1, 2, 3))
    assert broken["state"] == "unmatched" and broken["reason"].startswith("unreadable Spotify answer (AttributeError")
    assert broken["next_lookup_at"] is not None  # tried again after the cool-down
    assert no_isrc["state"] == "unmatched" and no_isrc["reason"].startswith("best candidate 'Other – Other Song'")
    assert matched["state"] == "matched" and list(tracks_of(matched["fingerprint"])) == [good.id]


def test_inbox_sensor_records_and_moves_files_aside(sandbox, harmony_env, instance, tmp_path):
    settings = load_settings()
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    corpus = write_corpus(sandbox.catalog, tmp_path / "corpus")
    shutil.copy(corpus.wishlist, inbox / "wishlist.txt")
    (inbox / "broken.json").write_text('{"tracks": [', encoding="utf-8")
    (inbox / "notes.md").write_text("not for the inbox", encoding="utf-8")
    settled = time.time() - 60
    for name in ("wishlist.txt", "broken.json", "notes.md"):
        os.utime(inbox / name, (settled, settled))
    shutil.copy(corpus.links, inbox / "still-copying.txt")  # modified just now: left for a later tick

    sensor = ingest_wiring(settings, Workers(disabled=False)).sensors[0]
    resources = {"database": HarmonyDatabase(path=str(settings.duckdb_path)),
                 "ingest_inbox_dir": IngestInbox(path=str(inbox), settle_seconds=30)}
    tick = sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources))

    assert len(tick.run_requests) == 1
    assert tick.run_requests[0].tags["harmony/trigger"].endswith("inbox_accepted=6")
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["notes.md", "still-copying.txt"]
    processed = sorted((inbox / "processed").iterdir())
    assert [p.name.split("_", 1)[1] for p in processed] == ["wishlist.txt", "wishlist.txt.report.txt"]
    report = processed[1].read_text(encoding="utf-8").splitlines()
    assert report[-1] == "accepted 6, skipped 3" and "line 6: no ' - ' separator between artist and title" in report
    failed = sorted((inbox / "failed").iterdir())
    assert [p.name.split("_", 1)[1] for p in failed] == ["broken.json", "broken.json.reason.txt"]
    assert "invalid JSON" in failed[1].read_text(encoding="utf-8")
    assert query("SELECT source, accepted, skipped FROM free_ingest_submissions") == [
        {"source": "inbox:wishlist.txt", "accepted": 6, "skipped": 3}]

    assert [p.name for p in (inbox / "processing").iterdir()] == []

    # Nothing due for a lookup: no run.
    with storage.connect(settings.duckdb_path) as conn:
        conn.execute("UPDATE free_ingest_items SET state = 'matched'")
    idle = sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources))
    assert idle.run_requests == [] and "no items waiting" in idle.skip_message


def test_inbox_file_taken_by_the_sensor_is_skipped_by_the_asset_that_listed_it(
        sandbox, harmony_env, instance, tmp_path):
    settings = load_settings()
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    shutil.copy(write_corpus(sandbox.catalog, tmp_path / "corpus").links, inbox / "links.txt")
    os.utime(inbox / "links.txt", (time.time() - 60,) * 2)
    listed_by_the_asset = waiting_inbox_files(inbox, time.time(), 2.0)

    sensor = ingest_wiring(settings, Workers(disabled=False)).sensors[0]
    resources = {"database": HarmonyDatabase(path=str(settings.duckdb_path)),
                 "ingest_inbox_dir": IngestInbox(path=str(inbox))}
    assert len(sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources)).run_requests) == 1
    assert [ingest_inbox_file(settings.duckdb_path, f) for f in listed_by_the_asset] == [None]

    assert query("SELECT source, accepted FROM free_ingest_submissions") == [
        {"source": "inbox:links.txt", "accepted": 5}]
    assert [p.name.split("_", 1)[1] for p in sorted((inbox / "processed").iterdir())] == [
        "links.txt", "links.txt.report.txt"]


def test_asset_picks_up_inbox_files_no_sensor_took(sandbox, harmony_env, instance, tmp_path):
    inbox = load_settings().inbox_dir
    inbox.mkdir(parents=True)
    corpus = write_corpus(sandbox.catalog, tmp_path / "corpus")
    shutil.copy(corpus.links, inbox / "links.txt")
    os.utime(inbox / "links.txt", (time.time() - 60,) * 2)
    result = materialize_assets(["free_ingest_items"], instance)
    meta = metadata_of(result, "free_ingest_items")
    assert (meta["inbox_files_taken"], meta["items"], meta["pending"]) == (1, 5, 5)
    assert not (inbox / "links.txt").exists()


@pytest.fixture
def acquisition_env(tmp_path, monkeypatch):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.2, slskd_transfer_step_seconds=0.02) as running:
        env = pipeline_environment(running, tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield running, env


def test_ingested_text_file_ends_in_the_library(acquisition_env, instance, tmp_path):
    sandbox, env = acquisition_env
    catalog = sandbox.catalog
    peers = sandbox.emulator("slskd").peers

    def well_shared(track) -> bool:
        """Shared correctly, and only by peers that complete their uploads (retries are tested elsewhere)."""
        holders = [username for username, _ in peers.correct_files(track.id)]
        return bool(holders) and all(peers.peers[u].behaviour == "ok" for u in holders)

    wanted = [t for t in _plain_tracks(catalog) if well_shared(t)][:3]
    wish = tmp_path / "three.txt"
    wish.write_text("".join(f"{catalog.artists[t.artist_ids[0]].name} - {t.name}\n" for t in wanted),
                    encoding="utf-8")
    assert main(["--quiet", "ingest", str(wish)]) == 0

    assert materialize_assets(CHAIN, instance).success
    settle_acquisition(instance)  # transfers finishing after the run: the runs the sensor requests

    library_root = Path(env["HARMONY_LIBRARY_DIR"])
    library = {r["isrc"]: r for r in query("SELECT * FROM library_tracks")}
    for track in wanted:
        outcome = query("SELECT m.status, m.reasons, d.state, d.last_error FROM soulseek_matches m "
                        "LEFT JOIN downloads d USING (wanted_key) WHERE m.wanted_key = ?", [f"isrc:{track.isrc}"])
        assert track.isrc in library, f"{track.name} not acquired: {outcome}"
        path = library_root / library[track.isrc]["path"]
        assert path.is_file()
        assert abs(mutagen.File(path).info.length - track.duration_ms / 1000) <= 3
        assert library[track.isrc]["spotify_track_id"] == track.id
