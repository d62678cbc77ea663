"""What ``plan --github`` and ``apply --github`` do along the way.

The reporters the pipeline calls (``PlanReporter``, ``ApplyReporter``) and the steps
behind them: outputs, the step summary, annotations for manifest problems, the pull
request comment (a failure to comment is a warning), and the guard against applying from
a pull request.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from taxsync.errors import ConfigError, ManifestError, ManifestProblem, TaxsyncError
from taxsync.github.comment import CommentOutcome, upsert_pr_comment
from taxsync.github.context import GitHubContext, source_link
from taxsync.github.drift import keep_drift_issue
from taxsync.github.workflow import (
    append_summary,
    emit,
    manifest_annotations,
    workflow_command,
    workspace_relative,
    write_outputs,
)
from taxsync.plan import ApplyResult, Plan
from taxsync.render import apply_markdown, fenced, plain, plan_markdown, visible
from taxsync.session import Reporter, Settings

# Actors whose pull requests GitHub runs without the repository's Actions secrets.
_SECRETLESS_ACTORS = frozenset({"dependabot[bot]"})


def skip_fork_without_secrets(ctx: GitHubContext, has_api_key: bool) -> bool:
    """True (after a notice) for a pull request GitHub runs without secrets and no key.

    Pull requests from forks, and Dependabot's, get no Actions secrets: planning them
    cannot work, and failing would only mark every outside contribution red.
    """
    if not ctx.is_pull_request or has_api_key:
        return False
    if not (ctx.is_fork or ctx.actor in _SECRETLESS_ACTORS):
        return False
    reason = "pull request from a fork" if ctx.is_fork else f"pull request by {ctx.actor}"
    message = f"taxsync plan skipped: {reason}, where MIXPEEK_API_KEY is not available."
    emit(workflow_command("notice", message, title="taxsync"))
    write_outputs(ctx, {"changes": "false", "plan-file": "", "summary": f"skipped ({reason})"})
    append_summary(ctx, f"### taxsync plan\n\n{message}\n")
    return True


def report_plan(
    ctx: GitHubContext, plan: Plan, plan_file: Path, comment: bool
) -> CommentOutcome | None:
    """Outputs, step summary and, if ``comment``, the PR comment (on a pull request) or the
    drift issue (on a scheduled or manual run).

    A comment that cannot be written becomes a warning: the plan itself succeeded.
    Returns what happened to the comment, or None when none was attempted or it failed.
    """
    write_outputs(
        ctx,
        {
            "changes": "true" if plan.has_changes else "false",
            "plan-file": workspace_relative(plan_file, ctx.workspace),
            "summary": plan.summary.line(),
        },
    )
    _keep_out_of_git(plan_file, ctx.workspace)
    markdown = plan_markdown(plan, link=source_link(ctx))
    append_summary(ctx, markdown)
    if comment and ctx.is_pull_request:
        return _comment_or_warn(ctx, markdown)
    if comment and ctx.is_drift_check:
        # A failure here fails the step: on a drift check the issue is the whole report.
        outcome = keep_drift_issue(ctx, plan.has_changes, markdown)
        emit(f"taxsync: drift issue labelled {plain(ctx.drift_label)}: {outcome}")
    return None


def report_plan_error(ctx: GitHubContext, error: TaxsyncError, comment: bool) -> None:
    """Make a failed plan visible: annotations, the step summary, and the PR comment.

    The comment is updated too, so reviewers never read a stale plan as the current one.
    """
    if isinstance(error, ManifestError):
        for line in manifest_annotations(error, ctx.workspace):
            emit(line)
        lines = [_problem_line(p, ctx.workspace) for p in error.problems]
    else:
        lines = [str(error), *error.details]
    # In a code block nothing is markup and no @mention notifies; visible() keeps each
    # line one line and shows what a terminal would have obeyed.
    text = "\n".join(visible(line) for line in lines)
    markdown = "### taxsync plan\n\n**The plan failed.**\n\n" + fenced(text, "text")
    append_summary(ctx, markdown)
    if comment and ctx.is_pull_request:
        _comment_or_warn(ctx, markdown)


def check_apply_allowed(ctx: GitHubContext) -> None:
    """Refuse to apply from a pull request (unmerged code); warn off the default branch."""
    if ctx.is_pull_request:
        raise ConfigError(
            f"refusing to apply on a {ctx.event_name} event: apply runs on push to the "
            "default branch, after review; use command: plan on pull requests"
        )
    if ctx.default_branch and ctx.ref != f"refs/heads/{ctx.default_branch}":
        message = f"applying from {ctx.ref or 'an unknown ref'}, not the default branch {ctx.default_branch}"
        emit(workflow_command("warning", message, title="taxsync"))


def report_apply(ctx: GitHubContext, result: ApplyResult, plan: Plan) -> None:
    """Outputs and step summary of an apply; an error annotation if any change failed."""
    write_outputs(
        ctx,
        {
            "changes": "true" if plan.has_changes else "false",
            "plan-file": "",
            "summary": plan.summary.line(),
        },
    )
    markdown = plan_markdown(plan)
    if result.results:
        markdown += "\n" + apply_markdown(result)
    append_summary(ctx, markdown)
    if not result.ok:
        failed = len(result.results) - result.count("applied")
        message = f"taxsync apply: {failed} change(s) did not apply; see the step summary"
        emit(workflow_command("error", message, title="taxsync"))


def _comment_or_warn(ctx: GitHubContext, markdown: str) -> CommentOutcome | None:
    try:
        outcome = upsert_pr_comment(ctx, markdown)
    except TaxsyncError as exc:
        emit(workflow_command("warning", f"could not comment on the pull request: {exc}"))
        return None
    emit(f"taxsync: pull request #{ctx.pr_number} comment {outcome}")
    return outcome


def _problem_line(problem: ManifestProblem, workspace: Path) -> str:
    return problem.shown_at(workspace_relative(problem.file, workspace))


def _keep_out_of_git(plan_file: Path, workspace: Path) -> None:
    """A plan file written inside the checkout gets a ``*`` .gitignore beside it.

    So a later step's ``git add -A`` or clean-tree check never trips over it.
    """
    folder = plan_file.resolve().parent
    root = workspace.resolve()
    if folder == root or root not in folder.parents:
        return
    ignore = folder / ".gitignore"
    with contextlib.suppress(OSError):
        if not ignore.exists():
            ignore.write_text("# written by taxsync: plan files stay out of git\n*\n")


# --- reporters: what `plan --github` and `apply --github` do along the way -----------------


class PlanReporter(Reporter):
    """``plan --github``: outputs, the step summary, the PR comment, failures as annotations."""

    def __init__(self, ctx: GitHubContext, comment: bool) -> None:
        self.ctx = ctx
        self.comment = comment

    def plan_file(self, requested: Path | None) -> Path | None:
        """The plan is always saved, for the ``plan-file`` output: in RUNNER_TEMP by default."""
        return requested or (self.ctx.runner_temp or Path(".taxsync")) / "taxsync-plan.json"

    def skip_plan(self, settings: Settings) -> bool:
        return skip_fork_without_secrets(self.ctx, bool(settings.api_key))

    def failed(self, error: TaxsyncError) -> None:
        report_plan_error(self.ctx, error, self.comment)

    def planned(self, plan: Plan, plan_file: Path | None) -> None:
        if plan_file is not None:
            report_plan(self.ctx, plan, plan_file, self.comment)


class ApplyReporter(Reporter):
    """``apply --github``: refused on pull requests; outputs and the step summary."""

    def __init__(self, ctx: GitHubContext) -> None:
        self.ctx = ctx

    def check_apply_allowed(self) -> None:
        check_apply_allowed(self.ctx)

    def failed(self, error: TaxsyncError) -> None:
        report_plan_error(self.ctx, error, comment=False)

    def applied(self, result: ApplyResult, plan: Plan) -> None:
        report_apply(self.ctx, result, plan)
