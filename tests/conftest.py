"""Shared pytest fixtures: a real emulator served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from hypothesis import settings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taxsync.emulator import EmulatorApp, Store, create_app, make_server

# CI explores the same examples every run (a red build must be reproducible); developers'
# runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DEFAULT_TEST_API_KEY = "sk_test_emulator"
_STARTUP_TIMEOUT_S = 10.0
# A fail-safe for waits on something the test itself set in motion: never reached by a
# passing test, it turns a hang into a failure with a message.
WAIT_FAILSAFE_S = 60.0

_WRITE_METHODS = ("POST", "PATCH", "DELETE")


@dataclass
class Seen:
    """One HTTP request as the emulator received it, and how it was answered."""

    method: str
    path: str
    namespace: str | None
    body: bytes
    write_index: int | None  # 1-based arrival order among write requests; None for reads
    status: int | None = None  # of the response start; None while unanswered
    complete: bool = False  # the whole response was sent (False: dropped mid-response)

    @property
    def is_write(self) -> bool:
        return self.write_index is not None

    @property
    def committed(self) -> bool:
        """A write the emulator carried out (answered 2xx, even if the line then dropped)."""
        return self.is_write and self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


def is_write(method: str, path: str) -> bool:
    return method in _WRITE_METHODS and not path.endswith("/list")


@dataclass
class Rule:
    """What the recorder does to requests that ``match``, before the emulator sees them.

    ``answer`` (status, message, details): answer with that Mixpeek error envelope instead.
    ``hold``: keep the request waiting until ``release``; ``reached`` is set when the
    first one arrives. Released requests go on to the emulator only with ``forward``;
    otherwise they are answered 503 and never handled. A released rule matches nothing
    more.
    """

    match: Callable[[Seen], bool]
    answer: tuple[int, str, dict[str, Any] | None] | None = None
    hold: bool = False
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    forward: bool = False
    held: list[Seen] = field(default_factory=list)

    def wait(self) -> Seen:
        """Block until a matching request is being held; return it."""
        if not self.reached.wait(WAIT_FAILSAFE_S):
            raise AssertionError("no request matching the hold arrived")
        return self.held[0]

    def release(self, forward: bool = False) -> None:
        self.forward = forward
        self.released.set()


class Recorder:
    """An ASGI wrapper around the emulator: logs every request, and applies test rules."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []
        self.rules: list[Rule] = []
        self._writes = 0
        self._changed = threading.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:  # read the whole body first, so rules can look at it
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._changed:
            write_index = None
            if is_write(scope["method"], scope["path"]):
                self._writes += 1
                write_index = self._writes
            seen = Seen(
                scope["method"], scope["path"], headers.get("x-namespace"), body, write_index
            )
            self.seen.append(seen)
            rule = next((r for r in self.rules if not r.released.is_set() and r.match(seen)), None)
            if rule is not None and rule.hold:
                rule.held.append(seen)
                rule.reached.set()
            self._changed.notify_all()

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()
            message, body = {"type": "http.request", "body": body, "more_body": False}, None
            return message

        async def record(message: Message) -> None:
            with self._changed:
                if message["type"] == "http.response.start":
                    seen.status = message["status"]
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    seen.complete = True
                self._changed.notify_all()
            await send(message)

        if rule is not None and rule.hold:
            await asyncio.to_thread(rule.released.wait)
            if not rule.forward:
                await _envelope(503, "held by the test, never handled")(scope, replay, record)
                return
        elif rule is not None and rule.answer is not None:
            await _envelope(*rule.answer)(scope, replay, record)
            return
        await self.app(scope, replay, record)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Block until ``condition()`` holds, re-checked whenever a request or response is seen."""
        with self._changed:
            if not self._changed.wait_for(condition, WAIT_FAILSAFE_S):
                raise AssertionError(f"timed out waiting for {what}")


def _envelope(status: int, message: str, details: dict[str, Any] | None = None) -> Any:
    from taxsync.emulator.app import error_response

    return error_response(status, message, details)


@dataclass
class EmulatorHandle:
    """A running emulator: where it listens, the key it accepts, its state and its traffic."""

    url: str
    api_key: str
    store: Store
    app: EmulatorApp
    recorder: Recorder

    def headers(self, namespace: str | None = None) -> dict[str, str]:
        """Authorization (and X-Namespace when given) headers for raw HTTP calls."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if namespace is not None:
            headers["X-Namespace"] = namespace
        return headers

    @property
    def requests(self) -> list[Seen]:
        """Every request received so far (including those faults answered)."""
        return list(self.recorder.seen)

    def writes(self) -> list[Seen]:
        """Every write request received, whatever its answer."""
        return [r for r in self.requests if r.is_write]

    def committed(self) -> list[Seen]:
        """The writes the emulator carried out."""
        return [r for r in self.requests if r.committed]

    def forget(self) -> None:
        """Start a new chapter of the request log."""
        self.recorder.seen.clear()

    def hold(self, match: Callable[[Seen], bool]) -> Rule:
        """Hold the requests that ``match`` (see Rule) until the test releases them."""
        rule = Rule(match, hold=True)
        self.recorder.rules.append(rule)
        return rule

    def answer(
        self,
        match: Callable[[Seen], bool],
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> Rule:
        """Answer the requests that ``match`` with this error instead of handling them."""
        rule = Rule(match, answer=(status, message, details))
        self.recorder.rules.append(rule)
        return rule

    def wait_for_committed(self, count: int) -> None:
        """Block until at least ``count`` writes have been carried out."""
        self.recorder.wait_for(
            lambda: sum(1 for r in self.recorder.seen if r.committed) >= count,
            f"{count} committed write(s)",
        )


@pytest.fixture
def emulator() -> Iterator[Callable[..., EmulatorHandle]]:
    """Factory that starts the emulator on ``127.0.0.1`` with a port the OS picks.

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
    ``.api_key``, ``.store``, ``.app``, ``.headers(namespace)``, and the traffic the
    emulator received: ``.requests``, ``.writes()``, ``.committed()`` (see ``Seen``),
    plus ``.hold(match)`` / ``.answer(match, status, message, details)`` to stop or fail chosen
    requests before the emulator sees them. Each server runs uvicorn in a background
    thread and is shut down when the test ends.
    """
    running: list[tuple[uvicorn.Server, threading.Thread, Recorder]] = []

    def start(**app_kwargs: Any) -> EmulatorHandle:
        app_kwargs.setdefault("api_key", DEFAULT_TEST_API_KEY)
        app = create_app(**app_kwargs)
        recorder = Recorder(app)
        # Bind the socket here so the port is known and cannot be taken in between.
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = make_server(recorder, "127.0.0.1", port)  # type: ignore[arg-type]
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"emulator-{port}", daemon=True
        )
        thread.start()
        running.append((server, thread, recorder))
        _wait_until_started(server, thread)
        return EmulatorHandle(
            url=f"http://127.0.0.1:{port}",
            api_key=app_kwargs["api_key"] or DEFAULT_TEST_API_KEY,
            store=app.store,
            app=app,
            recorder=recorder,
        )

    yield start
    for server, _, recorder in running:
        for rule in recorder.rules:
            rule.release()  # a test that failed mid-hold must not keep the server busy
        server.should_exit = True
    for _, thread, _ in running:
        thread.join(timeout=5)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the emulator server thread exited during startup")
        if time.monotonic() > deadline:
            pytest.fail(f"the emulator server did not start within {_STARTUP_TIMEOUT_S:g}s")
        time.sleep(0.005)
