"""The doctor's checks on taxonomies: create, read back, list, patch, version, refuse.

Each check records one ``Check``; a create that fails aborts the rest (nothing to probe).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from taxsync.client import _segment
from taxsync.doctor.report import REPORT_UPSTREAM, api_answer, names_key
from taxsync.doctor.state import PROBE_MARKER, UNKNOWN_KEY, Abort, ProbeState
from taxsync.errors import ApiError
from taxsync.wire import TaxonomyResponse


class TaxonomyChecks:
    """The probe taxonomies' life, step by step, each step a check."""

    def __init__(self, state: ProbeState) -> None:
        self.state = state

    def steps(self) -> list[Callable[[], Awaitable[None]]]:
        """The checks, in the order they depend on each other."""
        return [
            self._create,
            self._read_back,
            self._list_pages,
            self._patch,
            self._new_version,
            self._read_version_1,
            self._list_versions,
            self._created_at,
            self._duplicate_name,
            self._unknown_key,
        ]

    async def _create(self) -> None:
        what = "POST /v1/taxonomies creates at version 1 and keeps the caller's metadata"
        made: list[TaxonomyResponse] = []
        for name in self.state.names:
            body = {
                "taxonomy_name": name,
                "description": "taxsync doctor probe: safe to delete",
                "config": self.state.config(1),
                "metadata": {PROBE_MARKER: "probe"},
            }
            self.state.sent.add(name)
            try:
                created = await self.state.client.create_taxonomy(self.state.ns, body)
            except ApiError as exc:
                self.state.record(
                    "create",
                    what,
                    "differs",
                    api_answer(exc),
                    "taxsync cannot create taxonomies here; " + REPORT_UPSTREAM,
                )
                raise Abort from None
            if created.taxonomy_id:
                self.state.ids[name] = created.taxonomy_id
            made.append(created)
        first = made[0]
        self.state.created_at = first.created_at
        problems = [
            *(["no taxonomy_id"] if not first.taxonomy_id else []),
            *([f"version {first.version}"] if first.version != 1 else []),
            *(
                [f"metadata.{PROBE_MARKER} dropped"]
                if (first.metadata or {}).get(PROBE_MARKER) != "probe"
                else []
            ),
        ]
        if problems:
            self.state.record(
                "create",
                what,
                "differs",
                "; ".join(problems),
                "taxsync's plans would not recognise what it created; " + REPORT_UPSTREAM,
            )
            if not first.taxonomy_id:
                raise Abort
            return
        self.state.record("create", what, "ok")

    async def _read_back(self) -> None:
        name = self.state.names[0]
        for label, ident in (("id", self.state.probe_id), ("name", name)):
            what = f"GET /v1/taxonomies/{{{label}}} reads it back by {label}"
            found = await self.state.client.get_taxonomy(self.state.ns, ident)
            if (
                found is None
                or found.taxonomy_id != self.state.probe_id
                or found.taxonomy_name != name
            ):
                seen = "404" if found is None else f"{found.taxonomy_id} {found.taxonomy_name}"
                self.state.record(
                    f"read by {label}",
                    what,
                    "differs",
                    f"got {seen}",
                    "taxsync reads heads by id and history by name; " + REPORT_UPSTREAM,
                )
            else:
                self.state.record(f"read by {label}", what, "ok")

    async def _list_pages(self) -> None:
        what = "POST /v1/taxonomies/list pages by limit and next_cursor, and filters by name"
        problems = await self._page_problems()
        filters = {
            "AND": [{"field": "taxonomy_name", "operator": "eq", "value": self.state.names[0]}]
        }
        found = await self._list({"limit": 1, "filters": filters})
        ids = [r.get("taxonomy_id") for r in found.get("results") or []]
        if ids != [self.state.probe_id]:
            problems.append(f"the filter on taxonomy_name gave {ids}")
        if problems:
            self.state.record(
                "list",
                what,
                "differs",
                "; ".join(problems),
                "taxsync reads namespaces by these pages and would miss taxonomies; "
                + REPORT_UPSTREAM,
            )
        else:
            self.state.record("list", what, "ok")

    async def _page_problems(self) -> list[str]:
        first = await self._list({"limit": 1})
        results = first.get("results") or []
        cursor = (first.get("pagination") or {}).get("next_cursor")
        if len(results) != 1:
            return [f"a page of limit 1 held {len(results)} result(s)"]
        if not cursor:
            return [f"no next_cursor on a page of 1 of {first.get('total_count')} taxonomies"]
        second = await self._list({"limit": 1}, {"cursor": cursor})
        again = [r.get("taxonomy_id") for r in second.get("results") or []]
        if len(again) != 1 or again[0] == results[0].get("taxonomy_id"):
            return [f"the next page held {again}"]
        return []

    async def _list(
        self, body: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        page = await self.state.client.request_json(
            "POST", "/v1/taxonomies/list", self.state.ns, body=body, params=params
        )
        return page if isinstance(page, dict) else {}

    async def _patch(self) -> None:
        what = "PATCH /v1/taxonomies/{id} changes the description and keeps the version"
        text = "taxsync doctor probe: patched"
        patched = await self.state.client.patch_taxonomy(
            self.state.ns, self.state.probe_id, {"description": text}
        )
        head = await self.state.client.get_taxonomy(self.state.ns, self.state.probe_id)
        problems = []
        if head is None or head.description != text or patched.description != text:
            problems.append("the description did not change")
        if head is not None and head.version != 1:
            problems.append(f"the version moved to {head.version}")
        if problems:
            self.state.record(
                "patch",
                what,
                "differs",
                "; ".join(problems),
                "taxsync's description and metadata updates would be wrong or stale; "
                + REPORT_UPSTREAM,
            )
        else:
            self.state.record("patch", what, "ok")

    async def _new_version(self) -> None:
        what = 'POST /v1/taxonomies/{id}/versions with {"config": …} makes v2 the head'
        try:
            made = await self.state.client.create_version(
                self.state.ns, self.state.probe_id, {"config": self.state.config(2)}
            )
        except ApiError as exc:
            self.state.record(
                "new version",
                what,
                "differs",
                f"the server refused taxsync's versions body: {api_answer(exc)}",
                "THE VERSIONS CONTRACT DIFFERS: every config change `apply` makes will fail "
                "until taxsync learns the real body; " + REPORT_UPSTREAM,
            )
            return
        head = await self.state.client.get_taxonomy(self.state.ns, self.state.probe_id)
        top_k = (head.config or {}).get("top_k") if head is not None else None
        if made.version != 2 or head is None or head.version != 2 or top_k != 2:
            seen = f"answered v{made.version}; head v{head.version if head else None} with top_k {top_k}"
            self.state.record(
                "new version",
                what,
                "differs",
                seen,
                "taxsync's new versions would not land as planned; " + REPORT_UPSTREAM,
            )
            return
        self.state.versions_made = True
        self.state.record("new version", what, "ok")

    def _needs_versions(self, check: str, what: str) -> bool:
        if not self.state.versions_made:
            self.state.record(check, what, "skipped", "no second version was made")
        return self.state.versions_made

    async def _read_version_1(self) -> None:
        what = "GET /v1/taxonomies/{id}?version=1 reads the old snapshot"
        if not self._needs_versions("read version", what):
            return
        old = await self.state.client.get_taxonomy(self.state.ns, self.state.probe_id, version=1)
        top_k = (old.config or {}).get("top_k") if old is not None else None
        if old is None or old.version != 1 or top_k != 1:
            seen = "404" if old is None else f"v{old.version} with top_k {top_k}"
            self.state.record(
                "read version",
                what,
                "differs",
                seen,
                "`taxsync history` would show wrong diffs; " + REPORT_UPSTREAM,
            )
        else:
            self.state.record("read version", what, "ok")

    async def _list_versions(self) -> None:
        what = "GET /v1/taxonomies/{id}/versions lists v1 and v2, ascending"
        if not self._needs_versions("list versions", what):
            return
        listed = await self.state.client.list_versions(self.state.ns, self.state.probe_id)
        numbers = [v.version for v in listed]
        if sorted(n or 0 for n in numbers) != [1, 2]:
            self.state.record(
                "list versions",
                what,
                "differs",
                f"versions {numbers}",
                "`taxsync history` would be incomplete; " + REPORT_UPSTREAM,
            )
        else:
            self.state.record("list versions", what, "ok")

    async def _created_at(self) -> None:
        what = "created_at is the record's creation time on every version (not per version)"
        if not self._needs_versions("created_at", what):
            return
        listed = await self.state.client.list_versions(self.state.ns, self.state.probe_id)
        times = {v.version: v.created_at for v in listed}
        if None in times.values() or len(set(times.values()) | {self.state.created_at}) != 1:
            seen = ", ".join(
                f"v{n}: {t}" for n, t in sorted(times.items(), key=lambda x: x[0] or 0)
            )
            self.state.record(
                "created_at",
                what,
                "differs",
                seen,
                "`taxsync history` shows only the record's time; " + REPORT_UPSTREAM,
            )
        else:
            self.state.record("created_at", what, "ok")

    async def _duplicate_name(self) -> None:
        what = "a duplicate name is 409 AlreadyExistsError"
        body = {
            "taxonomy_name": self.state.names[0],
            "config": self.state.config(1),
            "metadata": {PROBE_MARKER: "probe"},
        }
        try:
            twin = await self.state.client.create_taxonomy(self.state.ns, body)
        except ApiError as exc:
            if exc.status == 409 and exc.error_type == "AlreadyExistsError":
                self.state.record("duplicate name", what, "ok")
            else:
                self.state.record(
                    "duplicate name",
                    what,
                    "differs",
                    api_answer(exc),
                    "taxsync reads a 409 on create as 'created by someone else meanwhile'; other answers fail the change",
                )
            return
        if twin.taxonomy_id:
            self.state.extra_ids.append(twin.taxonomy_id)
        self.state.record(
            "duplicate name",
            what,
            "differs",
            f"HTTP 200: a second taxonomy {twin.taxonomy_id} was created",
            "names would not identify taxonomies; taxsync's plans assume they do; "
            + REPORT_UPSTREAM,
        )

    async def _unknown_key(self) -> None:
        what = "an unknown body key is 422 extra_forbidden, naming the key"
        path = f"/v1/taxonomies/{_segment(self.state.probe_id)}"
        body = {"description": "taxsync doctor probe: patched", UNKNOWN_KEY: True}
        try:
            await self.state.client.request_json(
                "PATCH", path, self.state.ns, body=body, write=True
            )
        except ApiError as exc:
            if exc.status == 422 and names_key(exc, UNKNOWN_KEY):
                self.state.record("unknown key", what, "ok")
            else:
                self.state.record(
                    "unknown key",
                    what,
                    "differs",
                    api_answer(exc),
                    "taxsync maps 422 field errors to manifest lines from details.validation_errors[].loc; it shows the raw message instead",
                )
            return
        self.state.record(
            "unknown key",
            what,
            "differs",
            "HTTP 200: the key was accepted (ignored)",
            "taxsync sends only declared keys, so nothing breaks; a misspelt key would go unreported",
        )
