"""Options several commands share (how to reach the API, what a plan covers, --github),
and the small helpers every command uses to print."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from taxsync import reconcile
from taxsync.errors import ConfigError
from taxsync.reconcile import DEFAULT_API_URL, DEFAULT_LOCAL_STATE, Settings

if TYPE_CHECKING:
    from taxsync.render import Style

F = TypeVar("F", bound=Callable[..., Any])

#: ``--local-state``, for the commands that reach the embedded emulator and for ``local seed``.
local_state_option = click.option(
    "--local-state",
    type=click.Path(path_type=Path),
    default=None,
    help=f"State file of the embedded emulator (env TAXSYNC_LOCAL_STATE; default {DEFAULT_LOCAL_STATE}).",
)

# A flag several commands share, as a ready-made click decorator.
github_option = click.option(
    "--github",
    is_flag=True,
    help="Report to GitHub Actions: outputs, step summary, annotations, the PR comment.",
)

# What --concurrency bounds, in each command's own terms.
_CONCURRENCY_HELP = {
    "apply": "Namespaces read, and changes applied, at the same time.",
    "history": "Sizes the connection pool (history reads one taxonomy, a request at a time).",
    "doctor": "Sizes the connection pool (doctor probes one namespace, a step at a time).",
}
_CONCURRENCY_READS = "Namespaces read at the same time."


class _ConcurrencyOption(click.Option):
    """``--concurrency``, whose help says what it bounds in the command it belongs to."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = _CONCURRENCY_HELP.get(ctx.info_name or "", _CONCURRENCY_READS)
        return super().get_help_record(ctx)


_CONNECTION_OPTIONS = [
    click.option(
        "--api-url",
        default=None,
        help=f"Mixpeek API base URL (env MIXPEEK_API_URL; default {DEFAULT_API_URL}).",
    ),
    click.option(
        "--local", is_flag=True, help="Use the embedded emulator in process instead of the API."
    ),
    local_state_option,
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
        cls=_ConcurrencyOption,
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
    ),
]


def namespace_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Every namespace an option or argument gives follows the manifests' rules, checked
    before any request: a newline, a space at either end, ``a/b`` or an empty string is a
    one-line error naming the option."""
    for namespace in value if isinstance(value, tuple) else (value,):
        if namespace is not None:
            reconcile.check_namespace(namespace, _shown_param(param))
    return value


def name_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A taxonomy name an argument gives follows the manifests' rules, as namespaces do."""
    if value is not None:
        reconcile.check_name(value, _shown_param(param))
    return value


def one_namespace(help: str) -> Callable[[F], F]:
    """The required ``-n/--namespace NS`` of a command about one namespace, checked."""
    return click.option(
        "-n", "--namespace", required=True, metavar="NS", callback=namespace_callback, help=help
    )


# A taxonomy's name, as the commands about one taxonomy take it: checked like a manifest's.
taxonomy_name = click.argument("name", callback=name_callback)


def wait_timeout(help: str) -> Callable[[F], F]:
    """``--wait-timeout SECONDS``: how long a wait may last."""
    return click.option(
        "--wait-timeout", type=click.FloatRange(min=1), default=300.0, show_default=True, help=help
    )


def _shown_param(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return "/".join(param.opts)
    return param.human_readable_name


def with_options(options: Sequence[Callable[[Any], Any]], wrapper: Callable[..., Any]) -> Any:
    """``wrapper`` decorated with each click option of ``options``, listed in that order."""
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def connection_options(command: F) -> F:
    """Options every command that talks to the API shares; they become ``settings``."""

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

    return with_options(_CONNECTION_OPTIONS, wrapper)


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
            callback=namespace_callback,
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

        return with_options(options, wrapper)

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


def _log_http_to_stderr() -> None:
    http_log = logging.getLogger("taxsync.http")
    for handler in list(http_log.handlers):
        http_log.removeHandler(handler)  # one handler, bound to the current stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("http: %(message)s"))
    http_log.addHandler(handler)
    http_log.setLevel(logging.DEBUG)


def style() -> Style:
    """Colours on a terminal, unless NO_COLOR says otherwise."""
    from taxsync.render import Style

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return Style(bool(colour))
