"""A session with the API: the settings that say where and how to reach it, the reporter a
run tells its front end through, and running one piece of async work on a client in an
event loop of its own, with Ctrl-C asking it to stop (``reconcile``'s entry points are built
on these and re-export them)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from taxsync.errors import ConfigError, TaxsyncError

if TYPE_CHECKING:
    from taxsync.client import MixpeekClient
    from taxsync.plan import ApplyResult, ChangeResult, Plan
    from taxsync.read_ahead import ReadAhead

DEFAULT_API_URL = "https://api.mixpeek.com"
# What plans made against the embedded emulator record as their API URL.
LOCAL_API_URL = "http://taxsync.local"
DEFAULT_LOCAL_STATE = Path(".taxsync") / "local-state.json"
DEFAULT_CONCURRENCY = 8

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Where and how to reach the API: the one object every entry point takes.

    ``local_state`` set means the embedded emulator, in process, with that state file.
    """

    api_url: str = DEFAULT_API_URL
    api_key: str = field(default="", repr=False)
    local_state: Path | None = None
    insecure: bool = False
    retry_timeout: float = 30.0
    rate_limit_per_minute: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    # Where api_url came from (an option, a variable), for the message that refuses it.
    api_url_source: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        from taxsync import redact
        from taxsync._http import parse_api_url

        redact.register(self.api_key)
        if not self.api_key.isascii():
            raise ConfigError(
                "the API key has non-ASCII characters (it travels in an HTTP header): check "
                "MIXPEEK_API_KEY"
            )
        if self.local_state is None:
            parse_api_url(self.api_url, self.api_url_source)
        if not (math.isfinite(self.retry_timeout) and self.retry_timeout > 0):
            raise ConfigError(f"retry timeout must be a positive number, not {self.retry_timeout}")
        if not 1 <= self.concurrency <= 64:
            raise ConfigError(f"concurrency must be between 1 and 64, not {self.concurrency}")
        rate = self.rate_limit_per_minute
        # A rate far below one a minute would stall every request: refuse it, as NaN.
        if rate is not None and not (math.isfinite(rate) and rate >= 1):
            raise ConfigError(f"rate limit must be at least 1/min, not {rate}/min")

    @classmethod
    def local(cls, state: str | Path = DEFAULT_LOCAL_STATE) -> Settings:
        """Settings for the embedded emulator keeping its state in ``state``."""
        return cls(local_state=Path(state))

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        api_url: str | None = None,
        local: bool = False,
        local_state: Path | None = None,
        insecure: bool = False,
        retry_timeout: float = 30.0,
        rate_limit_per_minute: float | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Settings:
        """Options first, then the environment: ``MIXPEEK_API_URL``, ``MIXPEEK_API_KEY``,
        ``TAXSYNC_LOCAL_STATE``. The only place taxsync reads the API key."""
        state = local_state or Path(environ.get("TAXSYNC_LOCAL_STATE") or DEFAULT_LOCAL_STATE)
        from_env = not api_url and environ.get("MIXPEEK_API_URL")
        return cls(
            api_url=api_url or environ.get("MIXPEEK_API_URL") or DEFAULT_API_URL,
            api_url_source="--api-url" if api_url else "MIXPEEK_API_URL" if from_env else "",
            api_key=environ.get("MIXPEEK_API_KEY", "").strip(),
            local_state=state if local else None,
            insecure=insecure,
            retry_timeout=retry_timeout,
            rate_limit_per_minute=rate_limit_per_minute,
            concurrency=concurrency,
        )

    @property
    def target_url(self) -> str:
        """The API URL plans record and saved plans must match."""
        return LOCAL_API_URL if self.local_state is not None else self.api_url.rstrip("/")


class Reporter:
    """What a run tells its front end. Every hook does nothing unless a subclass says more."""

    def plan_file(self, requested: Path | None) -> Path | None:
        """Where to save the plan: the one asked for, or the front end's own default."""
        return requested

    def skip_plan(self, settings: Settings) -> bool:
        """True when this run should not plan at all (the reporter has said why)."""
        return False

    def check_apply_allowed(self) -> None:
        """Raise a ``TaxsyncError`` if applying is not allowed in this context."""

    def failed(self, error: TaxsyncError) -> None:
        """Loading or planning failed with ``error`` (which is raised after this)."""

    def planned(self, plan: Plan, plan_file: Path | None) -> None:
        """A plan was made (and saved to ``plan_file``, if any)."""

    def apply_started(self, plan: Plan) -> None:
        """The first write of ``plan`` is about to be sent."""

    def change_done(self, result: ChangeResult) -> None:
        """One change finished, in whatever way (``result.status``)."""

    def task_polled(self, task_id: str, status: str) -> None:
        """A backfill task apply waits for (``wait``) was read: its status, upper-case."""

    def waiting(self, what: str, started: bool) -> None:
        """Apply began (``started``) or ended waiting for ``what`` (a taxonomy's readiness)."""

    def interrupting(self) -> None:
        """Ctrl-C: in-flight writes finish, no new one starts."""

    def applied(self, result: ApplyResult, plan: Plan) -> None:
        """The apply ended (or there was nothing to apply)."""


class Reporters(Reporter):
    """Several reporters heard in turn, e.g. the terminal and GitHub."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def plan_file(self, requested: Path | None) -> Path | None:
        for reporter in self.reporters:
            requested = reporter.plan_file(requested)
        return requested

    def skip_plan(self, settings: Settings) -> bool:
        return any(reporter.skip_plan(settings) for reporter in self.reporters)

    def check_apply_allowed(self) -> None:
        for reporter in self.reporters:
            reporter.check_apply_allowed()

    def failed(self, error: TaxsyncError) -> None:
        for reporter in self.reporters:
            reporter.failed(error)

    def planned(self, plan: Plan, plan_file: Path | None) -> None:
        for reporter in self.reporters:
            reporter.planned(plan, plan_file)

    def apply_started(self, plan: Plan) -> None:
        for reporter in self.reporters:
            reporter.apply_started(plan)

    def change_done(self, result: ChangeResult) -> None:
        for reporter in self.reporters:
            reporter.change_done(result)

    def task_polled(self, task_id: str, status: str) -> None:
        for reporter in self.reporters:
            reporter.task_polled(task_id, status)

    def waiting(self, what: str, started: bool) -> None:
        for reporter in self.reporters:
            reporter.waiting(what, started)

    def interrupting(self) -> None:
        for reporter in self.reporters:
            reporter.interrupting()

    def applied(self, result: ApplyResult, plan: Plan) -> None:
        for reporter in self.reporters:
            reporter.applied(result, plan)


# --- connecting ---------------------------------------------------------------------------


def connect(settings: Settings) -> MixpeekClient:
    """A client for ``settings`` (use it as ``async with connect(settings) as client``)."""
    from taxsync.client import MixpeekClient, RetryPolicy, check_api_url

    transport = None
    if settings.local_state is not None:
        from taxsync.emulator import StateFileError, local_transport

        try:
            transport = local_transport(settings.local_state)
        except StateFileError as exc:  # the user's file, as `local seed` reports it
            raise ConfigError(f"--local-state: {exc}") from None
        url, key = LOCAL_API_URL, "local"
    elif not settings.api_key:
        raise ConfigError(
            "MIXPEEK_API_KEY is not set: export your Mixpeek API key, or use --local "
            "to run against the embedded emulator"
        )
    else:
        url = check_api_url(settings.api_url, settings.insecure, settings.api_url_source)
        key = settings.api_key
    return MixpeekClient(
        url,
        key,
        transport=transport,
        retry=RetryPolicy(total_seconds=settings.retry_timeout),
        rate_limit_per_minute=settings.rate_limit_per_minute,
        # A namespace is read as three lists at once (taxonomies, collections, retrievers):
        # room for all of them, so an admitted read never queues for a connection.
        max_connections=max(settings.concurrency * 3, 4),
    )


def run(
    settings: Settings,
    work: Callable[[MixpeekClient, asyncio.Event], Awaitable[T]],
    reporter: Reporter | None = None,
    ahead: ReadAhead | None = None,
) -> T:
    """Open a client, run ``work`` on it in a fresh event loop, close the client.

    Ctrl-C sets the ``stop`` event handed to ``work`` (finish in-flight writes, start
    nothing new) and tells the reporter; a second Ctrl-C interrupts for real. With
    ``ahead``, the client and event loop are those that read ahead while manifests loaded.
    """
    run: Callable[[Coroutine[Any, Any, T]], T]
    if ahead is not None and ahead.client is not None:
        client, run = ahead.take()
    else:
        client, run = connect(settings), asyncio.run

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            if reporter is not None:
                reporter.interrupting()
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)

        # Not available off the main thread or on some platforms: Ctrl-C then aborts.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        async with client:
            return await work(client, stop)

    return run(main())
