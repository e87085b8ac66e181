"""`harmony` output as scripts and pipes read it: piped listings are full tab-separated rows read back
with the csv module; `--json` everywhere; names accepted where ids are; small messages (plurals, the
sandbox's env-file line, `--demo` without a demo)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from harmony_pipeline import storage
from harmony_pipeline.watchlist import releases as rules
from harmony_pipeline.cli.main import main
from harmony_pipeline.cli.listing import print_rows, shorten

REPO = Path(__file__).resolve().parent.parent
LONG_NAME = "The Exceptionally Long-Named Orchestra of the Northern Lights and Their Friends From Far Away"


def _rows(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out), delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """Three watched artists in a real DuckDB file, two of them sharing a name."""
    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HARMONY_LIBRARY_DIR", str(tmp_path / "library"))
    path = tmp_path / "harmony.duckdb"
    now = storage.utcnow()
    artists = {"0aaaaaaaaaaaaaaaaaaaaa": LONG_NAME, "1bbbbbbbbbbbbbbbbbbbbb": "Twin",
               "2ccccccccccccccccccccc": "Twin"}
    with storage.connect(path) as conn:
        for artist_id, name in artists.items():
            rules.insert_artist(conn, artist_id, name=name, source="cli", now=now - timedelta(days=1),
                                priority=0, paused=False, with_discography=False)
    return path


def test_piped_watch_list_is_full_unwrapped_rows(watched, capsys):
    assert main(["watch", "list"]) == 0
    out = capsys.readouterr().out
    rows = {r["id"]: r for r in _rows(out)}
    assert rows["0aaaaaaaaaaaaaaaaaaaaa"]["artist"] == LONG_NAME  # whole name, whole id, one line
    assert len(out.splitlines()) == 4  # header + one line per artist
    grepped = [line for line in out.splitlines() if "Northern Lights" in line]
    assert len(grepped) == 1 and "0aaaaaaaaaaaaaaaaaaaaa" in grepped[0]


def test_watch_list_json(watched, capsys):
    assert main(["watch", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {a["artist_id"]: a["name"] for a in listed}["0aaaaaaaaaaaaaaaaaaaaa"] == LONG_NAME
    assert all(a["new_releases"] == 0 for a in listed)


def test_watch_set_accepts_the_listed_name(watched, capsys):
    assert main(["watch", "set", LONG_NAME.lower(), "--priority", "5", "--pause"]) == 0
    assert "priority 5, paused" in capsys.readouterr().out
    with storage.connect(watched, read_only=True) as conn:
        assert conn.execute("SELECT priority, paused FROM watchlist_artists WHERE artist_id = ?",
                            ["0aaaaaaaaaaaaaaaaaaaaa"]).fetchone() == (5, True)


def test_ambiguous_name_is_refused_with_the_candidates(watched, capsys):
    assert main(["watch", "set", "Twin", "--priority", "2"]) == 1
    err = capsys.readouterr().err
    assert "'Twin' names 2 entries" in err and "1bbbbbbbbbbbbbbbbbbbbb" in err and "2ccccccccccccccccccccc" in err
    assert main(["watch", "remove", "Nobody"]) == 1
    assert "Nobody is not on the watchlist" in capsys.readouterr().err
    with storage.connect(watched, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM watchlist_artists WHERE priority <> 0").fetchone() == (0,)
    assert main(["watch", "remove", "spotify:artist:1bbbbbbbbbbbbbbbbbbbbb"]) == 0  # ids still work


def test_terminal_listing_fits_the_width_and_folds_instead_of_cutting():
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, width=60, force_terminal=True, color_system=None)
    print_rows(["artist", "id"], [(LONG_NAME, "0aaaaaaaaaaaaaaaaaaaaa")], no_wrap=["id"], console=console)
    lines = screen.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60
    assert "0aaaaaaaaaaaaaaaaaaaaa" in screen.getvalue()  # the id is never folded or cut
    assert "…" not in screen.getvalue()


def test_shorten_marks_every_cut():
    assert shorten("abc", 3) == "abc"
    assert shorten("abcdef", 4) == "abc…" and len(shorten("x" * 500, 100)) == 100


def test_demo_flag_without_a_running_demo_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARMONY_DEMO_DIR", str(tmp_path / "no-demo"))
    assert main(["--demo", "status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no demo is running" in err and "make demo" in err


def test_demo_flag_reads_the_env_file(tmp_path, monkeypatch, capsys):
    from harmony_pipeline.demo import write_env_file

    folder = tmp_path / "demo"
    write_env_file(folder / "env", {"HARMONY_DATA_DIR": str(tmp_path / "demo-data"),
                                    "HARMONY_LIBRARY_DIR": str(tmp_path / "demo-library")})
    monkeypatch.setenv("HARMONY_DEMO_DIR", str(folder))
    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path / "elsewhere"))
    assert main(["--demo", "dead-letter", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no dead-lettered downloads"
    assert os.environ["HARMONY_DATA_DIR"] == str(tmp_path / "demo-data")  # the demo's, not the shell's


def test_sandbox_env_file_says_where_it_wrote_and_that_it_serves(tmp_path):
    env_file = tmp_path / "sandbox.env"
    process = subprocess.Popen([sys.executable, "-m", "harmony_pipeline.cli", "sandbox", "--root",
                                str(tmp_path / "sandbox"), "--env-file", str(env_file)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # blocks until the line: a hung command would time the test out
        assert line.startswith(f"wrote the sandbox environment to {env_file}") and "serving" in line
        assert "export SPOTIFY_API_URL=" in env_file.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_one_rejected_candidate_is_singular(tmp_path):
    from harmony_pipeline.acquisition.search import SearchSession, decide_match
    from resources.database import HarmonyDatabase

    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    wrong = [{"username": "peer", "hasFreeUploadSlot": True, "queueLength": 0, "uploadSpeed": 1000,
              "files": [{"filename": "music\\Someone Else\\01 - Other Tune.mp3", "size": 5_000_000,
                         "bitRate": 320, "length": 200}]}]
    session = SearchSession(search=lambda text: wrong, database=database, limit=10, window_seconds=60)
    row = {"wanted_key": "isrc:A", "artist": "Band", "title": "Song", "album": None, "duration_ms": 200_000}
    decision = decide_match(row, None, session, set())
    assert decision["status"] == "no_match" and decision["rejected_count"] == 1
    assert decision["reasons"] == ["1 candidate rejected"]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_gets_a_table_sized_to_it(watched):
    """A real pseudo-terminal of 120 columns: the table fits it (nothing tab-separated)."""
    leader, follower = os.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("COLUMNS", None)
    process = subprocess.Popen([sys.executable, "-m", "harmony_pipeline.cli", "watch", "list"], env=env,
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode("utf-8", "replace"))
    lines = [line for line in text.replace("\r", "").splitlines() if line.strip()]
    assert process.returncode == 0 and "\t" not in text
    assert max(len(line) for line in lines) <= 120
    assert "last error" in text and "Long-Named" in text  # every column shown; long names wrap at words
    assert "0aaaaaaaaaaaaaaaaaaaaa" in text  # the id column is never folded


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`harmony watch list | head -1` on a listing larger than a pipe's buffer."""
    path = tmp_path / "harmony.duckdb"
    now = storage.utcnow()
    with storage.connect(path) as conn:
        conn.executemany(
            "INSERT INTO watchlist_artists (artist_id, name, source, added_at, priority, paused, with_discography) "
            "VALUES (?, ?, 'cli', ?, 0, false, false)",
            [[f"{n:022d}", f"Artist number {n} with a fairly long name", now] for n in range(4000)])
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARMONY_DATA_DIR": str(tmp_path),
           "HARMONY_LIBRARY_DIR": str(tmp_path / "library")}
    done = subprocess.run(["bash", "-c", f"{sys.executable} -m harmony_pipeline.cli watch list | head -1; "
                                         "exit ${PIPESTATUS[0]}"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("artist\tid\t")
    assert done.stderr == "" and done.returncode == 141


def test_ingest_report_as_json(tmp_path, monkeypatch, capsys):
    from harmony_pipeline.cli.main import main

    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path / "data"))
    wishes = tmp_path / "wishes.txt"
    wishes.write_text("Sigur Rós - Hoppípolla\nnot a track line\nBjörk - Jóga\n", encoding="utf-8")
    assert main(["--quiet", "ingest", "--json", str(wishes)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] == 2 and report["skipped"] == 1
    [entry] = report["files"]
    assert entry["file"] == str(wishes) and [s["line"] for s in entry["skipped_lines"]] == [2]
    assert entry["skipped_lines"][0]["reason"]
