"""Start-up cost: heavy dictionaries load on first use; the definitions are built once per process."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, subprocess_env


def _run(code: str, env: dict | None = None) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=subprocess_env(env or {}), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_kakasi_dictionary_loads_on_first_japanese_text_not_at_import():
    """Importing the matcher (every CLI command and run does) must not pay ~0.5 s and ~100 MB for pykakasi."""
    out = _run("import sys; from harmony_pipeline.matching.normalize import romanise; "
               "before = 'pykakasi' in sys.modules; romanise('Mötley Crüe'); latin = 'pykakasi' in sys.modules; "
               "print(before, latin, romanise('宇多田ヒカル'), 'pykakasi' in sys.modules)")
    assert out == ["False", "False", "utada", "hikaru", "True"]
