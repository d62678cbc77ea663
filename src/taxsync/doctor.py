"""``taxsync doctor``: probe the assumptions taxsync makes about the Mixpeek API.

A scripted, self-cleaning run in a namespace the user names: it creates uniquely named
probe taxonomies (``taxsync-doctor-<random>``, marked in their metadata), reads, lists,
patches and versions them, provokes a 409 and a 422, and, only for the collections the
user names, attaches, detaches and restores their ``taxonomy_applications``. Each
assumption becomes one ``Check``: ``ok``, ``differs`` (with what the server did and what
taxsync does about it) or ``skipped``. Whatever it created is deleted, and every
collection it touched is restored, in a ``finally``: on failure and on Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from taxsync.client import MixpeekClient, _segment
from taxsync.errors import ApiError, NotFoundError, TaxsyncError
from taxsync.wire import TaxonomyResponse

PROBE_PREFIX = "taxsync-doctor-"
PROBE_MARKER = "taxsync_doctor"
UNKNOWN_KEY = "taxsync_doctor_unknown_key"
Status = Literal["ok", "differs", "skipped"]
REPORT_UPSTREAM = "please report this line with `taxsync doctor --format json`"


@dataclass(frozen=True)
class Check:
    """One assumption: what was checked, and how it came out."""

    check: str
    what: str
    status: Status
    observed: str = ""  # what the server actually did (for ``differs`` and ``skipped``)
    consequence: str = ""  # what taxsync does about it

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "what": self.what,
            "status": self.status,
            "observed": self.observed,
            "consequence": self.consequence,
        }


@dataclass
class DoctorReport:
    """Every check, what was cleaned up, and anything that could not be."""

    namespace: str
    probe: str
    checks: list[Check] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None  # what stopped the probe midway, if anything did

    @property
    def ok(self) -> bool:
        """Every checked assumption holds, and nothing was left behind."""
        differs = any(c.status == "differs" for c in self.checks)
        return not (differs or self.left_behind or self.interrupted or self.error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "probe": self.probe,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "error": self.error,
            "checks": [c.as_dict() for c in self.checks],
            "cleaned": self.cleaned,
            "left_behind": self.left_behind,
        }


class _Stopped(Exception):
    """Ctrl-C: stop probing, clean up."""


class _Abort(Exception):
    """A step the rest depends on failed (its check says how)."""


def probe_config(top_k: int, retriever_id: str, collection_id: str) -> dict[str, Any]:
    """The smallest flat config the contract accepts; ``top_k`` tells versions apart."""
    return {
        "taxonomy_type": "flat",
        "retriever_id": retriever_id,
        "top_k": top_k,
        "input_mappings": [{"input_key": "text", "source_type": "payload", "path": "title"}],
        "source_collection": {
            "collection_id": collection_id,
            "enrichment_fields": [{"field_path": "label", "merge_mode": "replace"}],
        },
    }


def _api(exc: ApiError) -> str:
    """What the server answered, as a report shows it: status, type, first field error."""
    problems = exc.api_details.get("validation_errors")
    first = problems[0] if isinstance(problems, list) and problems else None
    where = ""
    if isinstance(first, dict):
        loc = ".".join(str(p) for p in first.get("loc", []))
        where = f" ({loc}: {first.get('msg', '')})"
    return f"HTTP {exc.status} {exc.error_type}: {exc.api_message}{where}"


class Probe:
    """One doctor run over an open client."""

    def __init__(
        self,
        client: MixpeekClient,
        namespace: str,
        collections: Sequence[str],
        stop: asyncio.Event,
    ) -> None:
        self.client = client
        self.ns = namespace
        self.collections = list(collections)
        self.stop = stop
        name = PROBE_PREFIX + secrets.token_hex(4)
        self.names = (name, f"{name}-2")
        self.report = DoctorReport(namespace, name)
        self.ids: dict[str, str] = {}  # probe name -> id, as created
        self.extra_ids: list[str] = []  # a duplicate the server should have refused
        self.originals: dict[str, Any] = {}  # collection -> its applications as found
        self.restored: set[str] = set()
        self.versions_made = False
        self.retriever_id = "ret_taxsync_doctor"
        self.collection_id = "col_taxsync_doctor"
        self.created_at: str | None = None

    async def run(self) -> DoctorReport:
        """Every step, then the clean-up, whatever happened."""
        try:
            await self._prepare()
            for step in self._steps():
                if self.stop.is_set():
                    raise _Stopped
                await step()
        except _Stopped:
            self.report.interrupted = True
        except _Abort:
            self._record("rest", "the remaining checks", "skipped", "an earlier step failed")
        except TaxsyncError as exc:
            self.report.error = str(exc)
        finally:
            await self._clean_up()
        return self.report

    def _steps(self) -> list[Callable[[], Awaitable[None]]]:
        steps: list[Callable[[], Awaitable[None]]] = [
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
        for ident in self.collections:
            steps.append(self._collection_step(ident))
        if not self.collections:
            steps.append(self._collections_skipped)
        return steps

    async def _collections_skipped(self) -> None:
        why = "no --collections named: the probe touches no collection"
        self._record(
            "collection patch", "PATCH of taxonomy_applications replaces the list", "skipped", why
        )
        self._record("delete applied", "DELETE of a taxonomy a collection applies", "skipped", why)

    def _record(
        self, check: str, what: str, status: Status, observed: str = "", consequence: str = ""
    ) -> None:
        self.report.checks.append(Check(check, what, status, observed, consequence))

    # --- before any write -------------------------------------------------------------

    async def _prepare(self) -> None:
        """The namespace and the named collections exist; a retriever and a collection
        for the probe's config are chosen. Nothing is written yet."""
        try:
            await self.client.get_namespace(self.ns)
        except ApiError as exc:
            if exc.status == 404:
                raise NotFoundError(f"namespace {self.ns!r} does not exist") from None
            raise
        for ident in self.collections:
            found = await self.client.get_collection(self.ns, ident)
            if found is None:
                raise NotFoundError(f"collection {ident!r} not found in namespace {self.ns!r}")
            self.originals[ident] = found.get("taxonomy_applications")
        retrievers = await self.client.list_retrievers(self.ns)
        if retrievers and retrievers[0].get("retriever_id"):
            self.retriever_id = str(retrievers[0]["retriever_id"])
        self.collection_id = await self._source_collection()

    async def _source_collection(self) -> str:
        if self.collections:
            found = await self.client.get_collection(self.ns, self.collections[0])
            return str((found or {}).get("collection_id") or self.collection_id)
        listed = await self.client.list_collections(self.ns)
        ids = [
            c.get("collection_id")
            for c in listed
            if not str(c.get("collection_name", "")).startswith("_")
        ]
        return str(ids[0]) if ids and ids[0] else self.collection_id

    def _config(self, top_k: int) -> dict[str, Any]:
        return probe_config(top_k, self.retriever_id, self.collection_id)

    # --- taxonomies -------------------------------------------------------------------

    async def _create(self) -> None:
        what = "POST /v1/taxonomies creates at version 1 and keeps the caller's metadata"
        made: list[TaxonomyResponse] = []
        for name in self.names:
            body = {
                "taxonomy_name": name,
                "description": "taxsync doctor probe: safe to delete",
                "config": self._config(1),
                "metadata": {PROBE_MARKER: "probe"},
            }
            try:
                created = await self.client.create_taxonomy(self.ns, body)
            except ApiError as exc:
                self._record(
                    "create",
                    what,
                    "differs",
                    _api(exc),
                    "taxsync cannot create taxonomies here; " + REPORT_UPSTREAM,
                )
                raise _Abort from None
            if created.taxonomy_id:
                self.ids[name] = created.taxonomy_id
            made.append(created)
        first = made[0]
        self.created_at = first.created_at
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
            self._record(
                "create",
                what,
                "differs",
                "; ".join(problems),
                "taxsync's plans would not recognise what it created; " + REPORT_UPSTREAM,
            )
            if not first.taxonomy_id:
                raise _Abort
            return
        self._record("create", what, "ok")

    @property
    def probe_id(self) -> str:
        return self.ids[self.names[0]]

    async def _read_back(self) -> None:
        name = self.names[0]
        for label, ident in (("id", self.probe_id), ("name", name)):
            what = f"GET /v1/taxonomies/{{{label}}} reads it back by {label}"
            found = await self.client.get_taxonomy(self.ns, ident)
            if found is None or found.taxonomy_id != self.probe_id or found.taxonomy_name != name:
                seen = "404" if found is None else f"{found.taxonomy_id} {found.taxonomy_name}"
                self._record(
                    f"read by {label}",
                    what,
                    "differs",
                    f"got {seen}",
                    "taxsync reads heads by id and history by name; " + REPORT_UPSTREAM,
                )
            else:
                self._record(f"read by {label}", what, "ok")

    async def _list_pages(self) -> None:
        what = "POST /v1/taxonomies/list pages by limit and next_cursor, and filters by name"
        problems = await self._page_problems()
        filters = {"AND": [{"field": "taxonomy_name", "operator": "eq", "value": self.names[0]}]}
        found = await self._list({"limit": 1, "filters": filters})
        ids = [r.get("taxonomy_id") for r in found.get("results") or []]
        if ids != [self.probe_id]:
            problems.append(f"the filter on taxonomy_name gave {ids}")
        if problems:
            self._record(
                "list",
                what,
                "differs",
                "; ".join(problems),
                "taxsync reads namespaces by these pages and would miss taxonomies; "
                + REPORT_UPSTREAM,
            )
        else:
            self._record("list", what, "ok")

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
        page = await self.client.request_json(
            "POST", "/v1/taxonomies/list", self.ns, body=body, params=params
        )
        return page if isinstance(page, dict) else {}

    async def _patch(self) -> None:
        what = "PATCH /v1/taxonomies/{id} changes the description and keeps the version"
        text = "taxsync doctor probe: patched"
        patched = await self.client.patch_taxonomy(self.ns, self.probe_id, {"description": text})
        head = await self.client.get_taxonomy(self.ns, self.probe_id)
        problems = []
        if head is None or head.description != text or patched.description != text:
            problems.append("the description did not change")
        if head is not None and head.version != 1:
            problems.append(f"the version moved to {head.version}")
        if problems:
            self._record(
                "patch",
                what,
                "differs",
                "; ".join(problems),
                "taxsync's description and metadata updates would be wrong or stale; "
                + REPORT_UPSTREAM,
            )
        else:
            self._record("patch", what, "ok")

    async def _new_version(self) -> None:
        what = 'POST /v1/taxonomies/{id}/versions with {"config": …} makes v2 the head'
        try:
            made = await self.client.create_version(
                self.ns, self.probe_id, {"config": self._config(2)}
            )
        except ApiError as exc:
            self._record(
                "new version",
                what,
                "differs",
                f"the server refused taxsync's versions body: {_api(exc)}",
                "THE VERSIONS CONTRACT DIFFERS: every config change `apply` makes will fail "
                "until taxsync learns the real body; " + REPORT_UPSTREAM,
            )
            return
        head = await self.client.get_taxonomy(self.ns, self.probe_id)
        top_k = (head.config or {}).get("top_k") if head is not None else None
        if made.version != 2 or head is None or head.version != 2 or top_k != 2:
            seen = f"answered v{made.version}; head v{head.version if head else None} with top_k {top_k}"
            self._record(
                "new version",
                what,
                "differs",
                seen,
                "taxsync's new versions would not land as planned; " + REPORT_UPSTREAM,
            )
            return
        self.versions_made = True
        self._record("new version", what, "ok")

    def _needs_versions(self, check: str, what: str) -> bool:
        if not self.versions_made:
            self._record(check, what, "skipped", "no second version was made")
        return self.versions_made

    async def _read_version_1(self) -> None:
        what = "GET /v1/taxonomies/{id}?version=1 reads the old snapshot"
        if not self._needs_versions("read version", what):
            return
        old = await self.client.get_taxonomy(self.ns, self.probe_id, version=1)
        top_k = (old.config or {}).get("top_k") if old is not None else None
        if old is None or old.version != 1 or top_k != 1:
            seen = "404" if old is None else f"v{old.version} with top_k {top_k}"
            self._record(
                "read version",
                what,
                "differs",
                seen,
                "`taxsync history` would show wrong diffs; " + REPORT_UPSTREAM,
            )
        else:
            self._record("read version", what, "ok")

    async def _list_versions(self) -> None:
        what = "GET /v1/taxonomies/{id}/versions lists v1 and v2, ascending"
        if not self._needs_versions("list versions", what):
            return
        listed = await self.client.list_versions(self.ns, self.probe_id)
        numbers = [v.version for v in listed]
        if sorted(n or 0 for n in numbers) != [1, 2]:
            self._record(
                "list versions",
                what,
                "differs",
                f"versions {numbers}",
                "`taxsync history` would be incomplete; " + REPORT_UPSTREAM,
            )
        else:
            self._record("list versions", what, "ok")

    async def _created_at(self) -> None:
        what = "created_at is the record's creation time on every version (not per version)"
        if not self._needs_versions("created_at", what):
            return
        listed = await self.client.list_versions(self.ns, self.probe_id)
        times = {v.version: v.created_at for v in listed}
        if None in times.values() or len(set(times.values()) | {self.created_at}) != 1:
            seen = ", ".join(
                f"v{n}: {t}" for n, t in sorted(times.items(), key=lambda x: x[0] or 0)
            )
            self._record(
                "created_at",
                what,
                "differs",
                seen,
                "`taxsync history` shows only the record's time; " + REPORT_UPSTREAM,
            )
        else:
            self._record("created_at", what, "ok")

    async def _duplicate_name(self) -> None:
        what = "a duplicate name is 409 AlreadyExistsError"
        body = {
            "taxonomy_name": self.names[0],
            "config": self._config(1),
            "metadata": {PROBE_MARKER: "probe"},
        }
        try:
            twin = await self.client.create_taxonomy(self.ns, body)
        except ApiError as exc:
            if exc.status == 409 and exc.error_type == "AlreadyExistsError":
                self._record("duplicate name", what, "ok")
            else:
                self._record(
                    "duplicate name",
                    what,
                    "differs",
                    _api(exc),
                    "taxsync reads a 409 on create as 'created by someone else meanwhile'; other answers fail the change",
                )
            return
        if twin.taxonomy_id:
            self.extra_ids.append(twin.taxonomy_id)
        self._record(
            "duplicate name",
            what,
            "differs",
            f"HTTP 200: a second taxonomy {twin.taxonomy_id} was created",
            "names would not identify taxonomies; taxsync's plans assume they do; "
            + REPORT_UPSTREAM,
        )

    async def _unknown_key(self) -> None:
        what = "an unknown body key is 422 extra_forbidden, naming the key"
        path = f"/v1/taxonomies/{_segment(self.probe_id)}"
        body = {"description": "taxsync doctor probe: patched", UNKNOWN_KEY: True}
        try:
            await self.client.request_json("PATCH", path, self.ns, body=body, write=True)
        except ApiError as exc:
            if exc.status == 422 and _names_key(exc, UNKNOWN_KEY):
                self._record("unknown key", what, "ok")
            else:
                self._record(
                    "unknown key",
                    what,
                    "differs",
                    _api(exc),
                    "taxsync maps 422 field errors to manifest lines from details.validation_errors[].loc; it shows the raw message instead",
                )
            return
        self._record(
            "unknown key",
            what,
            "differs",
            "HTTP 200: the key was accepted (ignored)",
            "taxsync sends only declared keys, so nothing breaks; a misspelt key would go unreported",
        )

    # --- collections ------------------------------------------------------------------

    def _collection_step(self, ident: str) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            await self._replace_check(ident)
            if self.stop.is_set():
                raise _Stopped
            await self._delete_applied_check(ident)
            if self.stop.is_set():
                raise _Stopped
            await self._restore(ident)

        return step

    def _entries(self, ident: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.originals[ident] or []]

    async def _applied(self, ident: str) -> list[str]:
        found = await self.client.get_collection(self.ns, ident)
        entries = (found or {}).get("taxonomy_applications") or []
        return [str(e.get("taxonomy_id")) for e in entries if isinstance(e, dict)]

    async def _replace_check(self, ident: str) -> None:
        what = (
            f"PATCH /v1/collections/{ident} with the whole taxonomy_applications list replaces it"
        )
        before = [str(e.get("taxonomy_id")) for e in self._entries(ident)]
        attach = [*self._entries(ident), {"taxonomy_id": self.probe_id}]
        await self.client.patch_collection(self.ns, ident, {"taxonomy_applications": attach})
        attached = await self._applied(ident)
        await self.client.patch_collection(
            self.ns, ident, {"taxonomy_applications": self._entries(ident)}
        )
        detached = await self._applied(ident)
        problems = []
        if attached != [*before, self.probe_id]:
            problems.append(f"after attaching, the list was {attached}")
        if detached != before:
            problems.append(
                f"after sending the list without the probe, it was {detached} (merged, not replaced)"
            )
        if problems:
            self._record(
                "collection patch",
                what,
                "differs",
                "; ".join(problems),
                "taxsync attaches and detaches by sending the whole list: detaching (prune, replace) would not work; "
                + REPORT_UPSTREAM,
            )
        else:
            self._record("collection patch", what, "ok")

    async def _delete_applied_check(self, ident: str) -> None:
        what = "DELETE of a taxonomy a collection applies succeeds (entries left dangling)"
        second = self.names[1]
        attach = [*self._entries(ident), {"taxonomy_id": self.ids[second]}]
        await self.client.patch_collection(self.ns, ident, {"taxonomy_applications": attach})
        try:
            await self.client.delete_taxonomy(self.ns, self.ids[second])
        except ApiError as exc:
            self._record(
                "delete applied",
                what,
                "differs",
                _api(exc),
                "taxsync detaches before deleting, so its deletes still work; run the emulator with --applied-taxonomy-delete strict to match this server",
            )
            return
        del self.ids[second]
        self.report.cleaned.append(f"deleted {second}")
        self._record("delete applied", what, "ok")

    async def _restore(self, ident: str) -> None:
        what = f"collection {ident}'s taxonomy_applications are restored exactly"
        original = self.originals[ident]
        try:
            await self.client.patch_collection(self.ns, ident, {"taxonomy_applications": original})
        except ApiError as exc:  # the clean-up tries once more, and says if it fails too
            self._record(
                "restore", what, "differs", _api(exc), "restore it by hand; " + REPORT_UPSTREAM
            )
            return
        found = await self.client.get_collection(self.ns, ident)
        now = (found or {}).get("taxonomy_applications")
        if now != original:
            self._record(
                "restore",
                what,
                "differs",
                f"now {now}, was {original}",
                "restore it by hand; " + REPORT_UPSTREAM,
            )
            self.report.left_behind.append(
                f"collection {ident}: taxonomy_applications {now}, was {original}"
            )
        else:
            self._record("restore", what, "ok")
        self.restored.add(ident)

    # --- clean-up ---------------------------------------------------------------------

    async def _clean_up(self) -> None:
        """Restore every collection touched, then delete every probe; never raises."""
        for ident, original in self.originals.items():
            if ident not in self.restored:
                await self._quietly(
                    f"restored collection {ident}'s taxonomy_applications",
                    self.client.patch_collection(
                        self.ns, ident, {"taxonomy_applications": original}
                    ),
                )
        for name in self.names:
            await self._delete_probe(name)
        for ident in self.extra_ids:
            await self._quietly(
                f"deleted the duplicate {ident}", self.client.delete_taxonomy(self.ns, ident)
            )

    async def _delete_probe(self, name: str) -> None:
        """Found by name (a create whose answer was lost is found too), marker checked."""
        try:
            found = await self.client.get_taxonomy(self.ns, name)
        except TaxsyncError as exc:
            self.report.left_behind.append(f"{name}: could not be looked up ({exc})")
            return
        if found is None or found.taxonomy_id is None:
            return
        if (found.metadata or {}).get(PROBE_MARKER) != "probe":
            self.report.left_behind.append(f"{name}: not deleted, it lacks the probe marker")
            return
        await self._quietly(
            f"deleted {name}", self.client.delete_taxonomy(self.ns, found.taxonomy_id)
        )

    async def _quietly(self, done: str, action: Awaitable[Any]) -> None:
        try:
            await action
        except TaxsyncError as exc:
            self.report.left_behind.append(f"not {done}: {exc}")
            return
        self.report.cleaned.append(done)


def _names_key(error: ApiError, key: str) -> bool:
    """The 422's field errors name ``key`` (its ``loc`` ends with it)."""
    problems = error.api_details.get("validation_errors")
    if not isinstance(problems, list):
        return False
    return any(
        isinstance(p, dict) and isinstance(p.get("loc"), list) and p["loc"][-1:] == [key]
        for p in problems
    )
