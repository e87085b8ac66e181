"""Acquisition throughput in the sandbox, driven through the pipeline's public entry points.

A sandbox (its own process, so the run's peak RSS is this process's alone) gets a playlist of N tracks:
`--albums` twelve-track albums plus singles for the rest. This process syncs the playlist
(`spotify_playlists`, `playlist_tracks`), then materializes `acquisition_job` in-process, run after run,
until every track the sandbox shares a correct file of is in the library (converged; the sandbox
withholds a few on purpose), a run makes no progress, or `--minutes` have passed (no run starts after them).
Searches and status polls are read from the slskd emulator's request log; which wanted tracks a search
served comes from `soulseek_matches.queries`.

Two uses (`make bench` runs both):
  budget lifted, quick searches:   --tracks 1000 --albums 24 --search-seconds 0.5 --budget 100000/60
  real budget, 15 s searches:      --tracks 200 --albums 4 --search-seconds 15 --budget 34/220 --window 5
The second reports searches per minute over the window (the budget allows 9.3/min), running
`dagster job execute` back to back in child processes and stopping the last one at the window's end.

`--postgres` runs the first on the production profile instead (docs/scale.md): a throwaway PostgreSQL
server (tests/postgres_server.py) holds Dagster's runs and events (deploy/dagster.yaml) and every
pipeline table (HARMONY_DATABASE_URL); the runs are the same.

    .venv/bin/python benchmarks/acquisition_bench.py [options]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from _common import REPO, emit, peak_rss_mb

TRACKS_PER_ALBUM = 12


# --- the sandbox, in a child process ---------------------------------------------------------------
def serve_sandbox(root: Path, tracks: int, albums: int, search_seconds: float, env_file: Path) -> None:
    """Start the emulators with a playlist of `tracks` new tracks; write the environment; wait for SIGTERM."""
    from harmony_pipeline.sandbox import Sandbox

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox = Sandbox(root, slskd_search_seconds=search_seconds, slskd_transfer_step_seconds=0.05)
    catalog = sandbox.catalog  # shares are generated when slskd starts: add the releases before
    artist_ids = list(catalog.artists)
    playlist = next(p for p in catalog.playlists.values() if p.name == "Small Favourites")
    for entry in list(playlist.entries):
        catalog.remove_playlist_track(playlist.id, entry.track_id)
    album_tracks, singles = [], []
    for n in range(albums):
        album = catalog.add_album(artist_ids[n % len(artist_ids)], name=f"Bench Album {n + 1}",
                                  track_count=TRACKS_PER_ALBUM, release_date="2025-01-01")
        album_tracks += album.track_ids
    for n in range(max(tracks - len(album_tracks), 0)):
        single = catalog.add_album(artist_ids[(n * 7 + 3) % len(artist_ids)], name=f"Bench Single {n + 1}",
                                   album_type="single", track_count=1, release_date="2025-02-01")
        singles += single.track_ids
    for track_id in album_tracks + singles:
        catalog.add_playlist_track(playlist.id, track_id)
    with sandbox:
        # Recordings the sandbox shares no correct (or only locked) file of can never be acquired.
        missing = sandbox.emulator("slskd").peers.tracks_without_correct_file & set(album_tracks + singles)
        env = {**sandbox.env, "HARMONY_PLAYLISTS": playlist.id}
        env_file.write_text(json.dumps({"env": env, "album_tracks": album_tracks, "singles": singles,
                                        "unacquirable": sorted(missing), "slskd": sandbox.url("slskd")}),
                            encoding="utf-8")
        stop.wait()


def start_sandbox(root: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, dict]:
    env_file = root / "sandbox.json"
    child = subprocess.Popen([sys.executable, __file__, "--serve-sandbox", str(root / "sandbox"),
                              "--env-file", str(env_file), "--tracks", str(args.tracks), "--albums", str(args.albums),
                              "--search-seconds", str(args.search_seconds)])
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise SystemExit("the sandbox did not start")
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written in one call; let it land
    return child, json.loads(env_file.read_text(encoding="utf-8"))


def slskd_requests(base_url: str) -> list[dict]:
    with urllib.request.urlopen(base_url + "/_sandbox/requests", timeout=30) as response:
        return json.load(response)


# --- driving the pipeline ------------------------------------------------------------------------
def progress(database: Path) -> tuple[int, int, int]:
    """(library tracks, wanted tracks still wanted, downloads in flight)."""
    from harmony_pipeline import storage

    if not database.exists() and storage.database_url() is None:
        return 0, 0, 0
    with storage.connect(database, read_only=True) as conn:
        library = conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0]
        wanted = conn.execute("SELECT count(*) FROM wanted_tracks WHERE state = 'wanted'").fetchone()[0]
        flying = conn.execute("SELECT count(*) FROM downloads WHERE state IN "
                              "('enqueuing', 'downloading', 'succeeded', 'importing')").fetchone()[0]
    return library, wanted, flying


def searches_by_kind(database: Path, album_track_ids: set[str], queries: list[str]) -> dict[str, int]:
    """How many of the searches made served album tracks, singles, or no wanted track we can name."""
    from harmony_pipeline import storage

    with storage.connect(database, read_only=True) as conn:
        rows = conn.execute("SELECT w.spotify_track_id, m.queries FROM soulseek_matches m "
                            "JOIN wanted_tracks w USING (wanted_key)").fetchall()
    kind_of: dict[str, str] = {}
    for track_id, used in rows:
        for query in used or []:
            if track_id in album_track_ids or kind_of.get(query) != "album":
                kind_of[query] = "album" if track_id in album_track_ids else "single"
    counts = {"album": 0, "single": 0, "unattributed": 0}
    for query in queries:
        counts[kind_of.get(query, "unattributed")] += 1
    return counts


def imported_by_kind(database: Path, album_track_ids: set[str]) -> dict[str, int]:
    from harmony_pipeline import storage

    with storage.connect(database, read_only=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT spotify_track_id FROM library_tracks").fetchall()]
    album = sum(track_id in album_track_ids for track_id in ids)
    return {"album": album, "single": len(ids) - album}


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="harmony-acquisition-") as folder:
        root = Path(folder)
        child, sandbox = start_sandbox(root, args)
        try:
            if args.window:
                return search_window(root, sandbox, args)
            if args.postgres:
                with postgres_profile(root):
                    return drive(root, sandbox, args)
            return drive(root, sandbox, args)
        finally:
            child.terminate()  # the sandbox process this benchmark started
            child.wait(timeout=30)


@contextmanager
def postgres_profile(root: Path):
    """A throwaway PostgreSQL server; Dagster's storage (deploy/dagster.yaml) and the pipeline's tables in it."""
    sys.path.insert(0, str(REPO / "tests"))
    from postgres_server import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    with PostgresServer(bin_dir, databases=("dagster", "harmony")) as server:
        os.environ.update({"DAGSTER_HOME": str(home), "HARMONY_DATABASE_URL": server.url("harmony"),
                           "HARMONY_MAX_CONCURRENT_RUNS": "4", **server.dagster_env("dagster")})
        yield server


def pipeline_env(root: Path, sandbox: dict, args: argparse.Namespace) -> dict[str, str]:
    env = {**sandbox["env"], "HARMONY_DATA_DIR": str(root / "data"), "HARMONY_LIBRARY_DIR": str(root / "library"),
           "SLSKD_SEARCH_LIMIT": args.budget, "HARMONY_DISABLE_WORKERS": "1", "RETRY_BASE_SECONDS": "0.05"}
    if not args.acoustid:
        # As installed: AcoustID verification is opt-in. With a key, every import waits for a MusicBrainz
        # ISRC lookup, and MusicBrainz allows one request per second.
        env.pop("ACOUSTID_API_KEY", None)
    return env


def search_window(root: Path, sandbox: dict, args: argparse.Namespace) -> dict:
    """Searches per minute over a fixed window: `dagster job execute` runs back to back, the one still
    running at the end stopped; the searches counted are those slskd received inside the window."""
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, **pipeline_env(root, sandbox, args), "DAGSTER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    dagster = str(Path(sys.executable).parent / "dagster")
    location = ["-m", "harmony_pipeline.definitions"]
    subprocess.run([dagster, "asset", "materialize", *location, "--select", "spotify_playlists,playlist_tracks"],
                   env=env, cwd=root, check=True, capture_output=True)
    started = time.time()
    deadline = started + args.window * 60
    runs = 0
    while time.time() < deadline:
        # The whole job once (wanted tracks), then searches: a run with nothing new materializes nothing.
        command = ([dagster, "job", "execute", *location, "-j", "acquisition_job"] if runs == 0 else
                   [dagster, "asset", "materialize", *location, "--select", "soulseek_matches"])
        job = subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs += 1
        try:
            job.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            job.terminate()  # the run this benchmark started, still searching at the end of the window
            try:
                job.wait(timeout=10)
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait(timeout=30)
    log = [r for r in slskd_requests(sandbox["slskd"]) if started <= r["time"] <= deadline]
    searches = sum(r["method"] == "POST" and r["path"].rstrip("/").endswith("/api/v0/searches") for r in log)
    polls = sum(r["method"] == "GET" and re.search(r"/api/v0/searches(/[^/]+)?/?$", r["path"]) is not None
                for r in log)
    limit, seconds = (float(x) for x in args.budget.split("/"))
    return {"tracks": args.tracks, "search_seconds": args.search_seconds, "budget": args.budget,
            "window_minutes": args.window, "runs": runs, "searches": searches,
            "searches_per_min": round(searches / args.window, 2), "budget_per_min": round(limit * 60 / seconds, 2),
            "status_polls_per_search": round(polls / searches, 1) if searches else None}


def drive(root: Path, sandbox: dict, args: argparse.Namespace) -> dict:
    os.environ.update(pipeline_env(root, sandbox, args))
    from dagster import AssetKey, DagsterInstance

    from harmony_pipeline.definitions import build_definitions
    from harmony_pipeline.settings import load_settings

    settings = load_settings()
    defs = build_definitions(settings)
    database = settings.duckdb_path
    album_track_ids = set(sandbox["album_tracks"])
    acquirable = args.tracks - len(sandbox["unacquirable"])
    with (DagsterInstance.get() if args.postgres else DagsterInstance.ephemeral()) as instance:
        sync = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[AssetKey("spotify_playlists"), AssetKey("playlist_tracks")])
        assert sync.success, "the playlist sync failed"
        from resources.database import HarmonyDatabase
        from resources.slskd import SlskdResource
        from sensors.downloads import acquisition_selection, pending_work

        job = defs.resolve_job_def("acquisition_job")
        resources = {"database": HarmonyDatabase(path=str(database)),
                     "slskd": SlskdResource(url=settings.slskd_url, api_key=os.environ.get("SLSKD_API_KEY"))}
        started = time.monotonic()
        runs, failed, per_run = 0, 0, []
        while True:
            before = progress(database)[0]
            # The first run is the whole job; then the runs download_transfer_sensor would request, of
            # the assets that have work (waiting without a run while transfers are on slskd).
            selection = None if runs == 0 else acquisition_selection(
                pending_work(resources["database"], resources["slskd"]))
            if selection == []:
                if progress(database)[2] == 0 and time.monotonic() - started > 5:
                    break
                time.sleep(0.5)
                continue
            result = job.execute_in_process(instance=instance, raise_on_error=False,
                                            asset_selection=[AssetKey(n) for n in selection] if selection else None)
            runs += 1
            failed += not result.success
            library, wanted, flying = progress(database)
            per_run.append({"run": runs, "seconds": round(time.monotonic() - started, 1), "library": library,
                            "wanted": wanted, "success": result.success})
            print(f"run {runs}: {library} in the library, {wanted} still wanted, {flying} in flight, "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            if library >= acquirable and flying == 0:
                break  # converged: everything the sandbox shares a correct file of
            if library == before and flying == 0 and runs > 1:
                break  # no progress
            if args.minutes and time.monotonic() - started >= args.minutes * 60:
                break  # the time cap: no run starts after it (the first one searches; later ones are short)
            if runs >= args.max_runs:
                break
        elapsed = time.monotonic() - started
    log = slskd_requests(sandbox["slskd"])
    searches = [json.loads(r["body"] or "{}").get("searchText", "") for r in log
                if r["method"] == "POST" and r["path"].rstrip("/").endswith("/api/v0/searches")]
    # Status polls: one search's state, or the list of every search's state (pipelined searches).
    polls = sum(r["method"] == "GET" and re.search(r"/api/v0/searches(/[^/]+)?/?$", r["path"]) is not None
                for r in log)
    kinds = searches_by_kind(database, album_track_ids, searches)
    imported = imported_by_kind(database, album_track_ids)
    total = imported["album"] + imported["single"]
    return {
        "tracks": args.tracks, "albums": args.albums, "search_seconds": args.search_seconds, "budget": args.budget,
        "acquirable": acquirable, "converged": per_run[-1]["library"] >= acquirable, "runs": runs,
        "failed_runs": failed, "seconds": round(elapsed, 1),
        "imported": total, "tracks_per_min": round(total / (elapsed / 60), 1),
        "searches": len(searches), "searches_per_min": round(len(searches) / (elapsed / 60), 2),
        "searches_per_album_track": round(kinds["album"] / imported["album"], 3) if imported["album"] else None,
        "searches_per_single": round(kinds["single"] / imported["single"], 3) if imported["single"] else None,
        "unattributed_searches": kinds["unattributed"],
        "status_polls_per_search": round(polls / len(searches), 1) if searches else None,
        "peak_rss_mb": round(peak_rss_mb()), "per_run": per_run,
        "profile": "postgres" if args.postgres else "embedded",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--albums", type=int, default=24, help="twelve-track albums; the rest are singles")
    parser.add_argument("--search-seconds", type=float, default=0.5, help="how long an emulated search runs")
    parser.add_argument("--budget", default="100000/60", help="SLSKD_SEARCH_LIMIT (searches/seconds)")
    parser.add_argument("--minutes", type=float, default=0,
                        help="start no run after this many minutes (0: no cap)")
    parser.add_argument("--max-runs", type=int, default=10)
    parser.add_argument("--acoustid", action="store_true",
                        help="verify every download with AcoustID (the sandbox's key; MusicBrainz's 1 request/s applies)")
    parser.add_argument("--window", type=float, default=0,
                        help="instead: count searches per minute over this many minutes of back-to-back runs")
    parser.add_argument("--postgres", action="store_true",
                        help="Dagster's storage and the pipeline's tables on a throwaway PostgreSQL server")
    parser.add_argument("--serve-sandbox", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--env-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox, args.tracks, args.albums, args.search_seconds, args.env_file)
        return 0
    result = run(args)
    if args.window:
        print(f"{result['searches']} searches in {args.window} min with {args.search_seconds} s searches under "
              f"{args.budget}: {result['searches_per_min']}/min (the budget allows {result['budget_per_min']}/min); "
              f"{result['status_polls_per_search']} status polls per search")
        emit(result)
        return 0
    print(f"[{result['profile']}] {result['imported']} of {args.tracks} tracks imported in {result['runs']} run(s), {result['seconds']} s "
          f"({'converged' if result['converged'] else 'not converged'}): {result['tracks_per_min']} tracks/min; "
          f"{result['searches']} searches ({result['searches_per_min']}/min), "
          f"{result['searches_per_album_track']} per album track, {result['searches_per_single']} per single, "
          f"{result['status_polls_per_search']} status polls per search; peak RSS {result['peak_rss_mb']} MB")
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
