"""What ``apply`` shows while it runs: each change as it completes, and how the backfill
tasks stand."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from taxsync import reconcile
from taxsync.reconcile import Reporter

if TYPE_CHECKING:
    from taxsync.reconcile import ApplyResult, ChangeResult, Plan
    from taxsync.render import Style


class ApplyProgress(Reporter):
    """Each change as it completes: a progress bar on a terminal (problems still printed
    as lines), one line per change otherwise; nothing but problems for ``--format json``."""

    def __init__(self, fmt: str, style: Style) -> None:
        self.fmt = fmt
        self.style = style
        self.bar: Any = None
        self.tasks: dict[str, str] = {}  # backfill task id → the status last read

    def apply_started(self, plan: Plan) -> None:
        if self.fmt == "text" and sys.stderr.isatty():
            self.bar = click.progressbar(
                length=len(plan.changes), label="Applying", file=sys.stderr
            )
            self.bar.__enter__()

    def change_done(self, result: ChangeResult) -> None:
        from taxsync.render import result_line

        if self.fmt != "text":
            return
        if self.bar is None:
            click.echo(result_line(result, self.style))
            return
        if result.status != "applied":
            click.echo("\r" + result_line(result, self.style), err=True)
        self.bar.update(1)

    def task_polled(self, task_id: str, status: str) -> None:
        """On a terminal, the bar's label tells how the backfills stand; otherwise a line
        (on stderr) each time a task's status changes."""
        from taxsync.render import plain

        if self.fmt != "text" or self.tasks.get(task_id) == status:
            return
        self.tasks[task_id] = status
        if self.bar is None:
            click.echo(f"backfill task {plain(task_id)}: {plain(status)}", err=True)
            return
        ended = sum(1 for s in self.tasks.values() if reconcile.task_ended(s))
        self.bar.label = (
            f"Backfills: {ended}/{len(self.tasks)} ended, {plain(task_id)} {plain(status)}"
        )
        self.bar.render_progress()

    def interrupting(self) -> None:
        click.echo(
            "\nInterrupt: finishing in-flight writes, starting no new ones (Ctrl-C again to abort).",
            err=True,
        )

    def applied(self, result: ApplyResult, plan: Plan) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
