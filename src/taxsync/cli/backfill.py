"""``taxsync backfill``: re-enrich a taxonomy's collections with its head, once each."""

from __future__ import annotations

import click

from taxsync import reconcile
from taxsync.cli.options import connection_options, one_namespace, taxonomy_name, wait_timeout
from taxsync.errors import EXIT_ERROR, EXIT_OK
from taxsync.reconcile import Reporter, Settings


class _Polls(Reporter):
    """With --wait: each task status change on stderr, so a long backfill is not silent."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def task_polled(self, task_id: str, status: str) -> None:
        if self.seen.get(task_id) != status:
            self.seen[task_id] = status
            click.echo(f"task {task_id}: {status}", err=True)


@click.command()
@taxonomy_name
@one_namespace("The taxonomy's namespace.")
@click.option(
    "-c",
    "--collection",
    "collections",
    multiple=True,
    metavar="C",
    help="Only this collection, by id or name (repeatable; default: every one that applies it).",
)
@click.option("--wait", is_flag=True, help="Wait for each backfill task to end.")
@wait_timeout("Seconds to wait for the tasks (with --wait).")
@connection_options
def backfill(
    name: str,
    namespace: str,
    collections: tuple[str, ...],
    wait: bool,
    wait_timeout: float,
    settings: Settings,
) -> int:
    """Re-enrich the documents of each collection that applies taxonomy NAME with its head
    (apply-taxonomy), once: a task already running for a collection is followed, and one
    a lost answer started is found, instead of starting another."""
    report = reconcile.backfill(
        settings,
        namespace,
        name,
        collections,
        wait=wait,
        wait_timeout=wait_timeout,
        reporter=_Polls() if wait else None,
    )
    for done in report.collections:
        where = f"{done.collection_name} ({done.collection_id})"
        if done.error is not None:
            click.echo(f"FAILED {where}: {done.error}", err=True)
            continue
        ended = f", ended {done.status}" if done.status else ""
        click.echo(f"backfill {where}: task {done.task_id} ({done.note}{ended})")
    failed = sum(1 for c in report.collections if c.error is not None)
    click.echo(
        f"Backfill of {report.namespace}/{report.name} v{report.version}: "
        f"{len(report.collections) - failed} collection(s) ok, {failed} failed."
    )
    return EXIT_OK if report.ok else EXIT_ERROR
