"""The HTTP policy both API clients share (taxsync._http), and the GitHub client's use of it."""

from __future__ import annotations

import math

import httpx
import pytest

from taxsync import _http
from taxsync._http import (
    NOT_SENT,
    check_api_url,
    is_loopback,
    parse_retry_after,
    retryable_status,
    retryable_transport_error,
)
from taxsync.emulator import server
from taxsync.errors import ConfigError

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

    monkeypatch.setattr(server, "create_app", lambda **kwargs: None)
    monkeypatch.setattr(server, "make_server", lambda *args: NotServing())
    monkeypatch.setattr(server, "_log_to_stderr", lambda level: None)
    server.serve(host=host)
    assert ("reachable from other machines" in capsys.readouterr().err) is warned
