"""Starting backfills exactly once per (collection, taxonomy, version), whatever cut an
earlier run short.

Each start is bracketed by bookkeeping on the taxonomy (``taxsync.bookkeeping``): an intent
is recorded before the write it depends on (``POST …/versions`` for a new version's
backfills, ``apply-taxonomy`` otherwise), the task id once it started. An intent some other
run left without a task may have started one whose answer was lost: the task list (by type,
and by the collection and taxonomy the task names in its inputs) decides, before anything
is sent again. Where it cannot decide, the backfill fails naming the command that ends it.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from taxsync.bookkeeping import (
    Record,
    ended,
    intent,
    metadata_with,
    owed,
    records,
    started,
    tasks_to_read,
    without_planned,
)
from taxsync.client import MixpeekClient
from taxsync.errors import (
    ApiError,
    BackfillFailed,
    BackfillUndecided,
    ConfigError,
    NotFoundError,
    TaxsyncError,
    WriteOutcomeUnknown,
)
from taxsync.live import Neighbourhood
from taxsync.model import BACKFILLS_KEY
from taxsync.plan import TASK_FAILED, TASK_SUCCEEDED, Plan, Summary, TaxonomyChange, task_ended
from taxsync.wire import BACKFILL_TASK_TYPE, TaxonomyResponse

# Why a backfill is wanted: a change of this plan asks for it (``planned``), the
# bookkeeping shows it owed (``owed``: nothing to do if it was finished meanwhile), or
# ``taxsync backfill`` asks for it (``explicit``: an active task for the pair is followed).
Mode = Literal["planned", "owed", "explicit"]

_METADATA_ATTEMPTS = 3
# Taxonomy changes after which an owed backfill of the taxonomy has nothing left to label.
_ENDING = ("delete", "replace")

# The apply (or ``taxsync backfill``) this task runs in: an intent it wrote itself was not
# followed by a start yet, so it needs no look-up.
_RUN: ContextVar[str | None] = ContextVar("taxsync_backfill_run", default=None)


def begin_run() -> str:
    """Name the run the current task (and those it starts) belong to."""
    run = secrets.token_hex(6)
    _RUN.set(run)
    return run


def finishing_command(namespace: str, name: str, collection_id: str) -> str:
    return f"taxsync backfill {name} --namespace {namespace} --collection {collection_id}"


@dataclass
class Started:
    """The tasks of one taxonomy's backfills, by collection, and what else was found."""

    tasks: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def intend_new_version(
    client: MixpeekClient, change: TaxonomyChange, head: TaxonomyResponse | None
) -> TaxonomyChange:
    """Before ``POST …/versions``: record the intent to backfill the version it makes in
    each of ``change.backfills``. Returns the change with a patch body that keeps what was
    recorded (a metadata PATCH replaces the caller's keys whole)."""
    assert change.taxonomy_id is not None
    if head is None:
        head = await _head(client, change.namespace, change.taxonomy_id)
    book = records(head.metadata)
    version = (change.base_version or 0) + 1
    updates = {c: intent(book.get(c), version, _RUN.get()) for c in change.backfills}
    written = await _write(client, change.namespace, change.taxonomy_id, head.metadata, updates)
    body = change.patch_body
    if body is None or "metadata" not in body:
        return change
    kept = {**body["metadata"], BACKFILLS_KEY: written[BACKFILLS_KEY]}
    return change.model_copy(update={"patch_body": {**body, "metadata": kept}})


async def intend_head(
    client: MixpeekClient, namespace: str, taxonomy_id: str, collection_ids: list[str]
) -> None:
    """Before an attach that a backfill follows: record the intent to backfill the head."""
    head = await _head(client, namespace, taxonomy_id)
    book = records(head.metadata)
    assert head.version is not None
    run = _RUN.get()
    updates = {
        c: intent(book.get(c), head.version, run)
        for c in collection_ids
        if not _own_intent(book.get(c), head.version, run)
    }
    if updates:
        await _write(client, namespace, taxonomy_id, head.metadata, updates)


async def start(
    client: MixpeekClient,
    namespace: str,
    name: str,
    taxonomy_id: str,
    collection_ids: list[str],
    mode: Mode,
) -> Started:
    """Backfill the head of ``taxonomy_id`` in each collection, at most once: record the
    intents, look up a task a lost answer may have started, start the rest, record their
    task ids. A refused or undecided backfill raises after the others were recorded."""
    head = await _head(client, namespace, taxonomy_id)
    assert head.version is not None
    pair = _Pair(client, namespace, name, taxonomy_id, head.version, records(head.metadata))
    pair.metadata = dict(head.metadata or {})
    done = Started()
    to_start: list[str] = []
    failures: list[BackfillFailed] = []
    for collection_id in collection_ids:
        try:
            task = await pair.settled(collection_id, mode, done.notes)
        except BackfillFailed as exc:
            failures.append(exc)
            continue
        if task is None:
            to_start.append(collection_id)
        elif task:
            done.tasks[collection_id] = task
    intents = {
        c: intent(pair.book.get(c), pair.version, pair.run)
        for c in to_start
        if not _own_intent(pair.book.get(c), pair.version, pair.run)
    }
    if intents:
        pair.metadata = await _write(client, namespace, taxonomy_id, pair.metadata, intents)
        pair.book.update(intents)
    for collection_id in to_start:
        try:
            done.tasks[collection_id] = await pair.send(collection_id)
        except BackfillFailed as exc:
            failures.append(exc)
    updates = {c: started(pair.book[c], t) for c, t in done.tasks.items() if c in pair.changed}
    if updates:
        await _write(client, namespace, taxonomy_id, pair.metadata, updates)
    if failures:
        raise failures[0] if len(failures) == 1 else BackfillFailed("; ".join(map(str, failures)))
    return done


async def record_ends(
    client: MixpeekClient, namespace: str, taxonomy_id: str, ends: Mapping[str, str]
) -> None:
    """Record the final status of tasks seen to end (collection -> status), when the
    record still names that task."""
    head = await _head(client, namespace, taxonomy_id)
    book = records(head.metadata)
    updates = {}
    for collection_id, status in ends.items():
        record = book.get(collection_id)
        if record is not None and record.task is not None and record.status is None:
            updates[collection_id] = ended(record, status)
    if updates:
        await _write(client, namespace, taxonomy_id, head.metadata, updates)


class _Pair:
    """One taxonomy's head and bookkeeping while its backfills start."""

    def __init__(
        self,
        client: MixpeekClient,
        namespace: str,
        name: str,
        taxonomy_id: str,
        version: int,
        book: dict[str, Record],
    ) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self.taxonomy_id, self.version, self.book = taxonomy_id, version, book
        self.metadata: dict[str, Any] | None = None
        self.run = _RUN.get()
        self.changed: set[str] = set()  # collections whose record takes a new task

    async def settled(self, collection_id: str, mode: Mode, notes: list[str]) -> str | None:
        """The task that already settles the pair ("" when nothing is to be done), or None
        when a backfill is to start."""
        record = self.book.get(collection_id)
        if record is not None and record.task is None and record.run != self.run:
            found = await self._lost(collection_id, record)
            if found is not None:
                task_id, status = found
                self.book[collection_id] = started(record, task_id)
                self.changed.add(collection_id)
                if status not in TASK_FAILED:
                    notes.append(f"adopted task {task_id} a lost answer had started")
                    return task_id
                self.book[collection_id] = ended(self.book[collection_id], status)
            return None
        if mode == "owed" and record is not None and record.task is not None:
            now = record.status or await self._status(record.task)
            if now is not None and now not in TASK_FAILED:
                notes.append(f"already backfilled by task {record.task} ({now})")
                return ""
        if mode == "explicit":
            return await self._active(collection_id, record, notes)
        return None

    async def _status(self, task_id: str) -> str | None:
        """A task's status now; None when it cannot be read (the plan read it as failed)."""
        try:
            return str((await self.client.get_task(task_id))["status"]).upper()
        except TaxsyncError:
            return None

    async def _active(
        self, collection_id: str, record: Record | None, notes: list[str]
    ) -> str | None:
        """``taxsync backfill``'s guard: an active task for the pair is followed."""
        try:
            tasks = await self._tasks(collection_id)
        except TaxsyncError:
            tasks = []
            if record is not None and record.task is not None:
                tasks = [await self.client.get_task(record.task)]
        active = [t for t in tasks if not task_ended(str(t.get("status", "")).upper())]
        if not active:
            return None
        task_id = str(active[-1]["task_id"])
        notes.append(f"followed task {task_id}, already running")
        if record is None or record.task != task_id:
            base = record or intent(None, self.version, None)
            self.book[collection_id] = started(base, task_id)
            self.changed.add(collection_id)
        return task_id

    async def send(self, collection_id: str) -> str:
        """``apply-taxonomy`` once; a lost answer is looked up, never blindly re-sent."""
        for _attempt in range(2):
            try:
                answer = await self.client.apply_taxonomy(
                    self.namespace, collection_id, self.taxonomy_id
                )
            except WriteOutcomeUnknown:
                found = await self._lost(collection_id, self.book[collection_id])
                if found is None:
                    continue  # it did not start: starting it now is the one start
                task_id = found[0]
            except ApiError as exc:
                # Its intent stays: the documents are not labelled, so the next apply
                # tries again (and plan shows it owed).
                raise BackfillFailed(
                    f"the backfill of {collection_id} was refused: {exc}"
                ) from None
            else:
                task_id = str(answer["task_id"])
            self.changed.add(collection_id)
            return task_id
        raise self._undecided(collection_id, "two answers in a row were lost")

    async def _lost(self, collection_id: str, record: Record) -> tuple[str, str] | None:
        """The task a lost answer started for the pair (none known to the bookkeeping), with
        its status; None if there is none. Undecidable: raises."""
        try:
            tasks = await self._tasks(collection_id)
        except TaxsyncError as exc:
            raise self._undecided(collection_id, f"the task list is unavailable: {exc}") from None
        fresh = [t for t in tasks if str(t.get("task_id")) not in record.known]
        if len(fresh) > 1:
            ids = ", ".join(str(t.get("task_id")) for t in fresh)
            raise self._undecided(collection_id, f"several tasks could be it: {ids}")
        if not fresh:
            return None
        return str(fresh[0]["task_id"]), str(fresh[0].get("status", "")).upper()

    async def _tasks(self, collection_id: str) -> list[dict[str, Any]]:
        """The backfill tasks whose inputs name the pair (checked again here: a server that
        ignored the filter must not make another pair's task look like ours)."""
        conditions = [
            {"field": "inputs.collection_id", "operator": "eq", "value": collection_id},
            {"field": "inputs.taxonomy_id", "operator": "eq", "value": self.taxonomy_id},
        ]
        found = await self.client.list_tasks(
            self.namespace, task_type=BACKFILL_TASK_TYPE, filters={"AND": conditions}
        )
        return [t for t in found if _names_pair(t, collection_id, self.taxonomy_id)]

    def _undecided(self, collection_id: str, why: str) -> BackfillUndecided:
        command = finishing_command(self.namespace, self.name, collection_id)
        return BackfillUndecided(
            f"the backfill of {collection_id} may or may not have started (its answer was "
            f"lost) and {why}; nothing was re-sent. Finish it with `{command}`"
        )


def _names_pair(task: Mapping[str, Any], collection_id: str, taxonomy_id: str) -> bool:
    if task.get("task_type") not in (None, BACKFILL_TASK_TYPE):
        return False
    for entry in task.get("inputs") or []:
        if (
            isinstance(entry, dict)
            and entry.get("collection_id") == collection_id
            and entry.get("taxonomy_id") == taxonomy_id
        ):
            return True
    return False


def _own_intent(record: Record | None, version: int, run: str | None) -> bool:
    return (
        record is not None
        and record.task is None
        and record.version == version
        and run is not None
        and record.run == run
    )


async def _head(client: MixpeekClient, namespace: str, taxonomy_id: str) -> TaxonomyResponse:
    head = await client.get_taxonomy(namespace, taxonomy_id)
    if head is None or head.version is None:
        raise BackfillFailed(f"taxonomy {taxonomy_id} no longer exists in {namespace}")
    return head


async def _write(
    client: MixpeekClient,
    namespace: str,
    taxonomy_id: str,
    metadata: Mapping[str, Any] | None,
    updates: Mapping[str, Record],
) -> dict[str, Any]:
    """PATCH the bookkeeping (the whole metadata, as a PATCH replaces it); the same PATCH
    again after a lost answer is harmless. Returns the metadata written."""
    body = {"metadata": metadata_with(metadata, updates)}
    for attempt in range(_METADATA_ATTEMPTS):
        try:
            await client.patch_taxonomy(namespace, taxonomy_id, body)
            break
        except WriteOutcomeUnknown:
            if attempt == _METADATA_ATTEMPTS - 1:
                raise
    return body["metadata"]


async def read_states(
    client: MixpeekClient, task_ids: Sequence[str], concurrency: int
) -> dict[str, str]:
    """The status of each task that can be read; one that cannot is left out (taken as not
    ended: apply reads it again)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def state(task_id: str) -> tuple[str, str | None]:
        async with gate:
            try:
                return task_id, str((await client.get_task(task_id))["status"]).upper()
            except TaxsyncError:
                return task_id, None

    read = await asyncio.gather(*(state(t) for t in task_ids))
    return {task_id: status for task_id, status in read if status is not None}


# Reads task states: those a read-ahead started are taken, the others read now.
StateReader = Callable[[Sequence[str]], Awaitable[dict[str, str]]]


async def with_owed(
    client: MixpeekClient,
    plan: Plan,
    live: Mapping[str, Sequence[TaxonomyResponse]],
    around: Mapping[str, Neighbourhood],
    concurrency: int,
    reader: StateReader | None = None,
) -> Plan:
    """``plan`` with the backfills the bookkeeping shows owed (those it does not backfill
    anyway), after its own changes. Reads the tasks recorded at the head whose end is not
    recorded (through ``reader``, when a read-ahead started them)."""
    wanted = [t for ns in plan.namespaces for t in tasks_to_read(live.get(ns, ()))]
    if reader is not None:
        states = await reader(wanted)
    else:
        states = await read_states(client, wanted, concurrency)
    found = [
        c
        for ns in plan.namespaces
        for c in owed(ns, live.get(ns, ()), around.get(ns) or Neighbourhood(), states)
    ]
    # Settled by the plan itself: backfilled by one of its changes, or the taxonomy deleted
    # (or replaced by a new one) or detached from the collection.
    planned = {(c.namespace, c.name, b) for c in plan.changes for b in c.backfills}
    planned |= {
        (c.namespace, c.name, c.collection_id)
        for c in plan.attachment_changes
        if c.action == "detach"
    }
    gone = {(c.namespace, c.name) for c in plan.taxonomy_changes if c.action in _ENDING}
    extra = [c for c in without_planned(found, planned) if (c.namespace, c.name) not in gone]
    if not extra:
        return plan
    changes = [*plan.changes, *extra]
    summary = Summary.of(changes, plan.summary.unchanged)
    return plan.model_copy(update={"changes": changes, "summary": summary})


async def wait_tasks(
    client: MixpeekClient,
    started: Mapping[str, str],
    timeout: float,
    on_task: Callable[[str, str], None] | None,
    ends: dict[str, str],
) -> None:
    """Poll each backfill task (by collection) until it ends (backing off 1 s → 30 s) or
    ``timeout`` passes; one that ends in anything but COMPLETED raises with the task's
    error. Each status read is told to ``on_task``; each end seen goes to ``ends``."""
    deadline = time.monotonic() + timeout
    for collection_id, task_id in started.items():
        delay = 1.0
        while True:
            task = await client.get_task(task_id)
            status = str(task["status"]).upper()
            if on_task is not None:
                on_task(task_id, status)
            if status == TASK_SUCCEEDED or status in TASK_FAILED:
                ends[collection_id] = status
            if status == TASK_SUCCEEDED:
                break
            if status in TASK_FAILED:
                error = task.get("error") or (task.get("additional_data") or {}).get("error")
                raise BackfillFailed(
                    f"backfill task {task_id} ended {status}: {error or 'no error given'}"
                )
            if time.monotonic() + delay > deadline:
                raise BackfillFailed(f"backfill task {task_id} still {status} after {timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


# --- taxsync backfill --------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionBackfill:
    """What ``taxsync backfill`` did in one collection."""

    collection_id: str
    collection_name: str
    task_id: str | None
    note: str = ""
    status: str | None = None  # the task's end, with --wait
    error: str | None = None


@dataclass(frozen=True)
class BackfillReport:
    namespace: str
    name: str
    version: int
    collections: list[CollectionBackfill]

    @property
    def ok(self) -> bool:
        return all(c.error is None for c in self.collections)


def backfill_work(
    namespace: str,
    name: str,
    collections: Sequence[str] = (),
    *,
    wait: bool = False,
    wait_timeout: float = 300.0,
    on_task: Callable[[str, str], None] | None = None,
) -> Callable[[MixpeekClient, asyncio.Event], Awaitable[BackfillReport]]:
    """``taxsync backfill`` as work for a client (``reconcile.backfill`` runs it): see
    ``backfill_taxonomy``. A timeout that is not a positive number is refused first."""
    if not (math.isfinite(wait_timeout) and wait_timeout > 0):
        raise ConfigError(f"wait timeout must be a positive number, not {wait_timeout}")

    async def work(client: MixpeekClient, stop: asyncio.Event) -> BackfillReport:
        return await backfill_taxonomy(
            client, namespace, name, collections, wait=wait, timeout=wait_timeout, on_task=on_task
        )

    return work


async def backfill_taxonomy(
    client: MixpeekClient,
    namespace: str,
    name: str,
    collections: Sequence[str],
    *,
    wait: bool = False,
    timeout: float = 300.0,
    on_task: Callable[[str, str], None] | None = None,
) -> BackfillReport:
    """Backfill the head of taxonomy ``name`` in each collection that applies it (or those
    named, by id or name), following a task already running for a pair instead of starting
    another, and recording each in the bookkeeping as apply does."""
    head = await client.get_taxonomy(namespace, name)
    if head is None or head.taxonomy_id is None or head.version is None:
        raise NotFoundError(f"no taxonomy {name!r} in namespace {namespace!r}")
    taxonomy_id = head.taxonomy_id
    applying = {
        str(c["collection_id"]): str(c.get("collection_name") or "")
        for c in await client.collections_applying(namespace, taxonomy_id)
    }
    chosen = _chosen(namespace, name, applying, collections)
    begin_run()
    reports = []
    for collection_id in chosen:  # one at a time: each failure is its collection's own
        reports.append(
            await _one(client, namespace, head, collection_id, applying, wait, timeout, on_task)
        )
    return BackfillReport(namespace, head.taxonomy_name, head.version, reports)


def _chosen(
    namespace: str, name: str, applying: Mapping[str, str], collections: Sequence[str]
) -> list[str]:
    if not collections:
        if not applying:
            raise ConfigError(
                f"no collection of {namespace!r} applies {name!r}: nothing to backfill"
            )
        return sorted(applying, key=lambda c: (applying[c], c))
    by_name = {n: c for c, n in applying.items()}
    chosen = []
    for wanted in collections:
        found = wanted if wanted in applying else by_name.get(wanted)
        if found is None:
            raise ConfigError(
                f"--collection {wanted}: it does not apply {name!r} in {namespace!r} (a "
                "backfill needs the taxonomy in the collection's taxonomy_applications)"
            )
        if found not in chosen:
            chosen.append(found)
    return chosen


async def _one(
    client: MixpeekClient,
    namespace: str,
    head: TaxonomyResponse,
    collection_id: str,
    applying: Mapping[str, str],
    wait: bool,
    timeout: float,
    on_task: Callable[[str, str], None] | None,
) -> CollectionBackfill:
    assert head.taxonomy_id is not None
    name, label = head.taxonomy_name, applying.get(collection_id, "")
    try:
        done = await start(client, namespace, name, head.taxonomy_id, [collection_id], "explicit")
    except BackfillFailed as exc:
        return CollectionBackfill(collection_id, label, None, error=str(exc))
    task_id = done.tasks.get(collection_id)
    note = "; ".join(done.notes) or "started"
    if not wait or task_id is None:
        return CollectionBackfill(collection_id, label, task_id, note)
    ends: dict[str, str] = {}
    error = None
    try:
        await wait_tasks(client, {collection_id: task_id}, timeout, on_task, ends)
    except BackfillFailed as exc:
        error = str(exc)
    if ends:
        await record_ends(client, namespace, head.taxonomy_id, ends)
    return CollectionBackfill(collection_id, label, task_id, note, ends.get(collection_id), error)
