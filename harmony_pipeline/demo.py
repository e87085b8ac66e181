"""`make demo`: the offline demo. Starts the sandbox, materializes every asset once so the UI has
history to show, then serves the Dagster UI (with its daemon: schedules and sensors run) until Ctrl-C.

Everything lives under ./.demo: the DuckDB file, the library, slskd's downloads, the Dagster instance.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from harmony_pipeline.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
UI_PORT = int(os.environ.get("HARMONY_DEMO_PORT", "3000"))


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


def main() -> int:
    bin_dir = Path(sys.executable).parent
    DEMO.mkdir(exist_ok=True)
    with Sandbox(DEMO / "sandbox", slskd_search_seconds=0.5, slskd_transfer_step_seconds=0.1) as sandbox:
        env = demo_environment(sandbox.env, DEMO)
        print(f"sandbox running: Spotify {sandbox.env.get('SPOTIFY_API_URL')}, slskd {sandbox.env.get('SLSKD_URL')}")
        status = _run([str(bin_dir / "dagster"), "asset", "materialize", "-m", "harmony_pipeline.definitions",
                       "--select", "*"], env)
        if status != 0:
            print("the first materialization failed; the UI shows the run's logs", file=sys.stderr)
        print(f"\nDagster UI: http://127.0.0.1:{UI_PORT}  (Ctrl-C stops the demo)\n", flush=True)
        ui = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(UI_PORT)],
            env=env, cwd=REPO, start_new_session=True,
        )
        try:
            return ui.wait()
        except KeyboardInterrupt:
            os.killpg(ui.pid, signal.SIGTERM)
            try:
                ui.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)
            return 0


if __name__ == "__main__":
    sys.exit(main())
