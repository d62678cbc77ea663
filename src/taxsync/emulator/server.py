"""Running the emulator: over HTTP with uvicorn, or in process as an httpx transport."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from taxsync._http import is_loopback
from taxsync.emulator.app import (
    IN_PROCESS_EXTENSION,
    ConnectionDropped,
    EmulatorApp,
    create_app,
    logger,
)
from taxsync.emulator.options import EmulatorOptions

# What uvicorn logs when an app returns mid-response, which is exactly how the emulator
# drops a connection on purpose (see app._drop_connection).
_UNFINISHED_RESPONSE_LOG = "ASGI callable returned without completing response."


class _DroppedConnectionLogFilter(logging.Filter):
    """Hide uvicorn's error line for connections the emulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _UNFINISHED_RESPONSE_LOG


def make_server(
    app: EmulatorApp, host: str = "127.0.0.1", port: int = 8080, log_level: str = "warning"
) -> uvicorn.Server:
    """A uvicorn Server for the app (not started): ``.run()`` it, or ``.run(sockets=[...])``.

    It uses uvicorn's h11 protocol, whose handling of an unfinished response (close the
    socket) is what the drop and reset faults rely on, and turns off uvicorn's access log:
    the app logs method, path and status to the ``taxsync.emulator`` logger itself.
    """
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedConnectionLogFilter) for f in error_logger.filters):
        error_logger.addFilter(_DroppedConnectionLogFilter())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        ws="none",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def serve(
    options: EmulatorOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
) -> None:
    """Serve the emulator, as ``options`` say, with uvicorn until interrupted.

    Namespaces are those ``options.namespaces`` and the seed name; an unknown one is
    unresolved, as on the real API. A non-loopback ``host`` prints a warning, since
    the emulator has no real security. Raises StateFileError (before listening) if the
    state file is unreadable, and SeedError if the seed is invalid.
    """
    if not is_loopback(host):
        print(
            f"warning: the taxonomy emulator is listening on {host}, reachable from other "
            "machines; it is a test double with no real security",
            file=sys.stderr,
        )
    app = create_app(options)
    _log_to_stderr(log_level)
    make_server(app, host, port, log_level).run()


class LocalTransport(httpx.ASGITransport):
    """An httpx transport that runs the emulator in process.

    A connection the emulator drops (faults ``reset`` and ``drop``) surfaces as
    ``httpx.RemoteProtocolError``, what httpx raises when a real server closes the
    connection mid-response, never as an emulator exception.
    """

    def __init__(self, app: EmulatorApp) -> None:
        super().__init__(app=_InProcess(app))
        self.emulator = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Run the request through the app; turn a dropped connection into a transport error."""
        try:
            return await super().handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from None


def local_transport(options: EmulatorOptions | Path | str | None = None) -> LocalTransport:
    """The in-process emulator as an ``httpx.AsyncBaseTransport`` (for ``--local``).

    ``options`` may be just a state file (e.g. ``.taxsync/local-state.json``), which
    persists state across runs; None keeps it in memory. Namespaces are those the state
    file holds (``taxsync local seed`` puts them there) and the options declare. Requests
    still need ``Authorization: Bearer
    <any key>``. Raises StateFileError at once if the state file is unreadable.
    """
    if not isinstance(options, EmulatorOptions):
        options = EmulatorOptions(state_path=None if options is None else Path(options))
    return LocalTransport(create_app(options))


class _InProcess:
    """Marks requests as in process so the app raises instead of dropping a socket."""

    def __init__(self, app: EmulatorApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions[IN_PROCESS_EXTENSION] = True
        await self._app({**scope, "extensions": extensions}, receive, send)


def _log_to_stderr(log_level: str) -> None:
    level = logging.getLevelName(log_level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s emulator %(message)s"))
        logger.addHandler(handler)
    if isinstance(level, int):
        logger.setLevel(level)
