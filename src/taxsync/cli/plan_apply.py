"""The commands of the reconcile flow: ``validate``, ``plan`` and ``apply``, and how
apply confirms, reports and turns its result into an exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from taxsync import reconcile
from taxsync.cli.options import (
    connection_options,
    github_option,
    plan_choice_options,
    style,
    wait_timeout,
)
from taxsync.cli.progress import ApplyProgress
from taxsync.errors import EXIT_CHANGES, EXIT_OK, ApplyFailed, ConfigError, Interrupted
from taxsync.reconcile import Reporter, Reporters, Settings

if TYPE_CHECKING:
    from taxsync.reconcile import ApplyResult


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--local", is_flag=True, hidden=True, help="Accepted for symmetry; validate is offline."
)
@click.option(
    "--git-tracked",
    is_flag=True,
    help="Only the files git tracks or has staged, not untracked ones (the pre-commit hook).",
)
def validate(path: Path, local: bool, git_tracked: bool) -> int:
    """Check the manifests under PATH offline (no API call)."""
    desired = reconcile.load_manifests(path, tracked_only=git_tracked)
    files = len({d.source.file for d in desired})
    click.echo(f"{len(desired)} taxonomy manifest(s) in {files} file(s) are valid.")
    return EXIT_OK


@click.command()
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
@click.option(
    "--changed-from",
    metavar="REF",
    help="Plan only the namespaces whose manifests changed since this git commit; "
    "what its manifests would do too is shown apart, as pending.",
)
@github_option
@plan_choice_options("Plan deletes of managed taxonomies no manifest declares.")
@connection_options
def plan(
    path: Path,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    github: bool,
    no_comment: bool,
    changed_from: str | None,
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
        changed_from=changed_from,
    )
    if fmt == "json":
        click.echo(render.plan_json(the_plan), nl=False)
    elif fmt == "markdown":
        click.echo(render.plan_markdown(the_plan), nl=False)
    else:
        click.echo(render.plan_text(the_plan, style()), nl=False)
    return EXIT_CHANGES if detailed_exitcode and the_plan.has_changes else EXIT_OK


@click.command()
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
@wait_timeout("Seconds to wait for readiness.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How to print the result.",
)
@github_option
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
    terminal = ApplyProgress(fmt, style())
    reporter = _apply_reporter(github, terminal)
    reporter.check_apply_allowed()
    desired = None
    if plan_file is not None:
        the_plan = reconcile.load_plan(plan_file, settings, reporter)
    else:
        assert path is not None
        desired = reconcile.load_manifests(path, reporter=reporter)
        the_plan = reconcile.plan_manifests(desired, settings, choices, reporter=reporter)
    if fmt == "text" and plan_file is not None:
        # Shown once its re-check against live state passed: a stale plan prints only why.
        terminal.preamble = render.plan_text(the_plan, style())
    elif fmt == "text":
        click.echo(render.plan_text(the_plan, style()), nl=False)
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


def _plan_reporter(github: bool, comment: bool) -> Reporter:
    if not github:
        return Reporter()
    return reconcile.github_plan_reporter(os.environ, comment)


def _apply_reporter(github: bool, terminal: ApplyProgress) -> Reporter:
    if not github:
        return terminal
    return Reporters(terminal, reconcile.github_apply_reporter(os.environ))


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
            [render.result_line(r, style()) for r in problems],
        )
    return EXIT_OK
