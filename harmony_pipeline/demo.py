"""`make demo`: the offline demo. Starts the sandbox and the Dagster UI (with its daemon: schedules and
sensors run), then materializes every asset once while you watch, and serves the UI until stopped.

Everything lives under ./.demo: the DuckDB file, the library, slskd's downloads, the Dagster instance,
and `.demo/env`, the environment that points `harmony` at this demo (`set -a; . .demo/env`, or
`harmony --demo …`); it is removed when the demo stops, since the sandbox's ports die with it.

Lifecycle: every process the demo starts (`dagster dev` with its webserver, daemon and code server,
the first materialization, a watchdog) is in one process group the demo owns. SIGINT, SIGTERM and
SIGHUP stop that group; if the demo itself is killed, the watchdog stops it. A busy port is refused
before anything starts, and the UI is announced only once the server on the port is this demo's own
(its instance folder and code location, read through GraphQL).

    HARMONY_DEMO_PORT   the UI's port (3000); the sandbox's five emulators take the five ports after it,
                        so the URLs stored by one start (e.g. cover images) still work after a restart
    HARMONY_DEMO_VERBOSE=1, or --verbose: the daemon's and webserver's info logs (sensor ticks) too
    --no-run            start everything but skip the first materialization
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
ENV_FILE = DEMO / "env"
LOG_FILE = DEMO / "demo.log"  # everything the demo's processes print, also after the terminal goes quiet
SANDBOX_PORTS = 5  # one per emulator, right after the UI's port
LOCATION = "harmony_pipeline"  # workspace.yaml's location name
PORT_VARIABLE = "HARMONY_DEMO_PORT"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_WAIT_SECONDS = 10.0  # the watchdog's grace before SIGKILL
TERM_GRACE_SECONDS = 6.0  # code servers and the daemon finish their shutdown within this, else SIGKILL
RUN_CANCEL_SECONDS = 10.0
# Dagster's own notices about the commands the demo runs (`dagster dev` and `dagster asset materialize`
# are "superseded" by the separate `dg` tool; `--select *` goes through a beta parameter). Our code's
# warnings stay visible: the filters name the modules that raise these.
QUIET_DAGSTER_WARNINGS = ",".join([
    "ignore::FutureWarning:click.core",
    "ignore::Warning:dagster._core.definitions.antlr_asset_selection.antlr_asset_selection",
])
# Variables of the demo's environment worth writing to .demo/env (the rest is the user's own shell).
ENV_PREFIXES = ("DAGSTER_HOME", "HARMONY_", "ENABLE_", "SPOTIFY_", "SLSKD_", "MUSICBRAINZ_", "COVERART_",
                "COVER_ART_", "LRCLIB_", "RETRY_")


class DemoError(Exception):
    """A one-line reason the demo cannot start."""


class Stop(BaseException):
    """A stop signal arrived (SIGINT, SIGTERM or SIGHUP)."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def ui_port(environ: dict[str, str] | None = None) -> int:
    text = (environ if environ is not None else os.environ).get(PORT_VARIABLE, "3000").strip() or "3000"
    try:
        port = int(text)
    except ValueError:
        raise DemoError(f"{PORT_VARIABLE}={text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise DemoError(f"{PORT_VARIABLE}={port} is not a port number (1-65535)")
    return port


def demo_folder(environ: dict[str, str] | None = None) -> Path:
    """.demo in the repository, or HARMONY_DEMO_DIR (a demo kept apart, e.g. by the tests)."""
    text = (environ if environ is not None else os.environ).get("HARMONY_DEMO_DIR", "").strip()
    return Path(text).absolute() if text else DEMO


def check_port_free(port: int, host: str = "127.0.0.1", *, ui_port: int | None = None) -> None:
    """Refuse a port something already listens on (as the webserver binds: SO_REUSEADDR, so a socket
    left in TIME_WAIT by a previous demo does not count)."""
    ui_port = port if ui_port is None else ui_port
    role = "the UI's" if port == ui_port else f"the sandbox's (the {SANDBOX_PORTS} after the UI's {ui_port})"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise DemoError(f"port {port}, {role}, is already in use (another demo or program?): stop it, or "
                                f"choose another port with {PORT_VARIABLE}, e.g. "
                                f"`{PORT_VARIABLE}={ui_port + 10} make demo`") from None
            raise DemoError(f"cannot use port {port}: {error.strerror or error}") from None


@contextmanager
def single_demo(folder: Path) -> Iterator[None]:
    """One demo per .demo folder: two would share the DuckDB file and the Dagster instance."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "demo.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise DemoError(f"another demo is running from {folder} (process {holder}); stop it first") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def demo_playlists(sandbox) -> str:
    """Two of your playlists, one shared with you and one you may not read (shown as forbidden)."""
    catalog = sandbox.catalog
    return ",".join([catalog.acquisition_playlist_id, catalog.small_playlist_id,
                     catalog.collaborative_playlist_id, catalog.foreign_playlist_id])


def demo_environment(sandbox_env: dict[str, str], root: Path) -> dict[str, str]:
    """The pipeline's environment for the demo: sandbox services, short waits, both flags on."""
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    return {
        **os.environ,
        **sandbox_env,
        "DAGSTER_HOME": str(dagster_home),
        "HARMONY_DATA_DIR": str(root / "data"),
        "HARMONY_LIBRARY_DIR": str(root / "library"),
        "ENABLE_ARTWORK": "1",
        "ENABLE_LYRICS": "1",
        "RETRY_BASE_SECONDS": "5",
        "HARMONY_SENSOR_INTERVAL_SECONDS": "15",
        # The sandbox's peers answer in half a second; a real network keeps the 34/220 default.
        "SLSKD_SEARCH_LIMIT": "120/60",
    }


# --- .demo/env --------------------------------------------------------------------------------------
def env_file_variables(env: dict[str, str], sandbox_env: dict[str, str]) -> dict[str, str]:
    """What `harmony` needs to act on the demo: its instance, folders, flags and the sandbox's services."""
    chosen = {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES) and os.environ.get(k) != v}
    return {**chosen, **sandbox_env}


def write_env_file(path: Path, variables: dict[str, str]) -> None:
    """`export NAME=value` lines, quoted for the shell; written whole or not at all, readable by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# The running demo's environment: `set -a; . .demo/env` or `harmony --demo …`.\n"
            + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(variables.items())))
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a file `write_env_file` wrote (also accepts plain NAME=value lines)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep and name.isidentifier():
                found[name] = value
    return found


def use_demo_environment(path: Path | None = None) -> dict[str, str]:
    """Point this process at the running demo (`harmony --demo`); a one-line error when none runs."""
    path = path or demo_folder() / "env"
    if not path.exists():
        raise DemoError(f"no demo is running ({path} does not exist): start one with `make demo`")
    variables = read_env_file(path)
    os.environ.update(variables)
    return variables


# --- processes --------------------------------------------------------------------------------------
WATCHDOG = """
import os, signal, sys, time
parent = int(sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while os.getppid() == parent:
    time.sleep(0.5)
os.killpg(0, signal.SIGTERM)
time.sleep(float(sys.argv[2]))
os.killpg(0, signal.SIGKILL)
"""


class ProcessGroup:
    """Processes started in one new process group, led by a watchdog that stops the group when the demo
    dies without cleaning up (SIGKILL, a crash). The group is not the terminal's foreground group, so a
    Ctrl-C reaches only the demo, which then stops the group itself."""

    def __init__(self) -> None:
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(STOP_WAIT_SECONDS)],
            stdin=subprocess.DEVNULL, process_group=0)
        self.pgid = self.watchdog.pid
        self.children: list[subprocess.Popen] = [self.watchdog]

    def start(self, command: list[str], **options) -> subprocess.Popen:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=self.pgid, **options)
        self.children.append(process)
        return process

    def alive(self) -> bool:
        for child in self.children:
            child.poll()  # reap: a zombie still counts as a member of the group
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = TERM_GRACE_SECONDS) -> None:
        """SIGTERM to every member, SIGKILL to those left after `timeout`. The watchdog (which ignores
        SIGTERM, to outlive what it stops) goes first: the demo is here to finish the job."""
        self.watchdog.kill()
        self.watchdog.wait()
        for number in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pgid, number)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.2)


def relay(stream, out, muted: threading.Event, log=None) -> threading.Thread:
    """Copy a child's output line by line to `out` until `muted` is set (the dying words of processes
    being stopped are not the user's business), and to `log` (a binary file) throughout."""
    def copy() -> None:
        for line in iter(stream.readline, b""):
            if log is not None:
                try:
                    log.write(line)
                    log.flush()
                except (OSError, ValueError):
                    pass
            if not muted.is_set():
                try:
                    out.buffer.write(line)
                    out.flush()
                except (OSError, ValueError):  # the terminal closed: keep draining the pipe
                    muted.set()
        stream.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def server_identity(base_url: str, timeout: float = 5.0) -> tuple[str | None, list[str]]:
    """(instance info, code location names) of the Dagster webserver at `base_url`."""
    query = "{ instance { info } workspaceOrError { ... on Workspace { locationEntries { name } } } }"
    request = urllib.request.Request(f"{base_url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        data = json.load(answer).get("data") or {}
    entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
    return (data.get("instance") or {}).get("info"), [e["name"] for e in entries]


def is_own_server(base_url: str, dagster_home: Path) -> bool:
    """The server answering is this demo's: its instance lives in our DAGSTER_HOME and it serves our
    code location (another Dagster on the port would show another folder)."""
    try:
        info, locations = server_identity(base_url)
    except (OSError, ValueError):
        return False
    return bool(info) and f"base_dir: {dagster_home}\n" in info and LOCATION in locations


def wait_for_own_server(base_url: str, dagster_home: Path, process: subprocess.Popen,
                        timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if is_own_server(base_url, dagster_home):
            return True
        time.sleep(1)
    return False


def settle_interrupted_runs(dagster_home: Path) -> list[str]:
    """Runs a previous demo was stopped in the middle of: marked canceled, so the UI does not show them
    in progress for ever. No other process uses this instance: `single_demo` holds the folder."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    if not (dagster_home / "dagster.yaml").exists():
        return []
    in_flight = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(RunsFilter(statuses=in_flight))
        for run in runs:
            instance.report_run_canceled(run, "the demo was stopped while this run was in progress")
    return [run.run_id for run in runs]


# --- the demo ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description="The offline demo: sandbox + Dagster UI.")
    parser.add_argument("--verbose", action="store_true",
                        help="show the daemon's and webserver's info logs (every sensor tick); "
                             "also HARMONY_DEMO_VERBOSE=1")
    parser.add_argument("--no-run", action="store_true", help="skip the first materialization")
    return parser.parse_args(argv)


def _raise_stop(signal_number: int, _frame) -> None:
    raise Stop(signal_number)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    verbose = args.verbose or os.environ.get("HARMONY_DEMO_VERBOSE", "").strip().lower() in ("1", "true", "yes")
    previous = {number: signal.signal(number, _raise_stop) for number in STOP_SIGNALS}
    try:
        port = ui_port()
        if port + SANDBOX_PORTS > 65535:
            raise DemoError(f"{PORT_VARIABLE}={port} leaves no room for the sandbox's {SANDBOX_PORTS} ports after it")
        for number in range(port, port + SANDBOX_PORTS + 1):
            check_port_free(number, ui_port=port)
        folder = demo_folder()
        with single_demo(folder):
            return _run_demo(folder, port, verbose, not args.no_run)
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a sandbox port taken between the check and the start
        print(f"demo: {error.strerror or error}{f': {error.filename}' if error.filename else ''}", file=sys.stderr)
        return 2
    except Stop as stop:
        return 128 + stop.signal_number
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _say(text: str, error: bool = False) -> None:
    """Print, unless the terminal is gone (SIGHUP after it closed): stopping must go on regardless."""
    try:
        print(text, file=sys.stderr if error else sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _run_demo(folder: Path, port: int, verbose: bool, first_run: bool) -> int:
    from harmony_pipeline.sandbox import Sandbox

    env_file, log_file = folder / ENV_FILE.name, folder / LOG_FILE.name
    with Sandbox(folder / "sandbox", port_base=port + 1, slskd_search_seconds=0.5,
                 slskd_transfer_step_seconds=0.1) as sandbox:
        _say(f"sandbox running: Spotify {sandbox.env.get('SPOTIFY_API_URL')}, slskd {sandbox.env.get('SLSKD_URL')}")
        group = ProcessGroup()
        muted = threading.Event()
        run: list[subprocess.Popen] = []
        log = log_file.open("wb")  # this start's output only: the file does not grow without end
        try:
            return _serve(sandbox, folder, group, port, verbose, first_run, muted, run, log)
        except Stop as stop:
            muted.set()
            _say(f"\nstopping the demo ({stop}) …")
            # What dies noisily now (the sandbox's half-answered requests) goes to the log, not the terminal.
            sys.stderr = open(log_file, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            if run and run[0].poll() is None:
                # SIGINT lets the run record itself as canceled in the instance; its traceback stays muted.
                run[0].send_signal(signal.SIGINT)
                try:
                    run[0].wait(timeout=RUN_CANCEL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
            return 128 + stop.signal_number
        finally:
            for number in STOP_SIGNALS:  # a second signal must not cut the cleanup short
                signal.signal(number, signal.SIG_IGN)
            muted.set()
            env_file.unlink(missing_ok=True)
            group.stop()
            log.close()


def _serve(sandbox, folder: Path, group: ProcessGroup, port: int, verbose: bool, first_run: bool,
           muted: threading.Event, run: list[subprocess.Popen], log) -> int:
    bin_dir = Path(sys.executable).parent
    base_url = f"http://127.0.0.1:{port}"
    env_file = folder / ENV_FILE.name
    env = {**demo_environment(sandbox.env, folder), "HARMONY_PLAYLISTS": demo_playlists(sandbox),
           "PYTHONUNBUFFERED": "1",
           "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), QUIET_DAGSTER_WARNINGS]))}
    dagster_home = Path(env["DAGSTER_HOME"])
    settled = settle_interrupted_runs(dagster_home)
    if settled:
        _say(f"{len(settled)} run(s) the last demo was stopped in are marked canceled")
    # Run from the instance folder: `dagster dev` warns about the repository's dagster.yaml otherwise.
    ui = group.start([str(bin_dir / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                      "-p", str(port), "--log-level", "info" if verbose else "warning"],
                     env=env, cwd=dagster_home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    relay(ui.stdout, sys.stdout, muted, log)
    if not wait_for_own_server(base_url, dagster_home, ui):
        _say("demo: the Dagster UI did not start; see the messages above", error=True)
        return 1
    write_env_file(env_file, env_file_variables(env, sandbox.env))
    _say(f"\nDagster UI: {base_url}  (Ctrl-C stops the demo)")
    shown = os.path.relpath(env_file) if env_file.is_relative_to(Path.cwd()) else str(env_file)
    _say(f"wrote {shown}: `set -a; . {shown}` (or `harmony --demo …`) points harmony at this demo")
    if first_run:
        _say("First materialization of every asset: watch it under Runs.\n")
        _first_run(group, env, muted, run, log)
    _say(f"\nDone. The library is in {folder / 'library'}; the UI stays at {base_url}  (Ctrl-C stops the demo)")
    while ui.poll() is None:
        time.sleep(1)
    _say(f"demo: dagster dev exited with {ui.returncode}", error=True)
    return 1


def _first_run(group: ProcessGroup, env: dict[str, str], muted: threading.Event, run: list[subprocess.Popen],
               log) -> None:
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "dagster"), "asset", "materialize", "-m", "harmony_pipeline.definitions",
               "--select", "*"]
    _say("$ " + " ".join(command))
    run.append(group.start(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    relayed = relay(run[0].stdout, sys.stdout, muted, log)
    status = run[0].wait()
    relayed.join(timeout=5)
    if status != 0:
        _say("the first materialization failed; the run's logs are in the UI", error=True)


if __name__ == "__main__":
    sys.exit(main())
