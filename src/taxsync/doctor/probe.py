"""One doctor run: check the namespace, run every step, and clean up whatever happened."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from taxsync.client import MixpeekClient
from taxsync.doctor.cleanup import CleanUp
from taxsync.doctor.collections import CollectionChecks
from taxsync.doctor.report import DoctorReport
from taxsync.doctor.state import Abort, NotConfirmed, ProbeState, Stopped
from taxsync.doctor.taxonomies import TaxonomyChecks
from taxsync.errors import ApiError, NotFoundError, TaxsyncError
from taxsync.model import is_managed

# Asked, before anything is written, whether the probe may write beside these taxonomies
# that taxsync manages (their names); no answer means no.
Consent = Callable[[Sequence[str]], bool]


class Probe:
    """One doctor run over an open client."""

    def __init__(
        self,
        client: MixpeekClient,
        namespace: str,
        collections: Sequence[str],
        stop: asyncio.Event,
        consent: Consent | None = None,
    ) -> None:
        self.state = ProbeState(client, namespace, collections, stop)
        self.consent = consent
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
        except NotConfirmed:
            raise  # nothing was written: there is no report to give
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
        await self._ask_where_managed()
        for ident in state.collections:
            found = await client.get_collection(ns, ident)
            if found is None:
                raise NotFoundError(f"collection {ident!r} not found in namespace {ns!r}")
            state.originals[ident] = found.get("taxonomy_applications")
        retrievers = await client.list_retrievers(ns)
        if retrievers and retrievers[0].get("retriever_id"):
            state.retriever_id = str(retrievers[0]["retriever_id"])
        state.collection_id = await self._source_collection()

    async def _ask_where_managed(self) -> None:
        """A namespace holding taxonomies taxsync manages is somebody's real one: the probe
        writes there only with consent (a terminal's yes, or ``--yes``)."""
        ns = self.state.ns
        live = await self.state.client.list_taxonomies(ns)
        managed = sorted(t.taxonomy_name or "" for t in live if is_managed(t.metadata))
        if managed and not (self.consent is not None and self.consent(managed)):
            shown = ", ".join(managed[:3]) + (
                f" and {len(managed) - 3} more" if len(managed) > 3 else ""
            )
            noun = "taxonomy" if len(managed) == 1 else "taxonomies"
            raise NotConfirmed(
                f"namespace {ns!r} holds {len(managed)} {noun} taxsync manages ({shown}); "
                "doctor writes probe taxonomies there: run it on a scratch namespace, or pass "
                "--yes; nothing was written"
            )

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
