"""Start and stop `dagster-webserver` for UI tests: new session, loopback only, stopped by process group.

    with webserver(env, dagster_home) as base_url:
        graphql(base_url, "{ version }")
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME holding the repository's dagster.yaml, as `make demo` lays it out."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", folder / "dagster.yaml")
    return folder


def _webserver_command(port: int) -> list[str]:
    executable = Path(sys.executable).with_name("dagster-webserver")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "dagster_webserver"]
    return command + ["-m", "harmony_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)]


def wait_until_up(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/server_info", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"dagster-webserver did not answer /server_info in {START_TIMEOUT_SECONDS} s:\n"
                       f"{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (the webserver starts a code server), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        process.wait(timeout=15)


@contextmanager
def webserver(env: dict[str, str], dagster_home: Path, log: Path) -> Iterator[str]:
    """A running webserver over `env` (the pipeline's environment); yields its base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(dagster_home),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as output:
        process = subprocess.Popen(_webserver_command(port), cwd=REPO, env=full_env, stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_up(base_url, process, log)
        yield base_url
    finally:
        stop(process)


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base_url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        payload = json.load(answer)
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]
