"""`make demo` as a user runs it: started for real (sandbox, `dagster dev` with its webserver, daemon and
code server), reached by a second process through `.demo/env`, stopped by a signal. Every process it
started must be gone afterwards and its ports free. The demos run in temporary folders
(HARMONY_DEMO_DIR) on free ports, without the first materialization (`--no-run`) to keep them short."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from harmony_pipeline import demo

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
START_SECONDS = 240.0  # two busy cores: `dagster dev` can take a minute to load the code location
PORTS = demo.SANDBOX_PORTS + 1


def _port_free(port: int) -> bool:
    try:
        demo.check_port_free(port)
    except demo.DemoError:
        return False
    return True


def free_port_block() -> int:
    """The first of PORTS consecutive free loopback ports."""
    for _ in range(200):
        first = random.randrange(20_000, 60_000)
        if all(_port_free(p) for p in range(first, first + PORTS)):
            return first
    raise RuntimeError("no block of free ports")


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) of a process group, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class RunningDemo:
    def __init__(self, process: subprocess.Popen, folder: Path, port: int, output: Path):
        self.process, self.folder, self.port, self.output = process, folder, port, output

    @property
    def env_file(self) -> Path:
        return self.folder / "env"

    def group(self) -> int:
        """The process group of everything the demo started (led by its watchdog, the demo's child)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        groups = {os.getpgid(int(pid)) for pid in children} - {os.getpgid(self.process.pid)}
        assert len(groups) == 1, groups
        return groups.pop()

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@contextmanager
def running_demo(tmp_path: Path, *extra: str, first_run: bool = False) -> Iterator[RunningDemo]:
    port = free_port_block()
    folder = tmp_path / "demo"
    output = tmp_path / "demo-output.txt"
    env = {**os.environ, "HARMONY_DEMO_PORT": str(port), "HARMONY_DEMO_DIR": str(folder)}
    with output.open("wb") as out:
        # Its own session, as a terminal would give it: the test can clean up whatever happens.
        process = subprocess.Popen([sys.executable, "-m", "harmony_pipeline.demo",
                                    *([] if first_run else ["--no-run"]), *extra],
                                   cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    running = RunningDemo(process, folder, port, output)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not running.env_file.exists():
            assert process.poll() is None, f"the demo exited with {process.returncode}:\n{running.text()}"
            assert time.monotonic() < deadline, f"the demo did not start in {START_SECONDS} s:\n{running.text()}"
            time.sleep(0.5)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_gone(pgid: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return group_members(pgid)


def _harmony(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harmony_pipeline.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def _clean_env(**extra: str) -> dict[str, str]:
    """The user's shell before sourcing anything: none of the pipeline's variables."""
    from conftest import PIPELINE_VARIABLES

    return {**{k: v for k, v in os.environ.items() if k not in PIPELINE_VARIABLES}, **extra}


def test_env_file_reaches_the_demo_and_sigterm_leaves_nothing(tmp_path):
    with running_demo(tmp_path) as running:
        pgid = running.group()
        members = group_members(pgid)
        assert len(members) >= 4  # watchdog, dagster dev, webserver, daemon (and code servers)
        text = running.text()
        assert f"Dagster UI: http://127.0.0.1:{running.port}" in text
        assert f"wrote {running.env_file}" in text and "set -a;" in text
        assert "Warning" not in text  # no deprecation/beta/supersession notices from the demo's commands
        variables = demo.read_env_file(running.env_file)
        assert variables["DAGSTER_HOME"] == str(running.folder / "dagster_home")
        assert variables["SPOTIFY_API_URL"].startswith(f"http://127.0.0.1:{running.port + 1}")

        # A second process, in a shell that sourced the file as the README says: the demo's instance
        # (its daemon's ticks), database and sandbox.
        shell = subprocess.run(
            ["bash", "-c", f"set -a; . {running.env_file}; set +a; "
                           f"{sys.executable} -m harmony_pipeline.cli status --json"],
            env=_clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=180)
        report = json.loads(shell.stdout)
        assert "DAGSTER_HOME is not set" not in shell.stderr
        assert set(report["workers"]) >= {"download_transfer_sensor", "playlist_sync_schedule"}
        deadline = time.monotonic() + 120
        while True:  # the daemon ticks the sensors of this instance: they turn "running"
            states = json.loads(_harmony("--demo", "status", "--json",
                                         env=_clean_env(HARMONY_DEMO_DIR=str(running.folder))).stdout)["workers"]
            if states["download_transfer_sensor"]["state"] == "running":
                break
            assert time.monotonic() < deadline, states
            time.sleep(3)
        assert states["download_transfer_sensor"]["last_tick"] is not None

        # `harmony --demo watch add` reaches the demo's Spotify emulator (credentials from the file).
        from harmony_pipeline.sandbox.catalog import build_catalog

        artist = next(iter(build_catalog(7).artists.values()))
        added = _harmony("--demo", "watch", "add", artist.id, env=_clean_env(HARMONY_DEMO_DIR=str(running.folder)))
        assert added.returncode == 0, added.stderr
        listed = _harmony("--demo", "watch", "list", env=_clean_env(HARMONY_DEMO_DIR=str(running.folder)))
        assert f"{artist.name}\t{artist.id}\tcli\t" in listed.stdout

        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=60) == 128 + signal.SIGTERM
        stop_seconds = time.monotonic() - started
        assert _wait_gone(pgid, 5) == []
        assert all(_port_free(p) for p in range(running.port, running.port + PORTS))
        assert not running.env_file.exists()  # its sandbox ports died with it
        lines_after = running.text().split("stopping the demo (SIGTERM) …", 1)[1].strip().splitlines()
        assert lines_after == [], lines_after  # one line on stopping; nothing else
        print(f"stopped in {stop_seconds:.1f} s")

        gone = _harmony("--demo", "status", env=_clean_env(HARMONY_DEMO_DIR=str(running.folder)))
        assert gone.returncode == 2 and gone.stderr.strip().startswith("harmony: no demo is running")


def test_ctrl_c_during_the_first_run_prints_one_line_and_settles_the_run(tmp_path):
    with running_demo(tmp_path, first_run=True) as running:
        pgid = running.group()
        deadline = time.monotonic() + START_SECONDS
        while "STEP_START" not in running.text():  # the first materialization is under way
            assert time.monotonic() < deadline and running.process.poll() is None, running.text()
            time.sleep(0.5)
        time.sleep(3)
        running.process.send_signal(signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground group
        assert running.process.wait(timeout=60) == 128 + signal.SIGINT
        assert _wait_gone(pgid, 5) == []
        after = running.text().split("stopping the demo (SIGINT) …", 1)[1].strip().splitlines()
        assert after == [], after[:20]  # no traceback: the run's dying words go to demo.log only

        from dagster import DagsterInstance, DagsterRunStatus

        home = running.folder / "dagster_home"
        with DagsterInstance.from_config(str(home)) as instance:
            first = [run for run in instance.get_runs() if run.job_name == "__ASSET_JOB"]
            in_flight = {run.run_id for run in instance.get_runs()
                         if run.status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)}
        # The interrupted first run records how it ended when it manages to within the demo's grace
        # period; whatever is still "in progress" (it, runs the daemon launched) is settled by the next
        # start: marked canceled, its pool slots freed.
        assert len(first) == 1
        assert first[0].status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED) or first[0].run_id in in_flight
        from harmony_pipeline.demo import settle_interrupted_runs

        assert set(settle_interrupted_runs(home)) == in_flight
        with DagsterInstance.from_config(str(home)) as instance:
            assert not [run for run in instance.get_runs()
                        if run.status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)]
            assert instance.event_log_storage.get_concurrency_info("duckdb_writer").active_slot_count == 0


def test_sighup_stops_the_demo_like_a_closed_terminal(tmp_path):
    with running_demo(tmp_path) as running:
        pgid = running.group()
        running.process.send_signal(signal.SIGHUP)
        assert running.process.wait(timeout=60) == 128 + signal.SIGHUP
        assert _wait_gone(pgid, 5) == []
        assert _port_free(running.port)


def test_a_killed_demo_is_cleaned_up_by_its_watchdog(tmp_path):
    with running_demo(tmp_path) as running:
        pgid = running.group()
        os.kill(running.process.pid, signal.SIGKILL)  # no handler runs: only the watchdog can act
        running.process.wait(timeout=10)
        assert _wait_gone(pgid, demo.STOP_WAIT_SECONDS + 15) == []
        assert _port_free(running.port)


def test_busy_port_is_refused_before_anything_starts(tmp_path):
    port = free_port_block()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "harmony_pipeline.demo"], cwd=REPO, capture_output=True,
                              text=True, timeout=60,
                              env={**os.environ, "HARMONY_DEMO_PORT": str(port),
                                   "HARMONY_DEMO_DIR": str(tmp_path / "demo")})
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"port {port}" in done.stderr and "HARMONY_DEMO_PORT" in done.stderr
    assert not (tmp_path / "demo").exists()  # nothing started, nothing written
    assert time.monotonic() - started < 30


class _ForeignDagster(BaseHTTPRequestHandler):
    """Another Dagster webserver: same code location name, another instance folder."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.dumps({"data": {"instance": {"info": "local_artifact_storage:\n  config:\n"
                                                          "    base_dir: /somewhere/else\n"},
                                    "workspaceOrError": {"locationEntries": [{"name": demo.LOCATION}]}}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


def test_readiness_is_not_fooled_by_another_server_on_the_port(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _ForeignDagster)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base_url = f"http://127.0.0.1:{server.server_port}"
        assert demo.server_identity(base_url)[1] == [demo.LOCATION]
        assert demo.is_own_server(base_url, tmp_path / "dagster_home") is False
        assert demo.is_own_server(base_url, Path("/somewhere/else")) is True
    finally:
        server.shutdown()
        server.server_close()


def test_env_file_round_trip(tmp_path):
    variables = {"DAGSTER_HOME": str(tmp_path / "a home"), "HARMONY_PLAYLISTS": "a,b", "SPOTIFY_CLIENT_SECRET": "x'y"}
    path = tmp_path / "env"
    demo.write_env_file(path, variables)
    assert demo.read_env_file(path) == variables
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    sourced = subprocess.run(["bash", "-c", f'set -a; . "{path}"; printf "%s|%s" "$DAGSTER_HOME" '
                                            '"$SPOTIFY_CLIENT_SECRET"'],
                             capture_output=True, text=True, check=True)
    assert sourced.stdout == f"{tmp_path / 'a home'}|x'y"
