"""What ``apply`` shows while it runs: a line per change as it completes, what it waits for
(a taxonomy's readiness, backfill tasks) and for how long, and on a terminal a progress bar
under those lines."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from taxsync import reconcile
from taxsync.reconcile import Reporter

if TYPE_CHECKING:
    from taxsync.plan import ApplyResult, ChangeResult, Plan
    from taxsync.render import Style

# How often a wait is told again: off a terminal a line every TELL_EVERY_S seconds (a log
# never goes quiet for long), on a terminal the bar's status every second.
TELL_EVERY_S = 5.0
_TERMINAL_TICK_S = 1.0
_BAR_WIDTH = 30
# Waits named in one line; the rest are counted.
_WAITS_SHOWN = 3


class _Bar:
    """One line on stderr, redrawn in place: how many changes completed, and a status."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.status = total, 0, ""

    def draw(self) -> None:
        filled = _BAR_WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        line = f"Applying [{bar}] {self.done}/{self.total}"
        if self.status:
            line += f"  {self.status}"
        click.echo(f"\r\x1b[K{line}", nl=False, err=True)

    def clear(self) -> None:
        click.echo("\r\x1b[K", nl=False, err=True)


class ApplyProgress(Reporter):
    """Each change as a line on stdout as it completes (``--format text``; nothing but
    problems for ``--format json``); waits told on stderr; on a terminal, a bar under it all.

    ``preamble``, when given, is printed as the apply starts (or finds nothing to do), so
    a saved plan refused as stale prints nothing but the reasons."""

    def __init__(self, fmt: str, style: Style, preamble: str | None = None) -> None:
        self.fmt = fmt
        self.style = style
        self.preamble = preamble
        self.bar: _Bar | None = None
        self.tasks: dict[str, str] = {}  # backfill task id → the status last read
        self.waits: dict[str, float] = {}  # what apply waits for → when it began (monotonic)
        self._timer: asyncio.TimerHandle | None = None

    def apply_started(self, plan: Plan) -> None:
        self._print_preamble()
        if self.fmt == "text" and sys.stderr.isatty():
            self.bar = _Bar(len(plan.changes))
            self.bar.draw()

    def change_done(self, result: ChangeResult) -> None:
        from taxsync.render import result_line

        if self.fmt != "text":
            return
        self._above_bar(lambda: click.echo(result_line(result, self.style)))
        if self.bar is not None:
            self.bar.done += 1
            self.bar.draw()

    def task_polled(self, task_id: str, status: str) -> None:
        """A line each time a task's status changes; a task not ended is waited for."""
        from taxsync.render import plain

        if self.fmt != "text" or self.tasks.get(task_id) == status:
            return
        self.tasks[task_id] = status
        waited = f"backfill task {plain(task_id)}"
        if reconcile.task_ended(status):
            self.waits.pop(waited, None)
        else:
            self.waits.setdefault(waited, time.monotonic())
            self._keep_telling()
        if self.bar is None:
            click.echo(f"{waited}: {plain(status)}", err=True)
            return
        ended = sum(1 for s in self.tasks.values() if reconcile.task_ended(s))
        self.bar.status = (
            f"Backfills: {ended}/{len(self.tasks)} ended, {plain(task_id)} {plain(status)}"
        )
        self.bar.draw()

    def waiting(self, what: str, started: bool) -> None:
        from taxsync.render import plain

        if self.fmt != "text":
            return
        shown = plain(what)
        if not started:
            self.waits.pop(shown, None)
            return
        self.waits[shown] = time.monotonic()
        self._keep_telling()
        if self.bar is None:
            click.echo(f"waiting for {shown}", err=True)
        else:
            self._tell()

    def interrupting(self) -> None:
        self._above_bar(
            lambda: click.echo(
                "Interrupt: finishing in-flight writes, starting no new ones "
                "(Ctrl-C again to abort).",
                err=True,
            )
        )

    def applied(self, result: ApplyResult, plan: Plan) -> None:
        self._print_preamble()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.waits.clear()
        if self.bar is not None:
            self.bar.clear()
            self.bar = None

    def _print_preamble(self) -> None:
        if self.preamble is not None:
            click.echo(self.preamble, nl=False)
            self.preamble = None

    def _above_bar(self, show: Callable[[], None]) -> None:
        """Print a line where the bar is, then draw the bar again under it."""
        if self.bar is None:
            show()
            return
        self.bar.clear()
        sys.stderr.flush()
        show()
        sys.stdout.flush()
        self.bar.draw()

    def _keep_telling(self) -> None:
        """Tell the waits again at an interval until none is left. The hooks run in the
        apply's event loop, so the reminders are scheduled there, never from a thread."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside an apply (no loop to remind from)
        every = TELL_EVERY_S if self.bar is None else _TERMINAL_TICK_S
        self._timer = loop.call_later(every, self._remind, loop, every)

    def _remind(self, loop: asyncio.AbstractEventLoop, every: float) -> None:
        self._timer = None
        if not self.waits:
            return
        self._tell()
        self._timer = loop.call_later(every, self._remind, loop, every)

    def _tell(self) -> None:
        """What is awaited and for how long: a line on stderr, or the bar's status."""
        now = time.monotonic()
        if self.bar is not None and self.tasks:
            ended = sum(1 for s in self.tasks.values() if reconcile.task_ended(s))
            prefix = f"Backfills: {ended}/{len(self.tasks)} ended; "
        else:
            prefix = ""
        longest = sorted(self.waits.items(), key=lambda item: item[1])
        parts = [f"{what} ({now - since:.0f}s)" for what, since in longest[:_WAITS_SHOWN]]
        more = len(longest) - _WAITS_SHOWN
        text = (
            prefix + "waiting for " + ", ".join(parts) + (f" and {more} more" if more > 0 else "")
        )
        if self.bar is None:
            click.echo(text, err=True)
        else:
            self.bar.status = text
            self.bar.draw()
