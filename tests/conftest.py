"""Shared pytest fixtures: a real emulator served by uvicorn on loopback."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from hypothesis import settings

from taxsync.emulator import EmulatorApp, Store, create_app, make_server

# CI explores the same examples every run (a red build must be reproducible); developers'
# runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DEFAULT_TEST_API_KEY = "sk_test_emulator"
_STARTUP_TIMEOUT_S = 10.0


@dataclass
class EmulatorHandle:
    """A running emulator: where it listens, the key it accepts and its state."""

    url: str
    api_key: str
    store: Store
    app: EmulatorApp

    def headers(self, namespace: str | None = None) -> dict[str, str]:
        """Authorization (and X-Namespace when given) headers for raw HTTP calls."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if namespace is not None:
            headers["X-Namespace"] = namespace
        return headers


@pytest.fixture
def emulator() -> Iterator[Callable[..., EmulatorHandle]]:
    """Factory that starts the emulator on ``127.0.0.1`` with a free port.

    Usage::

        def test_x(emulator):
            srv = emulator(max_page_size=2)
            httpx.get(f"{srv.url}/v1/namespaces",
                      headers={"Authorization": f"Bearer {srv.api_key}"})

    Keyword arguments go to ``taxsync.emulator.create_app``: ``store`` or ``state_path``,
    ``api_key`` (default ``"sk_test_emulator"``; pass None to accept any key),
    ``faults``, ``max_page_size``, ``namespaces`` (pre-declared, making unknown ones
    404), ``auto_create_namespaces``, ``ready_after_reads``, ``ready_after_seconds``...
    The handle has ``.url`` (``"http://127.0.0.1:PORT"``, no trailing slash),
    ``.api_key``, ``.store``, ``.app`` and ``.headers(namespace)``. Each server runs
    uvicorn in a background thread and is shut down when the test ends.
    """
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**app_kwargs: Any) -> EmulatorHandle:
        app_kwargs.setdefault("api_key", DEFAULT_TEST_API_KEY)
        app = create_app(**app_kwargs)
        # Bind the socket here so the port is known and cannot be taken in between.
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = make_server(app, "127.0.0.1", port)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"emulator-{port}", daemon=True
        )
        thread.start()
        running.append((server, thread))
        _wait_until_started(server, thread)
        return EmulatorHandle(
            url=f"http://127.0.0.1:{port}",
            api_key=app_kwargs["api_key"] or DEFAULT_TEST_API_KEY,
            store=app.store,
            app=app,
        )

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(timeout=5)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the emulator server thread exited during startup")
        if time.monotonic() > deadline:
            raise RuntimeError("the emulator server did not start in time")
        time.sleep(0.005)
