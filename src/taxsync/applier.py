"""Carry out a Plan through a client: concurrently, idempotently, and refusing stale changes.

Idempotence rests on two habits. Before each write the taxonomy's head is checked (in a
read of its namespace's heads at most ``heads_max_age`` old, see ``heads``) and the change
is refused if it moved since the plan. After a write whose response was
lost, the head is re-read again and the write is repeated only if it did not land, so a
lost response to ``POST …/versions`` never becomes a second version.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from taxsync import backfills, normalize
from taxsync.client import MixpeekClient
from taxsync.errors import (
    ApiError,
    BackfillFailed,
    LeftoverReplacement,
    NotReady,
    Raced,
    StillApplied,
    TaxsyncError,
    WriteOutcomeUnknown,
)
from taxsync.heads import DEFAULT_MAX_AGE, Heads
from taxsync.live import SETTINGS, declared, settings
from taxsync.model import dotted, is_managed, replacement_name, strip_union_tags
from taxsync.plan import (
    TAXONOMY_ACTIONS,
    AnyChange,
    ApplyResult,
    AttachmentChange,
    BackfillChange,
    ChangeResult,
    Plan,
    TaxonomyAction,
    TaxonomyChange,
)
from taxsync.read_back import recheck_attachments
from taxsync.wire import TaxonomyResponse

DEFAULT_CONCURRENCY = 8
_MAX_WRITE_ATTEMPTS = 3

# Where a manifest field is written, as "file:line:col", given a change and a dotted spec path.
Locator = Callable[[TaxonomyChange, str], str]


@dataclass(frozen=True)
class ApplyOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    allow_replace: bool = False
    wait: bool = False
    wait_timeout: float = 300.0
    locate: Locator | None = None
    on_task: Callable[[str, str], None] | None = None  # (task id, status) at each poll
    # Draws the order of each phase; seeded, an apply replays (None: the global generator).
    rng: random.Random | None = None
    # How old the read of a namespace's heads that a change is checked against may be.
    heads_max_age: float = DEFAULT_MAX_AGE
    # (what is awaited, True as the wait starts / False as it ends): readiness waits.
    on_wait: Callable[[str, bool], None] | None = None


class _Stale(TaxsyncError):
    """This change's taxonomy moved since the plan."""


async def apply_plan(
    client: MixpeekClient,
    plan: Plan,
    options: ApplyOptions = ApplyOptions(),
    on_result: Callable[[ChangeResult], None] | None = None,
    stop: asyncio.Event | None = None,
) -> ApplyResult:
    """Apply every change, ``options.concurrency`` at a time; one failure does not stop the rest.

    In phases: renames (they free names a create may take), the other taxonomy changes,
    attachment changes (an attach to a new taxonomy needs its id; a detach goes before the
    delete), deletes, and last the backfills, so they run with every setting written. When
    ``stop`` is set (Ctrl-C) no new change starts; in-flight ones finish.
    """
    run = _Run(client, options, stop or asyncio.Event())
    sample = options.rng.sample if options.rng is not None else random.sample

    def report(outcome: ChangeResult) -> None:
        run.result.results.append(outcome)
        if on_result:
            on_result(outcome)

    async def change(change: AnyChange) -> None:
        outcome = await run.change(change)
        if not _backfills_pending(outcome):
            report(outcome)  # as it completes: the user follows the apply line by line

    async def backfill(done: ChangeResult) -> None:
        report(await run.backfill(done))

    for phase in _phases(plan.changes):
        # In an order of our own: two applies racing in lockstep over the same plan order
        # would re-check each head in the same instant and both write; apart, the later one
        # finds the head moved and stops (there is no If-Match to make this airtight).
        await _pooled(change, sample(phase, len(phase)), options.concurrency)
    await asyncio.gather(*(backfill(r) for r in run.backfilling))
    await recheck_attachments(client, run.result.results, on_result)
    run.result.interrupted = run.stop.is_set()
    order = {id(c): i for i, c in enumerate(plan.changes)}
    run.result.results.sort(key=lambda r: order[id(r.change)])
    return run.result


async def _pooled(
    work: Callable[[AnyChange], Awaitable[None]], changes: list[AnyChange], workers: int
) -> None:
    """``work`` on every change, ``workers`` at a time, each taking the next change when it
    is done: a pool of a few tasks, not one task per change (with thousands of changes
    pending, waking each in turn costs the event loop more than the requests do)."""
    queue = iter(changes)

    async def worker() -> None:
        for change in queue:  # shared: each change goes to exactly one worker
            await work(change)

    await asyncio.gather(*(worker() for _ in range(min(max(1, workers), len(changes)))))


def _backfills_pending(outcome: ChangeResult) -> bool:
    """An applied change whose backfills run last: it is reported once they have."""
    return outcome.status == "applied" and bool(outcome.change.backfills)


def _phases(changes: list[AnyChange]) -> list[list[AnyChange]]:
    taxonomies = [c for c in changes if isinstance(c, TaxonomyChange)]
    renames: list[AnyChange] = [c for c in taxonomies if c.rename_from]
    deletes: list[AnyChange] = [c for c in taxonomies if c.action == "delete"]
    rest: list[AnyChange] = [c for c in taxonomies if not c.rename_from and c.action != "delete"]
    attachments: list[AnyChange] = [c for c in changes if isinstance(c, AttachmentChange)]
    owed: list[AnyChange] = [c for c in changes if isinstance(c, BackfillChange)]
    return [renames, rest, attachments, deletes, owed]


class _Run:
    """One apply's shared state: the gate, what each taxonomy change gave (its id), the
    changes whose backfills are still to run, the backfills started (never twice for one
    collection and taxonomy), and one lock per collection (its list is rewritten whole)."""

    def __init__(self, client: MixpeekClient, options: ApplyOptions, stop: asyncio.Event):
        self.client, self.options, self.stop = client, options, stop
        self.gate = asyncio.Semaphore(max(1, options.concurrency))
        self.result = ApplyResult()
        self.taxonomies: dict[tuple[str, str], ChangeResult] = {}
        self.backfilling: list[ChangeResult] = []
        self.backfilled: set[tuple[str, str, str]] = set()
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        backfills.begin_run()  # the intents this apply records are its own
        self.heads = Heads(client, options.heads_max_age)

    async def change(self, change: AnyChange) -> ChangeResult:
        async with self.gate:
            if self.stop.is_set():
                outcome = ChangeResult(change, "not_started", "interrupted before it started")
            elif isinstance(change, AttachmentChange):
                outcome = await self._attachment(change)
            elif isinstance(change, BackfillChange):  # owed: it runs with the backfills
                outcome = ChangeResult(change, "applied", taxonomy_id=change.taxonomy_id)
            else:
                outcome = await _apply_change(self.client, change, self.options, self.heads)
        if isinstance(change, TaxonomyChange):
            self.taxonomies[(change.namespace, change.name)] = outcome
        if _backfills_pending(outcome):
            self.backfilling.append(outcome)
        return outcome

    async def _attachment(self, change: AttachmentChange) -> ChangeResult:
        """An attach, reconfigure or detach, with the id its taxonomy's change gave (if the
        plan changes that taxonomy: only once that change applied)."""
        taxonomy = self.taxonomies.get((change.namespace, change.name))
        if taxonomy is not None and taxonomy.status != "applied":
            return ChangeResult(change, "not_started", "the change to its taxonomy did not apply")
        taxonomy_id = taxonomy.taxonomy_id if taxonomy is not None else change.taxonomy_id
        if taxonomy_id is None:
            return ChangeResult(change, "failed", "the plan names no taxonomy id")
        if change.taxonomy_id not in (None, taxonomy_id):
            message = f"the plan names taxonomy {change.taxonomy_id}, its change gave {taxonomy_id}"
            return ChangeResult(change, "failed", message)
        lock = self.locks.setdefault((change.namespace, change.collection_id), asyncio.Lock())
        try:
            if change.backfills:  # recorded first, so that no cut-short run loses it
                async with self.locks.setdefault((change.namespace, taxonomy_id), asyncio.Lock()):
                    await backfills.intend_head(
                        self.client, change.namespace, taxonomy_id, change.backfills
                    )
            async with lock:
                edit = _attachment_edit(change, taxonomy_id)
                await _edit_applications(self.client, change, change.collection_id, edit)
        except _Stale as exc:
            return ChangeResult(change, "stale", str(exc))
        except TaxsyncError as exc:
            return ChangeResult(change, "failed", str(exc))
        return ChangeResult(change, "applied", taxonomy_id=taxonomy_id)

    async def backfill(self, done: ChangeResult) -> ChangeResult:
        """The backfills of an applied change (or an owed one), then (with ``wait``) their
        tasks' ends, recorded in the taxonomy's bookkeeping."""
        assert done.taxonomy_id is not None
        change, taxonomy_id = done.change, done.taxonomy_id
        applied = "" if isinstance(change, BackfillChange) else "applied, but "
        try:
            async with self.gate:
                if self.stop.is_set():
                    raise BackfillFailed(
                        "its backfill was not started (interrupted); the next apply starts it"
                    )
                started = await self._start_backfills(change, taxonomy_id, done.tasks)
            if self.options.wait and started:
                await self._wait(change, taxonomy_id, started)
        except TaxsyncError as exc:
            done.status, done.message = "failed", f"{applied}{exc}"
        return done

    async def _wait(self, change: AnyChange, taxonomy_id: str, started: dict[str, str]) -> None:
        """Follow the tasks to their ends, and record each end seen."""
        ends: dict[str, str] = {}
        try:
            await backfills.wait_tasks(
                self.client, started, self.options.wait_timeout, self.options.on_task, ends
            )
        finally:
            if ends:
                async with self.locks.setdefault((change.namespace, taxonomy_id), asyncio.Lock()):
                    await backfills.record_ends(self.client, change.namespace, taxonomy_id, ends)

    async def _start_backfills(
        self, change: AnyChange, taxonomy_id: str, tasks: list[str]
    ) -> dict[str, str]:
        """One backfill per collection and taxonomy in this apply, at most: started, or a
        task found that an earlier run's lost answer started (``taxsync.backfills``). Task
        ids go to ``tasks``; returns them by collection."""
        wanted = []
        for collection_id in change.backfills:
            key = (change.namespace, collection_id, taxonomy_id)
            if key not in self.backfilled:
                self.backfilled.add(key)
                wanted.append(collection_id)
        if not wanted:
            return {}
        mode: backfills.Mode = "owed" if isinstance(change, BackfillChange) else "planned"
        lock = self.locks.setdefault((change.namespace, taxonomy_id), asyncio.Lock())
        async with lock:
            done = await backfills.start(
                self.client, change.namespace, change.name, taxonomy_id, wanted, mode
            )
        tasks.extend(done.tasks.values())
        return done.tasks


async def _apply_change(
    client: MixpeekClient, change: TaxonomyChange, options: ApplyOptions, heads: Heads
) -> ChangeResult:
    """One taxonomy change: head checked, written, waited for (with ``wait``)."""
    if change.action == "replace" and not options.allow_replace:
        message = "replace deletes and recreates the taxonomy (new id); pass --allow-replace"
        return ChangeResult(change, "failed", message)
    if change.blocked:
        return ChangeResult(change, "failed", f"blocked: {change.blocked}")
    try:
        head = await _check_head(heads, change)
        head = await _ACTIONS[change.action](client, change, head)
        if head is not None and (change.wait or options.wait) and head.ready is False:
            head = await _awaited(
                f"{change.label} v{head.version} to be ready (inference running)",
                _wait_ready(client, change, head, options.wait_timeout),
                options.on_wait,
            )
    except _Stale as exc:
        return ChangeResult(change, "stale", str(exc))
    except ApiError as exc:
        return ChangeResult(change, "failed", _explain(exc, change, options.locate))
    except TaxsyncError as exc:
        return ChangeResult(change, "failed", str(exc))
    if head is None:
        return ChangeResult(change, "applied", taxonomy_id=change.taxonomy_id)
    return ChangeResult(change, "applied", taxonomy_id=head.taxonomy_id, version=head.version)


def _explain(error: ApiError, change: TaxonomyChange, locate: Locator | None) -> str:
    """Map a 422's field errors back to the manifest lines they came from; a new version
    refused for the body's shape says the versions contract differs."""
    if change.action == "new_version" and _versions_body_refused(error):
        return (
            f"{change.label}: the server refused the new version's body ({error}): the API's "
            "versions contract differs from the one taxsync codes to (POST …/versions with "
            '{"config": …}); run `taxsync doctor --namespace NS` against a scratch namespace '
            "and report its output"
        )
    problems = error.api_details.get("validation_errors") if error.status == 422 else None
    if not isinstance(problems, list) or not problems:
        return str(error)
    lines = []
    for problem in problems:
        loc = (
            [p for p in problem.get("loc", []) if p != "body"] if isinstance(problem, dict) else []
        )
        field = dotted(strip_union_tags(loc))
        spec_path = "metadata.name" if field == "taxonomy_name" else f"spec.{field}"
        where = locate(change, field) if locate else (change.source or change.label)
        message = problem.get("msg", "invalid") if isinstance(problem, dict) else str(problem)
        lines.append(f"{where}: {spec_path}: {message}")
    return f"{'; '.join(lines)} (HTTP 422 from {error.request})"


def _versions_body_refused(error: ApiError) -> bool:
    """A 404, 405 or 422 from ``POST …/versions`` about the body's shape (no route, a
    missing or unknown top-level key), not about a taxonomy or a config field."""
    if error.status == 405:
        return True
    if error.status == 404:
        return error.api_details.get("resource") not in ("taxonomy", "namespace")
    if error.status != 422:
        return False
    problems = error.api_details.get("validation_errors")
    if not isinstance(problems, list) or not problems:
        return True
    return any(_top_level(problem) for problem in problems)


def _top_level(problem: object) -> bool:
    """A field error at the body itself, or a top-level key missing or unknown."""
    if not isinstance(problem, dict) or not isinstance(problem.get("loc"), list):
        return True
    depth = len([p for p in problem["loc"] if p != "body"])
    return depth == 0 or (depth == 1 and problem.get("type") in ("missing", "extra_forbidden"))


async def _check_head(heads: Heads, change: TaxonomyChange) -> TaxonomyResponse | None:
    """The head as of a recent read of its namespace; refuse the change if it moved since
    the plan."""
    if change.action == "create":
        return None  # existence is caught by the create itself (409)
    assert change.taxonomy_id is not None
    head = await heads.head(change.namespace, change.taxonomy_id)
    if head is None:
        raise _Stale(f"{change.label} no longer exists")
    if head.version != change.base_version:
        raise _Stale(
            f"{change.label} moved to v{head.version} since the plan (v{change.base_version})"
        )
    return head


async def _create(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse | None
) -> TaxonomyResponse:
    body = change.create_body or {}

    async def landed() -> TaxonomyResponse | None:
        # Found by listing with a name filter (a GET by name resolves ids first), and ours
        # only with taxsync's marker and this config: anything else is someone else's.
        found = await client.taxonomies_named(change.namespace, change.name)
        if not found:
            return None
        if len(found) == 1 and _ours(found[0], body):
            return found[0]
        raise _Stale(f"{change.label} was created by someone else meanwhile")

    try:
        return await _write_once(lambda: client.create_taxonomy(change.namespace, body), landed)
    except ApiError as exc:
        if exc.status == 409:  # someone created that name since the plan
            raise _Stale(f"{change.label} was created by someone else meanwhile") from None
        raise


async def _new_version(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse | None
) -> TaxonomyResponse:
    if change.backfills:  # recorded before the version, so that no cut-short run loses them
        change = await backfills.intend_new_version(client, change, head)
    assert change.taxonomy_id is not None and change.version_body is not None
    taxonomy_id, body = change.taxonomy_id, change.version_body

    async def landed() -> TaxonomyResponse | None:
        found = await client.get_taxonomy(change.namespace, taxonomy_id)
        if found is None:
            raise _Stale(f"{change.label} was deleted meanwhile")
        if found.version == change.base_version:
            return None
        if _same_config(found.config, body["config"]):
            return found
        raise _Stale(f"{change.label} moved to v{found.version} meanwhile")

    new = await _write_once(
        lambda: client.create_version(change.namespace, taxonomy_id, body), landed
    )
    expected = (change.base_version or 0) + 1
    if new.version is not None and new.version > expected:
        # Someone re-versioned it between our head check and our write: there is no undo,
        # but it must not pass silently.
        others = (
            f"v{expected} was made by another writer"
            if new.version == expected + 1
            else f"v{expected}-v{new.version - 1} were made by other writers"
        )
        raise Raced(
            f"{change.label}: {others} at the same time as this apply's v{new.version}; "
            "run one apply at a time per namespace (see `taxsync history`)"
        )
    return await _patch(client, change, new) if change.patch_body else new


async def _patch(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse | None
) -> TaxonomyResponse:
    assert change.taxonomy_id is not None and change.patch_body is not None
    taxonomy_id, body = change.taxonomy_id, change.patch_body

    async def landed() -> TaxonomyResponse | None:
        found = await client.get_taxonomy(change.namespace, taxonomy_id)
        return found if found is not None and _patched(found, body) else None

    return await _write_once(
        lambda: client.patch_taxonomy(change.namespace, taxonomy_id, body), landed
    )


async def _delete(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse | None
) -> None:
    assert change.taxonomy_id is not None
    taxonomy_id = change.taxonomy_id
    # Checked again right before the write, whatever the plan says: a collection attached
    # since (or a hand-edited plan) must not be left pointing at a deleted taxonomy.
    applying = await client.collections_applying(change.namespace, taxonomy_id)
    if applying:
        names = ", ".join(str(c.get("collection_name") or c.get("collection_id")) for c in applying)
        raise StillApplied(f"{change.label} is still applied by {names}; detach it first")

    async def landed() -> bool | None:
        gone = await client.get_taxonomy(change.namespace, taxonomy_id) is None
        return True if gone else None

    await _write_once(lambda: client.delete_taxonomy(change.namespace, taxonomy_id), landed)


async def _replace(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse | None
) -> TaxonomyResponse:
    """A type change, without ever leaving a collection pointing at a missing taxonomy:

    1. create the new taxonomy under ``replacement_name`` (or find it, from a run cut short);
    2. re-point every collection entry from the old id to the new one, settings kept;
    3. delete the old taxonomy (no collection applies it any more);
    4. rename the new one to the final name.

    Each step first looks whether it is done already, so the next apply finishes a replace
    killed at any point (the planner pairs a lone replacement with its manifest as a rename).
    """
    assert change.taxonomy_id is not None
    temp = change.model_copy(update={"name": replacement_name(change.name)})
    new = next(iter(await client.taxonomies_named(change.namespace, temp.name)), None)
    if new is None:
        body = {**(change.create_body or {}), "taxonomy_name": temp.name}
        new = await _create(client, temp.model_copy(update={"create_body": body}), None)
    elif not is_managed(new.metadata):
        raise LeftoverReplacement(
            f"{change.label}: {temp.name} exists but is not taxsync's (no managed_by "
            "marker); rename or delete it, then apply again"
        )
    elif not _same_config(new.config, (change.create_body or {}).get("config", {})):
        raise LeftoverReplacement(
            f"{change.label}: {temp.name} (left by an earlier replace) has another config; "
            "delete it and apply again"
        )
    assert new.taxonomy_id is not None
    await _repoint(client, change, change.taxonomy_id, new.taxonomy_id)
    await _delete(client, change, head)
    rename = temp.model_copy(
        update={"taxonomy_id": new.taxonomy_id, "patch_body": {"taxonomy_name": change.name}}
    )
    return await _patch(client, rename, new)


async def _repoint(client: MixpeekClient, change: TaxonomyChange, old_id: str, new_id: str) -> None:
    """Every collection that applies ``old_id`` applies ``new_id`` instead, same settings."""

    def swapped(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        has_new = any(e.get("taxonomy_id") == new_id for e in entries)
        out = []
        for entry in entries:
            if entry.get("taxonomy_id") != old_id:
                out.append(entry)
            elif not has_new:
                out.append({**entry, "taxonomy_id": new_id})
        return out

    for collection in await client.collections_applying(change.namespace, old_id):
        collection_id = str(collection["collection_id"])
        await _edit_applications(client, change, collection_id, swapped, gone_ok=True)


# A rewrite of one collection's taxonomy_applications: the list it should be, given the list
# as it is now (equal when there is nothing to do, e.g. done by an earlier run).
Edit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


async def _edit_applications(
    client: MixpeekClient, change: AnyChange, collection_id: str, edit: Edit, gone_ok: bool = False
) -> None:
    """A read-modify-write of one collection's whole ``taxonomy_applications`` list (the API
    has no per-entry route and no concurrency token): read right before, verified after.
    ``gone_ok``: a collection deleted meanwhile has nothing to edit (else: stale)."""
    namespace = change.namespace

    async def current() -> list[dict[str, Any]] | None:
        found = await client.get_collection(namespace, collection_id)
        if found is None and not gone_ok:
            raise _Stale(f"{change.label}: collection {collection_id} no longer exists")
        return None if found is None else list(found.get("taxonomy_applications") or [])

    async def landed() -> bool | None:
        entries = await current()
        return True if entries is None or edit(entries) == entries else None

    entries = await current()
    if entries is None or edit(entries) == entries:
        return  # gone, or done already (by an earlier, interrupted run)
    body = {"taxonomy_applications": edit(entries)}
    await _write_once(lambda: client.patch_collection(namespace, collection_id, body), landed)
    if await landed() is None:
        raise Raced(
            f"{change.label}: collection {collection_id} does not read back as written "
            "(another writer changed it at the same time?)"
        )


def _attachment_edit(change: AttachmentChange, taxonomy_id: str) -> Edit:
    """The edit an attach, reconfigure or detach makes to a collection's list, refusing
    (stale) when the taxonomy's entry is not what the plan saw. Other entries stay as
    they are, and so do the keys of its own entry that taxsync does not know."""
    want = declared(change.application or {})  # the settings only: never another taxonomy_id
    seen = settings(change.live_application or {})

    def edit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        index = next((i for i, e in enumerate(entries) if e.get("taxonomy_id") == taxonomy_id), -1)
        have = entries[index] if index >= 0 else None
        if change.action == "detach":
            if have is None:
                return entries
            if settings(have) != seen:
                raise _Stale(f"{change.label}: its entry changed since the plan")
            return entries[:index] + entries[index + 1 :]
        if have is not None and settings(have) == settings(want):
            return entries
        if change.action == "attach":
            if have is not None:
                raise _Stale(f"{change.label}: attached meanwhile, with other settings")
            return [*entries, {**want, "taxonomy_id": taxonomy_id}]
        if have is None:
            raise _Stale(f"{change.label}: detached since the plan")
        if settings(have) != seen:
            raise _Stale(f"{change.label}: its settings changed since the plan")
        kept = {k: v for k, v in have.items() if k not in SETTINGS}
        return [
            *entries[:index],
            {**kept, **want, "taxonomy_id": taxonomy_id},
            *entries[index + 1 :],
        ]

    return edit


_ACTIONS: dict[TaxonomyAction, Callable[..., Awaitable[Any]]] = {
    "create": _create,
    "new_version": _new_version,
    "update": _patch,
    "delete": _delete,
    "replace": _replace,
}
assert set(_ACTIONS) == set(TAXONOMY_ACTIONS), "every taxonomy action has a way to apply it"


async def _write_once(
    write: Callable[[], Awaitable[Any]], landed: Callable[[], Awaitable[Any]]
) -> Any:
    """Send a write; if its response is lost, repeat it only when it did not land."""
    for attempt in range(_MAX_WRITE_ATTEMPTS):
        try:
            return await write()
        except WriteOutcomeUnknown:
            found = await landed()
            if found is not None:
                return None if found is True else found
            if attempt == _MAX_WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _same_config(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    return normalize.canonical_config(live) == normalize.canonical_config(desired)


def _ours(live: TaxonomyResponse, create_body: dict[str, Any]) -> bool:
    """Whether a taxonomy is the one a create sent: taxsync's marker and the same config."""
    return is_managed(live.metadata) and _same_config(live.config, create_body["config"])


def _patched(live: TaxonomyResponse, body: dict[str, Any]) -> bool:
    if "taxonomy_name" in body and live.taxonomy_name != body["taxonomy_name"]:
        return False
    if "description" in body and live.description != body["description"]:
        return False
    metadata = body.get("metadata")
    if metadata is None:
        return True
    same_user = normalize.user_metadata(live.metadata) == normalize.user_metadata(metadata)
    return same_user and is_managed(live.metadata) == is_managed(metadata)


async def _awaited(
    what: str, wait: Awaitable[TaxonomyResponse], on_wait: Callable[[str, bool], None] | None
) -> TaxonomyResponse:
    """A wait told to ``on_wait`` as it starts and as it ends, however it ends."""
    if on_wait is not None:
        on_wait(what, True)
    try:
        return await wait
    finally:
        if on_wait is not None:
            on_wait(what, False)


async def _wait_ready(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse, timeout: float
) -> TaxonomyResponse:
    """Poll until asynchronous inference finishes (``ready``) or the timeout passes."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    while head.ready is False:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NotReady(
                f"{change.label}: not ready after {timeout:g}s (inference still running)"
            )
        await asyncio.sleep(min(delay, left))  # the last look is at the deadline, not before
        delay = min(delay * 2, 10.0)
        assert head.taxonomy_id is not None
        found = await client.get_taxonomy(change.namespace, head.taxonomy_id)
        if found is None:
            raise _Stale(f"{change.label} was deleted while waiting for it")
        head = found
    return head
