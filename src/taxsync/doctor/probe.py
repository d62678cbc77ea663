"""One doctor run: check the namespace, run every step, and clean up whatever happened."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from taxsync.client import MixpeekClient
from taxsync.doctor.cleanup import CleanUp
from taxsync.doctor.collections import CollectionChecks
from taxsync.doctor.report import DoctorReport
from taxsync.doctor.state import Abort, ProbeState, Stopped
from taxsync.doctor.taxonomies import TaxonomyChecks
from taxsync.errors import ApiError, NotFoundError, TaxsyncError


class Probe:
    """One doctor run over an open client."""

    def __init__(
        self,
        client: MixpeekClient,
        namespace: str,
        collections: Sequence[str],
        stop: asyncio.Event,
    ) -> None:
        self.state = ProbeState(client, namespace, collections, stop)
        self.taxonomies = TaxonomyChecks(self.state)
        self.collections = CollectionChecks(self.state)
        self.clean_up = CleanUp(self.state)

    @property
    def report(self) -> DoctorReport:
        return self.state.report

    async def run(self) -> DoctorReport:
        """Every step, then the clean-up, whatever happened."""
        try:
            await self._prepare()
            for step in self._steps():
                self.state.check_stop()
                await step()
        except Stopped:
            self.report.interrupted = True
        except Abort:
            self.state.record("rest", "the remaining checks", "skipped", "an earlier step failed")
        except TaxsyncError as exc:
            self.report.error = str(exc)
        finally:
            await self.clean_up.run()
        return self.report

    def _steps(self) -> list[Callable[[], Awaitable[None]]]:
        steps = self.taxonomies.steps()
        named = self.state.collections
        steps.extend(self.collections.step(ident) for ident in named)
        if not named:
            steps.append(self.collections.skipped)
        return steps

    async def _prepare(self) -> None:
        """The namespace and the named collections exist; a retriever and a collection
        for the probe's config are chosen. Nothing is written yet."""
        state, client, ns = self.state, self.state.client, self.state.ns
        try:
            await client.get_namespace(ns)
        except ApiError as exc:
            if exc.status == 404:
                raise NotFoundError(f"namespace {ns!r} does not exist") from None
            raise
        for ident in state.collections:
            found = await client.get_collection(ns, ident)
            if found is None:
                raise NotFoundError(f"collection {ident!r} not found in namespace {ns!r}")
            state.originals[ident] = found.get("taxonomy_applications")
        retrievers = await client.list_retrievers(ns)
        if retrievers and retrievers[0].get("retriever_id"):
            state.retriever_id = str(retrievers[0]["retriever_id"])
        state.collection_id = await self._source_collection()

    async def _source_collection(self) -> str:
        state = self.state
        if state.collections:
            found = await state.client.get_collection(state.ns, state.collections[0])
            return str((found or {}).get("collection_id") or state.collection_id)
        listed = await state.client.list_collections(state.ns)
        ids = [
            c.get("collection_id")
            for c in listed
            if not str(c.get("collection_name", "")).startswith("_")
        ]
        return str(ids[0]) if ids and ids[0] else state.collection_id
