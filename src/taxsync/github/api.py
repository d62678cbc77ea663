"""The GitHub REST API calls taxsync makes: who the token is, a pull request's comments, and
the drift issue (its label, the issue, its closing comment).

Retries follow the HTTP policy both clients share (``taxsync._http``); the token travels
only in the ``Authorization`` header, to the API's own origin, and never into a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from taxsync import __version__
from taxsync._http import check_api_url, send_with_retries
from taxsync.errors import GitHubError
from taxsync.github.context import GitHubContext

# GitHub's Retry-After (rate limits) is honoured up to this many seconds.
MAX_RETRY_AFTER = 60.0

# Sending these twice does no harm (a PATCH sets a comment's body); a POST makes a comment.
_IDEMPOTENT = frozenset({"GET", "PATCH"})


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
        return self._every_page(f"/repos/{repository}/issues/{number}/comments?per_page=100")

    def list_open_issues(self, repository: str, label: str) -> list[dict[str, Any]]:
        """The open issues (pull requests left out) that carry ``label``, every page."""
        query = urlencode({"labels": label, "state": "open", "per_page": 100})
        found = self._every_page(f"/repos/{repository}/issues?{query}")
        return [issue for issue in found if "pull_request" not in issue]

    def create_issue(
        self, repository: str, title: str, body: str, labels: list[str]
    ) -> dict[str, Any]:
        """POST a new issue with ``labels``; returns the issue."""
        url = f"/repos/{repository}/issues"
        payload = {"title": title, "body": body, "labels": labels}
        return self._checked("POST", url, self._send("POST", url, payload))

    def update_issue(self, repository: str, number: int, **fields: str) -> dict[str, Any]:
        """PATCH an issue's ``body``, ``state`` or ``state_reason``; returns the issue."""
        url = f"/repos/{repository}/issues/{number}"
        return self._checked("PATCH", url, self._send("PATCH", url, dict(fields)))

    def ensure_label(self, repository: str, name: str, color: str, description: str) -> bool:
        """Create the label unless the repository has it; True when it was created.

        One POST either way: GitHub answers 422 ``already_exists`` for a label it has.
        """
        url = f"/repos/{repository}/labels"
        payload = {"name": name, "color": color, "description": description}
        response = self._send("POST", url, payload)
        if response.status_code == 422 and _already_exists(response):
            return False
        self._checked("POST", url, response)
        return True

    def _every_page(self, first: str) -> list[dict[str, Any]]:
        url: str | None = first
        items: list[dict[str, Any]] = []
        while url is not None:
            response = self._send("GET", url)
            page = self._checked("GET", url, response)
            if not isinstance(page, list):
                raise GitHubError(f"GET {_path(url)}: expected a list")
            items.extend(item for item in page if isinstance(item, dict))
            url = self._next_page(response)
        return items

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
        try:
            return send_with_retries(
                lambda: self._http.request(method, url, json=body),
                idempotent=method in _IDEMPOTENT,
                delays=self.retry_delays,
                max_server_wait=MAX_RETRY_AFTER,
            )
        except httpx.TransportError as exc:
            raise GitHubError(
                f"{method} {_path(url)}: no answer from the GitHub API ({type(exc).__name__})"
            ) from None

    def _checked(self, method: str, url: str, response: httpx.Response) -> Any:
        if not response.is_success:
            raise GitHubError(self._redact(_failure(method, url, response)))
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"{method} {_path(url)}: the answer is not JSON") from None

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")


def _failure(method: str, url: str, response: httpx.Response) -> str:
    try:
        detail = response.json().get("message") or response.reason_phrase
    except (ValueError, AttributeError):
        detail = response.reason_phrase
    text = f"GitHub API {method} {_path(url)}: HTTP {response.status_code}: {detail}"
    if response.status_code in (403, 404) and method in ("POST", "PATCH"):
        text += (
            " (does the workflow grant `permissions: pull-requests: write` for the plan "
            "comment, or `issues: write` for the drift issue?)"
        )
    return text


def _already_exists(response: httpx.Response) -> bool:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("code") == "already_exists" for e in errors)


def _path(url: str) -> str:
    return urlsplit(url).path or url


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme, parts.netloc)
