"""`make demo`: the offline demo. Starts the sandbox and the Dagster UI (with its daemon: schedules and
sensors run), then materializes every asset once while you watch, and serves the UI until Ctrl-C.

Everything lives under ./.demo: the DuckDB file, the library, slskd's downloads, the Dagster instance.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harmony_pipeline.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
UI_PORT = int(os.environ.get("HARMONY_DEMO_PORT", "3000"))


def demo_playlists(sandbox: Sandbox) -> str:
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
        "HARMONY_DOWNLOAD_WAIT_SECONDS": "60",
        "HARMONY_SENSOR_INTERVAL_SECONDS": "15",
        # The sandbox's peers answer in half a second; a real network keeps the 34/220 default.
        "SLSKD_SEARCH_LIMIT": "120/60",
    }


def _run(command: list[str], env: dict[str, str]) -> int:
    print("$ " + " ".join(command), flush=True)
    return subprocess.call(command, env=env, cwd=REPO)


def _wait_for_ui(process: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{UI_PORT}/server_info", timeout=2):
                return True
        except OSError:
            time.sleep(1)
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    bin_dir = Path(sys.executable).parent
    DEMO.mkdir(exist_ok=True)
    with Sandbox(DEMO / "sandbox", slskd_search_seconds=0.5, slskd_transfer_step_seconds=0.1) as sandbox:
        env = {**demo_environment(sandbox.env, DEMO), "HARMONY_PLAYLISTS": demo_playlists(sandbox)}
        print(f"sandbox running: Spotify {sandbox.env.get('SPOTIFY_API_URL')}, slskd {sandbox.env.get('SLSKD_URL')}")
        ui = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(UI_PORT)],
            env=env, cwd=REPO, start_new_session=True,
        )
        try:
            if not _wait_for_ui(ui):
                print("the Dagster UI did not start; see the messages above", file=sys.stderr)
                return 1
            print(f"\nDagster UI: http://127.0.0.1:{UI_PORT}  (Ctrl-C stops the demo)")
            print("First materialization of every asset: watch it under Runs.\n", flush=True)
            status = _run([str(bin_dir / "dagster"), "asset", "materialize", "-m", "harmony_pipeline.definitions",
                           "--select", "*"], env)
            if status != 0:
                print("the first materialization failed; the run's logs are in the UI", file=sys.stderr)
            print(f"\nDone. The library is in {DEMO / 'library'}; the UI stays at http://127.0.0.1:{UI_PORT}",
                  flush=True)
            return ui.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            _stop(ui)


if __name__ == "__main__":
    sys.exit(main())
