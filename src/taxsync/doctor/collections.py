"""The doctor's checks on the collections the user names: attach, detach, delete while
applied, and restore each collection's ``taxonomy_applications`` exactly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from taxsync.doctor.report import REPORT_UPSTREAM, api_answer
from taxsync.doctor.state import ProbeState
from taxsync.errors import ApiError


class CollectionChecks:
    """The checks that touch a named collection, and put it back."""

    def __init__(self, state: ProbeState) -> None:
        self.state = state

    async def skipped(self) -> None:
        why = "no --collections named: the probe touches no collection"
        self.state.record(
            "collection patch", "PATCH of taxonomy_applications replaces the list", "skipped", why
        )
        self.state.record(
            "delete applied", "DELETE of a taxonomy a collection applies", "skipped", why
        )

    def step(self, ident: str) -> Callable[[], Awaitable[None]]:
        """The checks of one collection as one step; Ctrl-C between them stops the probe."""

        async def step() -> None:
            await self._replace_check(ident)
            self.state.check_stop()
            await self._delete_applied_check(ident)
            self.state.check_stop()
            await self._restore(ident)

        return step

    def _entries(self, ident: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.state.originals[ident] or []]

    async def _applied(self, ident: str) -> list[str]:
        found = await self.state.client.get_collection(self.state.ns, ident)
        entries = (found or {}).get("taxonomy_applications") or []
        return [str(e.get("taxonomy_id")) for e in entries if isinstance(e, dict)]

    async def _replace_check(self, ident: str) -> None:
        what = (
            f"PATCH /v1/collections/{ident} with the whole taxonomy_applications list replaces it"
        )
        before = [str(e.get("taxonomy_id")) for e in self._entries(ident)]
        attach = [*self._entries(ident), {"taxonomy_id": self.state.probe_id}]
        self.state.touched.add(ident)
        await self.state.client.patch_collection(
            self.state.ns, ident, {"taxonomy_applications": attach}
        )
        attached = await self._applied(ident)
        await self.state.client.patch_collection(
            self.state.ns, ident, {"taxonomy_applications": self._entries(ident)}
        )
        detached = await self._applied(ident)
        problems = []
        if attached != [*before, self.state.probe_id]:
            problems.append(f"after attaching, the list was {attached}")
        if detached != before:
            problems.append(
                f"after sending the list without the probe, it was {detached} (merged, not replaced)"
            )
        if problems:
            self.state.record(
                "collection patch",
                what,
                "differs",
                "; ".join(problems),
                "taxsync attaches and detaches by sending the whole list: detaching (prune, replace) would not work; "
                + REPORT_UPSTREAM,
            )
        else:
            self.state.record("collection patch", what, "ok")

    async def _delete_applied_check(self, ident: str) -> None:
        what = "DELETE of a taxonomy a collection applies succeeds (entries left dangling)"
        second = self.state.names[1]
        attach = [*self._entries(ident), {"taxonomy_id": self.state.ids[second]}]
        await self.state.client.patch_collection(
            self.state.ns, ident, {"taxonomy_applications": attach}
        )
        try:
            await self.state.client.delete_taxonomy(self.state.ns, self.state.ids[second])
        except ApiError as exc:
            self.state.record(
                "delete applied",
                what,
                "differs",
                api_answer(exc),
                "taxsync detaches before deleting, so its deletes still work; run the emulator with --applied-taxonomy-delete strict to match this server",
            )
            return
        del self.state.ids[second]
        self.state.report.cleaned.append(f"deleted {second}")
        self.state.record("delete applied", what, "ok")

    async def _restore(self, ident: str) -> None:
        what = f"collection {ident}'s taxonomy_applications are restored exactly"
        original = self.state.originals[ident]
        try:
            await self.state.client.patch_collection(
                self.state.ns, ident, {"taxonomy_applications": original}
            )
        except ApiError as exc:  # the clean-up tries once more, and says if it fails too
            self.state.record(
                "restore",
                what,
                "differs",
                api_answer(exc),
                "restore it by hand; " + REPORT_UPSTREAM,
            )
            return
        found = await self.state.client.get_collection(self.state.ns, ident)
        now = (found or {}).get("taxonomy_applications")
        if now != original:
            self.state.record(
                "restore",
                what,
                "differs",
                f"now {now}, was {original}",
                "restore it by hand; " + REPORT_UPSTREAM,
            )
            self.state.report.left_behind.append(
                f"collection {ident}: taxonomy_applications {now}, was {original}"
            )
        else:
            self.state.record("restore", what, "ok")
        self.state.restored.add(ident)
