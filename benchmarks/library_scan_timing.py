"""How long `library_scan` takes on a large library: the first scan, an unchanged rescan, a rescan after a
few files changed, and the wanted-track lookup against the scanned files.

Generates a library of FILES small real MP3s (one 1 s tone encoded once, copied with its own tags per
file: title, artist, album, ISRC) in Artist/Album/NN - Title.mp3 folders, then scans it into a fresh
DuckDB file.

    .venv/bin/python benchmarks/library_scan_timing.py --files 20000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harmony_pipeline import storage  # noqa: E402
from harmony_pipeline.library.scan import LibraryIndex, scan_library  # noqa: E402
from harmony_pipeline.sandbox.audio import write_audio  # noqa: E402
from harmony_pipeline.enrichment.tagging import TrackTags, write_tags  # noqa: E402


class Database:
    def __init__(self, path: Path):
        self.path = path

    def connect(self, *, read_only: bool = False):
        return storage.connect(self.path, read_only=read_only)


def generate(root: Path, count: int) -> float:
    started = time.monotonic()
    template = write_audio(root.parent / "template.mp3", "mp3", 1.0)
    for i in range(count):
        artist, album = f"Artist {i // 200:03d}", f"Album {i // 12:05d}"
        path = root / artist / album / f"{i % 12 + 1:02d} - Title {i:05d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
        write_tags(path, TrackTags(title=f"Title {i:05d}", artist=artist, album=album,
                                   isrc=f"QZBEN{i:07d}", track_number=i % 12 + 1))
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rescans", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harmony-scan-bench-") as tmp:
        root = Path(tmp) / "library"
        root.mkdir()
        generated = generate(root, args.files)
        print(f"generated {args.files} files in {generated:.1f}s")
        db = Database(Path(tmp) / "harmony.duckdb")

        first = scan_library(db, [root])
        assert first.read == args.files, first
        print(f"first scan: {first.files} files read in {first.seconds:.2f}s")

        times = []
        for _ in range(args.rescans):
            again = scan_library(db, [root])
            assert again.read == 0 and again.unchanged == args.files, again
            times.append(again.seconds)
        print(f"unchanged rescan of {args.files} files: median {statistics.median(times):.2f}s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}), 0 files reopened")

        changed = sorted(root.rglob("*.mp3"))[:: max(1, args.files // 10)][:10]
        for path in changed:
            write_tags(path, TrackTags(title=path.stem + " (edited)"))
        after = scan_library(db, [root])
        assert after.read == len(changed), after
        print(f"rescan with {len(changed)} changed files: {after.seconds:.2f}s, {after.read} reopened")

        started = time.monotonic()
        with db.connect(read_only=True) as conn:
            index = LibraryIndex.load(conn)
        wanted = [{"wanted_key": f"k{i}", "isrc": None, "artist": f"Artist {i // 200:03d}",
                   "title": f"Title {i:05d}", "duration_ms": 1000} for i in range(0, args.files, args.files // 200)]
        found = sum(index.find(entry) is not None for entry in wanted)
        print(f"wanted-track lookup: index of {args.files} files loaded and {len(wanted)} tracks looked up by "
              f"artist + title in {time.monotonic() - started:.2f}s ({found} found)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
