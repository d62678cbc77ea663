"""The task routes: read, list and kill backfill tasks, which are organisation-wide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator.bodies import optional_body
from taxsync.emulator.routes.common import list_query
from taxsync.wire import ListTasksRequest

if TYPE_CHECKING:
    from taxsync.emulator.app import EmulatorApp


async def get_task(app: EmulatorApp, request: Request) -> Response:
    # Bearer only: tasks are organisation-wide, so X-Namespace is neither needed nor read.
    return JSONResponse(app.store.get_task(request.path_params["task_id"]))


async def list_tasks(app: EmulatorApp, request: Request) -> Response:
    body = await optional_body(request, ListTasksRequest)
    query = list_query(app, request, body)
    page = app.store.list_tasks(
        query,
        status=body.status if body else None,
        task_type=body.task_type if body else None,
    )
    return JSONResponse({"results": page.results, "pagination": page.pagination()})


async def kill_task(app: EmulatorApp, request: Request) -> Response:
    # Idempotent by contract: an unknown or finished task is a success too.
    app.store.kill_task(request.path_params["task_id"])
    return JSONResponse({"message": "Successfully deleted", "success": True})
