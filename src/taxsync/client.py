"""The async Mixpeek API client: the only module that speaks HTTP to Mixpeek.

Reads are retried on 429/503/5xx and network errors. Writes are retried only when the
server said nothing was stored (429, 503) or the request never left (connect errors); a
write whose response was lost raises ``WriteOutcomeUnknown`` so the applier can re-read
before deciding to repeat it. The classification itself is shared with the GitHub client
(``taxsync._http``); this module adds Mixpeek's own hints, the budget and the backoff.

A request goes through two layers: ``_send`` is the retry loop (decide, wait, give up)
and ``_attempt`` sends it once and maps what happened to a response, a ``_Retry``, or a
final error.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from taxsync import __version__, wire
from taxsync._http import check_api_url as check_api_url  # re-exported: the CLI imports it here
from taxsync._http import parse_retry_after, retryable_status, retryable_transport_error
from taxsync.errors import (
    ApiError,
    ConfigError,
    NetworkError,
    NotFoundError,
    ResponseError,
    TaxsyncError,
    WriteOutcomeUnknown,
)
from taxsync.live import LiveCollection, Neighbourhood, neighbourhood

DEFAULT_API_URL = "https://api.mixpeek.com"
DEFAULT_PAGE_SIZE = 1000
log = logging.getLogger("taxsync.http")

Model = TypeVar("Model", bound=BaseModel)

# Mixpeek promises that a 429 or a 503 stored nothing: a write may be sent again.
_UNPROCESSED = frozenset({429, 503})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How one logical request is retried: its time budget, backoff and connect attempts."""

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

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await self._sleep(wait)

    def penalize(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (the server throttled us)."""
        self._next = max(self._next, self._clock() + seconds)


@dataclass(frozen=True)
class _Call:
    """One logical request, as every attempt of it is sent."""

    method: str
    path: str
    namespace: str | None = None
    json: Any = None
    params: dict[str, Any] | None = None
    write: bool = False

    def __post_init__(self) -> None:
        # HTTP headers are Latin-1 on the wire; say so rather than crash while encoding.
        if self.namespace is not None and not self.namespace.isascii():
            raise ConfigError(f"namespace {self.namespace!r}: a namespace must be ASCII")

    @property
    def label(self) -> str:
        """How messages name the request (never with headers: they carry the key)."""
        return f"{self.method} {self.path}" + (f" [{self.namespace}]" if self.namespace else "")

    @property
    def headers(self) -> dict[str, str] | None:
        return {"X-Namespace": self.namespace} if self.namespace else None


@dataclass(frozen=True)
class _Retry:
    """An attempt that failed in a way another attempt may cure."""

    last: str  # what the final error reports: "HTTP 503 …" or "network error (…)"
    server_wait: float | None = None  # the server's own hint, when it gave one
    throttled: bool = False  # a 429: the whole client slows down, not just this request
    refused: str | None = None  # the error's name when the connection was refused


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
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        # clock and sleep are injectable so tests can observe waits without taking them.
        self._clock = clock
        self._sleep = sleep
        self.limiter = RateLimiter(rate_limit_per_minute, clock=clock, sleep=sleep)
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
        found = await asyncio.gather(*(self._read_live(ns, gate) for ns in namespaces))
        return dict(zip(namespaces, found, strict=True))

    async def _read_live(
        self, namespace: str, gate: asyncio.Semaphore
    ) -> list[wire.TaxonomyResponse]:
        async with gate:
            try:
                await self.get_namespace(namespace)
            except ApiError as exc:
                if exc.status == 404:
                    raise await self._no_such_namespace(namespace) from None
                raise
            return await self.list_taxonomies(namespace)

    async def _no_such_namespace(self, namespace: str) -> NotFoundError:
        """The one error for a namespace that does not resolve, however it was found out
        (a 404, or a list's X-Namespace-Unresolved), with the namespace it may have meant."""
        return NotFoundError(
            f"namespace {namespace!r} does not exist in the Mixpeek organisation (taxsync does "
            f"not create namespaces){await self._closest_namespace(namespace)}"
        )

    async def _closest_namespace(self, namespace: str) -> str:
        """``; did you mean 'production'?`` for a namespace close to one that exists (one
        list page, asked only once a namespace is missing); empty when none is, or when the
        list cannot be read (the error says enough without it)."""
        try:
            response = await self._send("POST", "/v1/namespaces/list", json={"limit": 1000})
            names = [
                n.namespace_name for n in _parse(wire.ListNamespacesResponse, response).results
            ]
        except TaxsyncError:
            return ""
        close = difflib.get_close_matches(namespace, names, n=1, cutoff=0.75)
        return f"; did you mean {close[0]!r}?" if close else ""

    # --- taxonomies ----------------------------------------------------------------

    async def list_taxonomies(
        self, namespace: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[wire.TaxonomyResponse]:
        """Every taxonomy (head version) of a namespace, following the cursor."""
        pages = await self._pages(
            wire.ListTaxonomiesResponse, "/v1/taxonomies/list", namespace, {"limit": page_size}
        )
        return [taxonomy for page in pages for taxonomy in page.results]

    async def taxonomies_named(self, namespace: str, name: str) -> list[wire.TaxonomyResponse]:
        """The taxonomies called exactly ``name``, found by listing with a name filter: the
        GET route resolves an id first, so a name that looks like another taxonomy's id
        would find that other taxonomy."""
        condition = {"field": "taxonomy_name", "operator": "eq", "value": name}
        body = {"limit": DEFAULT_PAGE_SIZE, "case_sensitive": True, "filters": {"AND": [condition]}}
        pages = await self._pages(
            wire.ListTaxonomiesResponse, "/v1/taxonomies/list", namespace, body
        )
        # Trust, but check: a server that ignored the filter lists every taxonomy.
        return [t for page in pages for t in page.results if t.taxonomy_name == name]

    async def read_neighbourhood(
        self, namespaces: list[str], concurrency: int = 8
    ) -> dict[str, Neighbourhood]:
        """The collections and retrievers of each namespace, concurrently."""
        gate = asyncio.Semaphore(max(1, concurrency))
        found = await asyncio.gather(*(self._read_neighbourhood(ns, gate) for ns in namespaces))
        return dict(zip(namespaces, found, strict=True))

    async def _read_neighbourhood(self, namespace: str, gate: asyncio.Semaphore) -> Neighbourhood:
        async with gate:
            collections, retrievers = await asyncio.gather(
                self.list_collections(namespace), self.list_retrievers(namespace)
            )
        return neighbourhood(collections, retrievers)

    async def list_collections(
        self, namespace: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every collection of a namespace (raw JSON, so nothing unknown is lost)."""
        pages = await self._pages(_RawPage, "/v1/collections/list", namespace, {"limit": page_size})
        return [c for page in pages for c in page.results or []]

    async def get_collection(self, namespace: str, identifier: str) -> dict[str, Any] | None:
        """One collection by id or name, as raw JSON; None if it does not exist."""
        try:
            response = await self._send("GET", f"/v1/collections/{_segment(identifier)}", namespace)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _parse(_RawCollection, response).model_dump()

    async def patch_collection(
        self, namespace: str, identifier: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PATCH a collection (lists in the body replace the stored ones whole)."""
        path = f"/v1/collections/{_segment(identifier)}"
        response = await self._send("PATCH", path, namespace, json=body, write=True)
        return _parse(_RawCollection, response).model_dump()

    async def collections_applying(self, namespace: str, taxonomy_id: str) -> list[dict[str, Any]]:
        """The collections whose ``taxonomy_applications`` name ``taxonomy_id`` (the contract's
        own way to find them: a filter on the list route)."""
        condition = {"field": "taxonomy_applications.taxonomy_id", "operator": "eq"}
        body = {
            "limit": DEFAULT_PAGE_SIZE,
            "filters": {"AND": [{**condition, "value": taxonomy_id}]},
        }
        pages = await self._pages(_RawPage, "/v1/collections/list", namespace, body)
        found = [c for page in pages for c in page.results or []]
        # Trust, but check: a server that ignored the filter must not block every delete.
        return [c for c in found if LiveCollection.from_wire(c).application_of(taxonomy_id)]

    async def apply_taxonomy(
        self, namespace: str, collection_id: str, taxonomy_id: str
    ) -> dict[str, Any]:
        """Start a backfill: the taxonomy's head re-enriches the collection's documents.

        Not documented as idempotent, so never repeated blindly: a lost response raises
        ``WriteOutcomeUnknown``. Returns the ``ApplyTaxonomyResponse`` (``task_id``…).
        """
        path = f"/v1/collections/{_segment(collection_id)}/apply-taxonomy"
        body = {"taxonomy_id": taxonomy_id}
        response = await self._send("POST", path, namespace, json=body, write=True)
        return _parse(wire.ApplyTaxonomyResponse, response).model_dump()

    async def get_task(self, task_id: str) -> dict[str, Any]:
        """A task, org-wide (tasks take no namespace), as raw JSON: statuses are compared
        as strings, so a status this version does not know is not an error."""
        response = await self._send("GET", f"/v1/tasks/{_segment(task_id)}")
        return _parse(_RawTask, response).model_dump()

    async def list_tasks(
        self,
        namespace: str,
        task_type: str | None = None,
        filters: dict[str, Any] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """Tasks (org-wide; the namespace header is only sent along) of ``task_type`` that
        match ``filters``, as raw JSON. Paged by query parameters: the body has no keys."""
        body: dict[str, Any] = {}
        if task_type is not None:
            body["task_type"] = task_type
        if filters is not None:
            body["filters"] = filters
        params = {"limit": page_size}
        pages = await self._pages(_RawPage, "/v1/tasks/list", namespace, body, params=params)
        return [t for page in pages for t in page.results or []]

    async def list_retrievers(
        self, namespace: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every retriever of a namespace (raw JSON). Paged by query parameters only: the
        retrievers list refuses pagination keys in its body."""
        pages = await self._pages(
            _RawPage, "/v1/retrievers/list", namespace, {}, {"limit": page_size}
        )
        return [r for page in pages for r in page.results or []]

    async def _pages(
        self,
        model: type[PageModel],
        path: str,
        namespace: str,
        body: dict[str, Any],
        params: dict[str, Any] | None = None,
    ) -> list[PageModel]:
        """Every page of a list route, following ``next_cursor``; an unresolved namespace
        (an empty 200 that is not the namespace's contents) is an error, never "empty"."""
        pages: list[PageModel] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**(params or {}), **({"cursor": cursor} if cursor else {})}
            response = await self._send("POST", path, namespace, json=body, params=query or None)
            page = _parse(model, response)
            if _unresolved(response, page):  # its empty list is not its contents
                raise await self._no_such_namespace(namespace)
            pages.append(page)
            cursor = page.pagination.next_cursor if page.pagination else None
            if not cursor:
                return pages
            if cursor in seen:
                raise ResponseError(f"POST {path}: server repeated cursor {cursor!r}")
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

    async def request_json(
        self,
        method: str,
        path: str,
        namespace: str | None = None,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        write: bool = False,
    ) -> Any:
        """One raw request through the same retry policy; its decoded JSON answer.

        For probes of the contract itself (``taxsync doctor``), which must send what the
        typed methods never would, such as an unknown key. Errors raise ``ApiError``.
        """
        response = await self._send(method, path, namespace, json=body, params=params, write=write)
        try:
            return response.json()
        except ValueError:
            raise ResponseError(f"{method} {path}: the answer is not JSON") from None

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
        """The successful response to a request, retried as the policy allows."""
        call = _Call(method, path, namespace, json, params, write)
        deadline = self._clock() + self.retry.total_seconds
        attempts = 0
        while True:
            outcome = await self._attempt(call)
            if isinstance(outcome, httpx.Response):
                return outcome
            attempts += 1
            await self._sleep(self._wait_or_give_up(call, outcome, attempts, deadline))

    def _wait_or_give_up(
        self, call: _Call, failure: _Retry, attempts: int, deadline: float
    ) -> float:
        """How long to wait before the next attempt; raises NetworkError when it is over."""
        if failure.refused and attempts >= self.retry.connect_attempts:
            raise NetworkError(
                f"{call.label}: cannot connect to {self.api_url} after {attempts} attempt(s) "
                f"({failure.refused})"
            )
        # A hint of 0 is no hint: back off rather than hammer the server.
        # A hint of 0 is no hint: back off rather than hammer a server that is struggling.
        wait = failure.server_wait or self.retry.backoff(attempts - 1)
        if failure.throttled:
            self.limiter.penalize(wait)
        if self._clock() + wait > deadline:
            raise NetworkError(
                f"{call.label}: gave up after {attempts} attempt(s) in "
                f"{self.retry.total_seconds:g}s; last: {failure.last}"
            )
        return wait

    async def _attempt(self, call: _Call) -> httpx.Response | _Retry:
        """Send ``call`` once: a 2xx response, a retryable failure, or a final error raised."""
        await self.limiter.acquire()
        started = self._clock()
        self.requests_sent += 1
        try:
            response = await self._http.request(
                call.method, call.path, json=call.json, params=call.params, headers=call.headers
            )
        except httpx.TransportError as exc:
            self._log(call, type(exc).__name__, started)
            return _no_answer(call, exc)
        except httpx.DecodingError as exc:
            # An answer whose body cannot be decoded (a bad Content-Encoding, say).
            self._log(call, type(exc).__name__, started)
            _undecodable(call, exc)
        self._log(call, response.status_code, started)
        if response.is_success:
            return response
        return _error_answer(call, response)

    def _log(self, call: _Call, outcome: int | str, started: float) -> None:
        elapsed = self._clock() - started
        log.debug("%s %s %s %.0fms", call.method, call.path, outcome, elapsed * 1000)


def _no_answer(call: _Call, exc: httpx.TransportError) -> _Retry:
    """A request that got no answer: retryable, unless a write may have landed."""
    name = type(exc).__name__
    if not retryable_transport_error(exc, idempotent=not call.write):
        raise WriteOutcomeUnknown(
            f"{call.label}: the connection failed after the request was sent "
            f"({name}); it may or may not have taken effect"
        ) from None
    # Only a refused connection counts against connect_attempts: it rarely heals soon.
    refused = name if isinstance(exc, httpx.ConnectError) else None
    return _Retry(last=f"network error ({name})", refused=refused)


def _undecodable(call: _Call, exc: httpx.DecodingError) -> NoReturn:
    """An answer whose body cannot be read: for a write, its outcome is unknown."""
    if call.write:
        raise WriteOutcomeUnknown(
            f"{call.label}: the response could not be decoded ({exc}); "
            "the write may or may not have taken effect"
        ) from None
    raise ResponseError(f"{call.label}: the response could not be decoded ({exc})") from None


def _error_answer(call: _Call, response: httpx.Response) -> _Retry:
    """An error answer: retryable (with the server's hint), or raised as an ApiError."""
    error = _api_error(response, call.label)
    if not _retryable(error, call.write):
        raise error
    return _Retry(
        last=f"HTTP {error.status} {error.error_type}",
        server_wait=_server_wait(response, error),
        throttled=error.status == 429,
    )


def _segment(value: str) -> str:
    """One URL path segment. ``.`` and ``..`` would be resolved away by the HTTP layer
    (``GET /v1/taxonomies/..`` is another route), so they are refused, not sent."""
    if value in (".", ".."):
        raise ConfigError(f"{value!r} cannot be a taxonomy or namespace name or id in a URL")
    return quote(value, safe="")


def _retryable(error: ApiError, write: bool) -> bool:
    # The body's own verdict wins: Mixpeek says when a retry cannot help.
    if error.api_details.get("retryable") is False:
        return False
    return retryable_status(error.status, idempotent=not write, unprocessed=_UNPROCESSED)


def _server_wait(response: httpx.Response, error: ApiError) -> float | None:
    """The server's own retry hint: ``Retry-After`` (seconds), else the body's."""
    header = parse_retry_after(response.headers.get("Retry-After"))
    if header is not None:
        return header
    # Absent, or an HTTP date: Mixpeek's envelope may carry the hint instead.
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


class _RawCollection(BaseModel):
    """A collection read loosely: its applications kept exactly as sent."""

    model_config = ConfigDict(extra="allow")

    collection_id: str
    collection_name: str
    taxonomy_applications: list[dict[str, Any]] | None = None


class _RawTask(BaseModel):
    """A task read loosely: only what taxsync decides on is required."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    status: str
    error: str | None = None


class _RawPage(BaseModel):
    """A list page read loosely: results stay raw JSON."""

    results: list[dict[str, Any]] | None = None
    pagination: wire.PaginationResponse | None = None
    warnings: list[Any] | None = None


PageModel = TypeVar("PageModel", wire.ListTaxonomiesResponse, _RawPage)


def _unresolved(response: httpx.Response, page: BaseModel) -> bool:
    if response.headers.get("X-Namespace-Unresolved", "").lower() == "true":
        return True
    warnings = getattr(page, "warnings", None) or []
    return any(
        isinstance(w, dict) and w.get("resource") == "namespace" and w.get("reason") == "unresolved"
        for w in warnings
    )


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
