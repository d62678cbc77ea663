"""The client's retry policy, against scripted server answers (httpx.MockTransport).

Time is faked: the client gets a clock that only moves when it sleeps, and every sleep is
recorded instead of taken, so waits are asserted exactly and nothing depends on how
loaded the machine is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from taxsync.client import MixpeekClient, RateLimiter, RetryPolicy, check_api_url
from taxsync.errors import (
    ApiError,
    ConfigError,
    NetworkError,
    NotFoundError,
    ResponseError,
    TaxsyncError,
    WriteOutcomeUnknown,
)

FAST = RetryPolicy(total_seconds=3, base_delay=0.001, max_delay=0.01)
KEY = "sk_secret"


class FakeTime:
    """A clock that moves only when slept on (or never, ``frozen``); sleeps are recorded."""

    def __init__(self, frozen: bool = False) -> None:
        self.now = 0.0
        self.frozen = frozen
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.frozen:
            self.now += seconds


def envelope(
    status: int, kind: str, headers: dict[str, str] | None = None, **details: Any
) -> httpx.Response:
    body = {
        "success": False,
        "status": status,
        "error": {"message": kind, "type": kind, "details": details},
    }
    return httpx.Response(status, json=body, headers=headers)


def taxonomy(name: str = "t") -> dict[str, Any]:
    return {
        "taxonomy_id": "tax_1",
        "version": 1,
        "taxonomy_name": name,
        "config": {"taxonomy_type": "flat"},
    }


OK = httpx.Response(200, json=taxonomy())


def scripted(
    *answers: httpx.Response | Exception,
) -> tuple[list[httpx.Request], Callable[..., Any]]:
    """A transport that answers with ``answers`` in turn (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, handler


def run(
    handler: Callable[..., Any],
    call: Callable[[MixpeekClient], Any],
    retry: RetryPolicy = FAST,
    fake: FakeTime | None = None,
) -> Any:
    fake = fake or FakeTime()

    async def go() -> Any:
        transport = httpx.MockTransport(handler)
        async with MixpeekClient(
            "https://api.test",
            KEY,
            transport=transport,
            retry=retry,
            clock=fake.clock,
            sleep=fake.sleep,
        ) as client:
            return await call(client)

    return asyncio.run(go())


def read(client: MixpeekClient) -> Any:
    return client.get_taxonomy("ns", "t")


def write(client: MixpeekClient) -> Any:
    return client.create_taxonomy("ns", {"taxonomy_name": "t"})


@pytest.fixture
def upper_jitter(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Make full jitter pick the top of its range, and record the ranges it was given."""
    ranges: list[tuple[float, float]] = []

    def top(low: float, high: float) -> float:
        ranges.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", top)
    return ranges


# --- what is retried ---------------------------------------------------------------------


def test_reads_retry_throttling_and_server_errors() -> None:
    seen, handler = scripted(
        envelope(429, "TooManyRequestsError"),
        envelope(500, "InternalServerError"),
        httpx.ReadError("boom"),
        OK,
    )
    fake = FakeTime()
    found = run(handler, read, fake=fake)
    assert found.taxonomy_name == "t" and len(seen) == 4 and len(fake.sleeps) == 3
    assert all(r.headers["X-Namespace"] == "ns" for r in seen)
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    "failure",
    [
        envelope(429, "TooManyRequestsError"),
        envelope(503, "ServiceUnavailable"),
        envelope(500, "InternalServerError"),
        envelope(502, "BadGateway"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("closed mid-response"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
    ],
    ids=lambda f: str(f.status_code) if isinstance(f, httpx.Response) else type(f).__name__,
)
def test_a_read_is_retried_after_any_transient_failure(failure: httpx.Response | Exception) -> None:
    seen, handler = scripted(failure, OK)
    run(handler, read)
    assert len(seen) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    seen, handler = scripted(envelope(status, "Nope"), OK)
    with pytest.raises(ApiError) as caught:
        run(handler, read)
    assert caught.value.status == status and len(seen) == 1


@pytest.mark.parametrize(
    "failure",
    [
        envelope(429, "TooManyRequestsError"),
        envelope(503, "InferenceServiceUnavailableError"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no handshake"),
        httpx.PoolTimeout("no free connection"),
    ],
    ids=lambda f: str(f.status_code) if isinstance(f, httpx.Response) else type(f).__name__,
)
def test_a_write_is_retried_when_nothing_was_stored(failure: httpx.Response | Exception) -> None:
    seen, handler = scripted(failure, OK)
    run(handler, write)
    assert len(seen) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_write_is_never_repeated_after_a_server_error(status: int) -> None:
    seen, handler = scripted(envelope(status, "ServerError"), OK)
    with pytest.raises(ApiError) as caught:
        run(handler, write)
    assert caught.value.status == status
    assert len(seen) == 1  # a 5xx on a write may have stored something


@pytest.mark.parametrize(
    "lost",
    [httpx.ReadError("reset"), httpx.RemoteProtocolError("closed"), httpx.ReadTimeout("slow")],
    ids=lambda e: type(e).__name__,
)
def test_lost_write_response_is_reported_as_unknown_outcome(lost: Exception) -> None:
    seen, handler = scripted(lost, OK)
    with pytest.raises(WriteOutcomeUnknown) as caught:
        run(handler, lambda c: c.create_version("ns", "tax_1", {"config": {}}))
    assert len(seen) == 1
    assert str(caught.value).startswith("POST /v1/taxonomies/tax_1/versions [ns]: ")
    assert type(lost).__name__ in str(caught.value)


def test_not_retried_when_the_server_says_so() -> None:
    seen, handler = scripted(envelope(429, "TooManyRequestsError", retryable=False), OK)
    with pytest.raises(ApiError) as caught:
        run(handler, read)
    assert caught.value.status == 429 and len(seen) == 1


def undecodable() -> httpx.Response:
    # Claims gzip, is not: httpx raises DecodingError while reading the body.
    return httpx.Response(
        200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
    )


def test_an_undecodable_answer_is_not_retried() -> None:
    seen, handler = scripted(undecodable(), OK)
    with pytest.raises(
        ResponseError, match=r"^GET /v1/taxonomies/t \[ns\]: .*could not be decoded"
    ):
        run(handler, read)
    assert len(seen) == 1

    seen, handler = scripted(undecodable(), OK)
    with pytest.raises(WriteOutcomeUnknown, match="may or may not have taken effect"):
        run(handler, write)
    assert len(seen) == 1


# --- how long it waits -------------------------------------------------------------------


def test_retry_after_header_is_honoured() -> None:
    seen, handler = scripted(httpx.Response(429, headers={"Retry-After": "0.3"}, json={}), OK)
    fake = FakeTime()
    run(handler, read, fake=fake)
    assert fake.sleeps == [0.3] and len(seen) == 2


def test_retry_after_seconds_in_the_body_is_honoured() -> None:
    seen, handler = scripted(
        envelope(503, "InferenceServiceUnavailableError", retry_after_seconds=0.3), OK
    )
    fake = FakeTime()
    run(handler, read, fake=fake)
    assert fake.sleeps == [0.3] and len(seen) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.3), ("soon", 0.3)],
    ids=["header-wins", "http-date-falls-back", "garbage-falls-back"],
)
def test_the_header_wins_over_the_body_when_it_can_be_read(header: str, expected: float) -> None:
    _, handler = scripted(
        envelope(503, "Unavailable", {"Retry-After": header}, retry_after_seconds=0.3), OK
    )
    fake = FakeTime()
    run(handler, read, fake=fake)
    assert fake.sleeps == [expected]


def test_backoff_is_exponential_with_full_jitter(upper_jitter: list[tuple[float, float]]) -> None:
    _, handler = scripted(*[envelope(500, "InternalServerError")] * 6, OK)
    fake = FakeTime()
    policy = RetryPolicy(total_seconds=60, base_delay=0.25, max_delay=2.0)
    run(handler, read, policy, fake)
    # Full jitter: each wait is drawn from [0, cap], the cap doubling up to max_delay.
    assert upper_jitter == [(0, 0.25), (0, 0.5), (0, 1.0), (0, 2.0), (0, 2.0), (0, 2.0)]
    assert fake.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_zero_hint_is_no_hint(upper_jitter: list[tuple[float, float]]) -> None:
    _, handler = scripted(httpx.Response(503, headers={"Retry-After": "0"}, json={}), OK)
    fake = FakeTime()
    run(handler, read, RetryPolicy(base_delay=0.25), fake)
    assert fake.sleeps == [0.25], "backs off rather than hammering the server"


def test_a_429_slows_the_whole_client() -> None:
    # The clock stands still, so the limiter's pause is still pending on the next attempt
    # and shows up as a second sleep of its own.
    _, handler = scripted(httpx.Response(429, headers={"Retry-After": "1"}, json={}), OK)
    fake = FakeTime(frozen=True)
    run(handler, read, fake=fake)
    assert fake.sleeps == [1.0, 1.0]

    _, handler = scripted(httpx.Response(503, headers={"Retry-After": "1"}, json={}), OK)
    fake = FakeTime(frozen=True)
    run(handler, read, fake=fake)
    assert fake.sleeps == [1.0], "a 503 is about this request only"


# --- giving up ---------------------------------------------------------------------------


def test_gives_up_within_the_budget_naming_request_and_last_status(
    upper_jitter: list[tuple[float, float]],
) -> None:
    seen, handler = scripted(envelope(503, "InferenceServiceUnavailableError"))
    policy = RetryPolicy(total_seconds=0.5, base_delay=0.05, max_delay=0.1)
    fake = FakeTime()
    with pytest.raises(NetworkError) as caught:
        run(handler, lambda c: c.list_taxonomies("prod"), policy, fake)
    # 0.05 + 4 * 0.1 = 0.45 spent; one more wait of 0.1 would overrun 0.5: stop there.
    assert fake.sleeps == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1])
    assert len(seen) == 6
    assert str(caught.value) == (
        "POST /v1/taxonomies/list [prod]: gave up after 6 attempt(s) in 0.5s; "
        "last: HTTP 503 InferenceServiceUnavailableError"
    )


def test_a_server_wait_beyond_the_budget_gives_up_at_once() -> None:
    seen, handler = scripted(httpx.Response(503, headers={"Retry-After": "3600"}, json={}), OK)
    fake = FakeTime()
    with pytest.raises(NetworkError, match=r"gave up after 1 attempt\(s\) in 3s; last: HTTP 503"):
        run(handler, read, fake=fake)
    assert fake.sleeps == [] and len(seen) == 1


def test_the_last_network_error_is_named() -> None:
    seen, handler = scripted(httpx.ReadError("reset"))
    with pytest.raises(NetworkError) as caught:
        run(handler, read, RetryPolicy(total_seconds=0.1, base_delay=0.05, max_delay=0.05))
    assert str(caught.value).startswith(f"GET /v1/taxonomies/t [ns]: gave up after {len(seen)} ")
    assert str(caught.value).endswith("last: network error (ReadError)")


def test_a_refused_connection_gives_up_after_connect_attempts() -> None:
    seen, handler = scripted(httpx.ConnectError("refused"))
    fake = FakeTime()
    with pytest.raises(NetworkError) as caught:
        run(handler, read, RetryPolicy(total_seconds=60, connect_attempts=4), fake)
    assert len(seen) == 4 and len(fake.sleeps) == 3
    assert str(caught.value) == (
        "GET /v1/taxonomies/t [ns]: cannot connect to https://api.test after 4 attempt(s) "
        "(ConnectError)"
    )


def test_a_connect_timeout_spends_the_budget_not_the_connect_attempts() -> None:
    policy = RetryPolicy(total_seconds=60, base_delay=0.001, max_delay=0.001, connect_attempts=2)
    seen, handler = scripted(*[httpx.ConnectTimeout("no handshake")] * 5, OK)
    run(handler, read, policy)  # five timeouts, then an answer: never "cannot connect"
    assert len(seen) == 6


# --- what errors say ---------------------------------------------------------------------


def test_the_api_key_is_in_no_error_and_no_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="taxsync.http")
    scenarios: list[tuple[httpx.Response | Exception, Callable[[MixpeekClient], Any]]] = [
        (envelope(503, "Unavailable"), read),
        (envelope(401, "Unauthorized"), read),
        (httpx.ConnectError("refused"), read),
        (httpx.ReadError("reset"), write),
        (undecodable(), read),
        (httpx.Response(404, text="not here"), lambda c: c.read_live(["x"])),
    ]
    messages = []
    for answer, call in scenarios:
        _, handler = scripted(answer)
        with pytest.raises(TaxsyncError) as caught:
            run(handler, call, RetryPolicy(total_seconds=0.05, base_delay=0.01, max_delay=0.01))
        messages.append(str(caught.value) + "\n".join(caught.value.details))
    assert all(messages) and not any(KEY in m for m in messages)
    assert caplog.records and KEY not in caplog.text


def test_an_unknown_namespace_is_not_found() -> None:
    seen, handler = scripted(envelope(404, "NotFoundError"))
    with pytest.raises(NotFoundError) as caught:
        run(handler, lambda c: c.read_live(["nope"]))
    assert str(caught.value) == (
        "namespace 'nope' does not exist in the Mixpeek organisation "
        "(taxsync does not create namespaces)"
    )
    # Not retried: one look-up, then one list of the namespaces for a close match (refused
    # here too, so the error goes without one).
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/v1/namespaces/nope"),
        ("POST", "/v1/namespaces/list"),
    ]


def test_error_without_envelope_still_explains() -> None:
    with pytest.raises(ApiError, match="HTTP 404 HTTPError: not here"):
        run(lambda r: httpx.Response(404, text="not here"), lambda c: c.get_namespace("x"))


def test_malformed_success_body_is_a_clear_error() -> None:
    with pytest.raises(ResponseError, match="unexpected response"):
        run(lambda r: httpx.Response(200, content=b"<html>"), read)


# --- pagination --------------------------------------------------------------------------


def test_cursor_pagination_follows_next_cursor() -> None:
    pages = {
        None: {
            "results": [taxonomy("a"), taxonomy("b")],
            "pagination": {"next_cursor": "c1"},
            "total_count": 3,
        },
        "c1": {"results": [taxonomy("c")], "pagination": {"next_cursor": None}, "total_count": 3},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"limit": 1000}
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    found = run(handler, lambda c: c.list_taxonomies("ns"))
    assert [t.taxonomy_name for t in found] == ["a", "b", "c"]


def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    page = {"results": [], "pagination": {"next_cursor": "same"}, "total_count": 0}
    with pytest.raises(ResponseError, match="repeated cursor"):
        run(lambda r: httpx.Response(200, json=page), lambda c: c.list_taxonomies("ns"))


# --- URL and rate limit --------------------------------------------------------------------


def test_plain_http_needs_insecure_except_on_loopback() -> None:
    assert check_api_url("http://127.0.0.1:8080/", False) == "http://127.0.0.1:8080"
    assert check_api_url("http://localhost:1", False)
    with pytest.raises(ConfigError, match="--insecure"):
        check_api_url("http://api.example.com", False)
    assert check_api_url("http://api.example.com", True)


def test_rate_limiter_spaces_requests_evenly() -> None:
    fake = FakeTime()

    async def go() -> None:
        limiter = RateLimiter(per_minute=600, clock=fake.clock, sleep=fake.sleep)  # 1 per 0.1 s
        for _ in range(4):
            await limiter.acquire()

    asyncio.run(go())
    assert fake.sleeps == pytest.approx([0.1, 0.1, 0.1]), "the first goes at once"


def test_rate_limiter_is_shared_by_every_request_of_a_client() -> None:
    fake = FakeTime(frozen=True)  # nobody's turn passes: each waits behind the ones before

    async def go() -> None:
        async with MixpeekClient(
            "https://api.test",
            KEY,
            transport=httpx.MockTransport(lambda r: OK),
            rate_limit_per_minute=60,
            clock=fake.clock,
            sleep=fake.sleep,
        ) as client:
            await asyncio.gather(*(read(client) for _ in range(3)))

    asyncio.run(go())
    assert sorted(fake.sleeps) == pytest.approx([1.0, 2.0])
