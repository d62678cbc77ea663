"""Reading live state while the manifests still load.

Parsing YAML is CPU-bound and reading a namespace mostly waits, so ``plan_tree`` overlaps
the two in one event loop: loading hands over each file's taxonomies as it reads them, and
each namespace the plan will cover is read at once (the same requests a plan sends). The
``ReadAhead`` object holds those reads, the client and the loop they run in; ``plan_tree``
creates it and hands it to ``plan_manifests``, which takes the answers instead of asking
again. Nothing is reported before the manifests have loaded: a tree that does not load
raises its ``ManifestError`` as before, and its reads are cancelled, whatever they found.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from taxsync.client import MixpeekClient
    from taxsync.live import Neighbourhood
    from taxsync.model import DesiredTaxonomy
    from taxsync.planner import PlanOptions
    from taxsync.session import Settings
    from taxsync.wire import TaxonomyResponse

T = TypeVar("T")
Live = dict[str, list["TaxonomyResponse"]]
Around = dict[str, "Neighbourhood"]

# How long loading runs before it lets the event loop handle the answers of reads ahead.
_LOAD_SLICE_SECONDS = 0.002
# Objects allocated between two young collections of the cyclic GC while a plan reads ahead
# (Python's default is 700): loading and reading at once keep many young objects alive, which
# every young collection would walk again (a no-op plan of 5,000 manifests spent ~0.3 s of CPU
# more than loading and reading one after the other).
_GC_YOUNG_THRESHOLD = 20_000


class ReadAhead:
    """A plan's live reads, started while its manifests load (see the module's docstring)."""

    def __init__(
        self, runner: Any, client: MixpeekClient, options: PlanOptions, concurrency: int
    ) -> None:
        self.runner = runner  # an asyncio.Runner: one event loop for loading, then planning
        self.client: MixpeekClient | None = client  # None once the plan has taken it
        self.taken: MixpeekClient | None = None  # the client the plan took
        self.options = options
        self.concurrency = max(1, concurrency)
        self._live: dict[str, asyncio.Task[list[TaxonomyResponse]]] = {}
        self._around: dict[str, asyncio.Task[Neighbourhood]] = {}
        # Backfill task states the bookkeeping of taxonomies read ahead asks about.
        self._states: dict[str, asyncio.Task[dict[str, str]]] = {}
        self._gates: tuple[asyncio.Semaphore, asyncio.Semaphore] | None = None

    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        settings: Settings,
        options: PlanOptions,
        connect: Callable[[Settings], MixpeekClient],
    ) -> Iterator[ReadAhead | None]:
        """A read-ahead for one plan of a tree, or None to load first and read after: on
        Python 3.10 (no ``asyncio.Runner``), with the embedded emulator (reading a namespace
        creates it there), inside a running event loop, or when there is no client to be had
        (the plan's own connect raises that error again, once the manifests have loaded)."""
        client = None
        if sys.version_info >= (3, 11) and settings.local_state is None and not _in_loop():
            with contextlib.suppress(Exception):
                client = connect(settings)
        if client is None or sys.version_info < (3, 11):
            yield None
            return
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], _GC_YOUNG_THRESHOLD), *thresholds[1:])
        try:
            with asyncio.Runner() as runner:
                ahead = cls(runner, client, options, settings.concurrency)
                try:
                    yield ahead
                finally:
                    runner.run(ahead._close())
        finally:
            gc.set_threshold(*thresholds)

    def load_manifests(
        self, root: Path, environ: Mapping[str, str] | None
    ) -> list[DesiredTaxonomy]:
        """The manifest tree at ``root``, reading ahead each namespace the plan will cover."""
        return self.runner.run(self._load(root, environ))

    def take(self) -> tuple[MixpeekClient, Callable[[Coroutine[Any, Any, T]], T]]:
        """The client and the loop its reads run in, for the plan to run on."""
        client, self.client = self.client, None
        assert client is not None
        self.taken = client
        return client, self.runner.run

    async def read(self, client: MixpeekClient, namespaces: Sequence[str]) -> tuple[Live, Around]:
        """The taxonomies and the collections and retrievers of each namespace: those read
        ahead are taken, the others read now."""
        rest = [ns for ns in namespaces if ns not in self._live]
        taken = [ns for ns in namespaces if ns in self._live]
        reading = asyncio.gather(
            client.read_live(rest, self.concurrency),
            client.read_neighbourhood(rest, self.concurrency),
        )
        live_taken = asyncio.gather(*(self._live.pop(ns) for ns in taken))
        around_taken = asyncio.gather(*(self._around.pop(ns) for ns in taken))
        (live, around), lives, arounds = await asyncio.gather(reading, live_taken, around_taken)
        live.update(zip(taken, lives, strict=True))
        around.update(zip(taken, arounds, strict=True))
        return {ns: live[ns] for ns in namespaces}, {ns: around[ns] for ns in namespaces}

    def start(self, namespace: str) -> None:
        """Start reading ``namespace`` (once), as ``read`` would. Namespaces read ahead share
        one gate of ``concurrency`` per kind of read, as one call of each would."""
        if namespace in self._live or self.client is None:
            return
        if self._gates is None:
            self._gates = (asyncio.Semaphore(self.concurrency), asyncio.Semaphore(self.concurrency))
        client, (live_gate, around_gate) = self.client, self._gates

        async def live() -> list[TaxonomyResponse]:
            async with live_gate:
                found = (await client.read_live([namespace], 1))[namespace]
            self._read_states(client, found)
            return found

        async def around() -> Neighbourhood:
            async with around_gate:
                return (await client.read_neighbourhood([namespace], 1))[namespace]

        self._live[namespace] = asyncio.create_task(live())
        self._around[namespace] = asyncio.create_task(around())

    def _read_states(self, client: MixpeekClient, found: Sequence[TaxonomyResponse]) -> None:
        """Start reading the backfill tasks whose state decides what ``found`` owes."""
        from taxsync.backfills import read_states
        from taxsync.bookkeeping import tasks_to_read

        for task_id in tasks_to_read(found):
            if task_id not in self._states:
                read = read_states(client, [task_id], 1)
                self._states[task_id] = asyncio.create_task(read)

    async def task_states(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The states of ``task_ids``: those read ahead are taken, the others read now (with
        the client the plan took)."""
        from taxsync.backfills import read_states

        client = self.taken
        assert client is not None

        rest = [t for t in task_ids if t not in self._states]
        taken = [self._states.pop(t) for t in task_ids if t in self._states]
        states: dict[str, str] = {}
        for found in await asyncio.gather(read_states(client, rest, self.concurrency), *taken):
            states.update(found)
        return states

    async def _load(self, root: Path, environ: Mapping[str, str] | None) -> list[DesiredTaxonomy]:
        from taxsync.manifest import load_tree_stepwise
        from taxsync.planner import covered_namespaces

        # What the plan covers: --namespace's, or those the manifests name; in the shard.
        for namespace in covered_namespaces((), self.options):  # known before any manifest
            self.start(namespace)
        seen: set[str] = set()
        loading = load_tree_stepwise(root, environ)
        paused = time.monotonic()
        while True:
            try:
                loaded = next(loading)
            except StopIteration as done:
                return done.value
            for taxonomy in loaded:
                if taxonomy.namespace not in seen:
                    seen.add(taxonomy.namespace)
                    if taxonomy.namespace in covered_namespaces([taxonomy], self.options):
                        self.start(taxonomy.namespace)
            if time.monotonic() - paused >= _LOAD_SLICE_SECONDS:
                await asyncio.sleep(0)  # the answers that came in are handled now
                paused = time.monotonic()

    async def _close(self) -> None:
        """Reads nobody took are stopped (their failures are nobody's to report), and the
        client is closed unless the plan took it."""
        pending: list[asyncio.Task[Any]] = [
            *self._live.values(),
            *self._around.values(),
            *self._states.values(),
        ]
        self._live.clear()
        self._around.clear()
        self._states.clear()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.client is not None:
            await self.client.close()


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
