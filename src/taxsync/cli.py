"""The ``taxsync`` command line: parse options, call the core, render, choose the exit code.

The only module that imports click. Heavy modules (pydantic, httpx, PyYAML, the
emulator) are imported inside the commands, so ``taxsync --version`` starts fast.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

from taxsync import __version__, reconcile
from taxsync.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ApplyFailed,
    ConfigError,
    Interrupted,
    TaxsyncError,
)
from taxsync.reconcile import DEFAULT_API_URL, DEFAULT_LOCAL_STATE, Reporter, Reporters, Settings
from taxsync.redact import RedactingStream, register_environment

if TYPE_CHECKING:
    from taxsync.emulator.resources import TaskOutcome
    from taxsync.plan import ApplyResult, ChangeResult, Plan
    from taxsync.render import Style

F = TypeVar("F", bound=Callable[..., Any])


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: every expected failure becomes a message and an exit code, never a traceback.

    Whatever is printed passes through ``redact``: known secrets never reach the output.
    """
    register_environment(os.environ)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        code = _main(argv)
    finally:
        sys.stdout, sys.stderr = streams
    sys.exit(code)


def _main(argv: list[str] | None) -> int:
    try:
        code = cli.main(args=argv, prog_name="taxsync", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = EXIT_ERROR  # usage errors too: 2 is reserved for "plan has changes"
    except TaxsyncError as exc:
        _report(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line; the traceback only on request
        if os.environ.get("TAXSYNC_DEBUG"):
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("Set TAXSYNC_DEBUG=1 to see the traceback, and please report it.", err=True)
        code = EXIT_ERROR
    return code if isinstance(code, int) else EXIT_OK


def _report(exc: TaxsyncError) -> None:
    # Messages quote manifests, file names and the API: untrusted text, shown inert.
    from taxsync.render import plain

    click.echo(f"Error: {plain(str(exc))}", err=True)
    for line in exc.details:
        click.echo(f"  {plain(line)}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="taxsync")
def cli() -> None:
    """Declarative GitOps reconciler for Mixpeek taxonomies."""


# --- shared options -----------------------------------------------------------------


def connection_options(command: F) -> F:
    """Options every command that talks to the API shares; they become ``settings``."""
    options = [
        click.option(
            "--api-url",
            default=None,
            help=f"Mixpeek API base URL (env MIXPEEK_API_URL; default {DEFAULT_API_URL}).",
        ),
        click.option(
            "--local", is_flag=True, help="Use the embedded emulator in process instead of the API."
        ),
        click.option(
            "--local-state",
            type=click.Path(path_type=Path),
            default=None,
            help=f"State file of the embedded emulator (env TAXSYNC_LOCAL_STATE; default {DEFAULT_LOCAL_STATE}).",
        ),
        click.option(
            "--insecure", is_flag=True, help="Allow plain http:// to a non-loopback API host."
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="Log every HTTP call (method, path, status, time) to stderr.",
        ),
        click.option(
            "--retry-timeout",
            type=click.FloatRange(min=1),
            default=30.0,
            show_default=True,
            help="Seconds one request may spend retrying.",
        ),
        click.option(
            "--rate-limit",
            type=str,
            default=None,
            metavar="N/min",
            help="Client-side request rate limit shared by all requests, e.g. 60/min.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            default=8,
            show_default=True,
            help="Namespaces read, and changes applied, at the same time.",
        ),
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        if kwargs.pop("verbose"):
            _log_http_to_stderr()
        kwargs["settings"] = Settings.from_env(
            os.environ,
            api_url=kwargs.pop("api_url"),
            local=kwargs.pop("local"),
            local_state=kwargs.pop("local_state"),
            insecure=kwargs.pop("insecure"),
            retry_timeout=kwargs.pop("retry_timeout"),
            rate_limit_per_minute=_parse_rate(kwargs.pop("rate_limit")),
            concurrency=kwargs.pop("concurrency"),
        )
        return command(**kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def _parse_rate(text: str | None) -> float | None:
    if text is None:
        return None
    number = text.removesuffix("/min").strip()
    try:
        return float(number)
    except ValueError:
        raise ConfigError(f"--rate-limit: expected N/min (e.g. 60/min), got {text!r}") from None


def plan_choice_options(prune_help: str) -> Callable[[F], F]:
    """The options ``plan`` and ``apply`` share about what a plan covers and how; they
    become ``choices`` (a ``reconcile.PlanChoices``)."""
    options = [
        click.option("--prune", is_flag=True, help=prune_help),
        click.option(
            "-n",
            "--namespace",
            "namespaces",
            multiple=True,
            metavar="NS",
            help="Only these namespaces (repeatable).",
        ),
        click.option(
            "--shard",
            metavar="I/N",
            default=None,
            callback=lambda ctx, param, value: _parse_shard(value),
            help="Only namespaces whose stable hash falls in shard I of N.",
        ),
        click.option(
            "--allow-missing-references",
            is_flag=True,
            help="Plan even if a retriever or collection a manifest names does not exist yet "
            "(other tooling creates it in the same rollout); each becomes a note.",
        ),
        click.option(
            "--backfill",
            is_flag=True,
            help="After each config change (and each attach), re-enrich the documents of the "
            "collections concerned (apply-taxonomy).",
        ),
        click.option(
            "--detach-deleted",
            is_flag=True,
            help="With --prune: detach a taxonomy being deleted from the collections that "
            "still apply it, then delete it (otherwise its delete is blocked).",
        ),
    ]

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            kwargs["choices"] = reconcile.PlanChoices(
                prune=kwargs.pop("prune"),
                namespaces=tuple(kwargs.pop("namespaces")),
                shard=kwargs.pop("shard"),
                check_references=not kwargs.pop("allow_missing_references"),
                backfill=kwargs.pop("backfill"),
                detach_deleted=kwargs.pop("detach_deleted"),
            )
            return command(**kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard: expected I/N such as 1/4, got {text!r}") from None
    if not 1 <= index <= count:
        raise ConfigError(f"--shard: I must be between 1 and N, got {text!r}")
    return (index, count)


# A flag several commands share, as a ready-made click decorator.
_github_option = click.option(
    "--github",
    is_flag=True,
    help="Report to GitHub Actions: outputs, step summary, annotations, the PR comment.",
)


def _log_http_to_stderr() -> None:
    http_log = logging.getLogger("taxsync.http")
    for handler in list(http_log.handlers):
        http_log.removeHandler(handler)  # one handler, bound to the current stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("http: %(message)s"))
    http_log.addHandler(handler)
    http_log.setLevel(logging.DEBUG)


def _style() -> Style:
    from taxsync.render import Style

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return Style(bool(colour))


# --- commands -----------------------------------------------------------------------


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--local", is_flag=True, hidden=True, help="Accepted for symmetry; validate is offline."
)
def validate(path: Path, local: bool) -> int:
    """Check the manifests under PATH offline (no API call)."""
    desired = reconcile.load_manifests(path)
    files = len({d.source.file for d in desired})
    click.echo(f"{len(desired)} taxonomy manifest(s) in {files} file(s) are valid.")
    return EXIT_OK


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Also save the plan as JSON here.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="How to print the plan on stdout.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when there are changes, 0 when there are none.",
)
@click.option("--no-comment", is_flag=True, help="With --github: no pull-request comment.")
@_github_option
@plan_choice_options("Plan deletes of managed taxonomies no manifest declares.")
@connection_options
def plan(
    path: Path,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    github: bool,
    no_comment: bool,
    choices: reconcile.PlanChoices,
    settings: Settings,
) -> int:
    """Show what apply would change in each namespace."""
    from taxsync import render

    reporter = _plan_reporter(github, comment=not no_comment)
    if reporter.skip_plan(settings):
        return EXIT_OK
    the_plan = reconcile.plan_tree(
        path,
        settings,
        choices,
        out=reporter.plan_file(out),
        reporter=reporter,
    )
    if fmt == "json":
        click.echo(render.plan_json(the_plan), nl=False)
    elif fmt == "markdown":
        click.echo(render.plan_markdown(the_plan), nl=False)
    else:
        click.echo(render.plan_text(the_plan, _style()), nl=False)
    return EXIT_CHANGES if detailed_exitcode and the_plan.has_changes else EXIT_OK


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Apply this saved plan exactly (refused if stale).",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--allow-replace",
    is_flag=True,
    help="Allow replaces (type changes: delete then recreate with a new id).",
)
@click.option(
    "--wait", is_flag=True, help="Wait until created or re-versioned taxonomies are ready."
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds to wait for readiness.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How to print the result.",
)
@_github_option
@plan_choice_options("Delete managed taxonomies no manifest declares.")
@connection_options
def apply(
    path: Path | None,
    plan_file: Path | None,
    auto_approve: bool,
    allow_replace: bool,
    wait: bool,
    wait_timeout: float,
    fmt: str,
    github: bool,
    choices: reconcile.PlanChoices,
    settings: Settings,
) -> int:
    """Make the live taxonomies match the manifests under PATH (or a saved --plan)."""
    from taxsync import render

    if (path is None) == (plan_file is None):
        raise click.UsageError("give either PATH or --plan FILE")
    reporter = _apply_reporter(github, fmt)
    reporter.check_apply_allowed()
    desired = None
    if plan_file is not None:
        the_plan = reconcile.load_plan(plan_file, settings, reporter)
    else:
        assert path is not None
        desired = reconcile.load_manifests(path, reporter=reporter)
        the_plan = reconcile.plan_manifests(desired, settings, choices, reporter=reporter)
    if fmt == "text":
        click.echo(render.plan_text(the_plan, _style()), nl=False)
    if the_plan.has_changes:
        reconcile.check_replaces(the_plan, allow_replace)
        if plan_file is None and not auto_approve:
            _confirm()
    result = reconcile.apply(
        the_plan,
        settings,
        allow_replace=allow_replace,
        wait=wait,
        wait_timeout=wait_timeout,
        saved=plan_file is not None,
        desired=desired,
        reporter=reporter,
    )
    return _exit_code(result, fmt)


@cli.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    required=True,
    metavar="NS",
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
    from taxsync.export import plan_files, problems_in, write_files

    files = plan_files(out, *reconcile.read_live_and_neighbourhoods(settings, namespaces))
    write_files(files, force)
    for exported in files:
        click.echo(f"wrote {exported.path}  ({exported.namespace}/{exported.name})")
    click.echo(f"Exported {len(files)} taxonomy(ies) from {len(set(namespaces))} namespace(s).")
    for problem in problems_in(files):
        click.echo(f"warning: {problem} (fix it before planning)", err=True)
    return EXIT_OK


@cli.command()
@click.argument("name")
@click.option("-n", "--namespace", required=True, metavar="NS", help="The taxonomy's namespace.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@connection_options
def history(name: str, namespace: str, fmt: str, settings: Settings) -> int:
    """Show the versions of taxonomy NAME and what changed between consecutive ones."""
    from taxsync import render
    from taxsync.history import history as build_history

    result = build_history(namespace, reconcile.read_versions(settings, namespace, name))
    if fmt == "json":
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(render.history_text(result), nl=False)
    return EXIT_OK


@cli.command()
@click.option(
    "-n", "--namespace", required=True, metavar="NS", help="Where to probe (a scratch one is best)."
)
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
@connection_options
def doctor(namespace: str, collections: tuple[str, ...], fmt: str, settings: Settings) -> int:
    """Check the API's contract with a self-cleaning probe in NS; exit 1 if any check differs."""
    from taxsync import render

    report = reconcile.doctor(
        settings, namespace, collections=collections, reporter=_DoctorReporter()
    )
    click.echo(
        render.doctor_json(report) if fmt == "json" else render.doctor_text(report), nl=False
    )
    if report.interrupted:
        raise Interrupted("interrupted: the probe stopped; what it created was cleaned up")
    return EXIT_OK if report.ok else EXIT_ERROR


class _DoctorReporter(Reporter):
    def interrupting(self) -> None:
        click.echo(
            "Interrupt: finishing the request in flight, then cleaning up what the probe made.",
            err=True,
        )


@cli.command()
def schema() -> int:
    """Print the JSON Schema of a taxonomy manifest."""
    import json

    from taxsync.manifest import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
    return EXIT_OK


@cli.group()
def local() -> None:
    """The local Mixpeek emulator."""


@local.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    default=None,
    help="Persist state in this JSON file (default: memory only).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NAME",
    help="Pre-create this namespace (repeatable); then unknown namespaces are 404.",
)
@click.option(
    "--api-key",
    envvar="TAXSYNC_LOCAL_API_KEY",
    default=None,
    help="Accept only this bearer key (default: any non-empty key).",
)
@click.option(
    "--faults",
    default=None,
    metavar="SPEC",
    help="Fault injection, e.g. 'latency=20ms,429=0.1,503=0.05,seed=7'.",
)
@click.option(
    "--max-page-size",
    type=click.IntRange(1, 1000),
    default=1000,
    show_default=True,
    help="Largest page the list routes return.",
)
@click.option(
    "--ready-after-reads",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Cluster/llm inference reports ready=false for this many GETs of the taxonomy.",
)
@click.option(
    "--ready-after-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="...or until this many seconds after it was created, whichever comes first.",
)
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Put the collections and retrievers of this YAML/JSON seed file in place first.",
)
@click.option(
    "--lenient-taxonomy-refs",
    is_flag=True,
    help="Let a collection PATCH name taxonomies that do not exist (default: 404).",
)
@click.option(
    "--applied-taxonomy-delete",
    type=click.Choice(["dangling", "strict"]),
    default="dangling",
    show_default=True,
    help="Deleting a taxonomy that collections apply: leave their entries, or refuse (400).",
)
@click.option(
    "--empty-backfill",
    type=click.Choice(["refuse", "accept"]),
    default="refuse",
    show_default=True,
    help="apply-taxonomy on a collection with no documents: 400, or start a task anyway.",
)
@click.option(
    "--task-polls",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="A backfill task reports PENDING for this many GETs, then IN_PROGRESS as many.",
)
@click.option(
    "--task-outcome",
    type=click.Choice(["completed", "failed", "canceled"]),
    default="completed",
    show_default=True,
    help="How backfill tasks end (failed: with an error; canceled: as by their time budget).",
)
def serve(
    host: str,
    port: int,
    state: Path | None,
    namespaces: tuple[str, ...],
    api_key: str | None,
    faults: str | None,
    max_page_size: int,
    ready_after_reads: int,
    ready_after_seconds: float | None,
    seed_file: Path | None,
    lenient_taxonomy_refs: bool,
    applied_taxonomy_delete: str,
    empty_backfill: str,
    task_polls: int,
    task_outcome: str,
) -> int:
    """Run the Mixpeek emulator over HTTP."""
    from taxsync.emulator import Faults, SeedError, StoreError, load_seed
    from taxsync.emulator import serve as run_server

    try:
        fault_plan = Faults.parse(faults) if faults else None
    except ValueError as exc:
        raise ConfigError(f"--faults: {exc}") from None
    try:
        run_server(
            host=host,
            port=port,
            state_path=state,
            namespaces=namespaces,
            api_key=api_key,
            faults=fault_plan,
            max_page_size=max_page_size,
            ready_after_reads=ready_after_reads,
            ready_after_seconds=ready_after_seconds,
            seed=load_seed(seed_file) if seed_file is not None else None,
            lenient_taxonomy_refs=lenient_taxonomy_refs,
            applied_taxonomy_delete=applied_taxonomy_delete,
            refuse_empty_backfill=empty_backfill == "refuse",
            task_polls=task_polls,
            task_outcome=cast("TaskOutcome", task_outcome),
        )
    except (SeedError, StoreError) as exc:
        # Refused before listening: a bad seed, or a state file that cannot be used.
        raise _emulator_error(exc) from None
    return EXIT_OK


@local.command("seed")
@click.argument("seed_file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE")
@click.option(
    "--local-state",
    type=click.Path(path_type=Path),
    default=None,
    help=f"State file of the embedded emulator (env TAXSYNC_LOCAL_STATE; default {DEFAULT_LOCAL_STATE}).",
)
def seed(seed_file: Path, local_state: Path | None) -> int:
    """Write the collections and retrievers of a seed FILE into the embedded emulator's state.

    Re-seeding replaces the seeded collections and retrievers of the same id and keeps
    everything else (taxonomies, tasks, other collections).
    """
    from taxsync.emulator import SeedError, Store, StoreError, load_seed

    state = local_state or Path(os.environ.get("TAXSYNC_LOCAL_STATE") or DEFAULT_LOCAL_STATE)
    try:
        loaded = load_seed(seed_file)
        collections, retrievers = Store(state).seed(loaded)
    except (SeedError, StoreError) as exc:
        raise _emulator_error(exc) from None
    names = ", ".join(loaded.namespaces)
    click.echo(
        f"Seeded {collections} collection(s) and {retrievers} retriever(s) in "
        f"{len(loaded.namespaces)} namespace(s) ({names}) into {state}"
    )
    return EXIT_OK


def _emulator_error(exc: Exception) -> ConfigError:
    """A seed or state-file problem as a one-line error plus its detail lines."""
    first, *rest = str(exc).splitlines() or ["invalid seed"]
    return ConfigError(first, [line.strip() for line in rest])


# --- reporting and exit codes ------------------------------------------------------------


def _plan_reporter(github: bool, comment: bool) -> Reporter:
    if not github:
        return Reporter()
    from taxsync.github import GitHubContext, PlanReporter

    return PlanReporter(GitHubContext.from_env(os.environ), comment)


def _apply_reporter(github: bool, fmt: str) -> Reporter:
    terminal = _ApplyProgress(fmt, _style())
    if not github:
        return terminal
    from taxsync.github import ApplyReporter, GitHubContext

    return Reporters(terminal, ApplyReporter(GitHubContext.from_env(os.environ)))


class _ApplyProgress(Reporter):
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
        from taxsync.applier import task_ended
        from taxsync.render import plain

        if self.fmt != "text" or self.tasks.get(task_id) == status:
            return
        self.tasks[task_id] = status
        if self.bar is None:
            click.echo(f"backfill task {plain(task_id)}: {plain(status)}", err=True)
            return
        ended = sum(1 for s in self.tasks.values() if task_ended(s))
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


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ConfigError(
            "refusing to apply without confirmation: no terminal; "
            "pass --auto-approve (or apply a reviewed plan with --plan FILE)"
        )
    if not click.confirm("Apply these changes?", default=False):
        raise ConfigError("apply cancelled; nothing was written")


def _exit_code(result: ApplyResult, fmt: str) -> int:
    """Print the outcome and turn it into an exit code (an error for anything not applied)."""
    from taxsync import render

    if fmt == "json":
        click.echo(render.apply_json(result), nl=False)
    elif result.results:
        click.echo("\n" + render.apply_summary(result))
    if result.interrupted:
        raise Interrupted(
            f"interrupted: {result.count('applied')} change(s) applied, "
            f"{result.count('not_started')} not started; run apply again to finish"
        )
    if not result.ok:
        problems = [r for r in result.results if r.status != "applied"]
        raise ApplyFailed(
            "some changes did not apply; fix the cause and run apply again",
            [render.result_line(r, _style()) for r in problems],
        )
    return EXIT_OK
