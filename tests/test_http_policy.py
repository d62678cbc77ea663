"""The HTTP policy both API clients share (taxsync._http), and the GitHub client's use of it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from taxsync import _http, github
from taxsync._http import (
    NOT_SENT,
    check_api_url,
    is_loopback,
    parse_retry_after,
    retryable_status,
    retryable_transport_error,
)
from taxsync.emulator import server
from taxsync.errors import ConfigError, GitHubError

MIXPEEK_UNPROCESSED = frozenset({429, 503})

# --- retry classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "idempotent", "unprocessed", "expected"),
    [
        # idempotent: throttling and every server error
        (429, True, _http.UNPROCESSED, True),
        (500, True, _http.UNPROCESSED, True),
        (502, True, _http.UNPROCESSED, True),
        (503, True, _http.UNPROCESSED, True),
        (504, True, _http.UNPROCESSED, True),
        (599, True, _http.UNPROCESSED, True),
        # ... but never a client error: the same request gets the same answer
        (400, True, _http.UNPROCESSED, False),
        (401, True, _http.UNPROCESSED, False),
        (404, True, _http.UNPROCESSED, False),
        (408, True, _http.UNPROCESSED, False),
        (409, True, _http.UNPROCESSED, False),
        (422, True, _http.UNPROCESSED, False),
        # not idempotent: only what promises nothing was done
        (429, False, _http.UNPROCESSED, True),
        (500, False, _http.UNPROCESSED, False),
        (502, False, _http.UNPROCESSED, False),
        (503, False, _http.UNPROCESSED, False),
        (504, False, _http.UNPROCESSED, False),
        (409, False, _http.UNPROCESSED, False),
        # an API that promises more (Mixpeek: a 503 stores nothing)
        (503, False, MIXPEEK_UNPROCESSED, True),
        (429, False, MIXPEEK_UNPROCESSED, True),
        (500, False, MIXPEEK_UNPROCESSED, False),
        (504, False, MIXPEEK_UNPROCESSED, False),
        (503, True, MIXPEEK_UNPROCESSED, True),
        (404, True, MIXPEEK_UNPROCESSED, False),
    ],
)
def test_retryable_status(
    status: int, idempotent: bool, unprocessed: frozenset[int], expected: bool
) -> None:
    assert retryable_status(status, idempotent=idempotent, unprocessed=unprocessed) is expected


def test_429_is_unprocessed_by_default() -> None:
    assert retryable_status(429, idempotent=False)
    assert not retryable_status(503, idempotent=False)


NEVER_SENT = [httpx.ConnectError("refused"), httpx.ConnectTimeout("t"), httpx.PoolTimeout("p")]
MAYBE_SENT = [
    httpx.ReadError("reset"),
    httpx.WriteError("broken pipe"),
    httpx.ReadTimeout("slow"),
    httpx.WriteTimeout("slow"),
    httpx.RemoteProtocolError("closed mid-response"),
]


@pytest.mark.parametrize("error", NEVER_SENT + MAYBE_SENT, ids=lambda e: type(e).__name__)
def test_an_idempotent_request_is_retried_after_any_transport_error(
    error: httpx.TransportError,
) -> None:
    assert retryable_transport_error(error, idempotent=True)


@pytest.mark.parametrize("error", NEVER_SENT, ids=lambda e: type(e).__name__)
def test_a_write_is_retried_when_it_never_left(error: httpx.TransportError) -> None:
    assert isinstance(error, NOT_SENT)
    assert retryable_transport_error(error, idempotent=False)


@pytest.mark.parametrize("error", MAYBE_SENT, ids=lambda e: type(e).__name__)
def test_a_write_is_not_retried_when_it_may_have_landed(error: httpx.TransportError) -> None:
    assert not isinstance(error, NOT_SENT)
    assert not retryable_transport_error(error, idempotent=False)


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-5", 0.0),  # a negative wait is no wait
        ("nan", 0.0),
        ("99999999999", 99_999_999_999.0),  # huge stays huge: the caller caps it
        ("1e400", math.inf),
        ("inf", math.inf),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # HTTP date: the caller's own wait applies
        ("Fri, 31 Dec 1999 23:59:59 GMT", None),
        ("soon", None),
        ("1s", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


# --- loopback and the API URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("api.example.com", False),
        ("localhost.example.com", False),  # a name that merely starts like one
        ("127.0.0.1.nip.io", False),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),  # every interface, not loopback
        ("::", False),
        ("[::]", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize(
    ("url", "insecure", "expected"),
    [
        ("https://api.mixpeek.com/", False, "https://api.mixpeek.com"),
        ("https://api.example.com:8443/base/", False, "https://api.example.com:8443/base"),
        ("http://127.0.0.1:8080/", False, "http://127.0.0.1:8080"),
        ("http://localhost:1", False, "http://localhost:1"),
        ("http://[::1]:8080", False, "http://[::1]:8080"),
        ("http://api.example.com", True, "http://api.example.com"),
    ],
)
def test_check_api_url_accepts(url: str, insecure: bool, expected: str) -> None:
    assert check_api_url(url, insecure) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.example.com", "refusing plain http:// to non-loopback host 'api.example.com'"),
        ("http://0.0.0.0:8080", "non-loopback host '0.0.0.0'"),
        ("ftp://api.example.com", "invalid API URL"),
        ("api.example.com", "invalid API URL"),
        ("https://", "invalid API URL"),
    ],
)
def test_check_api_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_api_url(url, insecure=False)


@pytest.mark.parametrize(
    ("host", "warned"), [("127.0.0.1", False), ("[::1]", False), ("0.0.0.0", True)]
)
def test_the_emulator_warns_when_bound_beyond_loopback(
    host: str, warned: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class NotServing:
        def run(self) -> None:
            pass

    monkeypatch.setattr(server, "create_app", lambda options: None)
    monkeypatch.setattr(server, "make_server", lambda *args: NotServing())
    monkeypatch.setattr(server, "_log_to_stderr", lambda level: None)
    server.serve(host=host)
    assert ("reachable from other machines" in capsys.readouterr().err) is warned


# --- the GitHub client uses the shared policy ---------------------------------------------

TOKEN = "ghs_not_a_real_token_0123456789"
COMMENTS = "/repos/o/r/issues/1/comments"


def github_api(
    handler: Callable[[httpx.Request], httpx.Response], delays: tuple[float, ...] = (0.0, 0.0, 0.0)
) -> github.GitHubApi:
    env = {"GITHUB_API_URL": "https://github.test", "GITHUB_TOKEN": TOKEN}
    ctx = github.GitHubContext.from_env(env)
    return github.GitHubApi(ctx, retry_delays=delays, transport=httpx.MockTransport(handler))


def answering(*answers: httpx.Response | Exception) -> tuple[list[str], Any]:
    """A handler giving ``answers`` in turn (the last one repeats); records each method."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, handler


CREATED = httpx.Response(201, json={"id": 7, "body": "hi"})


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The GitHub client's waits, recorded instead of taken."""
    taken: list[float] = []
    monkeypatch.setattr(_http.time, "sleep", taken.append)
    return taken


def test_github_post_is_retried_on_429(sleeps: list[float]) -> None:
    # New with the shared classification: a 429 means GitHub did nothing with the POST.
    seen, handler = answering(httpx.Response(429, headers={"Retry-After": "5"}, json={}), CREATED)
    with github_api(handler) as api:
        assert api.create_issue_comment("o/r", 1, "hi")["id"] == 7
    assert seen == ["POST", "POST"] and sleeps == [5.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_github_post_is_not_repeated_after_a_server_error(status: int, sleeps: list[float]) -> None:
    seen, handler = answering(httpx.Response(status, json={"message": "oops"}), CREATED)
    with github_api(handler) as api, pytest.raises(GitHubError, match=f"HTTP {status}") as caught:
        api.create_issue_comment("o/r", 1, "hi")
    assert seen == ["POST"] and sleeps == []
    assert TOKEN not in str(caught.value)


def test_github_post_is_retried_when_it_never_left(sleeps: list[float]) -> None:
    seen, handler = answering(httpx.ConnectError("refused"), httpx.PoolTimeout("busy"), CREATED)
    with github_api(handler) as api:
        api.create_issue_comment("o/r", 1, "hi")
    assert seen == ["POST", "POST", "POST"]


def test_github_post_with_a_lost_answer_is_not_repeated(sleeps: list[float]) -> None:
    seen, handler = answering(httpx.ReadError("reset"), CREATED)
    with github_api(handler) as api, pytest.raises(GitHubError, match="no answer") as caught:
        api.create_issue_comment("o/r", 1, "hi")
    assert seen == ["POST"] and TOKEN not in str(caught.value)


def test_github_reads_are_retried_and_retry_after_is_capped(sleeps: list[float]) -> None:
    seen, handler = answering(
        httpx.Response(503, json={}),
        httpx.ReadError("reset"),
        httpx.Response(429, headers={"Retry-After": "3600"}, json={}),
        httpx.Response(200, json=[]),
    )
    with github_api(handler) as api:
        assert api.list_issue_comments("o/r", 1) == []
    assert seen == ["GET"] * 4
    assert sleeps == [0.0, 0.0, 60.0], "an hour's Retry-After is capped at a minute"


@pytest.mark.parametrize("header", ["Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-1", "nan"])
def test_github_unreadable_retry_after_keeps_the_schedule(header: str, sleeps: list[float]) -> None:
    _, handler = answering(
        httpx.Response(429, headers={"Retry-After": header}, json={}), httpx.Response(200, json=[])
    )
    with github_api(handler, delays=(1.5,)) as api:
        api.list_issue_comments("o/r", 1)
    assert sleeps == [1.5]


def test_github_gives_the_last_answer_after_the_schedule(sleeps: list[float]) -> None:
    seen, handler = answering(httpx.Response(502, json={"message": "Bad Gateway"}))
    with github_api(handler) as api, pytest.raises(GitHubError, match="HTTP 502"):
        api.list_issue_comments("o/r", 1)
    assert seen == ["GET"] * 4 and len(sleeps) == 3
