"""``taxsync local``: run the Mixpeek emulator over HTTP (``serve``), or seed the state file
of the embedded one (``seed``). ``serve``'s options are one table, read into one
``EmulatorOptions``."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from taxsync.cli.options import local_state_option, namespace_callback, with_options
from taxsync.cli.report import emulator_error
from taxsync.errors import EXIT_OK, ConfigError
from taxsync.reconcile import DEFAULT_LOCAL_STATE

if TYPE_CHECKING:
    from taxsync.emulator import EmulatorOptions

F = TypeVar("F", bound=Callable[..., Any])

# Where ``serve`` listens, then the emulator's settings. Each option's name is the
# EmulatorOptions field it sets, except --seed and --empty-backfill, read in
# ``_emulator_options``.
_SERVE_OPTIONS = [
    click.option("--host", default="127.0.0.1", show_default=True),
    click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True),
    click.option(
        "--state",
        "state_path",
        type=click.Path(path_type=Path),
        default=None,
        help="Persist state in this JSON file (default: memory only).",
    ),
    click.option(
        "--namespace",
        "namespaces",
        multiple=True,
        metavar="NAME",
        callback=namespace_callback,
        help="Create this namespace (repeatable); the seed's are created too, no other.",
    ),
    click.option(
        "--api-key",
        envvar="TAXSYNC_LOCAL_API_KEY",
        default=None,
        help="Accept only this bearer key (default: any non-empty key).",
    ),
    click.option(
        "--faults",
        default=None,
        metavar="SPEC",
        help="Fault injection, e.g. 'latency=20ms,429=0.1,503=0.05,seed=7'.",
    ),
    click.option(
        "--max-page-size",
        type=click.IntRange(1, 1000),
        default=1000,
        show_default=True,
        help="Largest page the list routes return.",
    ),
    click.option(
        "--ready-after-reads",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        help="Cluster/llm inference reports ready=false for this many GETs of the taxonomy.",
    ),
    click.option(
        "--ready-after-seconds",
        type=click.FloatRange(min=0),
        default=None,
        help="...or until this many seconds after it was created, whichever comes first.",
    ),
    click.option(
        "--seed",
        "seed_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        metavar="FILE",
        help="Put the collections and retrievers of this YAML/JSON seed file in place first.",
    ),
    click.option(
        "--lenient-taxonomy-refs",
        is_flag=True,
        help="Let a collection PATCH name taxonomies that do not exist (default: 404).",
    ),
    click.option(
        "--applied-taxonomy-delete",
        type=click.Choice(["dangling", "strict"]),
        default="dangling",
        show_default=True,
        help="Deleting a taxonomy that collections apply: leave their entries, or refuse (400).",
    ),
    click.option(
        "--empty-backfill",
        type=click.Choice(["refuse", "accept"]),
        default="refuse",
        show_default=True,
        help="apply-taxonomy on a collection with no documents: 400, or start a task anyway.",
    ),
    click.option(
        "--task-polls",
        type=click.IntRange(min=0),
        default=1,
        show_default=True,
        help="A backfill task reports PENDING for this many GETs, then IN_PROGRESS as many.",
    ),
    click.option(
        "--task-outcome",
        type=click.Choice(
            ["completed", "failed", "canceled", "completed_with_errors", "interrupted", "skipped"]
        ),
        default="completed",
        show_default=True,
        help=(
            "How backfill tasks end (failed: with an error; canceled: as by their time budget; "
            "or the API's other ends)."
        ),
    ),
]


def emulator_options(command: F) -> F:
    """``serve``'s options; all but ``--host`` and ``--port`` become ``options``."""

    @functools.wraps(command)
    def wrapper(host: str, port: int, **settings: Any) -> Any:
        return command(host=host, port=port, options=_emulator_options(**settings))

    return with_options(_SERVE_OPTIONS, wrapper)


def _emulator_options(
    faults: str | None, seed_file: Path | None, empty_backfill: str, **fields: Any
) -> EmulatorOptions:
    """The EmulatorOptions the flags ask for; a bad fault spec or seed is a ConfigError."""
    from taxsync.emulator import EmulatorOptions, Faults, SeedError, load_seed

    try:
        fault_plan = Faults.parse(faults) if faults else None
    except ValueError as exc:
        raise ConfigError(f"--faults: {exc}") from None
    try:
        seed = load_seed(seed_file) if seed_file is not None else None
    except SeedError as exc:
        raise emulator_error(exc) from None
    return EmulatorOptions(
        faults=fault_plan,
        seed=seed,
        refuse_empty_backfill=empty_backfill == "refuse",
        **fields,
    )


@click.group()
def local() -> None:
    """The local Mixpeek emulator."""


@local.command("serve")
@emulator_options
def serve(host: str, port: int, options: EmulatorOptions) -> int:
    """Run the Mixpeek emulator over HTTP."""
    from taxsync.emulator import SeedError, StoreError
    from taxsync.emulator import serve as run_server

    try:
        run_server(options, host=host, port=port)
    except (SeedError, StoreError) as exc:
        # Refused before listening: a bad seed, or a state file that cannot be used.
        raise emulator_error(exc) from None
    return EXIT_OK


@local.command("seed")
@click.argument("seed_file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE")
@local_state_option
def seed(seed_file: Path, local_state: Path | None) -> int:
    """Write the collections and retrievers of a seed FILE into the embedded emulator's state.

    Re-seeding adds or updates what the seed declares and keeps everything else
    (taxonomies, tasks, other collections, and the taxonomy entries apply attached).
    """
    from taxsync.emulator import SeedError, Store, StoreError, load_seed

    state = local_state or Path(os.environ.get("TAXSYNC_LOCAL_STATE") or DEFAULT_LOCAL_STATE)
    try:
        loaded = load_seed(seed_file)
        collections, retrievers = Store(state).seed(loaded)
    except (SeedError, StoreError) as exc:
        raise emulator_error(exc) from None
    names = ", ".join(loaded.namespaces)
    click.echo(
        f"Seeded {collections} collection(s) and {retrievers} retriever(s) in "
        f"{len(loaded.namespaces)} namespace(s) ({names}) into {state}"
    )
    return EXIT_OK
