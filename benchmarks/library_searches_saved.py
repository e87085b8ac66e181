"""Soulseek searches saved by the library scan: a 200-track playlist searched against the sandbox twice,
with an empty library and with half of its tracks already in the library (the user's own files:
FLAC, half of them tagged with their ISRC, half only named "Artist - Title.flac").

Counts the `POST /searches` the sandbox's slskd received up to the match decisions (no downloads).

    .venv/bin/python benchmarks/library_searches_saved.py
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harmony_pipeline.sandbox import Sandbox  # noqa: E402
from harmony_pipeline.sandbox.audio import write_audio  # noqa: E402
from harmony_pipeline.sandbox.catalog import _make_playlist  # noqa: E402
from harmony_pipeline.enrichment.tagging import TrackTags, write_tags  # noqa: E402

STEPS = ["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks", "soulseek_matches"]


def prefill(library: Path, sandbox: Sandbox, tracks) -> int:
    catalog = sandbox.catalog
    for n, track in enumerate(tracks):
        artist = catalog.artists[track.artist_ids[0]].name.replace("/", "_")
        path = library / "Own" / f"{artist} - {track.name.replace('/', '_')}.flac"
        write_audio(path, "flac", track.duration_ms / 1000)
        if n % 2 == 0:
            write_tags(path, TrackTags(title=track.name, artist=artist, album=catalog.albums[track.album_id].name,
                                       isrc=track.isrc))
    return len(tracks)


def run(root: Path, size: int, prefilled_share: float) -> dict:
    from dagster import DagsterInstance, materialize

    import duckdb

    sandbox = Sandbox(root / "sandbox", slskd_search_seconds=0.02, slskd_transfer_step_seconds=0.02)
    catalog = sandbox.catalog
    tracks = random.Random(15).sample(sorted(catalog.tracks.values(), key=lambda t: t.id), size)
    playlist = _make_playlist(random.Random(16), catalog, "Benchmark", catalog.me, tracks)
    library = root / "library"
    library.mkdir(parents=True)
    own = prefill(library, sandbox, tracks[::2][: round(size * prefilled_share)]) if prefilled_share else 0
    home = root / "dagster"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    with sandbox:
        os.environ.update({**sandbox.env, "HARMONY_DATA_DIR": str(root / "data"), "HARMONY_LIBRARY_DIR": str(library),
                           "HARMONY_PLAYLISTS": playlist.id, "SLSKD_SEARCH_LIMIT": "100000/60",
                           "DAGSTER_HOME": str(home)})
        from harmony_pipeline.definitions import collect_wiring
        from harmony_pipeline.settings import load_settings

        settings = load_settings()
        wiring = collect_wiring(settings)
        with DagsterInstance.get() as instance:
            result = materialize(wiring.assets, resources=wiring.resources, instance=instance, selection=STEPS)
            assert result.success
        searches = [r for r in sandbox.emulator("slskd").requests()
                    if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM wanted_tracks GROUP BY state").fetchall())
            decided = conn.execute("SELECT count(*) FROM soulseek_matches").fetchone()[0]
    return {"prefilled": own, "searches": len(searches), "in_library": states.get("in_library", 0),
            "wanted": states.get("wanted", 0), "decided": decided}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harmony-saved-bench-") as tmp:
        empty = run(Path(tmp) / "empty", args.tracks, 0)
        half = run(Path(tmp) / "half", args.tracks, 0.5)
    for name, figures in (("empty library", empty), ("half in library", half)):
        print(f"{name}: {figures['prefilled']} own files, {figures['in_library']} tracks adopted, "
              f"{figures['wanted']} wanted, {figures['decided']} searched, {figures['searches']} Soulseek searches")
    print(f"searches saved: {empty['searches'] - half['searches']} of {empty['searches']} "
          f"({100 * (empty['searches'] - half['searches']) / max(1, empty['searches']):.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
