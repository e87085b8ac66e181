"""Execution model figures: how long a playlist sync waits while a long enrichment runs, and how many
`soulseek_matches` materializations idle schedule ticks add.

    python benchmarks/execution_model.py [--repo CHECKOUT] [--tracks 200]

The sandbox (from this checkout) serves a playlist of TRACKS new tracks; the pipeline under test is
CHECKOUT's (its `.venv/bin/dagster` and its dagster.yaml), so the same script measures an older commit
("before") and this one ("after"). Steps, each a real `dagster` process on one Dagster instance:
1. acquire the playlist (runs of each acquisition asset until the library stops growing);
2. time `spotify_playlists` alone, then again while `track_metadata` enriches every track (MusicBrainz
   at its real 1 request/s);
3. run the playlist sync job 8 times with nothing new and count `soulseek_matches` materializations.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from harmony_pipeline.sandbox import Sandbox  # noqa: E402

CHAIN = "soulseek_matches,downloads,library_tracks"


def build_playlist(sandbox: Sandbox, tracks: int) -> str:
    """The "Small Favourites" playlist emptied and filled with `tracks` new tracks (12-track albums).
    Called before the sandbox starts: its slskd shares what the catalog holds then."""
    catalog = sandbox.catalog
    artist_ids = list(catalog.artists)
    playlist = next(p for p in catalog.playlists.values() if p.name == "Small Favourites")
    for entry in list(playlist.entries):
        catalog.remove_playlist_track(playlist.id, entry.track_id)
    for n in range((tracks + 11) // 12):
        album = catalog.add_album(artist_ids[n % len(artist_ids)], name=f"Timing Album {n + 1}",
                                  track_count=min(12, tracks - 12 * n))
        for track in catalog.album_tracks(album):
            catalog.add_playlist_track(playlist.id, track.id)
    return playlist.id


def library_count(database: Path) -> int:
    if not database.exists():
        return 0
    for _ in range(50):
        try:
            with duckdb.connect(str(database), read_only=True) as conn:
                return conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0]
        except duckdb.IOException:  # a run holds the write lock for a moment
            time.sleep(0.2)
    raise RuntimeError("the database stayed locked")


def dagster(repo: Path, env: dict, *args: str, check: bool = True) -> float:
    started = time.monotonic()
    result = subprocess.run([str(repo / ".venv/bin/dagster"), *args, "-m", "harmony_pipeline.definitions"],
                            cwd=repo, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def materializations(home: Path, asset: str) -> int:
    code = ("from dagster import AssetKey, DagsterInstance; i = DagsterInstance.get(); "
            f"print(len(i.fetch_materializations(AssetKey('{asset}'), limit=10000).records))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(home)},
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout whose pipeline is measured")
    parser.add_argument("--tracks", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--max-wait", type=float, default=1800, help="give up on the blocked sync after this")
    args = parser.parse_args()
    repo = args.repo.resolve()
    root = Path(tempfile.mkdtemp(prefix="harmony-exec-"))
    try:
        sandbox = Sandbox(root / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02)
        playlist = build_playlist(sandbox, args.tracks)  # before the start: slskd's shares are made then
        with sandbox:
            home = root / "dagster_home"
            home.mkdir()
            shutil.copyfile(repo / "dagster.yaml", home / "dagster.yaml")
            env = {**os.environ, **sandbox.env, "DAGSTER_HOME": str(home), "HARMONY_PLAYLISTS": playlist,
                   "HARMONY_DATA_DIR": str(root / "data"), "HARMONY_LIBRARY_DIR": str(root / "library"),
                   "RETRY_BASE_SECONDS": "1", "SLSKD_SEARCH_LIMIT": "100000/60",
                   "HARMONY_DOWNLOAD_WAIT_SECONDS": "30"}
            database = root / "data" / "harmony.duckdb"

            # 1. The library.
            dagster(repo, env, "asset", "materialize", "--select",
                    "spotify_playlists,playlist_tracks,wanted_tracks," + CHAIN)
            previous, still = -1, 0
            while still < 2:
                time.sleep(1)
                # Each asset alone: a step with nothing new does not then hold back the next one's work.
                for asset in CHAIN.split(","):
                    dagster(repo, env, "asset", "materialize", "--select", asset, check=False)
                count = library_count(database)
                still = still + 1 if count == previous else 0
                previous = count
            print(f"library: {previous} of {args.tracks} tracks", flush=True)

            # 2. The playlist sync alone, then during a long enrichment.
            alone = dagster(repo, env, "asset", "materialize", "--select", "spotify_playlists")
            musicbrainz = sandbox.emulator("musicbrainz")
            musicbrainz.clear_requests()
            enrichment = subprocess.Popen([str(repo / ".venv/bin/dagster"), "asset", "materialize", "-m",
                                           "harmony_pipeline.definitions", "--select", "track_metadata"],
                                          cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while not musicbrainz.requests():
                time.sleep(0.2)
            sync = subprocess.Popen([str(repo / ".venv/bin/dagster"), "asset", "materialize", "-m",
                                     "harmony_pipeline.definitions", "--select", "spotify_playlists"],
                                    cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = time.monotonic()
            try:
                sync.wait(timeout=args.max_wait)
                during = f"{time.monotonic() - started:.1f}"
            except subprocess.TimeoutExpired:
                sync.kill()
                during = f">{args.max_wait:.0f} (still waiting, stopped)"
            enrichment_done = enrichment.poll() is not None
            enrichment.kill()  # its work is not what is measured
            enrichment.wait()
            print(f"spotify_playlists run: alone {alone:.1f} s; while track_metadata enriches {previous} "
                  f"tracks: {during} s (enrichment {'had finished' if enrichment_done else 'still running'})",
                  flush=True)

            # 3. Idle schedule ticks.
            before = materializations(home, "soulseek_matches")
            for _ in range(args.ticks):
                dagster(repo, env, "job", "execute", "-j", "playlist_sync_job")
            after = materializations(home, "soulseek_matches")
            print(f"soulseek_matches materializations added by {args.ticks} idle playlist_sync_job ticks: "
                  f"{after - before} ({before} -> {after})", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
