"""`harmony ingest FILE… | -`: FREE ingest straight into DuckDB (no Dagster run needed).

Every input is read and parsed before anything is recorded, so an unreadable or oversized file stops
the command with a one-line reason and records nothing. Output: `line N: reason` for each skipped line
(prefixed by the file name when several are given), then `accepted A, skipped S`. The inbox sensor
requests the backfill run for what was recorded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from harmony_pipeline import storage
from harmony_pipeline.cli import CommandError
from harmony_pipeline.ingest_parser import MAX_SUBMISSION_BYTES, IngestError, ParseResult, parse_submission
from harmony_pipeline.ingest_store import SubmissionOutcome, record_submission
from harmony_pipeline.settings import Settings

STDIN = "-"


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest", help="FREE ingest of text, CSV or JSON files (or - for standard input)",
        description="Record wanted tracks from text lines, CSV (Exportify too), JSON or Spotify links. "
                    "Lines that cannot be read are listed with their reason.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to ingest; - reads standard input")
    parser.set_defaults(handler=run_ingest, needs_settings=True)


def _read_input(name: str) -> bytes:
    limit = f"the limit is {MAX_SUBMISSION_BYTES // 1048576} MiB ({MAX_SUBMISSION_BYTES:,} bytes)"
    if name == STDIN:
        data = sys.stdin.buffer.read(MAX_SUBMISSION_BYTES + 1)
        if len(data) > MAX_SUBMISSION_BYTES:
            raise CommandError(f"standard input is too large; {limit}")
        return data
    try:
        path = Path(name)
        size = path.stat().st_size
        if size > MAX_SUBMISSION_BYTES:  # refused without reading it
            raise CommandError(f"{name} is too large ({size:,} bytes); {limit}")
        return path.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {name}: {error.strerror or error}") from None


def _parse(name: str, data: bytes) -> ParseResult:
    try:
        return parse_submission(data, None if name == STDIN else Path(name).name)
    except IngestError as error:
        raise CommandError(f"{name}: {error}") from None


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    names: list[str] = args.files
    if names.count(STDIN) > 1:
        raise CommandError("standard input (-) can be read only once")
    parsed = [(name, _parse(name, _read_input(name))) for name in names]

    console = Console(stderr=True)
    outcomes: list[SubmissionOutcome] = []
    total_items = sum(len(result.items) for _, result in parsed)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True, disable=args.quiet) as progress:
        task = progress.add_task("recording items", total=total_items)
        with storage.connect(settings.duckdb_path) as conn:
            for name, result in parsed:
                source = "stdin" if name == STDIN else Path(name).name
                progress.update(task, description=f"recording {source}")
                outcomes.append(record_submission(conn, result, source,
                                                  progress=lambda n: progress.advance(task, n)))

    several = len(outcomes) > 1
    for name, outcome in zip(names, outcomes):
        if not args.quiet:
            for note in outcome.notes:
                console.print(f"{name}: note: {note}", markup=False, highlight=False)
        for line in outcome.report_lines(prefix=f"{name}: " if several else ""):
            print(line)
    accepted = sum(o.accepted for o in outcomes)
    skipped = sum(len(o.skipped) for o in outcomes)
    print(f"accepted {accepted}, skipped {skipped}")
    return 0
