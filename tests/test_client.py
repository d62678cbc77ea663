"""The client's retry policy, against scripted server answers (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from taxsync.client import MixpeekClient, RateLimiter, RetryPolicy, check_api_url
from taxsync.errors import ApiError, ConfigError, NetworkError, ResponseError, WriteOutcomeUnknown

FAST = RetryPolicy(total_seconds=3, base_delay=0.001, max_delay=0.01)


def envelope(status: int, kind: str, **details: Any) -> httpx.Response:
    body = {
        "success": False,
        "status": status,
        "error": {"message": kind, "type": kind, "details": details},
    }
    return httpx.Response(status, json=body)


def taxonomy(name: str = "t") -> dict[str, Any]:
    return {
        "taxonomy_id": "tax_1",
        "version": 1,
        "taxonomy_name": name,
        "config": {"taxonomy_type": "flat"},
    }


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
    handler: Callable[..., Any], call: Callable[[MixpeekClient], Any], retry: RetryPolicy = FAST
) -> Any:
    async def go() -> Any:
        transport = httpx.MockTransport(handler)
        async with MixpeekClient(
            "https://api.test", "sk_secret", transport=transport, retry=retry
        ) as client:
            return await call(client)

    return asyncio.run(go())


def test_reads_retry_throttling_and_server_errors() -> None:
    seen, handler = scripted(
        envelope(429, "TooManyRequestsError"),
        envelope(500, "InternalServerError"),
        httpx.ReadError("boom"),
        httpx.Response(200, json=taxonomy()),
    )
    found = run(handler, lambda c: c.get_taxonomy("ns", "t"))
    assert found.taxonomy_name == "t" and len(seen) == 4
    assert all(r.headers["X-Namespace"] == "ns" for r in seen)
    assert seen[0].headers["Authorization"] == "Bearer sk_secret"


def test_retry_after_header_is_honoured() -> None:
    seen, handler = scripted(
        httpx.Response(429, headers={"Retry-After": "0.3"}, json={}),
        httpx.Response(200, json=taxonomy()),
    )
    started = time.monotonic()
    run(handler, lambda c: c.get_taxonomy("ns", "t"))
    assert time.monotonic() - started >= 0.3 and len(seen) == 2


def test_retry_after_seconds_in_the_body_is_honoured() -> None:
    seen, handler = scripted(
        envelope(503, "InferenceServiceUnavailableError", retry_after_seconds=0.3),
        httpx.Response(200, json=taxonomy()),
    )
    started = time.monotonic()
    run(handler, lambda c: c.get_taxonomy("ns", "t"))
    assert time.monotonic() - started >= 0.3


def test_not_retried_when_the_server_says_so() -> None:
    seen, handler = scripted(envelope(429, "TooManyRequestsError", retryable=False))
    with pytest.raises(ApiError) as caught:
        run(handler, lambda c: c.get_taxonomy("ns", "t"))
    assert caught.value.status == 429 and len(seen) == 1


def test_writes_are_retried_only_when_nothing_was_stored() -> None:
    seen, handler = scripted(
        envelope(503, "InferenceServiceUnavailableError"),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=taxonomy()),
    )
    run(handler, lambda c: c.create_taxonomy("ns", {"taxonomy_name": "t"}))
    assert len(seen) == 3

    seen, handler = scripted(envelope(500, "InternalServerError"))
    with pytest.raises(ApiError):
        run(handler, lambda c: c.create_taxonomy("ns", {"taxonomy_name": "t"}))
    assert len(seen) == 1  # a 500 on a write may have stored something: never blindly repeated


def test_lost_write_response_is_reported_as_unknown_outcome() -> None:
    seen, handler = scripted(httpx.ReadError("connection reset"))
    with pytest.raises(WriteOutcomeUnknown):
        run(handler, lambda c: c.create_version("ns", "tax_1", {"config": {}}))
    assert len(seen) == 1


def test_gives_up_within_the_budget_naming_request_and_last_status() -> None:
    seen, handler = scripted(envelope(503, "InferenceServiceUnavailableError"))
    policy = RetryPolicy(total_seconds=0.5, base_delay=0.05, max_delay=0.1)
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        run(handler, lambda c: c.list_taxonomies("prod"), policy)
    assert time.monotonic() - started < 1.5
    message = str(caught.value)
    assert message.startswith("POST /v1/taxonomies/list [prod]: gave up after")
    assert "last: HTTP 503 InferenceServiceUnavailableError" in message


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


def test_malformed_success_body_is_a_clear_error() -> None:
    with pytest.raises(ResponseError, match="unexpected response"):
        run(lambda r: httpx.Response(200, content=b"<html>"), lambda c: c.get_taxonomy("ns", "t"))


def test_error_without_envelope_still_explains() -> None:
    with pytest.raises(ApiError, match="HTTP 404 HTTPError: not here"):
        run(lambda r: httpx.Response(404, text="not here"), lambda c: c.get_namespace("x"))


def test_plain_http_needs_insecure_except_on_loopback() -> None:
    assert check_api_url("http://127.0.0.1:8080/", False) == "http://127.0.0.1:8080"
    assert check_api_url("http://localhost:1", False)
    with pytest.raises(ConfigError, match="--insecure"):
        check_api_url("http://api.example.com", False)
    assert check_api_url("http://api.example.com", True)


def test_rate_limiter_spaces_requests_evenly() -> None:
    async def go() -> float:
        limiter = RateLimiter(per_minute=600)  # one every 0.1 s
        started = time.monotonic()
        for _ in range(4):
            await limiter.acquire()
        return time.monotonic() - started

    assert 0.28 <= asyncio.run(go()) < 1.0
