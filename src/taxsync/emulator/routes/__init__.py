"""The emulator's routes, one module per resource; this module maps paths and methods to
them and routes ``%2F`` inside a path segment as the real service does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from taxsync.emulator.routes import collections, namespaces, retrievers, tasks, taxonomies

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp

Handler = Callable[["EmulatorApp", Request], Awaitable[Response]]

# One entry per path, dispatching on the method, so a 405 lists every allowed method.
_BY_PATH: dict[str, dict[str, Handler]] = {
    "/v1/namespaces": {"GET": namespaces.list_namespaces},
    "/v1/namespaces/list": {"POST": namespaces.list_namespaces},
    "/v1/namespaces/{namespace_identifier}": {"GET": namespaces.get_namespace},
    "/v1/taxonomies": {"GET": taxonomies.list_taxonomies, "POST": taxonomies.create_taxonomy},
    "/v1/taxonomies/list": {"POST": taxonomies.list_taxonomies},
    "/v1/taxonomies/{taxonomy_id}/versions": {
        "GET": taxonomies.list_versions,
        "POST": taxonomies.create_version,
    },
    "/v1/taxonomies/{taxonomy_identifier}": {
        "GET": taxonomies.get_taxonomy,
        "PATCH": taxonomies.patch_taxonomy,
        "DELETE": taxonomies.delete_taxonomy,
    },
    "/v1/collections": {"GET": collections.list_collections},
    "/v1/collections/list": {"POST": collections.list_collections},
    "/v1/collections/{collection_identifier}/apply-taxonomy": {"POST": collections.apply_taxonomy},
    "/v1/collections/{collection_identifier}/features": {"GET": collections.get_features},
    "/v1/collections/{collection_identifier}": {
        "GET": collections.get_collection,
        "PATCH": collections.patch_collection,
    },
    "/v1/retrievers": {"GET": retrievers.list_retrievers},
    "/v1/retrievers/list": {"POST": retrievers.list_retrievers},
    "/v1/retrievers/{retriever_id}": {"GET": retrievers.get_retriever},
    "/v1/tasks/list": {"POST": tasks.list_tasks},
    "/v1/tasks/{task_id}": {"GET": tasks.get_task, "DELETE": tasks.kill_task},
}

# Set on a scope whose path keeps "%2F" (and "%25") encoded: its path parameters are
# decoded by the dispatcher.
_ESCAPED_SLASHES = "taxsync.escaped_slashes"


def routes(app: EmulatorApp) -> list[Route]:
    """Every route of the API, bound to ``app``."""
    return [
        Route(path, _dispatcher(app, handlers), methods=list(handlers))
        for path, handlers in _BY_PATH.items()
    ]


def slash_in_segment(scope: Scope) -> Scope:
    """Route ``/v1/taxonomies/a%2Fb`` as taxonomy ``a/b``, as taxsync assumes the real
    service does (docs/api-contract.md#identifiers-in-paths), not as the longer path ``/v1/taxonomies/a/b``.

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
    app: EmulatorApp, handlers: dict[str, Handler]
) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        if request.scope.get(_ESCAPED_SLASHES):
            params = request.scope.get("path_params", {})
            request.scope["path_params"] = {k: unquote(v) for k, v in params.items()}
        # Starlette answers HEAD on GET routes; it is a GET without a body.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](app, request)

    return dispatch
