"""`harmony ingest` against a corpus made from the sandbox catalog: output lines and DuckDB rows.

`write_corpus` is shared with test_ingest_assets.py, which checks the backfill of the same corpus
against the catalog's truth.
"""

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from harmony_pipeline.cli.main import main
from harmony_pipeline.ingest.parser import MAX_SUBMISSION_BYTES, NO_SEPARATOR_REASON
from harmony_pipeline.ingest.store import ALREADY_SUBMITTED
from harmony_pipeline.sandbox.catalog import Catalog, Track, build_catalog
from harmony_pipeline.settings import load_settings

PLAIN_TITLE = re.compile(r"[A-Za-z' ]+")
UNKNOWN_LINE = "Nobody Known - Nothing At All Whatsoever"


@dataclass
class Corpus:
    """Three files as users submit them, and what each line should become."""

    wishlist: Path
    exportify: Path
    links: Path
    # (file, line) → the catalog track the item must resolve to
    truth: dict[tuple[str, int], Track] = field(default_factory=dict)
    # file → {line: reason} for lines the parser refuses
    rejected: dict[str, dict[int, str]] = field(default_factory=dict)
    items: int = 0
    album_id: str = ""
    owned_playlist_id: str = ""
    foreign_playlist_id: str = ""
    artist_id: str = ""

    @property
    def files(self) -> list[Path]:
        return [self.wishlist, self.exportify, self.links]


def _seconds(track: Track) -> str:
    return f"{track.duration_ms // 60000}:{track.duration_ms // 1000 % 60:02d}"


def _plain_tracks(catalog: Catalog) -> list[Track]:
    """Single-artist tracks of Latin-script artists on albums, with a plain title and an ISRC of their own."""
    picked = []
    for track in catalog.tracks.values():
        album = catalog.albums[track.album_id]
        artist = catalog.artists[track.artist_ids[0]]
        if (len(track.artist_ids) == 1 and artist.script == "latin" and album.album_type == "album"
                and PLAIN_TITLE.fullmatch(track.name) and PLAIN_TITLE.fullmatch(album.name)
                and len(catalog.tracks_by_isrc(track.isrc)) == 1 and " - " not in artist.name):
            picked.append(track)
    return picked


def write_corpus(catalog: Catalog, folder: Path) -> Corpus:
    folder.mkdir(parents=True, exist_ok=True)
    plain = iter(_plain_tracks(catalog))
    albums = catalog.albums
    name = {track_id: catalog.artists[t.artist_ids[0]].name for track_id, t in catalog.tracks.items()}
    remastered = next(t for t in catalog.tracks.values()
                      if re.search(r" - (Remastered \d{4}|\d{4} Remaster)$", t.name) and len(t.artist_ids) == 1
                      and catalog.artists[t.artist_ids[0]].script == "latin")
    shared_isrc = next(t for t in catalog.tracks.values() if len(catalog.tracks_by_isrc(t.isrc)) == 2
                       and albums[t.album_id].album_type == "album")
    t1, t2, t3, t7, t8 = (next(plain) for _ in range(5))
    corpus = Corpus(folder / "wishlist.txt", folder / "exportify.csv", folder / "links.txt")

    wishlist = [
        "# Wishlist — pasted from my notes",
        "",
        f"1. {name[t1.id]} - {t1.name} ({albums[t1.album_id].name}) {_seconds(t1)}",
        f"{name[t2.id]} – {t2.name} | {albums[t2.album_id].name} | {albums[t2.album_id].release_date[:4]}",
        f"- {name[t3.id].lower()} - {t3.name.lower()} [{_seconds(t3)}]",
        "just some words without a separator",
        f"{name[remastered.id]} - {remastered.name.rsplit(' - ', 1)[0]}",
        UNKNOWN_LINE,
        "Kraftwerk -",
        shared_isrc.isrc,
        f"{name[t1.id]} - {t1.name} ({albums[t1.album_id].name})",
    ]
    corpus.wishlist.write_text("\n".join(wishlist) + "\n", encoding="utf-8")
    corpus.truth.update({("wishlist.txt", 3): t1, ("wishlist.txt", 4): t2, ("wishlist.txt", 5): t3,
                         ("wishlist.txt", 7): remastered, ("wishlist.txt", 10): shared_isrc})
    corpus.rejected["wishlist.txt"] = {6: NO_SEPARATOR_REASON, 9: "empty title after the ' - ' separator",
                                       11: "duplicate of line 3"}

    featured = next(t for t in catalog.tracks.values() if len(t.artist_ids) == 2)
    with corpus.exportify.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Track URI", "ISRC", "Track Name", "Album Name", "Artist Name(s)", "Release Date",
                         "Duration (ms)"])
        for track in (t7, featured):
            album = albums[track.album_id]
            artists = ";".join(catalog.artists[a].name for a in track.artist_ids)
            writer.writerow([f"spotify:track:{track.id}", track.isrc, track.name, album.name, artists,
                             album.release_date, track.duration_ms])
        # A local file: Exportify gives a spotify:local URI, so only the names can find it.
        local_album = albums[t8.album_id].name
        writer.writerow([f"spotify:local:{name[t8.id]}:{local_album}:{t8.name}:{t8.duration_ms // 1000}", "",
                         t8.name, local_album, name[t8.id], "", t8.duration_ms])
        writer.writerow(["a", "b", "c"])
    corpus.truth.update({("exportify.csv", 2): t7, ("exportify.csv", 3): featured, ("exportify.csv", 4): t8})
    corpus.rejected["exportify.csv"] = {5: "row has 3 fields, the header has 7"}

    album = next(a for a in albums.values() if a.album_type == "album" and len(a.track_ids) <= 10)
    corpus.album_id = album.id
    corpus.owned_playlist_id = catalog.small_playlist_id
    corpus.foreign_playlist_id = catalog.foreign_playlist_id
    corpus.artist_id = t1.artist_ids[0]
    link_track = next(plain)
    links = [
        f"https://open.spotify.com/track/{link_track.id}",
        f"https://open.spotify.com/intl-de/album/{album.id}?si=f1a2b3c4d5e6",
        f"https://open.spotify.com/playlist/{catalog.foreign_playlist_id}",
        f"spotify:playlist:{catalog.small_playlist_id}",
        f"spotify:artist:{corpus.artist_id}",
        "https://open.spotify.com/episode/512ojhOuo1ktJprKbVcKyQ",
    ]
    corpus.links.write_text("\n".join(links) + "\n", encoding="utf-8")
    corpus.truth[("links.txt", 1)] = link_track
    corpus.rejected["links.txt"] = {6: "unsupported Spotify link (episode)"}
    corpus.items = 6 + 3 + 5
    return corpus


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(7)


def rows(sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def expected_skip_lines(corpus: Corpus, prefixed: bool) -> list[str]:
    lines = []
    for path in corpus.files:
        for number, reason in sorted(corpus.rejected[path.name].items()):
            lines.append(f"{path}: line {number}: {reason}" if prefixed else f"line {number}: {reason}")
    return lines


def test_ingest_prints_skipped_lines_and_totals_and_records_items(cli_env, catalog, tmp_path, capsys):
    corpus = write_corpus(catalog, tmp_path / "corpus")
    assert main(["ingest", *map(str, corpus.files)]) == 0
    out = capsys.readouterr().out.splitlines()
    skipped = sum(len(r) for r in corpus.rejected.values())
    assert out == expected_skip_lines(corpus, prefixed=True) + [f"accepted {corpus.items}, skipped {skipped}"]

    assert rows("SELECT count(*), count(DISTINCT submission_id) FROM free_ingest_items WHERE state = 'pending'") == [
        (corpus.items, 3)]
    kinds = dict(rows("SELECT kind, count(*) FROM free_ingest_items GROUP BY kind"))
    assert kinds == {"text": 6, "isrc": 1, "track": 3, "album": 1, "playlist": 2, "artist": 1}
    submissions = rows("SELECT source, format, accepted, skipped, rejected FROM free_ingest_submissions ORDER BY id")
    assert [(s[0], s[1], s[2], s[3]) for s in submissions] == [
        ("wishlist.txt", "text", 6, 3), ("exportify.csv", "csv", 3, 1), ("links.txt", "text", 5, 1)]
    wishlist_rejected = json.loads(submissions[0][4])
    assert [(r["line"], r["reason"]) for r in wishlist_rejected] == sorted(corpus.rejected["wishlist.txt"].items())
    assert wishlist_rejected[0]["raw"] == "just some words without a separator"

    t1 = corpus.truth[("wishlist.txt", 3)]
    item = rows("SELECT artist, title, album, duration_ms, line_number FROM free_ingest_items "
                "WHERE line_number = 3 AND kind = 'text'")
    assert item == [(catalog.artists[t1.artist_ids[0]].name, t1.name, catalog.albums[t1.album_id].name,
                     t1.duration_ms // 1000 * 1000, 3)]


def test_second_submission_of_the_same_files_adds_nothing(cli_env, catalog, tmp_path, capsys):
    corpus = write_corpus(catalog, tmp_path / "corpus")
    assert main(["ingest", str(corpus.wishlist)]) == 0
    capsys.readouterr()
    before = rows("SELECT fingerprint, submission_id FROM free_ingest_items ORDER BY fingerprint")

    assert main(["ingest", str(corpus.wishlist)]) == 0
    out = capsys.readouterr().out.splitlines()
    item_lines = sorted(line for (file, line) in corpus.truth if file == "wishlist.txt") + [8]
    expected = {f"line {n}: {ALREADY_SUBMITTED}" for n in item_lines}
    expected |= {f"line {n}: {reason}" for n, reason in corpus.rejected["wishlist.txt"].items()}
    assert set(out[:-1]) == expected and len(out) - 1 == len(expected)
    assert out[-1] == f"accepted 0, skipped {len(expected)}"
    # The items keep the submission they first came from.
    assert rows("SELECT fingerprint, submission_id FROM free_ingest_items ORDER BY fingerprint") == before
    assert rows("SELECT accepted, skipped FROM free_ingest_submissions ORDER BY id") == [(6, 3), (0, len(expected))]


def test_the_same_wish_in_another_file_and_spelling_is_already_submitted(cli_env, catalog, tmp_path, capsys):
    corpus = write_corpus(catalog, tmp_path / "corpus")
    assert main(["--quiet", "ingest", str(corpus.wishlist)]) == 0
    t2 = corpus.truth[("wishlist.txt", 4)]
    respelled = tmp_path / "again.txt"
    artist = catalog.artists[t2.artist_ids[0]].name
    respelled.write_text(f"{artist.upper()}   -   {t2.name} ({catalog.albums[t2.album_id].name})\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["ingest", str(respelled)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"line 1: {ALREADY_SUBMITTED}", "accepted 0, skipped 1"]


def test_standard_input_is_a_submission(cli_env, catalog, tmp_path, capsys, monkeypatch):
    corpus = write_corpus(catalog, tmp_path / "corpus")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(corpus.links.read_bytes()), encoding="utf-8"))
    assert main(["ingest", "-"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "line 6: unsupported Spotify link (episode)", "accepted 5, skipped 1"]
    assert rows("SELECT source, accepted FROM free_ingest_submissions") == [("stdin", 5)]


def test_unreadable_file_stops_before_anything_is_recorded(cli_env, catalog, tmp_path, capsys):
    corpus = write_corpus(catalog, tmp_path / "corpus")
    missing = tmp_path / "missing.txt"
    assert main(["ingest", str(corpus.wishlist), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"harmony: {missing}: No such file or directory"
    assert not cli_env.duckdb_path.exists()  # nothing recorded, not even an empty database


def test_oversize_input_is_refused_with_one_line(cli_env, tmp_path, capsys):
    big = tmp_path / "big.txt"
    line = b"Some Artist - Some Title\n"
    big.write_bytes(line * (MAX_SUBMISSION_BYTES // len(line) + 1))
    assert main(["ingest", str(big)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harmony: {big} is too large (")
    assert "the limit is 5 MiB" in err[0]


def test_long_file_is_recorded_in_chunks(cli_env, tmp_path, capsys):
    long_list = tmp_path / "long.txt"
    long_list.write_text("".join(f"Artist {n} - Title {n}\n" for n in range(1, 1502)), encoding="utf-8")
    assert main(["ingest", str(long_list)]) == 0
    assert capsys.readouterr().out.splitlines() == ["accepted 1501, skipped 0"]
    assert rows("SELECT count(*), max(line_number) FROM free_ingest_items") == [(1501, 1501)]
