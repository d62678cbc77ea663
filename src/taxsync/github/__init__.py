"""GitHub Actions integration: outputs, step summary, annotations and the plan comment.

Everything GitHub-specific lives here so it is tested like the rest of taxsync; the
composite ``action.yml`` only installs taxsync and runs ``taxsync plan --github`` or
``taxsync apply --github``. The CLI builds a ``GitHubContext`` from the environment and
hands plans, apply results and errors to the reporters.

The package: ``context`` (the run's environment and event, links to the manifests),
``api`` (the REST calls), ``comment`` (the pull-request comment), ``drift`` (the issue a
scheduled plan keeps while live state differs), ``trim`` (markdown cut to a limit), ``workflow`` (workflow commands, outputs, the step summary) and ``reporters``
(what ``plan --github`` and ``apply --github`` do).

The token is only ever sent in an ``Authorization`` header: it is kept out of ``repr``,
out of every message, and refused over plain http to anything but loopback.
"""

from __future__ import annotations

from taxsync.github.api import GitHubApi
from taxsync.github.comment import (
    ACTIONS_BOT_LOGIN,
    COMMENT_BUDGET,
    COMMENT_LIMIT,
    MARKER,
    CommentOutcome,
    comment_marker,
    compose_comment,
    upsert_pr_comment,
)
from taxsync.github.context import (
    DEFAULT_API_URL,
    DRIFT_EVENTS,
    DRIFT_LABEL,
    PR_EVENTS,
    GitHubContext,
    context_problem,
    source_link,
    source_url,
)
from taxsync.github.drift import (
    DriftOutcome,
    compose_drift_issue,
    drift_marker,
    drift_title,
    keep_drift_issue,
)
from taxsync.github.reporters import (
    ApplyReporter,
    PlanReporter,
    check_apply_allowed,
    report_apply,
    report_plan,
    report_plan_error,
    skip_fork_without_secrets,
)
from taxsync.github.trim import trim_markdown
from taxsync.github.workflow import (
    SUMMARY_LIMIT_BYTES,
    append_summary,
    escape_data,
    escape_property,
    manifest_annotations,
    workflow_command,
    workspace_relative,
    write_outputs,
)

__all__ = [
    "ACTIONS_BOT_LOGIN",
    "COMMENT_BUDGET",
    "COMMENT_LIMIT",
    "DEFAULT_API_URL",
    "DRIFT_EVENTS",
    "DRIFT_LABEL",
    "MARKER",
    "PR_EVENTS",
    "SUMMARY_LIMIT_BYTES",
    "ApplyReporter",
    "CommentOutcome",
    "DriftOutcome",
    "GitHubApi",
    "GitHubContext",
    "PlanReporter",
    "append_summary",
    "check_apply_allowed",
    "comment_marker",
    "compose_comment",
    "compose_drift_issue",
    "context_problem",
    "drift_marker",
    "drift_title",
    "escape_data",
    "escape_property",
    "keep_drift_issue",
    "manifest_annotations",
    "report_apply",
    "report_plan",
    "report_plan_error",
    "skip_fork_without_secrets",
    "source_link",
    "source_url",
    "trim_markdown",
    "upsert_pr_comment",
    "workflow_command",
    "workspace_relative",
    "write_outputs",
]
