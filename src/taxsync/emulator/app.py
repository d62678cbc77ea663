"""The emulator's ASGI application: what happens to every request before and after its
route (``routes``), and ``create_app``, which builds it from ``EmulatorOptions``.

Request bodies are validated with the pydantic models in ``taxsync.wire`` (one source of
truth); every error, including unknown routes and malformed JSON, uses the Mixpeek
envelope (``replies``).

Per request, ``EmulatorApp.__call__`` applies, in order: fault latency, the faults drawn
before handling (429, 503, 500 on reads, connection reset), bearer auth, the route, and
finally the drop-after-commit fault on successful writes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from taxsync.emulator.faults import FaultAction, FaultPlan, Faults
from taxsync.emulator.options import EmulatorOptions
from taxsync.emulator.replies import error_response, exception_handlers
from taxsync.emulator.resources import TaskPolicy
from taxsync.emulator.routes import routes, slash_in_segment
from taxsync.emulator.seed import as_seed
from taxsync.emulator.store import ReadyPolicy, Store

logger = logging.getLogger("taxsync.emulator")

#: Scope extension set by the in-process transport: a dropped connection is then raised
#: as ConnectionDropped instead of being simulated on a socket.
IN_PROCESS_EXTENSION = "taxsync.in_process"


class ConnectionDropped(Exception):
    """Raised to the in-process transport where a server would drop the connection."""


class EmulatorApp:
    """The ASGI application; ``create_app`` builds it. Its settings start as the options
    say, and a test may change them on a running app."""

    def __init__(self, store: Store, options: EmulatorOptions) -> None:
        self.store = store
        self.faults = options.faults or Faults()
        self.max_page_size = options.max_page_size
        self.default_page_size = options.default_page_size
        self.ready_policy = ReadyPolicy(
            after_reads=options.ready_after_reads, after_seconds=options.ready_after_seconds
        )
        #: Store taxonomy_applications entries naming unknown taxonomies instead of a 404.
        self.lenient_taxonomy_refs = options.lenient_taxonomy_refs
        #: "dangling" (collections keep their entries) or "strict" (400 naming them).
        self.applied_taxonomy_delete: str = options.applied_taxonomy_delete
        #: apply-taxonomy on a collection without documents is a 400.
        self.refuse_empty_backfill = options.refuse_empty_backfill
        self._api_key = options.api_key
        self._router = Starlette(routes=routes(self), exception_handlers=exception_handlers())

    def __repr__(self) -> str:
        # Deliberately leaves the API key out.
        return (
            f"EmulatorApp(store={self.store.path!s}, max_page_size={self.max_page_size}, "
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
            await self._router(slash_in_segment(scope), receive, capture)
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


def create_app(
    options: EmulatorOptions | None = None, *, store: Store | None = None
) -> EmulatorApp:
    """Build the emulator app as ``options`` say (the defaults when None).

    ``store`` serves an existing store instead of the one ``options.state_path`` names
    (giving both is a ValueError). Raises StateFileError if the state file is unreadable
    and SeedError if the seed is invalid.
    """
    options = options or EmulatorOptions()
    if store is not None and options.state_path is not None:
        raise ValueError("pass either store or state_path, not both")
    store = store if store is not None else Store(options.state_path)
    if options.task_polls is not None or options.task_outcome is not None:
        current = store.task_policy
        store.task_policy = TaskPolicy(
            polls=current.polls if options.task_polls is None else options.task_polls,
            outcome=current.outcome if options.task_outcome is None else options.task_outcome,
            error=current.error,
        )
    for name in options.namespaces:
        store.ensure_namespace(name)
    if options.seed is not None:
        store.seed(as_seed(options.seed))
    return EmulatorApp(store, options)


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
