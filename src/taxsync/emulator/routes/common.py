"""What every route reads the same way: the namespace a request names, and its paging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator import bodies
from taxsync.emulator.errors import NotFound
from taxsync.emulator.query import ListQuery, Page
from taxsync.emulator.replies import ErrorReply

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp

#: The header a list answers with when X-Namespace names no namespace
#: (docs/api-contract.md#unresolved-namespaces).
UNRESOLVED_HEADER = "X-Namespace-Unresolved"

_M = TypeVar("_M", bound=BaseModel)


def namespace_of(app: EmulatorApp, request: Request) -> str:
    """The namespace id named by ``X-Namespace``; NotFound when it names none (never
    created on the fly)."""
    value = request.headers.get("x-namespace", "").strip()
    if not value:
        raise ErrorReply(
            400,
            "Missing X-Namespace header: send the namespace name or id",
            {"header": "X-Namespace"},
        )
    record = app.store.get_namespace(value)
    return str(record["namespace_id"])


def list_namespace(app: EmulatorApp, request: Request) -> str | None:
    """The namespace of a taxonomies, collections or retrievers list; None when
    X-Namespace does not resolve, which those lists answer with an empty page and a
    warning (``unresolved``), not a 404."""
    try:
        return namespace_of(app, request)
    except NotFound as exc:
        if (exc.details or {}).get("resource") == "namespace":
            return None
        raise


async def list_body(request: Request, model: type[_M]) -> _M | None:
    """The optional body of a list whose GET alias takes none (collections, retrievers,
    namespaces): read on ``POST .../list`` only; a body sent with the GET is not read,
    its filters included."""
    if request.method != "POST":
        return None
    return await bodies.optional_body(request, model)


def list_query(app: EmulatorApp, request: Request, body: BaseModel | None) -> ListQuery:
    """The paging a list request asks for, within the app's page sizes."""
    return bodies.list_query(
        request, body, default_limit=app.default_page_size, max_limit=app.max_page_size
    )


def unresolved(request: Request, query: ListQuery, counts: dict[str, Any]) -> Response:
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
