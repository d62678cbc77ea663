"""The collection routes: list, read, describe features, PATCH (names and
taxonomy_applications), and apply-taxonomy, which starts a backfill task."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator.bodies import (
    BOOL,
    first,
    patch_collection_body,
    query_value,
    required_body,
)
from taxsync.emulator.features import describe_features
from taxsync.emulator.routes.common import (
    list_body,
    list_namespace,
    list_query,
    namespace_of,
    unresolved,
)
from taxsync.wire import ApplyTaxonomyRequest, ListCollectionsRequest

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp


async def list_collections(app: EmulatorApp, request: Request) -> Response:
    body = await list_body(request, ListCollectionsRequest)
    query = list_query(app, request, body)
    # The GET alias takes ``search`` and ``include_system`` as query parameters.
    search = first(query.search, request.query_params.get("search") or None)
    query = replace(query, search=search)
    include_system = first(
        body.include_system if body else None,
        query_value(request, "include_system", BOOL),
    )
    ns = list_namespace(app, request)
    if ns is None:
        return unresolved(request, query, {"total_count": 0, "stats": None})
    page = app.store.list_collections(ns, query, include_system=bool(include_system))
    return JSONResponse(
        {
            "results": page.results,
            "pagination": page.pagination(),
            "total_count": page.total_count,
            "stats": page.stats,
            "warnings": [],
        }
    )


async def get_collection(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    ident = request.path_params["collection_identifier"]
    return JSONResponse(app.store.get_collection(ns, ident))


async def get_features(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    collection = app.store.get_collection(ns, request.path_params["collection_identifier"])
    return JSONResponse(describe_features(collection))


async def patch_collection(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    body = await patch_collection_body(request)
    ident = request.path_params["collection_identifier"]
    return JSONResponse(
        app.store.patch_collection(ns, ident, body, check_taxonomies=not app.lenient_taxonomy_refs)
    )


async def apply_taxonomy(app: EmulatorApp, request: Request) -> Response:
    ns = namespace_of(app, request)
    body = await required_body(request, ApplyTaxonomyRequest)
    ident = request.path_params["collection_identifier"]
    return JSONResponse(
        app.store.apply_taxonomy(ns, ident, body, refuse_empty=app.refuse_empty_backfill)
    )
