"""The async Mixpeek API client: the only module that speaks HTTP to Mixpeek.

All retry policy lives here. Reads are retried on 429/503/5xx and network errors.
Writes are retried only when the server said nothing was stored (429, 503) or the
request never left (connect errors); a write whose response was lost raises
``WriteOutcomeUnknown`` so the applier can re-read before deciding to repeat it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from taxsync import __version__, wire
from taxsync.errors import (
    ApiError,
    ConfigError,
    NetworkError,
    ResponseError,
    TaxsyncError,
    WriteOutcomeUnknown,
)

DEFAULT_API_URL = "https://api.mixpeek.com"
DEFAULT_PAGE_SIZE = 1000
log = logging.getLogger("taxsync.http")

Model = TypeVar("Model", bound=BaseModel)

# Errors raised before the request reached the server: safe to retry, even for writes.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_THROTTLED = (429, 503)


@dataclass(frozen=True)
class RetryPolicy:
    total_seconds: float = 30.0  # the whole budget for one logical request
    base_delay: float = 0.25
    max_delay: float = 10.0
    # A refused connection rarely heals in seconds: fail fast rather than spend the budget.
    connect_attempts: int = 4

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class RateLimiter:
    """A token bucket shared by every request of one client.

    Capacity 1: requests are spaced evenly, so a per-minute server window never sees a
    burst. A 429 pauses everyone (``penalize``), not just the request that got it.
    """

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)

    def penalize(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


def check_api_url(url: str, insecure: bool) -> str:
    """Refuse plain HTTP to anything but loopback unless the user insists."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"invalid API URL {url!r}: expected http(s)://host[:port]")
    if parts.scheme == "http" and not insecure and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to non-loopback host {parts.hostname!r}: "
            "use https, or pass --insecure"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MixpeekClient:
    """Taxonomy and namespace operations over one pooled HTTP connection set."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limit_per_minute: float | None = None,
        timeout: float = 30.0,
        max_connections: int = 32,
        on_response: Callable[[str, str, int | str, float], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = RateLimiter(rate_limit_per_minute)
        self.on_response = on_response
        self.requests_sent = 0
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": f"taxsync/{__version__}",
            },
        )

    async def __aenter__(self) -> MixpeekClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # --- namespaces ----------------------------------------------------------------

    async def get_namespace(self, identifier: str) -> wire.NamespaceModel:
        response = await self._send("GET", f"/v1/namespaces/{_segment(identifier)}")
        return _parse(wire.NamespaceModel, response)

    async def read_live(
        self, namespaces: list[str], concurrency: int = 8
    ) -> dict[str, list[wire.TaxonomyResponse]]:
        """The live taxonomies of each namespace: one look-up and the list pages, concurrently."""
        gate = asyncio.Semaphore(max(1, concurrency))

        async def read(namespace: str) -> list[wire.TaxonomyResponse]:
            async with gate:
                try:
                    await self.get_namespace(namespace)
                except ApiError as exc:
                    if exc.status == 404:
                        raise TaxsyncError(
                            f"namespace {namespace!r} does not exist in the Mixpeek "
                            "organisation (taxsync does not create namespaces)"
                        ) from None
                    raise
                return await self.list_taxonomies(namespace)

        found = await asyncio.gather(*(read(ns) for ns in namespaces))
        return dict(zip(namespaces, found, strict=True))

    # --- taxonomies ----------------------------------------------------------------

    async def list_taxonomies(
        self, namespace: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[wire.TaxonomyResponse]:
        """Every taxonomy (head version) of a namespace, following the cursor."""
        results: list[wire.TaxonomyResponse] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"cursor": cursor} if cursor else None
            response = await self._send(
                "POST", "/v1/taxonomies/list", namespace, json={"limit": page_size}, params=params
            )
            page = _parse(wire.ListTaxonomiesResponse, response)
            results.extend(page.results)
            cursor = page.pagination.next_cursor
            if not cursor:
                return results
            if cursor in seen:
                raise ResponseError(f"POST /v1/taxonomies/list: server repeated cursor {cursor!r}")
            seen.add(cursor)

    async def get_taxonomy(
        self, namespace: str, identifier: str, version: int | None = None
    ) -> wire.TaxonomyResponse | None:
        """One taxonomy by id or name (head, or a stored version); None if it does not exist."""
        params = {"version": version} if version is not None else None
        try:
            response = await self._send(
                "GET", f"/v1/taxonomies/{_segment(identifier)}", namespace, params=params
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _parse(wire.TaxonomyResponse, response)

    async def list_versions(self, namespace: str, taxonomy_id: str) -> list[wire.TaxonomyResponse]:
        response = await self._send(
            "GET", f"/v1/taxonomies/{_segment(taxonomy_id)}/versions", namespace
        )
        return _parse(wire.ListTaxonomiesResponse, response).results

    async def create_taxonomy(self, namespace: str, body: dict[str, Any]) -> wire.TaxonomyResponse:
        return await self._write("POST", "/v1/taxonomies", namespace, body)

    async def create_version(
        self, namespace: str, taxonomy_id: str, body: dict[str, Any]
    ) -> wire.TaxonomyResponse:
        path = f"/v1/taxonomies/{_segment(taxonomy_id)}/versions"
        return await self._write("POST", path, namespace, body)

    async def patch_taxonomy(
        self, namespace: str, identifier: str, body: dict[str, Any]
    ) -> wire.TaxonomyResponse:
        return await self._write("PATCH", f"/v1/taxonomies/{_segment(identifier)}", namespace, body)

    async def _write(
        self, method: str, path: str, namespace: str, body: dict[str, Any]
    ) -> wire.TaxonomyResponse:
        response = await self._send(method, path, namespace, json=body, write=True)
        return _parse(wire.TaxonomyResponse, response)

    async def delete_taxonomy(self, namespace: str, identifier: str) -> None:
        await self._send("DELETE", f"/v1/taxonomies/{_segment(identifier)}", namespace, write=True)

    # --- transport ------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        namespace: str | None = None,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        write: bool = False,
    ) -> httpx.Response:
        headers = {"X-Namespace": namespace} if namespace else None
        label = f"{method} {path}" + (f" [{namespace}]" if namespace else "")
        deadline = time.monotonic() + self.retry.total_seconds
        attempt = 0
        last = "no attempt"
        while True:
            await self.limiter.acquire()
            started = time.monotonic()
            try:
                self.requests_sent += 1
                response = await self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                self._log(method, path, type(exc).__name__, started)
                if write and not isinstance(exc, _NOT_SENT):
                    raise WriteOutcomeUnknown(
                        f"{label}: the connection failed after the request was sent "
                        f"({type(exc).__name__}); it may or may not have taken effect"
                    ) from None
                last, wait = f"network error ({type(exc).__name__})", self.retry.backoff(attempt)
                if (
                    isinstance(exc, httpx.ConnectError)
                    and attempt + 1 >= self.retry.connect_attempts
                ):
                    raise NetworkError(
                        f"{label}: cannot connect to {self.api_url} after {attempt + 1} attempt(s) "
                        f"({type(exc).__name__})"
                    ) from None
            except httpx.DecodingError as exc:
                # An answer whose body cannot be decoded (a bad Content-Encoding, say).
                self._log(method, path, type(exc).__name__, started)
                if write:
                    raise WriteOutcomeUnknown(
                        f"{label}: the response could not be decoded ({exc}); "
                        "the write may or may not have taken effect"
                    ) from None
                raise ResponseError(f"{label}: the response could not be decoded ({exc})") from None
            else:
                self._log(method, path, response.status_code, started)
                if response.is_success:
                    return response
                error = _api_error(response, label)
                if not _retryable(error, write):
                    raise error
                last = f"HTTP {error.status} {error.error_type}"
                wait = _server_wait(response, error) or self.retry.backoff(attempt)
                if error.status == 429:
                    self.limiter.penalize(wait)
            attempt += 1
            if time.monotonic() + wait > deadline:
                raise NetworkError(
                    f"{label}: gave up after {attempt} attempt(s) in "
                    f"{self.retry.total_seconds:g}s; last: {last}"
                )
            await asyncio.sleep(wait)

    def _log(self, method: str, path: str, outcome: int | str, started: float) -> None:
        elapsed = time.monotonic() - started
        log.debug("%s %s %s %.0fms", method, path, outcome, elapsed * 1000)
        if self.on_response:
            self.on_response(method, path, outcome, elapsed)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _retryable(error: ApiError, write: bool) -> bool:
    if error.api_details.get("retryable") is False:
        return False
    if error.status in _THROTTLED:
        return True  # the server stored nothing: safe for writes too
    return not write and error.status >= 500


def _server_wait(response: httpx.Response, error: ApiError) -> float | None:
    """The server's own retry hint: ``Retry-After`` (seconds), else the body's."""
    header = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(header))
    except ValueError:
        pass  # absent, or an HTTP date: fall back to the body
    hint = error.api_details.get("retry_after_seconds")
    if not isinstance(hint, int | float):
        return None
    try:
        return max(0.0, float(hint))
    except OverflowError:  # an integer beyond any float: wait forever, or not at all
        return float("inf") if hint > 0 else 0.0


def _api_error(response: httpx.Response, label: str) -> ApiError:
    try:
        envelope = wire.ErrorResponse.model_validate_json(response.content)
    except ValidationError:
        snippet = response.text[:200].replace("\n", " ").strip() or response.reason_phrase
        return ApiError(response.status_code, "HTTPError", snippet, label)
    error = envelope.error
    message = " ".join(error.message.split())  # one line, whatever the server sent
    return ApiError(response.status_code, error.type, message, label, error.details)


def _parse(model: type[Model], response: httpx.Response) -> Model:
    label = f"{response.request.method} {response.request.url.path}"
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ResponseError(
            f"{label}: unexpected response from the API ({where}: {first['msg']})"
        ) from None
