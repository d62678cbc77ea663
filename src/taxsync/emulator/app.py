"""Starlette ASGI app emulating Mixpeek's taxonomy, namespace, collection, retriever and
task routes.

Request bodies are validated with the pydantic models in ``taxsync.wire`` (one source of
truth); every error, including unknown routes and malformed JSON, uses the Mixpeek
envelope ``{"success": false, "status": N, "error": {message, type, code, details}}``.

Per request, the outer ``EmulatorApp.__call__`` applies, in order: fault latency, the
faults drawn before handling (429, 503, 500 on reads, connection reset), bearer auth, the
route, and finally the drop-after-commit fault on successful writes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, Union, get_args, get_origin
from urllib.parse import unquote

from pydantic import BaseModel, Field, Tag, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from taxsync.emulator.errors import (
    AlreadyExists,
    BadRequest,
    NotFound,
    StateFileError,
    StoreError,
)
from taxsync.emulator.faults import FaultAction, FaultPlan, Faults
from taxsync.emulator.query import ListQuery, Page
from taxsync.emulator.resources import TaskOutcome, TaskPolicy
from taxsync.emulator.seed import Seed, as_seed
from taxsync.emulator.store import ReadyPolicy, Store
from taxsync.wire import (
    COLLECTION_READ_ONLY_FIELDS,
    ApplyTaxonomyRequest,
    CreateTaxonomyRequest,
    CreateTaxonomyVersionRequest,
    ListCollectionsRequest,
    ListNamespacesRequest,
    ListRetrieversRequest,
    ListTasksRequest,
    ListTaxonomiesRequest,
    PatchCollectionRequest,
    PatchTaxonomyRequest,
)

logger = logging.getLogger("taxsync.emulator")

#: Scope extension set by the in-process transport: a dropped connection is then raised
#: as ConnectionDropped instead of being simulated on a socket.
IN_PROCESS_EXTENSION = "taxsync.in_process"

#: ``applied_taxonomy_delete`` values: what deleting a taxonomy that collections apply does.
APPLIED_DELETE_MODES = ("dangling", "strict")
#: The header a list answers with when X-Namespace names no namespace (COLLECTIONS.md §1).
UNRESOLVED_HEADER = "X-Namespace-Unresolved"

ERROR_TYPES: dict[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "AlreadyExistsError",
    422: "ValidationError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "InferenceServiceUnavailableError",
}

MAX_OFFSET = 10000
_M = TypeVar("_M", bound=BaseModel)
_PAGE_SIZE = TypeAdapter(Annotated[int, Field(ge=1, le=1000)])
_OFFSET = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_OFFSET)])
_POSITIVE = TypeAdapter(Annotated[int, Field(ge=1)])
_BOOL = TypeAdapter(bool)


class ErrorReply(Exception):
    """An error response the emulator sends: raised in a route, answered with the Mixpeek
    error envelope. (Not ``taxsync.errors.ApiError``, which is the client receiving one.)"""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.code = code
        self.headers = headers


class ConnectionDropped(Exception):
    """Raised to the in-process transport where a server would drop the connection."""


def error_response(
    status: int,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response carrying the Mixpeek error envelope."""
    body = {
        "success": False,
        "status": status,
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "Error"),
            "code": code,
            "details": details,
        },
    }
    return JSONResponse(body, status_code=status, headers=headers)


class EmulatorApp:
    """The ASGI application; ``create_app`` builds it."""

    def __init__(
        self,
        *,
        store: Store,
        auto_create_namespaces: bool,
        api_key: str | None,
        faults: Faults | None,
        max_page_size: int,
        default_page_size: int,
        ready_policy: ReadyPolicy,
        lenient_taxonomy_refs: bool = False,
        applied_taxonomy_delete: str = "dangling",
        refuse_empty_backfill: bool = True,
    ) -> None:
        self.store = store
        self.faults = faults or Faults()
        self.auto_create_namespaces = auto_create_namespaces
        self.max_page_size = max_page_size
        self.default_page_size = default_page_size
        self.ready_policy = ready_policy
        #: Store taxonomy_applications entries naming unknown taxonomies instead of a 404.
        self.lenient_taxonomy_refs = lenient_taxonomy_refs
        #: "dangling" (collections keep their entries) or "strict" (400 naming them).
        self.applied_taxonomy_delete = applied_taxonomy_delete
        #: apply-taxonomy on a collection without documents is a 400.
        self.refuse_empty_backfill = refuse_empty_backfill
        self._api_key = api_key
        self._router = Starlette(routes=self._routes(), exception_handlers=_exception_handlers())

    def __repr__(self) -> str:
        # Deliberately leaves the API key out.
        return (
            f"EmulatorApp(store={self.store.path!s}, auto_create_namespaces="
            f"{self.auto_create_namespaces}, max_page_size={self.max_page_size}, "
            f"applied_taxonomy_delete={self.applied_taxonomy_delete!r}, "
            f"faults={self.faults.describe()!r})"
        )

    # --- ASGI entry point: faults, auth, logging ---------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        plan = self.faults.plan(is_read=_is_read(method, path), is_write=_is_write(method, path))
        if plan.before is FaultAction.RESET:
            logger.info("%s %s -> connection reset (fault)", method, path)
            await _drop_connection(scope, send, None, b"", "reset before handling")
            return
        early = self._fault_response(plan, path) or self._auth_error(scope)
        if early is not None:
            logger.info("%s %s -> %d", method, path, early.status_code)
            await early(scope, receive, send)
            return
        status = await self._handle(scope, receive, send, plan)
        logger.info("%s %s -> %s", method, path, status)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, plan: FaultPlan) -> str:
        """Run the router; buffer the response when it may have to be dropped."""
        buffered: list[Message] = []
        seen: dict[str, int] = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            if plan.drop:
                buffered.append(message)
            else:
                await send(message)

        try:
            await self._router(_slash_in_segment(scope), receive, capture)
        except Exception:
            # Starlette has already sent the 500 envelope (if it could) and re-raises so a
            # server can log it; log it here instead of letting the server print a trace.
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if "status" not in seen:
                await error_response(500, "Internal server error")(scope, receive, capture)
        status = seen.get("status", 500)
        if plan.drop and buffered:
            if 200 <= status < 300:
                body = b"".join(m.get("body", b"") for m in buffered[1:])
                await _drop_connection(scope, send, buffered[0], body, "dropped after commit")
                return f"{status}, then connection dropped (fault)"
            for message in buffered:
                await send(message)
        return str(status)

    def _fault_response(self, plan: FaultPlan, path: str) -> Response | None:
        retry_after = self.faults.retry_after_seconds
        retry_details = {"retryable": True, "retry_after_seconds": _number(retry_after)}
        retry_headers = {"Retry-After": _seconds_header(retry_after)}
        if plan.before is FaultAction.TOO_MANY_REQUESTS:
            details = {"api_name": _api_name(path), **retry_details}
            return error_response(429, "Rate limit exceeded", details, headers=retry_headers)
        if plan.before is FaultAction.UNAVAILABLE:
            return error_response(
                503,
                "Service temporarily unavailable, retry later",
                retry_details,
                headers=retry_headers,
            )
        if plan.before is FaultAction.INTERNAL_ERROR:
            return error_response(500, "Internal server error", {"fault_injection": True})
        return None

    def _auth_error(self, scope: Scope) -> Response | None:
        """401 unless the request carries ``Authorization: Bearer <key>`` (the right key)."""
        value = ""
        for name, raw in scope.get("headers", []):
            if name == b"authorization":
                value = raw.decode("latin-1")
                break
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        headers = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token:
            return error_response(
                401, "Missing API key: send 'Authorization: Bearer <key>'", headers=headers
            )
        if self._api_key is not None and not hmac.compare_digest(
            token.encode(), self._api_key.encode()
        ):
            return error_response(401, "Invalid API key", headers=headers)
        return None

    # --- routes -----------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        # One Route per path, dispatching on the method, so a 405 lists every allowed method.
        by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {
            "/v1/namespaces": {"GET": self._list_namespaces},
            "/v1/namespaces/list": {"POST": self._list_namespaces},
            "/v1/namespaces/{namespace_identifier}": {"GET": self._get_namespace},
            "/v1/taxonomies": {"GET": self._list_taxonomies, "POST": self._create_taxonomy},
            "/v1/taxonomies/list": {"POST": self._list_taxonomies},
            "/v1/taxonomies/{taxonomy_id}/versions": {
                "GET": self._list_versions,
                "POST": self._create_version,
            },
            "/v1/taxonomies/{taxonomy_identifier}": {
                "GET": self._get_taxonomy,
                "PATCH": self._patch_taxonomy,
                "DELETE": self._delete_taxonomy,
            },
            "/v1/collections": {"GET": self._list_collections},
            "/v1/collections/list": {"POST": self._list_collections},
            "/v1/collections/{collection_identifier}/apply-taxonomy": {
                "POST": self._apply_taxonomy
            },
            "/v1/collections/{collection_identifier}": {
                "GET": self._get_collection,
                "PATCH": self._patch_collection,
            },
            "/v1/retrievers": {"GET": self._list_retrievers},
            "/v1/retrievers/list": {"POST": self._list_retrievers},
            "/v1/retrievers/{retriever_id}": {"GET": self._get_retriever},
            "/v1/tasks/list": {"POST": self._list_tasks},
            "/v1/tasks/{task_id}": {"GET": self._get_task, "DELETE": self._kill_task},
        }
        return [
            Route(path, _dispatcher(handlers), methods=list(handlers))
            for path, handlers in by_path.items()
        ]

    async def _list_namespaces(self, request: Request) -> Response:
        body = await _optional_body(request, ListNamespacesRequest)
        page = self.store.list_namespaces(self._list_query(request, body))
        return JSONResponse(
            {
                "results": page.results,
                "pagination": page.pagination(),
                "total_count": page.total_count,
            }
        )

    async def _get_namespace(self, request: Request) -> Response:
        # In auto-create mode a namespace exists as soon as anyone names it, here too, so a
        # reconciler's namespace look-up behaves like its first taxonomy call would. With
        # declared namespaces (and for unknown ns_ ids) an unknown one is 404.
        ident = request.path_params["namespace_identifier"]
        namespace = self.store.resolve_namespace(ident, create=self.auto_create_namespaces)
        return JSONResponse(namespace)

    async def _create_taxonomy(self, request: Request) -> Response:
        ns = self._namespace(request)
        body = await _required_body(request, CreateTaxonomyRequest)
        return JSONResponse(self.store.create_taxonomy(ns, body, self.ready_policy))

    async def _get_taxonomy(self, request: Request) -> Response:
        ns = self._namespace(request)
        version = _query_value(request, "version", _POSITIVE)
        ident = request.path_params["taxonomy_identifier"]
        return JSONResponse(self.store.get_taxonomy(ns, ident, version))

    async def _list_taxonomies(self, request: Request) -> Response:
        ns = self._namespace(request)
        body = await _optional_body(request, ListTaxonomiesRequest)
        page = self.store.list_taxonomies(ns, self._list_query(request, body))
        return JSONResponse(
            {
                "results": page.results,
                "pagination": page.pagination(),
                "total_count": page.total_count,
                "stats": page.stats,
            }
        )

    async def _patch_taxonomy(self, request: Request) -> Response:
        ns = self._namespace(request)
        # No body at all is the same empty update as {}: a 400, not a 422.
        body = await _optional_body(request, PatchTaxonomyRequest) or PatchTaxonomyRequest()
        ident = request.path_params["taxonomy_identifier"]
        return JSONResponse(self.store.patch_taxonomy(ns, ident, body))

    async def _delete_taxonomy(self, request: Request) -> Response:
        ns = self._namespace(request)
        taxonomy_id = self.store.delete_taxonomy(
            ns,
            request.path_params["taxonomy_identifier"],
            refuse_if_applied=self.applied_taxonomy_delete == "strict",
        )
        return JSONResponse({"success": True, "taxonomy_id": taxonomy_id})

    async def _create_version(self, request: Request) -> Response:
        ns = self._namespace(request)
        body = await _required_body(request, CreateTaxonomyVersionRequest)
        taxonomy_id = request.path_params["taxonomy_id"]
        return JSONResponse(self.store.create_version(ns, taxonomy_id, body, self.ready_policy))

    async def _list_versions(self, request: Request) -> Response:
        ns = self._namespace(request)
        versions = self.store.list_versions(ns, request.path_params["taxonomy_id"])
        pagination = {
            "total": len(versions),
            "page": 1,
            "page_size": len(versions),
            "total_pages": 1,
            "next_page": None,
            "previous_page": None,
            "next_cursor": None,
        }
        return JSONResponse(
            {
                "results": versions,
                "pagination": pagination,
                "total_count": len(versions),
                "stats": None,
            }
        )

    # --- collections, retrievers, tasks ---------------------------------------------------

    async def _list_collections(self, request: Request) -> Response:
        body = await _optional_body(request, ListCollectionsRequest)
        query = self._list_query(request, body)
        # The GET alias takes ``search`` and ``include_system`` as query parameters.
        search = _first(query.search, request.query_params.get("search") or None)
        query = replace(query, search=search)
        include_system = _first(
            body.include_system if body else None,
            _query_value(request, "include_system", _BOOL),
        )
        ns = self._list_namespace(request)
        if ns is None:
            return _unresolved(request, query, {"total_count": 0, "stats": None})
        page = self.store.list_collections(ns, query, include_system=bool(include_system))
        return JSONResponse(
            {
                "results": page.results,
                "pagination": page.pagination(),
                "total_count": page.total_count,
                "stats": page.stats,
                "warnings": [],
            }
        )

    async def _get_collection(self, request: Request) -> Response:
        ns = self._namespace(request)
        ident = request.path_params["collection_identifier"]
        return JSONResponse(self.store.get_collection(ns, ident))

    async def _patch_collection(self, request: Request) -> Response:
        ns = self._namespace(request)
        body = await _patch_collection_body(request)
        ident = request.path_params["collection_identifier"]
        return JSONResponse(
            self.store.patch_collection(
                ns, ident, body, check_taxonomies=not self.lenient_taxonomy_refs
            )
        )

    async def _apply_taxonomy(self, request: Request) -> Response:
        ns = self._namespace(request)
        body = await _required_body(request, ApplyTaxonomyRequest)
        ident = request.path_params["collection_identifier"]
        return JSONResponse(
            self.store.apply_taxonomy(ns, ident, body, refuse_empty=self.refuse_empty_backfill)
        )

    async def _list_retrievers(self, request: Request) -> Response:
        body = await _optional_body(request, ListRetrieversRequest)
        query = replace(self._list_query(request, body), filter_dialect="mongo")
        ns = self._list_namespace(request)
        if ns is None:
            return _unresolved(request, query, {"total": 0})
        page = self.store.list_retrievers(ns, query)
        return JSONResponse(
            {
                "results": page.results,
                "total": page.total_count,
                "pagination": page.pagination(),
                "warnings": [],
            }
        )

    async def _get_retriever(self, request: Request) -> Response:
        ns = self._namespace(request)
        return JSONResponse(self.store.get_retriever(ns, request.path_params["retriever_id"]))

    async def _get_task(self, request: Request) -> Response:
        # Bearer only: tasks are organisation-wide, so X-Namespace is neither needed nor read.
        return JSONResponse(self.store.get_task(request.path_params["task_id"]))

    async def _list_tasks(self, request: Request) -> Response:
        body = await _optional_body(request, ListTasksRequest)
        query = self._list_query(request, body)
        page = self.store.list_tasks(
            query,
            status=body.status if body else None,
            task_type=body.task_type if body else None,
        )
        return JSONResponse({"results": page.results, "pagination": page.pagination()})

    async def _kill_task(self, request: Request) -> Response:
        # Idempotent by contract: an unknown or finished task is a success too.
        self.store.kill_task(request.path_params["task_id"])
        return JSONResponse({"message": "Successfully deleted", "success": True})

    # --- request helpers ----------------------------------------------------------------

    def _namespace(self, request: Request) -> str:
        """The namespace id named by ``X-Namespace`` (created on first use in auto mode)."""
        value = request.headers.get("x-namespace", "").strip()
        if not value:
            raise ErrorReply(
                400,
                "Missing X-Namespace header: send the namespace name or id",
                {"header": "X-Namespace"},
            )
        record = self.store.resolve_namespace(value, create=self.auto_create_namespaces)
        return str(record["namespace_id"])

    def _list_namespace(self, request: Request) -> str | None:
        """The namespace of a collections or retrievers list; None when X-Namespace does not
        resolve, which those lists answer with an empty page and a warning, not a 404.
        Unknown is decided as for every other route (see ``_namespace``)."""
        try:
            return self._namespace(request)
        except NotFound as exc:
            if (exc.details or {}).get("resource") == "namespace":
                return None
            raise

    def _list_query(self, request: Request, body: BaseModel | None) -> ListQuery:
        """Resolve page size, offset and cursor: body beats query, ``limit`` beats ``page_size``.

        Bodies without pagination keys (retrievers, tasks) page by the query alone."""
        query_limit = _query_value(request, "limit", _PAGE_SIZE)
        query_page_size = _query_value(request, "page_size", _PAGE_SIZE)
        query_offset = _query_value(request, "offset", _OFFSET)
        query_page = _query_value(request, "page", _POSITIVE)
        include_total = bool(_query_value(request, "include_total", _BOOL))
        cursor = next(
            (
                request.query_params[name]
                for name in ("cursor", "next_cursor", "after")
                if request.query_params.get(name)
            ),
            None,
        )
        size = _first(
            getattr(body, "limit", None),
            getattr(body, "page_size", None),
            query_limit,
            query_page_size,
        )
        limit = min(size or self.default_page_size, self.max_page_size)
        offset = _first(getattr(body, "offset", None), query_offset)
        page = _first(getattr(body, "page", None), query_page)
        if offset is None and page is not None:
            offset = (page - 1) * limit
            if offset > MAX_OFFSET:
                raise ErrorReply(
                    400,
                    f"Offset paging cannot go past {MAX_OFFSET} items; use the cursor",
                    {"page": page, "limit": limit},
                )
        filters = getattr(body, "filters", None)
        if isinstance(filters, BaseModel):  # a typed LogicalOperatorInput: back to the JSON sent
            filters = filters.model_dump(mode="json", exclude_unset=True)
        return ListQuery(
            limit=limit,
            cursor=cursor,
            offset=offset,
            filters=filters,
            search=getattr(body, "search", None),
            sort=getattr(body, "sort", None),
            sorts=getattr(body, "sorts", None),
            case_sensitive=bool(getattr(body, "case_sensitive", False)),
            include_total=include_total,
        )


def create_app(
    *,
    store: Store | None = None,
    state_path: Path | str | None = None,
    namespaces: Iterable[str] = (),
    auto_create_namespaces: bool | None = None,
    api_key: str | None = None,
    faults: Faults | None = None,
    max_page_size: int = 1000,
    default_page_size: int = 100,
    ready_after_reads: int | None = 3,
    ready_after_seconds: float | None = None,
    seed: Seed | Mapping[str, Any] | Path | str | None = None,
    lenient_taxonomy_refs: bool = False,
    applied_taxonomy_delete: str = "dangling",
    refuse_empty_backfill: bool = True,
    task_polls: int | None = None,
    task_outcome: TaskOutcome | None = None,
) -> EmulatorApp:
    """Build the emulator app.

    ``store`` or ``state_path`` (not both) choose the state; neither means in memory.
    ``namespaces`` are created up front; unknown namespaces are then 404 unless
    ``auto_create_namespaces`` says otherwise (it defaults to True only when no
    namespaces are given). In auto-create mode any use of a namespace name (the
    X-Namespace header, or ``GET /v1/namespaces/{name}``) creates it. ``api_key``: the only bearer token accepted (None accepts
    any non-empty token). ``max_page_size`` silently caps list page sizes.
    ``ready_after_reads`` / ``ready_after_seconds``: when cluster/llm hierarchical
    taxonomies turn ready (see ReadyPolicy).

    Collections, retrievers and backfills: ``seed`` (a Seed, its data, or a seed file)
    puts collections and retrievers into the store. ``lenient_taxonomy_refs`` lets a
    collection PATCH name taxonomies that do not exist (default: 404).
    ``applied_taxonomy_delete``: ``"dangling"`` (default) deletes a taxonomy that
    collections apply and leaves their entries; ``"strict"`` refuses with a 400 naming
    them. ``refuse_empty_backfill``: apply-taxonomy on a collection with no documents is
    a 400 (default). ``task_polls`` / ``task_outcome``, when given, change the store's TaskPolicy.
    """
    if store is not None and state_path is not None:
        raise ValueError("pass either store or state_path, not both")
    if max_page_size < 1 or default_page_size < 1:
        raise ValueError("max_page_size and default_page_size must be >= 1")
    if ready_after_reads is not None and ready_after_reads < 0:
        raise ValueError("ready_after_reads must be >= 0 or None")
    if applied_taxonomy_delete not in APPLIED_DELETE_MODES:
        raise ValueError(
            f"applied_taxonomy_delete must be one of {', '.join(APPLIED_DELETE_MODES)}"
        )
    store = store if store is not None else Store(state_path)
    if task_polls is not None or task_outcome is not None:
        current = store.task_policy
        store.task_policy = TaskPolicy(
            polls=current.polls if task_polls is None else task_polls,
            outcome=current.outcome if task_outcome is None else task_outcome,
            error=current.error,
        )
    declared = list(namespaces)
    for name in declared:
        store.ensure_namespace(name)
    if seed is not None:
        store.seed(as_seed(seed))
    return EmulatorApp(
        store=store,
        auto_create_namespaces=(
            not declared if auto_create_namespaces is None else auto_create_namespaces
        ),
        api_key=api_key,
        faults=faults,
        max_page_size=max_page_size,
        default_page_size=default_page_size,
        ready_policy=ReadyPolicy(after_reads=ready_after_reads, after_seconds=ready_after_seconds),
        lenient_taxonomy_refs=lenient_taxonomy_refs,
        applied_taxonomy_delete=applied_taxonomy_delete,
        refuse_empty_backfill=refuse_empty_backfill,
    )


# Set on a scope whose path keeps "%2F" (and "%25") encoded: its path parameters are
# decoded by the dispatcher.
_ESCAPED_SLASHES = "taxsync.escaped_slashes"


def _slash_in_segment(scope: Scope) -> Scope:
    """Route ``/v1/taxonomies/a%2Fb`` as taxonomy ``a/b``, as the real service does
    (TAXONOMIES.md §1), not as the longer path ``/v1/taxonomies/a/b``.

    ASGI servers decode ``%2F`` in ``path``; the raw path still has it, so the routing path
    is rebuilt from it with ``/`` (and ``%``) inside a segment kept encoded.
    """
    raw = scope.get("raw_path")
    if not raw or b"%2f" not in raw.lower():
        return scope
    segments = raw.split(b"?")[0].decode("latin-1").split("/")
    path = "/".join(unquote(s).replace("%", "%25").replace("/", "%2F") for s in segments)
    return {**scope, "path": path, _ESCAPED_SLASHES: True}


def _dispatcher(
    handlers: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        if request.scope.get(_ESCAPED_SLASHES):
            params = request.scope.get("path_params", {})
            request.scope["path_params"] = {k: unquote(v) for k, v in params.items()}
        # Starlette answers HEAD on GET routes; it is a GET without a body.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


# --- body and query validation ---------------------------------------------------------


async def _optional_body(request: Request, model: type[_M]) -> _M | None:
    """Validate an optional JSON body with a wire model; None when there is no body."""
    raw = await request.body()
    return _validate_body(raw, model) if raw.strip() else None


async def _required_body(request: Request, model: type[_M]) -> _M:
    """Validate a required JSON body with a wire model; 422 envelopes on failure."""
    raw = await request.body()
    if not raw.strip():
        raise ErrorReply(
            422,
            "Request validation failed: a JSON body is required",
            {"validation_errors": [{"loc": ["body"], "msg": "Field required", "type": "missing"}]},
        )
    return _validate_body(raw, model)


async def _patch_collection_body(request: Request) -> PatchCollectionRequest:
    """The PATCH body: read-only fields are a 400 (before unknown keys, a 422)."""
    raw = await request.body()
    if not raw.strip():
        # No body at all is the same empty update as {}: a 400, not a 422.
        return PatchCollectionRequest()
    data = _parse_json(raw)
    read_only = (
        [key for key in data if key in COLLECTION_READ_ONLY_FIELDS]
        if isinstance(data, dict)
        else []
    )
    if read_only:
        raise ErrorReply(
            400,
            f"Read-only collection field(s) {', '.join(read_only)} cannot be changed with "
            "PATCH (source, feature_extractor and field_passthrough need a clone)",
            {"read_only_fields": read_only},
        )
    return _validate_data(data, PatchCollectionRequest)


def _unresolved(request: Request, query: ListQuery, counts: dict[str, Any]) -> Response:
    """A list answer for an X-Namespace that names no namespace: 200 and nothing in it,
    flagged by a DegradedEntry and a header so it cannot pass for an empty namespace."""
    namespace = request.headers.get("x-namespace", "").strip()
    page = Page(results=[], total_count=0, next_cursor=None, page=1, page_size=query.limit)
    warning = {
        "resource": "namespace",
        "id": namespace,
        "reason": "unresolved",
        "next_step": "Check the X-Namespace header: it names no namespace this API key can see.",
        "stage": None,
    }
    body = {"results": [], **counts, "pagination": page.pagination(), "warnings": [warning]}
    return JSONResponse(body, headers={UNRESOLVED_HEADER: "true"})


def _validate_body(raw: bytes, model: type[_M]) -> _M:
    return _validate_data(_parse_json(raw), model)


def _parse_json(raw: bytes) -> Any:
    """The body as JSON; a 422 envelope when it is not JSON (NaN and Infinity included)."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        position = getattr(exc, "pos", 0)
        raise ErrorReply(
            422,
            "Request validation failed: the body is not valid JSON",
            {
                "validation_errors": [
                    {
                        "loc": ["body", position],
                        "msg": f"JSON decode error: {exc}",
                        "type": "json_invalid",
                    }
                ]
            },
        ) from None


def _validate_data(data: Any, model: type[_M]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, ("body",), model)


def _query_value(request: Request, name: str, adapter: TypeAdapter[Any]) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        _raise_validation(exc, ("query", name), None)


def _raise_validation(
    exc: ValidationError, prefix: tuple[str, ...], model: type[BaseModel] | None
) -> NoReturn:
    """Turn pydantic errors into a 422 envelope; unknown keys list the accepted keys."""
    errors: list[dict[str, Any]] = []
    unknown: list[str] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *error["loc"]]
        entry: dict[str, Any] = {"loc": loc, "msg": error["msg"], "type": error["type"]}
        if error["type"] == "extra_forbidden" and model is not None:
            accepted = accepted_keys(model, tuple(error["loc"][:-1]))
            entry["msg"] = f"Extra inputs are not permitted; accepted keys: {', '.join(accepted)}"
            entry["accepted_keys"] = accepted
            unknown.append(
                f"'{'.'.join(str(p) for p in loc)}' (accepted keys: {', '.join(accepted)})"
            )
        errors.append(entry)
    message = "Request validation failed"
    if unknown:
        message += ": unknown key(s) " + "; ".join(unknown)
    raise ErrorReply(422, message, {"validation_errors": errors})


def accepted_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model`` ([] if ambiguous)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    models = [a for _, a in _members(annotation) if _is_model(a)]
    return list(models[0].model_fields) if len(models) == 1 else []


def _members(annotation: Any) -> list[tuple[str | None, Any]]:
    """Flatten Optional/Union/Annotated into (union tag, type) pairs."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        tag = next((m.tag for m in metadata if isinstance(m, Tag)), None)
        return [(tag or inner_tag, inner) for inner_tag, inner in _members(base)]
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) if arg is not type(None) for m in _members(arg)]
    return [(None, annotation)]


def _step(annotation: Any, part: Any) -> Any:
    members = _members(annotation)
    if isinstance(part, int):
        return next((get_args(a)[0] for _, a in members if get_origin(a) is list), None)
    for tag, member in members:
        if tag == part:
            return member
    for _, member in members:
        if _is_model(member) and part in member.model_fields:
            return member.model_fields[part].annotation
    return None


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# --- error handlers ------------------------------------------------------------------------


def _exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    return {
        ErrorReply: _error_reply,
        StoreError: _store_error,
        HTTPException: _http_exception,
        Exception: _unexpected_error,
    }


async def _error_reply(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ErrorReply)
    return error_response(exc.status, exc.message, exc.details, code=exc.code, headers=exc.headers)


_STORE_STATUS: dict[type[StoreError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    BadRequest: 400,
    StateFileError: 500,
}


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    status = _STORE_STATUS.get(type(exc), 500)
    return error_response(status, exc.message, exc.details)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Route not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "Internal server error")


# --- connection drops and small helpers ----------------------------------------------------


async def _drop_connection(
    scope: Scope, send: Send, start: Message | None, body: bytes, reason: str
) -> None:
    """Make the client see a broken connection instead of a response.

    In process this raises ConnectionDropped for the transport to translate. On a real
    server it starts a response that promises more bytes than it sends and returns
    unfinished, which makes uvicorn close the socket: the client reads a truncated
    response and raises a transport error (httpx.RemoteProtocolError).
    """
    if scope.get("extensions", {}).get(IN_PROCESS_EXTENSION):
        raise ConnectionDropped(f"emulator dropped the connection ({reason})")
    if start is None:
        start = {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
        }
    await send(start)
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


def _is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") or (method == "POST" and path.endswith("/list"))


def _is_write(method: str, path: str) -> bool:
    return method in ("POST", "PATCH", "DELETE") and not _is_read(method, path)


def _api_name(path: str) -> str:
    """The API a path belongs to (``taxonomies``, ``collections``, ``tasks``...), for 429s."""
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "v1" and parts[2] else "taxonomies"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _seconds_header(value: float) -> str:
    """Retry-After in whole seconds when possible (a fraction only if configured so)."""
    return str(_number(value))


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
