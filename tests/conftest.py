"""Shared pytest fixtures: a real emulator served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import pytest
import uvicorn
from hypothesis import settings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taxsync.emulator import EmulatorApp, EmulatorOptions, Store, create_app, make_server

# CI explores the same examples every run (a red build must be reproducible); developers'
# runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DEFAULT_TEST_API_KEY = "sk_test_emulator"
# What the manifests of tests/helpers.py name, in every namespace a test emulator creates:
# planning checks that these exist. A test about missing ones passes ``seed=None``.
EVERY_NAMESPACE_SEED: dict[str, Any] = {
    "namespaces": {
        "*": {
            "collections": [
                {
                    "collection_id": "col_products_v1",
                    "collection_name": "products",
                    "document_count": 1200,
                },
                {"collection_id": "col_employees", "collection_name": "employees"},
                {"collection_id": "col_managers", "collection_name": "managers"},
                {"collection_id": "col_a", "collection_name": "col-a"},
                {"collection_id": "col_b", "collection_name": "col-b"},
            ],
            "retrievers": [{"retriever_id": "ret_clip_v1"}, {"retriever_id": "ret_face_matcher"}],
        }
    }
}
# The namespaces the fixture's emulator holds unless a test says otherwise (no request
# creates one, as on the real API).
TEST_NAMESPACES = ("production", "staging", "alpha", "beta", "gamma")
# The emulator the fixture starts unless a test says otherwise.
TEST_OPTIONS = EmulatorOptions(
    api_key=DEFAULT_TEST_API_KEY, namespaces=TEST_NAMESPACES, seed=EVERY_NAMESPACE_SEED
)
_STARTUP_TIMEOUT_S = 10.0
# A fail-safe for waits on something the test itself set in motion: never reached by a
# passing test, it turns a hang into a failure with a message.
WAIT_FAILSAFE_S = 60.0

_WRITE_METHODS = ("POST", "PATCH", "DELETE")

# Marks the test's own requests (tests.helpers.Api): the recorder passes them straight to
# the emulator, unlogged and untouched by rules, so a test can look at live state, or play
# someone else writing, while it holds or fails taxsync's requests.
OWN_REQUEST_HEADER = "x-taxsync-test-own"


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
    ``lose``: the connection breaks before the response is read, as a network fault does:
    ``"after_commit"`` once the emulator carried the request out, ``"unhandled"`` without
    the emulator ever seeing it. The client cannot tell the two apart.
    ``limit``: the rule matches its first ``limit`` requests only (None: every one).
    """

    match: Callable[[Seen], bool]
    answer: tuple[int, str, dict[str, Any] | None] | None = None
    hold: bool = False
    lose: Literal["after_commit", "unhandled"] | None = None
    limit: int | None = None
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    forward: bool = False
    held: list[Seen] = field(default_factory=list)  # what a hold rule caught, in order
    hits: list[Seen] = field(default_factory=list)  # every request the rule applied to

    def applies(self, seen: Seen) -> bool:
        spent = self.limit is not None and len(self.hits) >= self.limit
        return not (spent or self.released.is_set()) and self.match(seen)

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
        if scope["type"] != "http" or _is_own(scope):
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
            rule = next((r for r in self.rules if r.applies(seen)), None)
            if rule is not None:
                rule.hits.append(seen)
                if rule.hold:
                    rule.held.append(seen)
                    rule.reached.set()
            self._changed.notify_all()

        unread: list[bytes] = [body]  # the body, replayed once to whoever handles the request

        async def replay() -> Message:
            if not unread:
                return await receive()
            return {"type": "http.request", "body": unread.pop(), "more_body": False}

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
        elif rule is not None and rule.lose is not None:
            await _lose(rule.lose, self.app, scope, replay, record)
            return
        await self.app(scope, replay, record)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Block until ``condition()`` holds, re-checked whenever a request or response is seen."""
        with self._changed:
            if not self._changed.wait_for(condition, WAIT_FAILSAFE_S):
                raise AssertionError(f"timed out waiting for {what}")


def _is_own(scope: Scope) -> bool:
    return any(name.decode("latin-1").lower() == OWN_REQUEST_HEADER for name, _ in scope["headers"])


async def _lose(
    when: Literal["after_commit", "unhandled"],
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Break the connection mid-response: start a response that promises more bytes than it
    sends and return unfinished, which makes uvicorn close the socket (as the emulator's own
    ``drop`` fault does). ``after_commit``: the emulator handles the request first."""
    start: Message = {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
    }
    body = b""
    if when == "after_commit":
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await app(scope, receive, keep)
        body = b"".join(m.get("body", b"") for m in answer[1:])
        kept = [(k, v) for k, v in answer[0].get("headers", []) if k.lower() != b"content-length"]
        promised = str(len(body) + 64).encode()  # more than will come, even for an empty body
        start = {**answer[0], "headers": [*kept, (b"content-length", promised)]}
    await send(start)
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


def _envelope(status: int, message: str, details: dict[str, Any] | None = None) -> Any:
    from taxsync.emulator.replies import error_response

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

    def lose(
        self,
        match: Callable[[Seen], bool],
        *,
        committed: bool,
        limit: int | None = None,
    ) -> Rule:
        """Break the connection of the requests that ``match`` before their response is read:
        after the emulator carried them out (``committed``) or without it seeing them."""
        rule = Rule(match, lose="after_commit" if committed else "unhandled", limit=limit)
        self.recorder.rules.append(rule)
        return rule

    def wait_for_committed(self, count: int) -> None:
        """Block until at least ``count`` writes have been carried out."""
        self.recorder.wait_for(
            lambda: sum(1 for r in self.recorder.seen if r.committed) >= count,
            f"{count} committed write(s)",
        )


class StartEmulator(Protocol):
    """The ``emulator`` fixture: starts an emulator and returns its handle.

    Keyword arguments are ``EmulatorOptions`` fields, over ``TEST_OPTIONS`` (whose
    ``api_key`` is ``DEFAULT_TEST_API_KEY``: None accepts any key, and the handle then
    sends the default); ``store`` serves an existing store.
    """

    def __call__(self, *, store: Store | None = None, **settings: Any) -> EmulatorHandle: ...


@pytest.fixture
def emulator() -> Iterator[StartEmulator]:
    """Factory that starts the emulator on ``127.0.0.1`` with a port the OS picks.

    Usage::

        def test_x(emulator: StartEmulator) -> None:
            srv = emulator(max_page_size=2)
            httpx.get(f"{srv.url}/v1/namespaces", headers=srv.headers())

    Keyword arguments are ``EmulatorOptions`` fields (see ``StartEmulator``), over
    ``TEST_OPTIONS``: ``state_path``, ``api_key`` (default ``"sk_test_emulator"``; pass
    None to accept any key), ``faults``, ``max_page_size``, ``namespaces`` (pre-declared,
    making unknown ones 404), ``seed``..., or ``store`` to serve an existing store.
    The handle has ``.url`` (``"http://127.0.0.1:PORT"``, no trailing slash),
    ``.api_key``, ``.store``, ``.app``, ``.headers(namespace)``, and the traffic the
    emulator received: ``.requests``, ``.writes()``, ``.committed()`` (see ``Seen``),
    plus ``.hold(match)`` / ``.answer(match, status, message, details)`` /
    ``.lose(match, committed=...)`` to stop, fail or cut chosen requests before the
    emulator sees them. The test's own requests through ``tests.helpers.Api`` are not
    logged and no rule touches them. Each server runs uvicorn in a background thread and
    is shut down when the test ends.
    """
    running: list[tuple[uvicorn.Server, threading.Thread, Recorder]] = []

    def start(*, store: Store | None = None, **settings: Any) -> EmulatorHandle:
        options = replace(TEST_OPTIONS, **settings)
        app = create_app(options, store=store)
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
            api_key=options.api_key or DEFAULT_TEST_API_KEY,
            store=app.store,
            app=app,
            recorder=recorder,
        )

    yield start
    for server, thread, recorder in running:
        for rule in recorder.rules:
            rule.release()  # a test that failed mid-hold must not keep the server busy
        server.should_exit = True
        # uvicorn takes ~0.15 s to notice and close; the next test need not wait for it.
        _stopping.append(thread)


_stopping: list[threading.Thread] = []


@pytest.fixture(scope="session", autouse=True)
def _emulators_stopped() -> Iterator[None]:
    """Every emulator a test started has stopped by the end of the session."""
    yield
    for thread in _stopping:
        thread.join(timeout=5)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the emulator server thread exited during startup")
        if time.monotonic() > deadline:
            pytest.fail(f"the emulator server did not start within {_STARTUP_TIMEOUT_S:g}s")
        time.sleep(0.005)


@pytest.fixture(autouse=True)
def _replayable_draws(request: pytest.FixtureRequest) -> None:
    """Under CI, the global random generator starts each test from a seed of its own (its
    id): what draws from it (the applier's order of changes, the client's back-off jitter)
    replays run after run, so a red build can be reproduced."""
    if os.environ.get("CI"):
        random.seed(request.node.nodeid)
