"""GitHub Actions integration: outputs, step summary, annotations and the plan comment.

Everything GitHub-specific lives here so it is tested like the rest of taxsync; the
composite ``action.yml`` only installs taxsync and runs ``taxsync plan --github`` or
``taxsync apply --github``. The CLI builds a ``GitHubContext`` from the environment and
hands plans, apply results and errors to the ``report_*`` functions.

The token is only ever sent in an ``Authorization`` header: it is kept out of ``repr``,
out of every message, and refused over plain http to anything but loopback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from taxsync import __version__
from taxsync._http import (
    check_api_url,
    parse_retry_after,
    retryable_status,
    retryable_transport_error,
)
from taxsync.errors import ConfigError, GitHubError, ManifestError, ManifestProblem, TaxsyncError
from taxsync.plan import ApplyResult, Plan
from taxsync.reconcile import Reporter, Settings
from taxsync.redact import redact
from taxsync.redact import register as register_secret
from taxsync.render import (
    SourceLink,
    apply_markdown,
    fenced,
    md_inline,
    plan_markdown,
    visible,
)

MARKER = "<!-- taxsync-plan -->"
# GitHub refuses comment bodies over 65,536 characters; stay clear of it, measured
# conservatively (see _comment_length), so a big plan is trimmed rather than refused.
COMMENT_LIMIT = 65_536
COMMENT_BUDGET = 65_000
# A step summary over 1 MiB is dropped whole by the runner.
SUMMARY_LIMIT_BYTES = 1024 * 1024
# The login GitHub shows for comments made with the Actions GITHUB_TOKEN. That token is
# an installation token, and GET /user answers it with 403, so it cannot name itself.
ACTIONS_BOT_LOGIN = "github-actions[bot]"
DEFAULT_API_URL = "https://api.github.com"
PR_EVENTS = frozenset({"pull_request", "pull_request_target"})
# Actors whose pull requests GitHub runs without the repository's Actions secrets.
_SECRETLESS_ACTORS = frozenset({"dependabot[bot]"})
# Sending these twice does no harm (a PATCH sets a comment's body); a POST makes a comment.
_IDEMPOTENT = frozenset({"GET", "PATCH"})

CommentOutcome = Literal["created", "updated", "unchanged"]


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
            default_branch=_dig(event, "repository", "default_branch"),
            actor=environ.get("GITHUB_ACTOR", ""),
            pr_number=_pr_number(event, pull),
            pr_head_sha=_dig(pull, "head", "sha"),
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


def _dig(data: Any, *keys: str) -> Any:
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
    base = _dig(pull, "base", "repo", "full_name") or repository
    # head.repo is null when the fork was deleted: that is still someone else's code.
    head = _dig(pull, "head", "repo", "full_name")
    return head != base


def _comment_key(raw: str) -> str:
    """The manifest path as a comment key: ``./prod/`` is ``prod``; ``.`` is the default."""
    key = raw.strip().rstrip("/")
    while key.startswith("./"):
        key = key[2:]
    return "" if key in ("", ".") else key


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


# --- workflow commands, outputs, summary -------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR, LF), as the runner unescapes it.

    Every other hidden character (ESC, C1, bidi controls, …) is shown as ``\\u…`` first,
    so the annotation reads as what it says; CR and LF keep their meaning as ``%0D``/``%0A``
    and can never end the command's line.
    """
    shown = visible(text, keep="\r\n")
    return shown.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: the message rules plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: str | int | None) -> str:
    """``::command key=value,...::message``, every part escaped; ``None`` properties left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None
    )
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def _emit(line: str) -> None:
    # The runner reads workflow commands from stdout.
    print(line, file=sys.stdout, flush=True)


def write_outputs(ctx: GitHubContext, values: Mapping[str, str]) -> None:
    """Append step outputs to ``GITHUB_OUTPUT``; a no-op outside Actions.

    Every value uses the ``name<<DELIMITER`` form, so newlines in a value are safe.
    """
    if ctx.output_path is None:
        return
    chunks = []
    for name, value in values.items():
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        if delimiter in value or "\n" in name or "<<" in name:
            raise ConfigError(f"cannot write step output {name!r} safely")
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    _append(ctx.output_path, "".join(chunks))


def append_summary(ctx: GitHubContext, markdown: str) -> None:
    """Append markdown to the step summary, trimmed to the room left under 1 MiB."""
    if ctx.summary_path is None:
        return
    try:
        used = ctx.summary_path.stat().st_size
    except OSError:
        used = 0
    room = SUMMARY_LIMIT_BYTES - used - 1
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    note = _trim_note(ctx, "the step summary")
    if room < _utf8_length(note) + 1024:
        return  # the summary is full: what is there already stays readable
    _append(ctx.summary_path, trim_markdown(text, room, note, _utf8_length))


def _append(path: Path, text: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(redact(text))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


# --- annotations -------------------------------------------------------------------------


def workspace_relative(path: str | Path, workspace: Path) -> str:
    """``path`` relative to the workspace in POSIX form; absolute when it lies outside.

    A relative ``path`` is taken from the current directory, as taxsync read it.
    """
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return str(absolute)


def manifest_annotations(error: ManifestError, workspace: Path) -> list[str]:
    """One ``::error file=…,line=…,col=…::message`` line per manifest problem."""
    return [_annotation(problem, workspace) for problem in error.problems]


def _annotation(problem: ManifestProblem, workspace: Path) -> str:
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    return workflow_command(
        "error",
        message,
        file=workspace_relative(problem.file, workspace),
        line=problem.line,
        col=problem.col,
        title="taxsync: invalid manifest",
    )


# --- links to the manifests -------------------------------------------------------------

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


# --- trimming ----------------------------------------------------------------------------


def _comment_length(text: str) -> int:
    """A length GitHub's own count cannot exceed: UTF-16 units, each newline as CRLF."""
    return len(text.encode("utf-16-le")) // 2 + text.count("\n")


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def trim_markdown(markdown: str, limit: int, note: str, measure: Any = _comment_length) -> str:
    """``markdown`` if it fits in ``limit``; else whole leading lines, closed blocks, ``note``.

    ``measure`` counts a string the way the limit is counted (characters, bytes). The
    closers of whatever the cut leaves open (a code fence, ``<details>``) always fit.
    """
    if measure(markdown) <= limit:
        return markdown
    room = limit - measure(note)
    blocks = _Blocks()
    kept: list[str] = []
    used = 0
    for line in _lines(markdown):
        after = blocks.after(line)
        if used + measure(line) + measure(after.closers()) > room:
            break
        kept.append(line)
        used += measure(line)
        blocks = after
    return "".join(kept) + blocks.closers() + note


def _lines(text: str) -> list[str]:
    """``text`` cut after each LF only (``splitlines`` would also cut at U+2028, VT, …)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# An opening or closing code fence (CommonMark): up to 3 spaces, 3+ backticks or tildes.
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


@dataclass(frozen=True)
class _Blocks:
    """What is open after some lines of markdown: a code fence, ``<details>`` blocks.

    Inside a code block nothing counts but the line that closes it (as long a run of the
    same fence character, alone on its line): text there is not markup.
    """

    fence: str = ""
    details: int = 0

    def after(self, line: str) -> _Blocks:
        text = line.rstrip("\r\n")
        match = _FENCE.fullmatch(text)
        if self.fence:
            closes = (
                match is not None
                and match[1][0] == self.fence[0]
                and len(match[1]) >= len(self.fence)
                and not match[2].strip()
            )
            return _Blocks("", self.details) if closes else self
        if match is not None and not (match[1][0] == "`" and "`" in match[2]):
            return _Blocks(match[1], self.details)
        opened = self.details + text.count("<details>") - text.count("</details>")
        return _Blocks("", max(opened, 0))

    def closers(self) -> str:
        return (self.fence + "\n" if self.fence else "") + "</details>\n" * self.details


def _trim_note(ctx: GitHubContext, where: str) -> str:
    run = f"[the workflow run]({ctx.run_url})" if ctx.run_url else "the workflow run"
    return (
        f"\n> [!NOTE]\n> This plan was trimmed to fit in {where}. "
        f"The full plan is in {run}: its step summary and the JSON plan file.\n"
    )


# --- the GitHub REST API -----------------------------------------------------------------


class GitHubApi:
    """The few GitHub REST calls taxsync makes, with timeouts and careful retries.

    GETs and PATCHes (idempotent) are retried on 5xx, 429 and network errors; a POST
    only when GitHub did nothing with it (a 429, or it never left: connect errors), so a
    lost response never makes a second comment. The rules are shared with the Mixpeek
    client (``taxsync._http``).
    """

    def __init__(
        self,
        ctx: GitHubContext,
        *,
        timeout: float = 30.0,
        retry_delays: Sequence[float] = (1.0, 2.0, 4.0),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not ctx.token:
            raise GitHubError("no GitHub token: set the action's github-token input")
        self.api_url = check_api_url(ctx.api_url, insecure=False)
        self.retry_delays = tuple(retry_delays)
        self._token = ctx.token
        self._http = httpx.Client(
            base_url=self.api_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={
                "Authorization": f"Bearer {ctx.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"taxsync/{__version__}",
            },
        )

    def __enter__(self) -> GitHubApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __repr__(self) -> str:
        return f"GitHubApi({self.api_url!r})"

    def authenticated_login(self) -> str | None:
        """The token's own login, or None for an installation token (GET /user is 403)."""
        response = self._send("GET", "/user")
        if response.status_code == 403:
            return None
        login = self._checked("GET", "/user", response).get("login")
        return login if isinstance(login, str) else None

    def list_issue_comments(self, repository: str, number: int) -> list[dict[str, Any]]:
        """Every comment on an issue or pull request, following the Link header's pages."""
        url: str | None = f"/repos/{repository}/issues/{number}/comments?per_page=100"
        comments: list[dict[str, Any]] = []
        while url is not None:
            response = self._send("GET", url)
            page = self._checked("GET", url, response)
            if not isinstance(page, list):
                raise GitHubError(f"GET {_path(url)}: expected a list of comments")
            comments.extend(c for c in page if isinstance(c, dict))
            url = self._next_page(response)
        return comments

    def create_issue_comment(self, repository: str, number: int, body: str) -> dict[str, Any]:
        """POST a new comment on an issue or pull request; returns the comment."""
        url = f"/repos/{repository}/issues/{number}/comments"
        return self._checked("POST", url, self._send("POST", url, {"body": body}))

    def update_issue_comment(self, repository: str, comment_id: int, body: str) -> dict[str, Any]:
        """PATCH an existing comment's body in place; returns the comment."""
        url = f"/repos/{repository}/issues/comments/{comment_id}"
        return self._checked("PATCH", url, self._send("PATCH", url, {"body": body}))

    def _next_page(self, response: httpx.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if url is None:
            return None
        # Follow pages on the API host only: the token must not travel anywhere else.
        if _origin(url) != _origin(self.api_url):
            raise GitHubError(f"refusing to follow a pagination link to {_origin(url)}")
        return str(url)

    def _send(self, method: str, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
        attempts = len(self.retry_delays) + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            delay = self.retry_delays[attempt] if not last else 0.0
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TransportError as exc:
                if last or not retryable_transport_error(exc, idempotent=method in _IDEMPOTENT):
                    raise GitHubError(
                        f"{method} {_path(url)}: no answer from the GitHub API "
                        f"({type(exc).__name__})"
                    ) from None
            else:
                retryable = retryable_status(response.status_code, idempotent=method in _IDEMPOTENT)
                if last or not retryable:
                    return response
                delay = max(delay, _retry_after(response))
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _checked(self, method: str, url: str, response: httpx.Response) -> Any:
        if not response.is_success:
            raise GitHubError(self._redact(_failure(method, url, response)))
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"{method} {_path(url)}: the answer is not JSON") from None

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")


def _retry_after(response: httpx.Response) -> float:
    """GitHub's Retry-After in seconds (rate limits), capped so a step never hangs long."""
    return min(parse_retry_after(response.headers.get("Retry-After")) or 0.0, 60.0)


def _failure(method: str, url: str, response: httpx.Response) -> str:
    try:
        detail = response.json().get("message") or response.reason_phrase
    except (ValueError, AttributeError):
        detail = response.reason_phrase
    text = f"GitHub API {method} {_path(url)}: HTTP {response.status_code}: {detail}"
    if response.status_code in (403, 404) and method in ("POST", "PATCH"):
        text += " (does the workflow grant `permissions: pull-requests: write`?)"
    return text


def _path(url: str) -> str:
    return urlsplit(url).path or url


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme, parts.netloc)


# --- the pull-request comment ------------------------------------------------------------


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
    room = COMMENT_BUDGET - _comment_length(marker) - _comment_length(footer)
    body = trim_markdown(markdown, room, _trim_note(ctx, "a GitHub comment"))
    return marker + body + footer


def _footer(ctx: GitHubContext) -> str:
    parts = []
    if ctx.comment_key:
        # <code>, not backticks: its text is escaped like any other (no "<!--", no @mention).
        parts.append(f"manifests <code>{md_inline(ctx.comment_key)}</code>")
    if ctx.pr_head_sha:
        parts.append(f"commit {ctx.pr_head_sha[:7]}")
    if ctx.run_url:
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
    with _api(ctx, api) as gh:
        author = ctx.comment_author or gh.authenticated_login() or ACTIONS_BOT_LOGIN
        comments = gh.list_issue_comments(ctx.repository, ctx.pr_number)
        existing = _find_comment(comments, comment_marker(ctx.comment_key), author)
        if existing is None:
            gh.create_issue_comment(ctx.repository, ctx.pr_number, body)
            return "created"
        if existing.get("body") == body:
            return "unchanged"
        gh.update_issue_comment(ctx.repository, int(existing["id"]), body)
        return "updated"


@contextlib.contextmanager
def _api(ctx: GitHubContext, api: GitHubApi | None) -> Iterator[GitHubApi]:
    if api is not None:
        yield api
        return
    with GitHubApi(ctx) as owned:
        yield owned


def _find_comment(
    comments: list[dict[str, Any]], marker: str, author: str
) -> dict[str, Any] | None:
    for comment in comments:
        body = comment.get("body")
        login = _dig(comment, "user", "login")
        first_line = body.partition("\n")[0].rstrip("\r") if isinstance(body, str) else None
        if first_line == marker and login == author:
            return comment
    return None


# --- what the CLI calls ------------------------------------------------------------------


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
    _emit(workflow_command("notice", message, title="taxsync"))
    write_outputs(ctx, {"changes": "false", "plan-file": "", "summary": f"skipped ({reason})"})
    append_summary(ctx, f"### taxsync plan\n\n{message}\n")
    return True


def report_plan(
    ctx: GitHubContext, plan: Plan, plan_file: Path, comment: bool
) -> CommentOutcome | None:
    """Outputs, step summary and (on a pull request, if ``comment``) the PR comment.

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
    return None


def report_plan_error(ctx: GitHubContext, error: TaxsyncError, comment: bool) -> None:
    """Make a failed plan visible: annotations, the step summary, and the PR comment.

    The comment is updated too, so reviewers never read a stale plan as the current one.
    """
    if isinstance(error, ManifestError):
        for line in manifest_annotations(error, ctx.workspace):
            _emit(line)
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
        _emit(workflow_command("warning", message, title="taxsync"))


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
        _emit(workflow_command("error", message, title="taxsync"))


def _comment_or_warn(ctx: GitHubContext, markdown: str) -> CommentOutcome | None:
    try:
        outcome = upsert_pr_comment(ctx, markdown)
    except TaxsyncError as exc:
        _emit(workflow_command("warning", f"could not comment on the pull request: {exc}"))
        return None
    _emit(f"taxsync: pull request #{ctx.pr_number} comment {outcome}")
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
