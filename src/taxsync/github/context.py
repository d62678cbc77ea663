"""The workflow run taxsync is part of: the Actions environment, its event, and links.

``GitHubContext.from_env`` reads what the runner sets (and the event payload it points
at); ``source_link`` turns a plan's ``file:line`` places into links to the pull request's
head commit, only when the context makes that safe.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from taxsync.errors import ConfigError
from taxsync.redact import register as register_secret
from taxsync.render import SourceLink

DEFAULT_API_URL = "https://api.github.com"
PR_EVENTS = frozenset({"pull_request", "pull_request_target"})


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
        return cls(
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
        )

    @property
    def is_pull_request(self) -> bool:
        """Whether the run is for a pull request (the events that get a plan comment)."""
        return self.event_name in PR_EVENTS

    @property
    def run_url(self) -> str | None:
        """The workflow run's page, linked from the comment; None outside a run."""
        if not (self.run_id and self.repository):
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def _read_event(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"GITHUB_EVENT_PATH {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"GITHUB_EVENT_PATH {path}: not JSON: {exc}") from None
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
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SERVER = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?")


def source_link(ctx: GitHubContext) -> SourceLink | None:
    """How a plan's ``file:line`` places link to the pull request's head commit.

    None (plain text) outside a pull request, or when the run's context is not one a link
    can be built from safely.
    """
    if not (ctx.is_pull_request and ctx.pr_head_sha and _COMMIT.fullmatch(ctx.pr_head_sha)):
        return None
    if not (_REPOSITORY.fullmatch(ctx.repository) and _SERVER.fullmatch(ctx.server_url)):
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
