"""The workflow run taxsync is part of: the Actions environment, its event, and links.

``GitHubContext.from_env`` reads what the runner sets (and the event payload it points
at); ``source_link`` turns a plan's ``file:line`` places into links to the pull request's
head commit, only when the context makes that safe.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from taxsync.errors import ConfigError
from taxsync.redact import register as register_secret
from taxsync.render import SourceLink, visible

DEFAULT_API_URL = "https://api.github.com"
PR_EVENTS = frozenset({"pull_request", "pull_request_target"})
DRIFT_EVENTS = frozenset({"schedule", "workflow_dispatch"})
DRIFT_LABEL = "taxsync-drift"


@dataclass(frozen=True)
class GitHubContext:
    """What taxsync needs to know about the workflow run it is part of."""

    event_name: str
    repository: str  # owner/name
    api_url: str
    token: str = field(repr=False)
    workspace: Path
    server_url: str
    run_id: str | None
    ref: str
    default_branch: str | None
    actor: str
    pr_number: int | None
    pr_head_sha: str | None
    is_fork: bool
    output_path: Path | None
    summary_path: Path | None
    runner_temp: Path | None
    comment_author: str | None  # TAXSYNC_COMMENT_AUTHOR: the login that owns the comment
    comment_key: str  # TAXSYNC_COMMENT_KEY: one comment per key (e.g. per manifest tree)
    drift_label: str = "taxsync-drift"  # TAXSYNC_DRIFT_LABEL: the drift issue's label

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GitHubContext:
        """Read the run's context from the variables the Actions runner sets.

        The token comes from ``TAXSYNC_GITHUB_TOKEN`` (what ``action.yml`` sets) or,
        failing that, ``GITHUB_TOKEN``.
        """
        event = _read_event(environ.get("GITHUB_EVENT_PATH"))
        found = event.get("pull_request")
        pull: dict[str, Any] = found if isinstance(found, dict) else {}
        repository = environ.get("GITHUB_REPOSITORY", "")
        token = environ.get("TAXSYNC_GITHUB_TOKEN") or environ.get("GITHUB_TOKEN") or ""
        register_secret(token)
        ctx = cls(
            event_name=environ.get("GITHUB_EVENT_NAME", ""),
            repository=repository,
            api_url=(environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            token=token.strip(),
            workspace=Path(environ.get("GITHUB_WORKSPACE") or os.getcwd()),
            server_url=(environ.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            run_id=environ.get("GITHUB_RUN_ID") or None,
            ref=environ.get("GITHUB_REF", ""),
            default_branch=dig(event, "repository", "default_branch"),
            actor=environ.get("GITHUB_ACTOR", ""),
            pr_number=_pr_number(event, pull),
            pr_head_sha=dig(pull, "head", "sha"),
            is_fork=_is_fork(pull, repository),
            output_path=_optional_path(environ.get("GITHUB_OUTPUT")),
            summary_path=_optional_path(environ.get("GITHUB_STEP_SUMMARY")),
            runner_temp=_optional_path(environ.get("RUNNER_TEMP")),
            comment_author=environ.get("TAXSYNC_COMMENT_AUTHOR") or None,
            comment_key=_comment_key(environ.get("TAXSYNC_COMMENT_KEY", "")),
            drift_label=environ.get("TAXSYNC_DRIFT_LABEL") or DRIFT_LABEL,
        )
        problem = context_problem(ctx)
        if problem is not None:
            # Before any request: these values become request paths, links and the footer.
            raise ConfigError(f"GitHub reporting stopped: {problem}")
        return ctx

    @property
    def is_pull_request(self) -> bool:
        """Whether the run is for a pull request (the events that get a plan comment)."""
        return self.event_name in PR_EVENTS

    @property
    def is_drift_check(self) -> bool:
        """Whether the run checks for drift (scheduled or by hand): it keeps the drift issue."""
        return self.event_name in DRIFT_EVENTS

    @property
    def run_url(self) -> str | None:
        """The workflow run's page, linked from the comment; None outside a run, or when
        the values it is made of are not sound (``context_problem``)."""
        if not (self.run_id and self.repository) or context_problem(self) is not None:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


# GitHub caps a webhook payload at 25 MB; the event file is that payload.
_MAX_EVENT_BYTES = 32 * 1024 * 1024


def _read_event(path: str | None) -> dict[str, Any]:
    """The event that started the run, read like every file taxsync opens (a regular
    file, bounded in size and depth): the runner writes it, but a pull request shapes it."""
    from taxsync.safe_read import FileRefused, read_json

    if not path:
        return {}
    try:
        event = read_json(path, _MAX_EVENT_BYTES)
    except FileRefused as refused:
        raise ConfigError(f"GITHUB_EVENT_PATH: {refused}") from None
    return event if isinstance(event, dict) else {}


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]…``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _pr_number(event: Mapping[str, Any], pull: Mapping[str, Any]) -> int | None:
    number = pull.get("number", event.get("number"))
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def _is_fork(pull: Mapping[str, Any], repository: str) -> bool:
    if not pull:
        return False
    base = dig(pull, "base", "repo", "full_name") or repository
    # head.repo is null when the fork was deleted: that is still someone else's code.
    head = dig(pull, "head", "repo", "full_name")
    return head != base


def _comment_key(raw: str) -> str:
    """The manifest path as a comment key: ``./prod/`` is ``prod``; ``.`` is the default."""
    key = raw.strip().rstrip("/")
    while key.startswith("./"):
        key = key[2:]
    return "" if key in ("", ".") else key


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


# A change's place is ``file:line``; the file may hold ":" itself.
_SOURCE = re.compile(r"(.+):([1-9][0-9]{0,8})", re.DOTALL)
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
# GitHub's own rules: an owner is letters, digits, "-" (and "_" for managed users); a
# repository name adds "."; neither can be "." or "..", so no path segment climbs.
_REPOSITORY = re.compile(r"[A-Za-z0-9_-]{1,100}/(?!\.\.?$)[A-Za-z0-9_.-]{1,100}")
_SERVER = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
_DIGITS = re.compile(r"[0-9]{1,20}")
# A label is sent in a query and a JSON body, and shown: one line, no comma (the issues
# API reads a comma in ``labels=`` as a list), at most 50 characters as GitHub allows.
_LABEL = re.compile(r"[^\s,][^\x00-\x1f\x7f,]{0,48}[^\s,]|[^\s,]")


def context_problem(ctx: GitHubContext) -> str | None:
    """What is wrong with the run's values, in one line; None when every one is sound.

    The one check of what the runner and the event hand over: ``from_env`` refuses an
    unsound context before any request, and links and the comment footer are built only
    from a context that passes.
    """
    checks = (
        ("GITHUB_REPOSITORY", ctx.repository, _REPOSITORY, "owner/repository", True),
        ("GITHUB_SERVER_URL", ctx.server_url, _SERVER, "http(s)://host[:port][/path]", False),
        ("GITHUB_API_URL", ctx.api_url, _SERVER, "http(s)://host[:port][/path]", False),
        ("GITHUB_RUN_ID", ctx.run_id, _DIGITS, "digits", True),
        ("the pull request's head sha", ctx.pr_head_sha, _COMMIT, "a hex commit id", True),
        ("TAXSYNC_DRIFT_LABEL", ctx.drift_label, _LABEL, "a label of 1-50 characters", False),
    )
    for name, found, pattern, expected, optional in checks:
        if optional and not found:
            continue
        if not isinstance(found, str) or not (pattern.fullmatch(found) and _in_range(found)):
            shown = visible(str(found))[:80]
            return f"{name} is {shown!r}: expected {expected}"
    if ctx.pr_number is not None and ctx.pr_number <= 0:
        return f"the pull request number is {ctx.pr_number}: expected a positive number"
    return None


def _in_range(found: str) -> bool:
    """A URL's port, if it has one, is a port (1-65535 reads; 99999 does not)."""
    if not found.startswith(("http://", "https://")):
        return True
    try:
        urlsplit(found).port  # noqa: B018 (raises on a port out of range)
    except ValueError:
        return False
    return True


def source_link(ctx: GitHubContext) -> SourceLink | None:
    """How a plan's ``file:line`` places link to the pull request's head commit.

    None (plain text) outside a pull request, or when the run's context is not one a link
    can be built from safely.
    """
    if not (ctx.is_pull_request and ctx.pr_head_sha and ctx.repository):
        return None
    if context_problem(ctx) is not None:
        return None
    return functools.partial(source_url, ctx)


def source_url(ctx: GitHubContext, source: str) -> str | None:
    """``{server}/{owner/name}/blob/{head sha}/{path}#L{line}`` for ``file:line``.

    Only for a file inside the workspace (a relative file is taken from the current
    directory, as taxsync read it; symbolic links resolved); every path segment is
    percent-encoded, so the URL holds no character markdown or HTML could read.
    """
    match = _SOURCE.fullmatch(source)
    if match is None or "\0" in match[1] or not ctx.pr_head_sha:
        return None
    try:
        relative = Path(match[1]).resolve().relative_to(ctx.workspace.resolve())
    except (OSError, RuntimeError, ValueError):
        return None  # outside the workspace, or no path at all
    if not relative.parts:
        return None
    path = "/".join(quote(part, safe="") for part in relative.parts)
    return f"{ctx.server_url}/{ctx.repository}/blob/{ctx.pr_head_sha}/{path}#L{match[2]}"
