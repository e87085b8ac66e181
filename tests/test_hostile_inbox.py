"""The inbox as an attacker or an unlucky user meets it: links to files outside, FIFOs, hard links,
sparse giants, a tick killed with SIGKILL while it holds a file. Every file ends in processed/ or in
failed/ with a reason; nothing outside the inbox is read; rejected text reaches Dagster metadata only
as a short sanitised preview."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, build_sensor_context

from assets.ingest import wiring as ingest_wiring
from harmony_pipeline.ingest import store as ingest_store
from harmony_pipeline.ingest.store import CLAIM_STALE_SECONDS, MAX_CLAIMS, SENSOR_MAX_BYTES, ingest_inbox
from harmony_pipeline.settings import load_settings
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase
from resources.inbox import IngestInbox

REPO = Path(__file__).resolve().parent.parent
SECRET = "SPOTIFY_CLIENT_SECRET=topsecret-4f9a"
LATER = CLAIM_STALE_SECONDS + 60  # seconds: a claim made now is stale this much later


# This process's peak RSS in KiB. VmHWM, not ru_maxrss: ru_maxrss keeps the peak of the forked copy of
# pytest from before exec.
PEAK_KIB = ("print(next(int(line.split()[1]) for line in open('/proc/self/status') "
            "if line.startswith('VmHWM:')))")


def db_rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def everything_stored(db: Path) -> str:
    """Every text DuckDB holds about submissions, items and activity, as one string."""
    if not db.exists():
        return ""
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = [t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return "\n".join(str(conn.execute(f"SELECT * FROM {table}").fetchall()) for table in tables)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "inbox"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / ".env"
    secret.write_text(f"{SECRET}\nNobody - Should Read This\n", encoding="utf-8")
    return secret


def failed_reasons(inbox: Path) -> dict[str, str]:
    return {p.name.split("_", 1)[1].removesuffix(".reason.txt"): p.read_text(encoding="utf-8")
            for p in (inbox / "failed").glob("*.reason.txt")}


def test_links_fifos_and_hard_links_are_refused_without_reading_what_they_point_to(inbox, secret_file, tmp_path):
    db = tmp_path / "data" / "h.duckdb"
    (inbox / "link.txt").symlink_to(secret_file)
    (inbox / "dirlink.json").symlink_to(secret_file.parent, target_is_directory=True)
    os.link(secret_file, inbox / "hard.txt")
    os.mkfifo(inbox / "pipe.csv")
    (inbox / "good.txt").write_text("Sigur Rós - Hoppípolla\n", encoding="utf-8")
    outside_before = files_under(secret_file.parent)
    started = time.monotonic()

    taken = ingest_inbox(db, inbox, time.time() + 60, settle_seconds=0)

    assert time.monotonic() - started < 30  # the FIFO was not waited on
    assert sorted(t.file.name for t in taken) == ["dirlink.json", "good.txt", "hard.txt", "link.txt", "pipe.csv"]
    reasons = failed_reasons(inbox)
    assert set(reasons) == {"dirlink.json", "hard.txt", "link.txt", "pipe.csv"}
    assert "symbolic link" in reasons["link.txt"] and "symbolic link" in reasons["dirlink.json"]
    assert "hard links" in reasons["hard.txt"] and "FIFO" in reasons["pipe.csv"]
    assert db_rows(db, "SELECT source, accepted FROM free_ingest_submissions") == [("inbox:good.txt", 1)]
    stored = everything_stored(db) + "".join(reasons.values())
    assert "topsecret" not in stored and "Should Read This" not in stored
    # The files outside are untouched, and the inbox holds only what was dropped, moved aside.
    assert files_under(secret_file.parent) == outside_before
    assert secret_file.read_text(encoding="utf-8").startswith(SECRET)
    assert {p.name for p in inbox.iterdir()} == {"processing", "processed", "failed"}


def test_oversized_sparse_file_goes_to_failed_without_being_read(inbox, tmp_path):
    giant = inbox / "giant.txt"
    with open(giant, "wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB, sparse: costs no disk
    code = ("import sys, time; from pathlib import Path; from harmony_pipeline.ingest.store import "
            "ingest_inbox; ingest_inbox(Path(sys.argv[1]), Path(sys.argv[2]), time.time() + 60, 0); "
            f"exec({PEAK_KIB!r})")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data" / "h.duckdb"), str(inbox)],
                          capture_output=True, text=True, check=True, cwd=REPO)
    peak_kib = int(done.stdout.strip())
    assert peak_kib * 1024 < 150_000_000, f"peak {peak_kib} KiB"
    assert "too large (1,073,741,824 bytes)" in failed_reasons(inbox)["giant.txt"]


def test_a_claim_left_by_a_killed_process_is_taken_back_at_once(inbox, tmp_path):
    db = tmp_path / "data" / "h.duckdb"
    lines = [f"Artist Number {n} - Some Song Title {n}" for n in range(60_000)]
    (inbox / "big.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = ("import sys, time; from pathlib import Path; from harmony_pipeline.ingest.store import ingest_inbox; "
            "ingest_inbox(Path(sys.argv[1]), Path(sys.argv[2]), time.time() + 60, 0)")
    worker = subprocess.Popen([sys.executable, "-c", code, str(db), str(inbox)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not any((inbox / "processing").glob("*big.txt")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # reading and recording, not finished
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    [claimed] = (inbox / "processing").iterdir()  # stranded: no process holds it any more

    # The claim names its process, which is gone: the next look takes it back without waiting.
    [retaken] = ingest_inbox(db, inbox, time.time(), settle_seconds=0)

    assert retaken.outcome is not None and retaken.file.claims == 1
    assert not claimed.exists() and list((inbox / "processing").iterdir()) == []
    assert retaken.moved_to.parent.name == "processed" and re.search(r"Z-2~[0-9a-f]{6}\.\d+\.\d+_big\.txt$", retaken.moved_to.name)
    # Every line recorded once: none lost to the kill, none twice.
    assert db_rows(db, "SELECT count(*), count(DISTINCT fingerprint), min(line_number), max(line_number) "
                       "FROM free_ingest_items") == [(60_000, 60_000, 1, 60_000)]


def test_a_file_whose_claim_keeps_going_stale_is_set_aside(inbox, tmp_path):
    processing = inbox / "processing"
    processing.mkdir()
    claimed = processing / f"20200101T000000000000Z-{MAX_CLAIMS}_list.txt"
    claimed.write_text("Sigur Rós - Hoppípolla\n", encoding="utf-8")
    [outcome] = ingest_inbox(tmp_path / "h.duckdb", inbox, time.time(), settle_seconds=0)
    assert outcome.outcome is None and outcome.moved_to.parent.name == "failed"
    assert f"interrupted {MAX_CLAIMS} times" in failed_reasons(inbox)["list.txt"]


def test_return_to_inbox_never_replaces_a_file_dropped_meanwhile(inbox, tmp_path, monkeypatch):
    (inbox / "list.txt").write_text("Sigur Rós - Hoppípolla\n", encoding="utf-8")
    [file] = ingest_store.waiting_inbox_files(inbox, time.time() + 60, settle_seconds=0)

    def refuse_and_drop_a_new_file(*args, **kwargs):
        (inbox / "list.txt").write_text("Björk - Jóga\n", encoding="utf-8")  # the user drops a new one
        raise duckdb.IOException("Could not set lock on file: Conflicting lock is held")

    monkeypatch.setattr(ingest_store, "record_submission", refuse_and_drop_a_new_file)
    with pytest.raises(duckdb.IOException):
        ingest_store.ingest_inbox_file(tmp_path / "h.duckdb", file)
    assert (inbox / "list.txt").read_text(encoding="utf-8") == "Björk - Jóga\n"
    [kept] = (inbox / "processing").iterdir()  # taken back once stale
    assert kept.read_text(encoding="utf-8") == "Sigur Rós - Hoppípolla\n"


def test_sensor_leaves_large_files_to_a_run_and_metadata_shows_only_previews(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("HARMONY_DATA_DIR", str(data))
    settings = load_settings()
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    large = inbox / "large.txt"
    large.write_text("".join(f"Artist {n} - Title {n}\n" for n in range(40_000)), encoding="utf-8")
    assert large.stat().st_size > SENSOR_MAX_BYTES
    hostile_line = "\x1b[31mNoSeparatorHere\x07 " + "x" * 900
    (inbox / "small.txt").write_text(f"Björk - Jóga\n{hostile_line}\n", encoding="utf-8")
    for path in (large, inbox / "small.txt"):
        os.utime(path, (time.time() - 60,) * 2)

    wiring = ingest_wiring(settings, Workers(disabled=False))
    resources = {"database": HarmonyDatabase(path=str(settings.duckdb_path)),
                 "ingest_inbox_dir": IngestInbox(path=str(inbox), settle_seconds=0)}
    with DagsterInstance.ephemeral() as instance:
        tick = wiring.sensors[0].evaluate_tick(build_sensor_context(instance=instance, resources=resources))
        assert large.exists()  # not read inside the tick
        [request] = tick.run_requests
        assert "large_inbox_files=1" in request.tags["harmony/trigger"]

        from dagster import materialize

        result = materialize([wiring.assets[0]], resources=resources, instance=instance)
        meta = {k: v.value for k, v in result.asset_materializations_for_node("free_ingest_items")[0].metadata.items()}
        assert meta["inbox_files_taken"] == 1 and not large.exists()
        assert meta["items"] == 40_001
        table = "\n".join(" | ".join(str(v) for v in record.data.values()) for record in meta["skipped_lines"].records)
        assert "NoSeparatorHere" in table and "x" * 60 not in table
        assert "\x1b" not in table and "\x07" not in table
        logged = "".join(str(event) for event in instance.all_logs(result.run_id))
        assert "\x1b" not in logged and "x" * 60 not in logged


def test_a_claim_held_by_a_live_process_is_left_alone_until_stale(inbox, tmp_path):
    from harmony_pipeline import storage
    from harmony_pipeline.claims import file_claim_tag

    processing = inbox / "processing"
    processing.mkdir()
    stamp = storage.utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    claimed = processing / f"{stamp}~{file_claim_tag()}_list.txt"  # this test's process: alive
    claimed.write_text("Sigur Rós - Hoppípolla\n", encoding="utf-8")
    db = tmp_path / "h.duckdb"
    assert ingest_inbox(db, inbox, time.time(), settle_seconds=0) == []
    assert claimed.exists()
    [retaken] = ingest_inbox(db, inbox, time.time() + LATER, settle_seconds=0)  # a hung holder: taken back
    assert retaken.outcome is not None and retaken.outcome.accepted == 1
