"""The namespace routes: list them, and find one by name or id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator.routes.common import list_body, list_query
from taxsync.wire import ListNamespacesRequest

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp


async def list_namespaces(app: EmulatorApp, request: Request) -> Response:
    body = await list_body(request, ListNamespacesRequest)
    page = app.store.list_namespaces(list_query(app, request, body))
    return JSONResponse(
        {
            "results": page.results,
            "pagination": page.pagination(),
            "total_count": page.total_count,
        }
    )


async def get_namespace(app: EmulatorApp, request: Request) -> Response:
    # An unknown name or id is 404: looking a namespace up never creates it.
    return JSONResponse(app.store.get_namespace(request.path_params["namespace_identifier"]))
