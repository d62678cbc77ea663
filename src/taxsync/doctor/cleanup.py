"""The doctor's clean-up: restore every collection touched, delete every probe; never raises.

A taxonomy is deleted only when it carries the probe's marker, whatever its name.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from taxsync.doctor.state import PROBE_MARKER, ProbeState
from taxsync.errors import TaxsyncError


class CleanUp:
    """Undoes what a run did, recording what was cleaned and what was left behind."""

    def __init__(self, state: ProbeState) -> None:
        self.state = state

    async def run(self) -> None:
        """Restore every collection touched, then delete every probe; never raises."""
        for ident, original in self.state.originals.items():
            if ident not in self.state.restored:
                await self._quietly(
                    f"restored collection {ident}'s taxonomy_applications",
                    self.state.client.patch_collection(
                        self.state.ns, ident, {"taxonomy_applications": original}
                    ),
                )
        for name in self.state.names:
            await self._delete_probe(name)
        for ident in self.state.extra_ids:
            await self._quietly(
                f"deleted the duplicate {ident}",
                self.state.client.delete_taxonomy(self.state.ns, ident),
            )

    async def _delete_probe(self, name: str) -> None:
        """Found by name (a create whose answer was lost is found too), marker checked."""
        try:
            found = await self.state.client.get_taxonomy(self.state.ns, name)
        except TaxsyncError as exc:
            self.state.report.left_behind.append(f"{name}: could not be looked up ({exc})")
            return
        if found is None or found.taxonomy_id is None:
            return
        if (found.metadata or {}).get(PROBE_MARKER) != "probe":
            self.state.report.left_behind.append(f"{name}: not deleted, it lacks the probe marker")
            return
        await self._quietly(
            f"deleted {name}", self.state.client.delete_taxonomy(self.state.ns, found.taxonomy_id)
        )

    async def _quietly(self, done: str, action: Awaitable[Any]) -> None:
        try:
            await action
        except TaxsyncError as exc:
            self.state.report.left_behind.append(f"not {done}: {exc}")
            return
        self.state.report.cleaned.append(done)
