"""The doctor's clean-up: restore every collection the run wrote to, delete every probe it
sent; never raises.

A taxonomy is deleted only when it carries the probe's marker, whatever its name. A write
whose answer is lost is re-read before anything is said: done is done, and otherwise it is
sent once more. A third interrupt (``state.abort``) stops the clean-up; what it did not
undo is listed as left behind, never silently dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from taxsync.doctor.state import PROBE_MARKER, ProbeState
from taxsync.errors import TaxsyncError

T = TypeVar("T")

_ABORTED = "the clean-up was aborted (interrupted three times)"


class _Aborted(Exception):
    """The third interrupt arrived: stop undoing, list what is left."""


class CleanUp:
    """Undoes what a run did, recording what was cleaned and what was left behind."""

    def __init__(self, state: ProbeState) -> None:
        self.state = state

    async def run(self) -> None:
        """Restore each collection the run wrote to, then delete each probe it sent."""
        state = self.state
        undo: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"collection {ident}", partial(self._restore, ident))
            for ident in sorted(state.touched - state.restored)
        ]
        undo += [
            (name, partial(self._delete_probe, name)) for name in state.names if name in state.sent
        ]
        undo += [(ident, partial(self._delete_duplicate, ident)) for ident in state.extra_ids]
        for i, (_, step) in enumerate(undo):
            try:
                await self._unless_aborted(step())
            except _Aborted:
                left = [w for w, _ in undo[i:]]
                state.report.left_behind.extend(f"{w}: {_ABORTED}" for w in left)
                return

    async def _unless_aborted(self, work: Awaitable[T]) -> T:
        """``work``, unless the abort comes first (then the request in flight is dropped)."""
        if self.state.abort.is_set():
            if asyncio.iscoroutine(work):
                work.close()
            raise _Aborted
        task = asyncio.ensure_future(work)
        aborted = asyncio.ensure_future(self.state.abort.wait())
        await asyncio.wait({task, aborted}, return_when=asyncio.FIRST_COMPLETED)
        aborted.cancel()
        if not task.done():
            task.cancel()
            raise _Aborted
        return task.result()

    async def _restore(self, ident: str) -> None:
        state = self.state
        original = state.originals[ident]

        async def restored() -> bool:
            found = await state.client.get_collection(state.ns, ident)
            return (found or {}).get("taxonomy_applications") == original

        await self._settle(
            f"restored collection {ident}'s taxonomy_applications",
            lambda: state.client.patch_collection(
                state.ns, ident, {"taxonomy_applications": original}
            ),
            restored,
        )

    async def _delete_probe(self, name: str) -> None:
        """Found by name (a create whose answer was lost is found too), marker checked."""
        state = self.state
        try:
            found = await state.client.get_taxonomy(state.ns, name)
        except TaxsyncError as exc:
            state.report.left_behind.append(f"{name}: could not be looked up ({exc})")
            return
        if found is None or found.taxonomy_id is None:
            return
        if (found.metadata or {}).get(PROBE_MARKER) != "probe":
            state.report.left_behind.append(f"{name}: not deleted, it lacks the probe marker")
            return
        await self._delete(f"deleted {name}", found.taxonomy_id)

    async def _delete_duplicate(self, ident: str) -> None:
        await self._delete(f"deleted the duplicate {ident}", ident)

    async def _delete(self, done: str, taxonomy_id: str) -> None:
        state = self.state

        async def gone() -> bool:
            return await state.client.get_taxonomy(state.ns, taxonomy_id) is None

        await self._settle(done, lambda: state.client.delete_taxonomy(state.ns, taxonomy_id), gone)

    async def _settle(
        self, done: str, write: Callable[[], Awaitable[Any]], landed: Callable[[], Awaitable[bool]]
    ) -> None:
        """Send ``write``; when it fails (an answer lost, a refusal), re-read whether it
        landed anyway, and send it once more if not. Only then is it left behind."""
        error: TaxsyncError | None = None
        for _ in range(2):
            try:
                await write()
            except TaxsyncError as exc:
                error = exc
            else:
                self.state.report.cleaned.append(done)
                return
            try:
                if await landed():
                    self.state.report.cleaned.append(done)
                    return
            except TaxsyncError as exc:
                error = exc
        self.state.report.left_behind.append(f"not {done}: {error}")
