"""How a doctor run hears Ctrl-C and SIGTERM: it never leaves a probe behind unsaid.

The first signal stops the probe (the request in flight finishes, the clean-up runs); the
second is only told that the clean-up is running, so a quick double Ctrl-C cannot cut it
short; the third aborts the clean-up, which then lists what it did not undo. SIGTERM
counts like Ctrl-C, so a CI runner cancelling the job still gets its namespace back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

from taxsync.doctor.state import ProbeState

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def patient(state: ProbeState, told: Callable[[], None] | None = None) -> Iterator[None]:
    """While the block runs, each signal moves the run one step on: stop, warn, abort.
    ``told`` hears the first two (the front end says what happens next)."""
    loop = asyncio.get_running_loop()
    heard = 0

    def on_signal() -> None:
        nonlocal heard
        heard += 1
        if heard == 1:
            state.stop.set()
        elif heard >= 3:
            state.abort.set()
        if heard <= 2 and told is not None:
            told()

    installed = []
    for number in SIGNALS:
        # Not available off the main thread or on some platforms: the default stays.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, on_signal)
            installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
