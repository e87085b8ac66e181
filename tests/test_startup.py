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


def test_definitions_are_built_once_per_process_and_settings():
    """Importing the code location builds its wiring; `harmony status` asking for the same settings again
    (and the every-flag-on variant twice) gets the same wiring back instead of building it anew."""
    out = _run(
        "from datetime import datetime, timezone; import harmony_pipeline.definitions as d; "
        "from harmony_pipeline import status; from harmony_pipeline.settings import load_settings; "
        "s = load_settings(); built = d.collect_wiring.cache_info().misses; "
        "status.worker_definitions(s, datetime.now(timezone.utc)); status.asset_keys(s); "
        "flags_off = sum(not getattr(s, f) for f in status._flags(s)); "
        "print(built, d.collect_wiring.cache_info().misses - built, flags_off, "
        "d.collect_wiring(s) is d.collect_wiring(load_settings()))",
        {"ENABLE_ARTWORK": "0", "ENABLE_LYRICS": "0", "HARMONY_DISABLE_WORKERS": "1"})
    # one build at import; then one for every flag on and one per flag that is off, and nothing twice
    assert out == ["1", "3", "2", "True"]
