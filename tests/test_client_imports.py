"""The Spotify concern and the CLI are plain code: importing any of their modules loads neither Dagster
nor the resources/ package (so `harmony watch` and `harmony spotify login` start fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_PROBE = """
import importlib, json, pkgutil, sys
import harmony_pipeline.cli as cli, harmony_pipeline.spotify as spotify
names = [f"{package.__name__}.{module.name}" for package in (spotify, cli)
         for module in pkgutil.iter_modules(package.__path__) if module.name != "__main__"]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("dagster", "resources"))}))
"""


def test_spotify_and_cli_modules_import_no_dagster_and_no_resources(tmp_path):
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert "harmony_pipeline.spotify.client" in report["modules"] and "harmony_pipeline.cli.watch" in report["modules"]
    assert report["loaded"] == []
