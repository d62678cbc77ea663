"""The commands around the reconcile flow: ``export``, ``history``, ``diff``, ``doctor``
and ``schema``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from taxsync import reconcile
from taxsync.cli.options import (
    connection_options,
    namespace_callback,
    one_namespace,
    style,
    taxonomy_name,
)
from taxsync.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Interrupted
from taxsync.reconcile import Reporter, Settings


@click.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    required=True,
    metavar="NS",
    callback=namespace_callback,
    help="Namespace to export (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write <namespace>/<name>.yaml into.",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@connection_options
def export(namespaces: tuple[str, ...], out: Path, force: bool, settings: Settings) -> int:
    """Write one manifest per live taxonomy (with the collections that apply it), to bring
    existing taxonomies under git."""
    files, problems = reconcile.export(settings, namespaces, out, force=force)
    for exported in files:
        click.echo(f"wrote {exported.path}  ({exported.namespace}/{exported.name})")
    click.echo(f"Exported {len(files)} taxonomy(ies) from {len(set(namespaces))} namespace(s).")
    for problem in problems:
        click.echo(f"warning: {problem} (fix it before planning)", err=True)
    return EXIT_OK


@click.command()
@taxonomy_name
@one_namespace("The taxonomy's namespace.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@connection_options
def history(name: str, namespace: str, fmt: str, settings: Settings) -> int:
    """Show the versions of taxonomy NAME and what changed between consecutive ones."""
    from taxsync import render

    result = reconcile.history(settings, namespace, name)
    if fmt == "json":
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(render.history_text(result), nl=False)
    return EXIT_OK


@click.command()
@click.argument("namespace_a", metavar="NS_A", callback=namespace_callback)
@click.argument("namespace_b", metavar="NS_B", callback=namespace_callback)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@connection_options
def diff(namespace_a: str, namespace_b: str, fmt: str, settings: Settings) -> int:
    """Compare the live taxonomies of namespaces NS_A and NS_B by name, references by the
    names of what they point at; exit 2 if they differ."""
    from taxsync import render

    result = reconcile.diff_namespaces(settings, namespace_a, namespace_b)
    if fmt == "json":
        click.echo(render.namespace_diff_json(result), nl=False)
    else:
        click.echo(render.namespace_diff_text(result, style()), nl=False)
    return EXIT_OK if result.equal else EXIT_CHANGES


@click.command()
@one_namespace("Where to probe (a scratch one is best).")
@click.option(
    "--collections",
    "collections",
    multiple=True,
    metavar="COLLECTION",
    help="A collection the probe may attach to, detach from and restore (repeatable).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--yes",
    is_flag=True,
    help="Probe even a namespace holding taxonomies taxsync manages (otherwise asked on a "
    "terminal, refused elsewhere).",
)
@connection_options
def doctor(
    namespace: str, collections: tuple[str, ...], fmt: str, yes: bool, settings: Settings
) -> int:
    """Check the API's contract with a self-cleaning probe in NS; exit 1 if any check differs."""
    from taxsync import render

    report = reconcile.doctor(
        settings,
        namespace,
        collections=collections,
        reporter=_DoctorReporter(),
        consent=(lambda managed: True) if yes else _ask_on_terminal,
    )
    click.echo(
        render.doctor_json(report) if fmt == "json" else render.doctor_text(report), nl=False
    )
    if report.interrupted:
        raise Interrupted("interrupted: the probe stopped; what it created was cleaned up")
    return EXIT_OK if report.ok else EXIT_ERROR


def _ask_on_terminal(managed: Sequence[str]) -> bool:
    """Whether the user, at a terminal, lets the probe write beside ``managed``."""
    from taxsync.render import plain

    if not sys.stdin.isatty():
        return False
    shown = ", ".join(plain(name) for name in managed[:5])
    more = f" and {len(managed) - 5} more" if len(managed) > 5 else ""
    click.echo(f"This namespace holds taxonomies taxsync manages: {shown}{more}.", err=True)
    return click.confirm("Write probe taxonomies beside them (all cleaned up after)?", err=True)


class _DoctorReporter(Reporter):
    """Says what an interrupt does: the first stops the probe, the second cannot stop the
    clean-up (a third can)."""

    def __init__(self) -> None:
        self.heard = 0

    def interrupting(self) -> None:
        self.heard += 1
        click.echo(
            "Interrupt: finishing the request in flight, then cleaning up what the probe made."
            if self.heard == 1
            else "Still cleaning up; interrupt once more to abort it (what is left is listed).",
            err=True,
        )


@click.command()
def schema() -> int:
    """Print the JSON Schema of a taxonomy manifest."""
    import json

    click.echo(json.dumps(reconcile.manifest_schema(), indent=2))
    return EXIT_OK
