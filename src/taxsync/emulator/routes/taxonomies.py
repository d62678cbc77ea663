"""The taxonomy routes: create, read, list, rename/describe, delete, and versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator.bodies import POSITIVE, optional_body, query_value, required_body
from taxsync.emulator.routes.common import list_namespace, list_query, namespace_of, unresolved
from taxsync.wire import (
    CreateTaxonomyRequest,
    CreateTaxonomyVersionRequest,
    ListTaxonomiesRequest,
    PatchTaxonomyRequest,
)

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp


async def create_taxonomy(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    body = await required_body(request, CreateTaxonomyRequest)
    return JSONResponse(app.store.create_taxonomy(ns, body, app.ready_policy))


async def get_taxonomy(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    version = query_value(request, "version", POSITIVE)
    ident = request.path_params["taxonomy_identifier"]
    return JSONResponse(app.store.get_taxonomy(ns, ident, version))


async def list_taxonomies(app: EmulatorApp, request: Request) -> Response:
    body = await optional_body(request, ListTaxonomiesRequest)
    query = list_query(app, request, body)
    ns = list_namespace(app, request)
    if ns is None:
        return unresolved(request, query, {"total_count": 0, "stats": None})
    page = app.store.list_taxonomies(ns, query)
    return JSONResponse(
        {
            "results": page.results,
            "pagination": page.pagination(),
            "total_count": page.total_count,
            "stats": page.stats,
        }
    )


async def patch_taxonomy(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    # No body at all is the same empty update as {}: a 400, not a 422.
    body = await optional_body(request, PatchTaxonomyRequest) or PatchTaxonomyRequest()
    ident = request.path_params["taxonomy_identifier"]
    return JSONResponse(app.store.patch_taxonomy(ns, ident, body))


async def delete_taxonomy(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    taxonomy_id = app.store.delete_taxonomy(
        ns,
        request.path_params["taxonomy_identifier"],
        refuse_if_applied=app.applied_taxonomy_delete == "strict",
    )
    return JSONResponse({"success": True, "taxonomy_id": taxonomy_id})


async def create_version(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    body = await required_body(request, CreateTaxonomyVersionRequest)
    taxonomy_id = request.path_params["taxonomy_id"]
    return JSONResponse(app.store.create_version(ns, taxonomy_id, body, app.ready_policy))


async def list_versions(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    versions = app.store.list_versions(ns, request.path_params["taxonomy_id"])
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
