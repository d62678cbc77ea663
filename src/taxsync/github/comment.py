"""taxsync's comment on a pull request: its marker, its body, and creating or updating it.

One comment per manifest tree (``comment_key``), found by its hidden marker and its
author, so a rerun updates the plan in place and never edits someone else's comment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from taxsync.errors import GitHubError
from taxsync.github.api import GitHubApi
from taxsync.github.context import GitHubContext, context_problem, dig
from taxsync.github.trim import comment_length, trim_markdown, trim_note
from taxsync.redact import redact
from taxsync.render import SAFE_URL, md_inline, visible

MARKER = "<!-- taxsync-plan -->"
# GitHub refuses comment bodies over 65,536 characters; stay clear of it, measured
# conservatively (see comment_length), so a big plan is trimmed rather than refused.
COMMENT_LIMIT = 65_536
COMMENT_BUDGET = 65_000
# The login GitHub shows for comments made with the Actions GITHUB_TOKEN. That token is
# an installation token, and GET /user answers it with 403, so it cannot name itself.
ACTIONS_BOT_LOGIN = "github-actions[bot]"

CommentOutcome = Literal["created", "updated", "unchanged"]


def comment_marker(key: str = "") -> str:
    """The hidden first line that identifies taxsync's comment (one per ``key``)."""
    if not key:
        return MARKER
    # One line (no new line, no hidden character) that cannot end the comment early.
    safe = visible(key).replace("--", "- -").replace(">", "")
    return f"<!-- taxsync-plan {safe} -->"


def compose_comment(ctx: GitHubContext, markdown: str) -> str:
    """Marker, the (trimmed) markdown and a footer naming the commit and run."""
    marker = comment_marker(ctx.comment_key) + "\n"
    footer = _footer(ctx)
    room = COMMENT_BUDGET - comment_length(marker) - comment_length(footer)
    body = trim_markdown(markdown, room, trim_note(ctx, "a GitHub comment"))
    return marker + body + footer


def _footer(ctx: GitHubContext) -> str:
    """``manifests … · commit abc1234 · [workflow run](…)``, each part escaped.

    The commit and the run's link come only from a context ``context_problem`` passes (the
    check the manifest links rely on too); each is escaped again where it is printed.
    """
    parts = []
    if ctx.comment_key:
        # <code>, not backticks: its text is escaped like any other (no "<!--", no @mention).
        parts.append(f"manifests <code>{md_inline(ctx.comment_key)}</code>")
    sound = context_problem(ctx) is None
    if sound and ctx.pr_head_sha:
        parts.append(f"commit {md_inline(ctx.pr_head_sha[:7])}")
    if ctx.run_url and SAFE_URL.fullmatch(ctx.run_url):
        parts.append(f"[workflow run]({ctx.run_url})")
    return f"\n<sub>{' · '.join(parts)}</sub>\n" if parts else ""


def upsert_pr_comment(
    ctx: GitHubContext, body_markdown: str, api: GitHubApi | None = None
) -> CommentOutcome:
    """Create taxsync's comment on the pull request, or update the one already there.

    The comment is found by its hidden marker and must be authored by the token's own
    login (``GET /user``; for the Actions token, which cannot read ``/user``,
    ``github-actions[bot]``; ``TAXSYNC_COMMENT_AUTHOR`` overrides both). A comment
    carrying the marker but written by anyone else is ignored.
    """
    if ctx.pr_number is None:
        raise GitHubError(f"no pull request number in the {ctx.event_name or 'unknown'} event")
    if not ctx.repository:
        raise GitHubError("GITHUB_REPOSITORY is not set")
    body = redact(compose_comment(ctx, body_markdown))
    with github_api(ctx, api) as gh:
        author = ctx.comment_author or gh.authenticated_login() or ACTIONS_BOT_LOGIN
        comments = gh.list_issue_comments(ctx.repository, ctx.pr_number)
        existing = find_marked(comments, comment_marker(ctx.comment_key), author)
        if existing is None:
            gh.create_issue_comment(ctx.repository, ctx.pr_number, body)
            return "created"
        if existing.get("body") == body:
            return "unchanged"
        gh.update_issue_comment(ctx.repository, int(existing["id"]), body)
        return "updated"


@contextlib.contextmanager
def github_api(ctx: GitHubContext, api: GitHubApi | None) -> Iterator[GitHubApi]:
    """``api`` as it is, or a client of our own, closed afterwards."""
    if api is not None:
        yield api
        return
    with GitHubApi(ctx) as owned:
        yield owned


def find_marked(comments: list[dict[str, Any]], marker: str, author: str) -> dict[str, Any] | None:
    """The first comment (or issue) whose body's first line is ``marker``, by ``author``."""
    for comment in comments:
        body = comment.get("body")
        login = dig(comment, "user", "login")
        first_line = body.partition("\n")[0].rstrip("\r") if isinstance(body, str) else None
        if first_line == marker and login == author:
            return comment
    return None
