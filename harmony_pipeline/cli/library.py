"""`harmony library scan`: the library_scan asset's work from the command line."""

from __future__ import annotations

import argparse
import json

from harmony_pipeline import storage
from harmony_pipeline.settings import Settings


class _Database:
    def __init__(self, path):
        self.path = path

    def connect(self, *, read_only: bool = False):
        return storage.connect(self.path, read_only=read_only)


def _cmd_scan(args: argparse.Namespace, settings: Settings | None) -> int:
    # Imported here: every `harmony` command registers this one, and the scan's readers (mutagen, the
    # matcher's names) would otherwise weigh on all of them (`harmony ingest` keeps to 150 MB).
    from harmony_pipeline.library.scan import LibraryIndex, scan_library

    assert settings is not None
    database = _Database(settings.duckdb_path)
    report = scan_library(database, [settings.library_dir, *settings.extra_library_dirs])
    with database.connect(read_only=True) as conn:
        index = LibraryIndex.load(conn)
        wanted = storage.fetch_dicts(conn, "SELECT * FROM wanted_tracks WHERE state = 'wanted'")
    already = [w for w in wanted if index.find(w) is not None]
    summary = {"files": report.files, "read": report.read, "unchanged": report.unchanged,
               "removed": report.removed, "unreadable": report.unreadable, "seconds": round(report.seconds, 3),
               "missing_folders": report.missing_roots, "wanted_already_there": len(already)}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{report.files} audio files: {report.read} read, {report.unchanged} unchanged, "
          f"{report.removed} gone, {report.unreadable} unreadable ({report.seconds:.2f}s)")
    for folder in report.missing_roots:
        print(f"not there (kept as last seen): {folder}")
    if already:
        print(f"{len(already)} wanted tracks are already there; the next playlist sync takes them off the "
              "search list")
    return 0


def register_cli(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("library", help="the music you already have: `harmony library scan`")
    actions = parser.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    scan = actions.add_parser("scan", help="find and identify the audio files in the library folders "
                                           "(read only; unchanged files are not reopened)")
    scan.add_argument("--json", action="store_true", help="one JSON object")
    scan.set_defaults(handler=_cmd_scan, needs_settings=True)
