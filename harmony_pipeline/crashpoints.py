"""Named points where a test can kill the process (SIGKILL, as an OOM or a power cut would).

`HARMONY_CRASHPOINT=import.after_move` makes the process kill itself the moment it passes that point,
so the crash-safety tests hit the exact window between two state changes instead of guessing a time.
Unset (always, outside those tests) it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "HARMONY_CRASHPOINT"


def crashpoint(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
