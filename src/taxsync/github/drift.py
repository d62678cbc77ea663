"""The drift issue: one open issue, kept by scheduled and manual plans, that says where live
state differs from the manifests.

A nightly plan that fails a job nobody watches tells no one; an issue can be assigned. On a
``schedule`` or ``workflow_dispatch`` run, ``plan --github`` opens the issue when the plan
has changes, rewrites its body on each run that still finds some, and closes it with a
comment once the plan is empty. The issue is found by its label (``taxsync-drift`` unless
``TAXSYNC_DRIFT_LABEL`` says otherwise), its hidden marker and its author, so an issue
someone else labelled is never edited.
"""

from __future__ import annotations

from typing import Any, Literal

from taxsync.errors import GitHubError
from taxsync.github.api import GitHubApi
from taxsync.github.comment import (
    ACTIONS_BOT_LOGIN,
    COMMENT_BUDGET,
    find_marked,
    github_api,
)
from taxsync.github.context import GitHubContext
from taxsync.github.trim import comment_length, trim_markdown, trim_note
from taxsync.redact import redact
from taxsync.render import SAFE_URL, md_inline, visible

DriftOutcome = Literal["opened", "updated", "unchanged", "closed", "none"]
_LABEL_COLOR = "d93f0b"  # GitHub's orange: needs attention, not an outage
_LABEL_DESCRIPTION = "Live Mixpeek taxonomies differ from the manifests (kept by taxsync)"


def drift_marker(key: str = "") -> str:
    """The hidden first line of the drift issue (one issue per manifest tree ``key``)."""
    if not key:
        return "<!-- taxsync-drift -->"
    safe = visible(key).replace("--", "- -").replace(">", "")
    return f"<!-- taxsync-drift {safe} -->"


def drift_title(ctx: GitHubContext) -> str:
    """The issue's title; the manifest tree is named when there are several."""
    where = f" ({visible(ctx.comment_key)})" if ctx.comment_key else ""
    return f"taxsync: live taxonomies differ from the manifests{where}"


def compose_drift_issue(ctx: GitHubContext, markdown: str) -> str:
    """Marker, what drift means and what to do, the (trimmed) plan, and the run's link."""
    head = drift_marker(ctx.comment_key) + "\n" + _explanation(ctx) + "\n\n"
    foot = f"\n<sub>{_checked_by(ctx)}</sub>\n"
    room = COMMENT_BUDGET - comment_length(head) - comment_length(foot)
    return head + trim_markdown(markdown, room, trim_note(ctx, "a GitHub issue")) + foot


def _explanation(ctx: GitHubContext) -> str:
    ref = ctx.ref.removeprefix("refs/heads/") or "the checked-out commit"
    return (
        f"The live Mixpeek taxonomies differ from the manifests on <code>{md_inline(ref)}</code>"
        ": someone changed them outside taxsync, or an apply failed. Re-run the apply, or "
        "bring the manifests in line, so that they describe what is live. taxsync updates "
        "this issue on each drift check and closes it once nothing differs."
    )


def _checked_by(ctx: GitHubContext) -> str:
    url = ctx.run_url  # None unless the run's values are sound
    run = f"[workflow run]({url})" if url and SAFE_URL.fullmatch(url) else "a workflow run"
    manifests = f" · manifests <code>{md_inline(ctx.comment_key)}</code>" if ctx.comment_key else ""
    return f"checked by {run}{manifests}"


def keep_drift_issue(
    ctx: GitHubContext, drifted: bool, markdown: str, api: GitHubApi | None = None
) -> DriftOutcome:
    """Open, update or close the drift issue after a drift check's plan.

    ``drifted``: the plan has changes; ``markdown``: the plan as the issue shows it.
    """
    if not ctx.repository:
        raise GitHubError("GITHUB_REPOSITORY is not set")
    with github_api(ctx, api) as gh:
        author = ctx.comment_author or gh.authenticated_login() or ACTIONS_BOT_LOGIN
        issues = gh.list_open_issues(ctx.repository, ctx.drift_label)
        issue = find_marked(issues, drift_marker(ctx.comment_key), author)
        if not drifted:
            return "none" if issue is None else _close(ctx, gh, issue)
        body = redact(compose_drift_issue(ctx, markdown))
        if issue is None:
            gh.ensure_label(ctx.repository, ctx.drift_label, _LABEL_COLOR, _LABEL_DESCRIPTION)
            gh.create_issue(ctx.repository, drift_title(ctx), body, [ctx.drift_label])
            return "opened"
        if issue.get("body") == body:
            return "unchanged"
        gh.update_issue(ctx.repository, _number(issue), body=body)
        return "updated"


def _close(ctx: GitHubContext, gh: GitHubApi, issue: dict[str, Any]) -> DriftOutcome:
    number = _number(issue)
    note = f"No drift: the live taxonomies match the manifests again ({_checked_by(ctx)})."
    gh.create_issue_comment(ctx.repository, number, redact(note))
    gh.update_issue(ctx.repository, number, state="closed", state_reason="completed")
    return "closed"


def _number(issue: dict[str, Any]) -> int:
    number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise GitHubError("the drift issue GitHub listed has no issue number")
    return number
