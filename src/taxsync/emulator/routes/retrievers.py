"""The retriever routes: list them, and read one (nothing creates them over HTTP)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator.routes.common import (
    list_body,
    list_namespace,
    list_query,
    namespace_of,
    unresolved,
)
from taxsync.wire import ListRetrieversRequest

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp


async def list_retrievers(app: EmulatorApp, request: Request) -> Response:
    body = await list_body(request, ListRetrieversRequest)
    query = replace(list_query(app, request, body), filter_dialect="mongo")
    ns = list_namespace(app, request)
    if ns is None:
        return unresolved(request, query, {"total": 0})
    page = app.store.list_retrievers(ns, query)
    return JSONResponse(
        {
            "results": page.results,
            "total": page.total_count,
            "pagination": page.pagination(),
            "warnings": [],
        }
    )


async def get_retriever(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    return JSONResponse(app.store.get_retriever(ns, request.path_params["retriever_id"]))
