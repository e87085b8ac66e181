"""The sandbox: loopback emulators of Spotify, slskd, MusicBrainz, Cover Art Archive, LRCLIB and AcoustID.

    with Sandbox(tmp_path) as sandbox:
        os.environ.update(sandbox.env)          # points the pipeline at the emulators
        sandbox.emulator("spotify").add_fault(Fault("/v1/search", status=429, retry_after=2))

Every emulator lives in its own module listed in `EMULATOR_MODULES`; a module plugs in by defining

    def create_emulator(sandbox: Sandbox) -> Emulator
    def environment(sandbox: Sandbox, base_url: str) -> dict[str, str]

`create_emulator` builds the emulator from `sandbox.catalog`, `sandbox.root_dir` (a private folder
for files, e.g. slskd's downloads) and `sandbox.options` (keyword options given to `Sandbox`, by
convention prefixed with the emulator's name, e.g. `slskd_version="0.26.0"`); `environment` returns
the variables that point the pipeline at it. Modules that do not exist yet or lack these two
functions are skipped (with a warning for the latter).
"""

from __future__ import annotations

import importlib
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from harmony_pipeline.sandbox.catalog import Catalog, build_catalog
from harmony_pipeline.sandbox.server import Emulator, Fault, RunningServer, serve

__all__ = ["EMULATOR_MODULES", "Fault", "Sandbox", "export_lines", "run_forever"]

logger = logging.getLogger(__name__)

# Order fixes the port of each emulator when a port base is given (spotify = base, slskd = base + 1…).
EMULATOR_MODULES: dict[str, str] = {
    "spotify": "harmony_pipeline.sandbox.spotify",
    "slskd": "harmony_pipeline.sandbox.slskd",
    "musicbrainz": "harmony_pipeline.sandbox.musicbrainz",
    "coverart": "harmony_pipeline.sandbox.coverart",
    "lrclib": "harmony_pipeline.sandbox.lrclib",
    "acoustid": "harmony_pipeline.sandbox.acoustid",
}


def _load(module_name: str) -> ModuleType | None:
    """The emulator module, or None while it does not exist or defines no plug-in hooks yet."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:  # any other missing import is a real error
            return None
        raise
    if not (hasattr(module, "create_emulator") and hasattr(module, "environment")):
        logger.warning("sandbox: %s defines no create_emulator/environment; not started", module_name)
        return None
    return module


class Sandbox:
    def __init__(self, root_dir: Path | str, *, seed: int = 7, port_base: int | None = None, **options: Any) -> None:
        self.root_dir = Path(root_dir)
        self.seed = seed
        self.port_base = port_base
        self.options = options
        self.catalog: Catalog = build_catalog(seed)
        self.servers: dict[str, RunningServer] = {}
        self._environment: dict[str, str] = {}

    def start(self) -> Sandbox:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        try:
            for index, (name, module_name) in enumerate(EMULATOR_MODULES.items()):
                module = _load(module_name)
                if module is None:
                    continue
                emulator: Emulator = module.create_emulator(self)
                port = 0 if self.port_base is None else self.port_base + index
                running = serve(emulator, port)
                self.servers[name] = running
                self._environment.update(module.environment(self, running.base_url))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for running in self.servers.values():
            running.stop()
        self.servers.clear()
        self._environment.clear()

    def emulator(self, name: str) -> Emulator:
        return self.servers[name].emulator

    def url(self, name: str) -> str:
        return self.servers[name].base_url

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing the pipeline at the running emulators."""
        return dict(self._environment)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def export_lines(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))


def run_forever(
    root_dir: Path | str, port_base: int | None = None, env_file: Path | str | None = None, **options: Any
) -> None:
    """Start the sandbox, print (or write to `env_file`) `export NAME=value` lines, block until
    SIGINT/SIGTERM, then stop every emulator."""
    stop_requested = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_requested.set())
    with Sandbox(root_dir, port_base=port_base, **options) as sandbox:
        lines = export_lines(sandbox.env)
        if env_file is None:
            sys.stdout.write(lines)
            sys.stdout.flush()
        else:
            Path(env_file).write_text(lines, encoding="utf-8")
            # Without this line the command looks hung: say where the environment went and that it serves.
            print(f"wrote the sandbox environment to {env_file} (`. {env_file}` to use it); "
                  f"serving {len(sandbox.servers)} emulators until Ctrl-C or SIGTERM", flush=True)
        stop_requested.wait()
