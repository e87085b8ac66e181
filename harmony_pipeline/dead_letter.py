"""Dead-lettered downloads: list them with their history, requeue them (`harmony dead-letter`).

Requeueing gives a track a fresh start: its attempt count and tried candidates are cleared, its cached
search results are dropped and its match decision removed, so the next acquisition run searches again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harmony_pipeline import storage


def dead_letters(database_path: Path) -> list[dict]:
    with storage.connect(database_path, read_only=True) as conn:
        rows = storage.fetch_dicts(
            conn,
            "SELECT d.wanted_key, w.artist, w.title, w.album, d.attempts, d.last_error, d.updated_at, d.history "
            "FROM downloads d LEFT JOIN wanted_tracks w USING (wanted_key) "
            "WHERE d.state = 'dead_letter' ORDER BY d.updated_at",
        )
    for row in rows:
        row["history"] = json.loads(row["history"] or "[]")
    return rows


def requeue(database_path: Path, keys: list[str] | None) -> list[str]:
    """Requeue the given dead-lettered tracks (all of them when `keys` is None); returns those requeued."""
    with storage.connect(database_path) as conn, storage.transaction(conn):
        dead = [k for (k,) in conn.execute("SELECT wanted_key FROM downloads WHERE state = 'dead_letter'").fetchall()]
        chosen = dead if keys is None else [k for k in keys if k in dead]
        for key in chosen:
            queries = conn.execute("SELECT queries FROM soulseek_matches WHERE wanted_key = ?", [key]).fetchone()
            for query in (queries[0] or []) if queries else []:
                conn.execute("DELETE FROM search_cache WHERE query = ?", [query])
            conn.execute("DELETE FROM soulseek_matches WHERE wanted_key = ?", [key])
            conn.execute("DELETE FROM downloads WHERE wanted_key = ?", [key])
            conn.execute("UPDATE wanted_tracks SET state = 'wanted', updated_at = ? WHERE wanted_key = ?",
                         [storage.utcnow(), key])
            storage.record_activity(conn, "download_requeued", {"track": key})
    return chosen


def _cmd_list(args: argparse.Namespace, settings) -> int:
    rows = dead_letters(settings.duckdb_path)
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no dead-lettered downloads")
        return 0
    for row in rows:
        print(f"{row['wanted_key']}  {row['artist']} – {row['title']}  attempts={row['attempts']}  "
              f"last error: {row['last_error']}")
        if args.verbose:
            for attempt in row["history"]:
                print(f"    {attempt.get('started_at', '')[:19]}  {attempt.get('outcome')}  "
                      f"{attempt.get('username')}  {str(attempt.get('filename')).split(chr(92))[-1]}  "
                      f"{attempt.get('error') or ''}")
    print(f"{len(rows)} dead-lettered")
    return 0


def _cmd_requeue(args: argparse.Namespace, settings) -> int:
    from harmony_pipeline.cli import CommandError

    if not args.all and not args.ids:
        raise CommandError("name the tracks to requeue (IDs from `harmony dead-letter list`) or pass --all", 2)
    keys = None if args.all else list(args.ids)
    done = requeue(settings.duckdb_path, keys)
    missing = [] if keys is None else [k for k in keys if k not in done]
    for key in done:
        if not args.quiet:
            print(f"requeued {key}")
    print(f"requeued {len(done)}; the next acquisition run searches and downloads them again")
    if missing:
        raise CommandError(f"not dead-lettered: {', '.join(missing)}")
    return 0


def register_cli(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dead-letter", help="inspect and requeue dead-lettered downloads")
    actions = parser.add_subparsers(dest="dead_letter_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="dead-lettered tracks with their last error")
    listing.add_argument("--json", action="store_true", help="machine-readable output with full history")
    listing.add_argument("--verbose", "-v", action="store_true", help="show every attempt")
    listing.set_defaults(handler=_cmd_list, needs_settings=True)
    again = actions.add_parser("requeue", help="give dead-lettered tracks a fresh start")
    again.add_argument("ids", nargs="*", metavar="ID", help="track ids from `harmony dead-letter list`")
    again.add_argument("--all", action="store_true", help="requeue every dead-lettered track")
    again.set_defaults(handler=_cmd_requeue, needs_settings=True)
