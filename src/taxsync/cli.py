"""The ``taxsync`` command line: parse options, call the core, render, choose the exit code.

The only module that imports click. Heavy modules (pydantic, httpx, PyYAML, the
emulator) are imported inside the commands, so ``taxsync --version`` starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from taxsync import __version__
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

if TYPE_CHECKING:
    from taxsync.applier import ApplyResult
    from taxsync.client import MixpeekClient
    from taxsync.manifest import DesiredTaxonomy
    from taxsync.plan import Plan
    from taxsync.planner import PlanOptions

F = TypeVar("F", bound=Callable[..., Any])
LOCAL_API_URL = "http://taxsync.local"
DEFAULT_LOCAL_STATE = Path(".taxsync") / "local-state.json"


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: every expected failure becomes a message and an exit code, never a traceback."""
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
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _report(exc: TaxsyncError) -> None:
    click.echo(f"Error: {exc}", err=True)
    for line in exc.details:
        click.echo(f"  {line}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="taxsync")
def cli() -> None:
    """Declarative GitOps reconciler for Mixpeek taxonomies."""


# --- shared options -----------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    api_url: str
    local_state: Path | None  # set: run against the in-process emulator
    insecure: bool
    verbose: bool
    retry_timeout: float
    rate_limit: float | None
    concurrency: int

    @property
    def display_url(self) -> str:
        return f"local ({self.local_state})" if self.local_state else self.api_url


def connection_options(command: F) -> F:
    """Options every command that talks to the API shares."""
    options = [
        click.option(
            "--api-url",
            envvar="MIXPEEK_API_URL",
            default="https://api.mixpeek.com",
            show_default=True,
            help="Mixpeek API base URL (env MIXPEEK_API_URL).",
        ),
        click.option(
            "--local", is_flag=True, help="Use the embedded emulator in process instead of the API."
        ),
        click.option(
            "--local-state",
            envvar="TAXSYNC_LOCAL_STATE",
            type=click.Path(path_type=Path),
            default=DEFAULT_LOCAL_STATE,
            show_default=True,
            help="State file of the embedded emulator (env TAXSYNC_LOCAL_STATE).",
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
        local_state = kwargs.pop("local_state")
        kwargs["conn"] = Connection(
            api_url=kwargs.pop("api_url"),
            local_state=local_state if kwargs.pop("local") else None,
            insecure=kwargs.pop("insecure"),
            verbose=kwargs.pop("verbose"),
            retry_timeout=kwargs.pop("retry_timeout"),
            rate_limit=_parse_rate(kwargs.pop("rate_limit")),
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
        rate = float(number)
    except ValueError:
        raise ConfigError(f"--rate-limit: expected N/min (e.g. 60/min), got {text!r}") from None
    if rate <= 0:
        raise ConfigError("--rate-limit must be positive")
    return rate


def _namespace_options(command: F) -> F:
    command = click.option(
        "--shard",
        metavar="I/N",
        default=None,
        help="Only namespaces whose stable hash falls in shard I of N.",
    )(command)
    return click.option(
        "-n",
        "--namespace",
        "namespaces",
        multiple=True,
        metavar="NS",
        help="Only these namespaces (repeatable).",
    )(command)


def _github_option(command: F) -> F:
    return click.option(
        "--github",
        is_flag=True,
        help="Report to GitHub Actions: outputs, step summary, annotations, the PR comment.",
    )(command)


def _github(enabled: bool) -> Any:
    """The GitHub Actions context when ``--github`` is given, else None."""
    if not enabled:
        return None
    from taxsync.github import GitHubContext

    return GitHubContext.from_env(os.environ)


@contextlib.contextmanager
def _github_failure(gh: Any, comment: bool) -> Iterator[None]:
    """A failure to plan also shows where reviewers look (annotations, summary, comment)."""
    try:
        yield
    except TaxsyncError as exc:
        if gh is not None:
            from taxsync.github import report_plan_error

            report_plan_error(gh, exc, comment)
        raise


@contextlib.contextmanager
def _client(conn: Connection) -> Iterator[MixpeekClient]:
    from taxsync.client import MixpeekClient, RetryPolicy, check_api_url

    if conn.verbose:
        _log_http_to_stderr()
    retry = RetryPolicy(total_seconds=conn.retry_timeout)
    common: dict[str, Any] = {
        "retry": retry,
        "rate_limit_per_minute": conn.rate_limit,
        "max_connections": max(conn.concurrency, 4),
    }
    if conn.local_state is not None:
        from taxsync.emulator import local_transport

        transport = local_transport(conn.local_state)
        yield MixpeekClient(LOCAL_API_URL, "local", transport=transport, **common)
        return
    api_key = os.environ.get("MIXPEEK_API_KEY", "").strip()
    if not api_key:
        raise ConfigError(
            "MIXPEEK_API_KEY is not set: export your Mixpeek API key, or use --local "
            "to run against the embedded emulator"
        )
    yield MixpeekClient(check_api_url(conn.api_url, conn.insecure), api_key, **common)


def _log_http_to_stderr() -> None:
    http_log = logging.getLogger("taxsync.http")
    for handler in list(http_log.handlers):
        http_log.removeHandler(handler)  # one handler, bound to the current stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("http: %(message)s"))
    http_log.addHandler(handler)
    http_log.setLevel(logging.DEBUG)


def _run(coro_factory: Callable[[asyncio.Event], Any]) -> Any:
    """Run the async core; Ctrl-C sets ``stop`` (finish in-flight, start nothing new)."""

    async def runner() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            click.echo(
                "\nInterrupt: finishing in-flight writes, starting no new ones "
                "(Ctrl-C again to abort).",
                err=True,
            )
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        return await coro_factory(stop)

    return asyncio.run(runner())


def _style() -> Any:
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
    from taxsync.manifest import load_tree

    desired = load_tree(path)
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
@click.option(
    "--prune", is_flag=True, help="Plan deletes of managed taxonomies no manifest declares."
)
@click.option("--no-comment", is_flag=True, help="With --github: no pull-request comment.")
@_github_option
@_namespace_options
@connection_options
def plan(
    path: Path,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    prune: bool,
    namespaces: tuple[str, ...],
    shard: str | None,
    github: bool,
    no_comment: bool,
    conn: Connection,
) -> int:
    """Show what apply would change in each namespace."""
    from taxsync import render

    gh = _github(github)
    if gh is not None:
        from taxsync.github import report_plan, skip_fork_without_secrets

        if skip_fork_without_secrets(gh, os.environ):
            return EXIT_OK
        out = out or Path(os.environ.get("RUNNER_TEMP", ".taxsync")) / "taxsync-plan.json"
    with _github_failure(gh, comment=not no_comment):
        the_plan = _make_plan(_load(path), conn, prune, namespaces, shard)
    if out is not None:
        _write_atomic(out, the_plan.to_json())
    if gh is not None and out is not None:
        report_plan(gh, the_plan, out, comment=not no_comment)
    if fmt == "json":
        click.echo(the_plan.to_json(), nl=False)
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
@click.option("--prune", is_flag=True, help="Delete managed taxonomies no manifest declares.")
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
@_namespace_options
@connection_options
def apply(
    path: Path | None,
    plan_file: Path | None,
    auto_approve: bool,
    prune: bool,
    allow_replace: bool,
    wait: bool,
    wait_timeout: float,
    fmt: str,
    namespaces: tuple[str, ...],
    shard: str | None,
    github: bool,
    conn: Connection,
) -> int:
    """Make the live taxonomies match the manifests under PATH (or a saved --plan)."""
    from taxsync import render
    from taxsync.applier import ApplyOptions

    if (path is None) == (plan_file is None):
        raise click.UsageError("give either PATH or --plan FILE")
    gh = _github(github)
    if gh is not None:
        from taxsync.github import check_apply_allowed

        check_apply_allowed(gh)
    with _github_failure(gh, comment=False):
        desired = _load(path) if path is not None else None
        if plan_file is not None:
            the_plan = _read_plan(plan_file, conn)
        else:
            assert desired is not None
            the_plan = _make_plan(desired, conn, prune, namespaces, shard)
    if fmt == "text":
        click.echo(render.plan_text(the_plan, _style()), nl=False)
    if not the_plan.has_changes:
        return _finish_apply(_empty_result(), the_plan, fmt, gh)
    _refuse_unsafe(the_plan, allow_replace)
    if plan_file is None and not auto_approve:
        _confirm()
    options = ApplyOptions(conn.concurrency, allow_replace, wait, wait_timeout, _locator(desired))
    result = _apply(the_plan, conn, options, check_stale=plan_file is not None, fmt=fmt)
    return _finish_apply(result, the_plan, fmt, gh)


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
def export(namespaces: tuple[str, ...], out: Path, force: bool, conn: Connection) -> int:
    """Write one manifest per live taxonomy, to bring existing taxonomies under git."""
    from taxsync.export import plan_files, problems_in, write_files

    async def read(stop: asyncio.Event) -> Any:
        with _client(conn) as client:
            async with client:
                return await client.read_live(sorted(set(namespaces)), conn.concurrency)

    files = plan_files(out, _run(read))
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
def history(name: str, namespace: str, fmt: str, conn: Connection) -> int:
    """Show the versions of taxonomy NAME and what changed between consecutive ones."""
    from taxsync import render
    from taxsync.history import history as build_history

    async def read(stop: asyncio.Event) -> Any:
        with _client(conn) as client:
            async with client:
                head = await client.get_taxonomy(namespace, name)
                if head is None or head.taxonomy_id is None:
                    raise TaxsyncError(f"taxonomy {name!r} not found in namespace {namespace!r}")
                return await client.list_versions(namespace, head.taxonomy_id)

    result = build_history(namespace, _run(read))
    if fmt == "json":
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(render.history_text(result), nl=False)
    return EXIT_OK


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
) -> int:
    """Run the Mixpeek emulator over HTTP."""
    from taxsync.emulator import Faults
    from taxsync.emulator import serve as run_server

    try:
        fault_plan = Faults.parse(faults) if faults else None
    except ValueError as exc:
        raise ConfigError(f"--faults: {exc}") from None
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
    )
    return EXIT_OK


# --- the steps the commands share ------------------------------------------------------


def _plan_options(
    conn: Connection, prune: bool, namespaces: tuple[str, ...], shard: str | None
) -> PlanOptions:
    from taxsync.planner import PlanOptions

    return PlanOptions(
        prune=prune,
        namespaces=frozenset(namespaces),
        only_namespaces=bool(namespaces),
        shard=_parse_shard(shard),
        api_url=LOCAL_API_URL if conn.local_state else conn.api_url,
    )


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


def _load(path: Path) -> list[DesiredTaxonomy]:
    from taxsync.manifest import load_tree

    return load_tree(path)


def _make_plan(
    desired: list[DesiredTaxonomy],
    conn: Connection,
    prune: bool,
    namespaces: tuple[str, ...],
    shard: str | None,
) -> Plan:
    from taxsync.planner import covered_namespaces
    from taxsync.planner import plan as make_plan

    options = _plan_options(conn, prune, namespaces, shard)
    wanted = covered_namespaces(desired, options)

    async def build(stop: asyncio.Event) -> Plan:
        with _client(conn) as client:
            async with client:
                live = await client.read_live(wanted, concurrency=conn.concurrency)
        return make_plan(_selected(desired, wanted), live, options)

    result: Plan = _run(build)
    return result


def _selected(desired: list[DesiredTaxonomy], namespaces: list[str]) -> list[DesiredTaxonomy]:
    chosen = set(namespaces)
    return [d for d in desired if d.namespace in chosen]


def _read_plan(path: Path, conn: Connection) -> Plan:
    from pydantic import ValidationError

    from taxsync.plan import FORMAT_VERSION, Plan

    try:
        the_plan = Plan.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the plan: {exc.strerror}") from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: not a taxsync plan ({exc.error_count()} problem(s))") from None
    if the_plan.format_version != FORMAT_VERSION:
        raise ConfigError(f"{path}: plan format {the_plan.format_version} is not supported")
    target = LOCAL_API_URL if conn.local_state else conn.api_url.rstrip("/")
    if the_plan.api_url and the_plan.api_url.rstrip("/") != target:
        raise ConfigError(f"{path}: the plan was made against {the_plan.api_url}, not {target}")
    return the_plan


def _locator(desired: list[DesiredTaxonomy] | None) -> Callable[[Any, str], str] | None:
    """With the manifests at hand, API field errors point at their exact line."""
    if desired is None:
        return None
    by_key = {d.key: d for d in desired}

    def locate(change: Any, field: str) -> str:
        desired = by_key.get((change.namespace, change.name))
        return desired.locate(field) if desired else str(change.source or change.label)

    return locate


def _refuse_unsafe(the_plan: Plan, allow_replace: bool) -> None:
    replaces = [c.label for c in the_plan.changes if c.action == "replace"]
    if replaces and not allow_replace:
        raise ConfigError(
            f"the plan replaces {len(replaces)} taxonomy(ies) (deleted, then recreated with a "
            f"new id): {', '.join(replaces)}; pass --allow-replace to proceed. Nothing was written."
        )


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ConfigError(
            "refusing to apply without confirmation: no terminal; "
            "pass --auto-approve (or apply a reviewed plan with --plan FILE)"
        )
    if not click.confirm("Apply these changes?", default=False):
        raise ConfigError("apply cancelled; nothing was written")


def _apply(
    the_plan: Plan, conn: Connection, options: Any, check_stale: bool, fmt: str
) -> ApplyResult:
    from taxsync.applier import apply_plan, find_stale, raise_if_stale

    async def run(stop: asyncio.Event) -> ApplyResult:
        with _client(conn) as client, _progress(fmt, len(the_plan.changes)) as report:
            async with client:
                if check_stale:
                    raise_if_stale(await find_stale(client, the_plan))
                return await apply_plan(client, the_plan, options, report, stop)

    result: ApplyResult = _run(run)
    return result


@contextlib.contextmanager
def _progress(fmt: str, total: int) -> Iterator[Callable[[Any], None]]:
    """Report each change as it completes: a progress bar on a terminal (problems still
    printed as lines), one line per change otherwise."""
    from taxsync import render

    style = _style()
    if fmt != "text":
        yield lambda outcome: None
        return
    if not sys.stderr.isatty():
        yield lambda outcome: click.echo(render.result_line(outcome, style))
        return
    with click.progressbar(length=total, label="Applying", file=sys.stderr) as bar:

        def report(outcome: Any) -> None:
            if outcome.status != "applied":
                click.echo("\r" + render.result_line(outcome, style), err=True)
            bar.update(1)

        yield report


def _finish_apply(result: ApplyResult, the_plan: Plan, fmt: str, gh: Any) -> int:
    """Report the outcome (stdout, GitHub) and turn it into an exit code."""
    from taxsync import render

    if gh is not None:
        from taxsync.github import report_apply

        report_apply(gh, result, the_plan)
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


def _empty_result() -> ApplyResult:
    from taxsync.applier import ApplyResult

    return ApplyResult()


def _write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a temporary sibling, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
