"""Dead-lettered downloads: list them with their history, requeue them (`harmony dead-letter`).

The cause shown is the last real transfer or verification error of the track's attempts ("TimedOut:
Transfer timed out"), not the bookkeeping line that ended them ("no candidate left to try").
Requeueing gives a track a fresh start: its attempt count and tried candidates are cleared, its cached
search results are dropped and its match decision removed, so the next acquisition run searches again.
Files that failed verification stay blocked; peers whose transfers failed may be offered again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import requeue_dead_letters
from harmony_pipeline.cli.listing import Ambiguous, find_by_name, is_terminal, print_rows

BOOKKEEPING_ERRORS = {"no candidate left to try"}


def real_error(row: dict) -> str:
    """The newest error an attempt recorded (transfer or verification), else the stored last error."""
    for attempt in reversed(row.get("history") or []):
        if attempt.get("error"):
            return str(attempt["error"])
    return row.get("last_error") or ""


def peers(row: dict) -> list[str]:
    """The peers tried, in order, each once."""
    return list(dict.fromkeys(a["username"] for a in row.get("history") or [] if a.get("username")))


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
        row["cause"] = real_error(row)
        row["peers"] = peers(row)
        row["track"] = f"{row['artist'] or '?'} – {row['title'] or '?'}"
        row["track_typed"] = f"{row['artist'] or '?'} - {row['title'] or '?'}"  # as typed on a keyboard
    return rows


def blocked_files(database_path: Path, rows: list[dict]) -> dict[str, int]:
    """wanted_key → how many of its tried files are blocked (failed verification: never tried again)."""
    with storage.connect(database_path, read_only=True) as conn:
        blocked = set(conn.execute("SELECT username, filename FROM blocked_candidates").fetchall())
    return {r["wanted_key"]: sum(1 for a in r["history"] if (a.get("username"), a.get("filename")) in blocked)
            for r in rows}


def what_happens(row: dict, blocked: int) -> str:
    """One line on what a requeue of this track leads to, from its history."""
    tried = row["peers"]
    attempts = len(row["history"])
    if not attempts:
        return "no download was ever started; a new search is made first"
    if attempts == 1:
        first = f"its only attempt, with peer {tried[0]}, failed" if tried else "its only attempt failed"
    elif len(tried) == 1:
        first = f"the same peer failed {attempts} times"
    else:
        first = f"{attempts} attempts with {len(tried)} peers failed"
    if row["cause"]:
        first += f" (last: {row['cause']})"
    rest = ("a new search is made first; the same peer" + ("s" if len(tried) > 1 else "")
            + " may be offered again")
    if blocked:
        rest += f" ({blocked} file{'s' * (blocked != 1)} that failed verification stay{'s' * (blocked == 1)} blocked)"
    return f"{first}; {rest}"


def requeue(database_path: Path, keys: list[str] | None) -> list[str]:
    """Requeue the given dead-lettered tracks (all of them when `keys` is None); returns those requeued."""
    with storage.connect(database_path) as conn, storage.transaction(conn):
        done = requeue_dead_letters(conn, keys)
    return [row["wanted_key"] for row in done]


def resolve(rows: list[dict], texts: list[str]) -> list[dict]:
    """The dead-lettered rows named by ids or names ("Artist – Title" or the title); every text must fit."""
    from harmony_pipeline.cli.errors import CommandError

    chosen, unknown = [], []
    for text in texts:
        try:
            row = find_by_name(text, rows, "wanted_key", ["track", "track_typed", "title"])
        except Ambiguous as error:
            raise CommandError(str(error)) from None
        if row is None:
            unknown.append(text)
        elif row not in chosen:
            chosen.append(row)
    if unknown:
        raise CommandError(f"not dead-lettered: {', '.join(unknown)} (see `harmony dead-letter list`)")
    return chosen


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""


def _cmd_list(args: argparse.Namespace, settings) -> int:
    rows = dead_letters(settings.duckdb_path) if storage.database_exists(settings.duckdb_path) else []
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "track_typed"} for r in rows], default=str,
                         ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no dead-lettered downloads")
        return 0
    if args.verbose:  # one row per attempt, oldest first
        print_rows(["id", "track", "attempt", "started", "peer", "file", "outcome", "error"],
                   [(r["wanted_key"], r["track"], n, (a.get("started_at") or "")[:19].replace("T", " "),
                     a.get("username"), str(a.get("filename") or "").split("\\")[-1], a.get("outcome"),
                     a.get("error") or "")
                    for r in rows for n, a in enumerate(r["history"], 1)],
                   no_wrap=["id", "attempt", "started"])
        return 0
    print_rows(["id", "track", "attempts", "peers", "cause", "dead since"],
               [(r["wanted_key"], r["track"], r["attempts"], len(r["peers"]), r["cause"], _when(r["updated_at"]))
                for r in rows],
               no_wrap=["id", "attempts", "peers", "dead since"])
    if is_terminal():  # a footer would be one more row to a reader of piped output
        print(f"{len(rows)} dead-lettered; `harmony dead-letter list -v` shows every attempt")
    return 0


def _cmd_requeue(args: argparse.Namespace, settings) -> int:
    from harmony_pipeline.cli.errors import CommandError

    if not args.all and not args.ids:
        raise CommandError("name the tracks to requeue (IDs or names from `harmony dead-letter list`) "
                           "or pass --all", 2)
    rows = dead_letters(settings.duckdb_path) if storage.database_exists(settings.duckdb_path) else []
    chosen = rows if args.all else resolve(rows, list(args.ids))
    if not chosen:
        print("no dead-lettered downloads")
        return 0
    blocked = blocked_files(settings.duckdb_path, chosen)
    done = set(requeue(settings.duckdb_path, [r["wanted_key"] for r in chosen]))
    for row in chosen:
        if row["wanted_key"] in done and not args.quiet:
            print(f"requeued {row['track']} ({row['wanted_key']}): {what_happens(row, blocked[row['wanted_key']])}")
    print(f"requeued {len(done)}; the next acquisition run searches and downloads them again")
    return 0


def register_cli(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dead-letter", help="inspect and requeue dead-lettered downloads")
    actions = parser.add_subparsers(dest="dead_letter_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="dead-lettered tracks with their last error")
    listing.add_argument("--json", action="store_true", help="machine-readable output with full history")
    listing.add_argument("--verbose", "-v", action="store_true", help="one row per attempt (the history)")
    listing.set_defaults(handler=_cmd_list, needs_settings=True)
    again = actions.add_parser("requeue", help="give dead-lettered tracks a fresh start")
    again.add_argument("ids", nargs="*", metavar="ID",
                       help="track ids or names (\"Artist – Title\" or the title) from `harmony dead-letter list`")
    again.add_argument("--all", action="store_true", help="requeue every dead-lettered track")
    again.set_defaults(handler=_cmd_requeue, needs_settings=True)
