"""State of the emulator: namespaces, taxonomies and their versions, collections,
retrievers and backfill tasks.

The store knows nothing about HTTP. It takes validated wire models, returns plain dicts
shaped like the API's responses, and raises the small exception classes below, which the
app maps to error envelopes.

``Store(None)`` keeps everything in memory. ``Store(path)`` keeps a JSON state file that
several processes may share:

* every mutation holds an exclusive ``flock`` on ``<state>.lock``, re-reads the file if
  another process changed it, applies the change and rewrites the file atomically (a temp
  file in the same directory, fsync, ``os.replace``), so no update is lost and a killed
  process never leaves a half-written state file;
* every read holds a shared lock and re-reads the file only if it changed, detected from
  its inode, mtime, size and the generation counter written at the start of the file.

Taxonomy names are per taxonomy; a version record holds its config snapshot, description,
metadata, readiness and ``created_at``. PATCH edits the head version's description and
metadata (older snapshots keep theirs) and never bumps ``version``.

Collections and retrievers live in a namespace and are found by id or name; nothing
creates them over HTTP, a seed does (``Store.seed``). Tasks are organisation-wide, found
by id only. Their records and rules are in ``resources``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from taxsync import files
from taxsync.emulator.errors import AlreadyExists, BadRequest, NotFound, StateFileError
from taxsync.emulator.query import ListQuery, Page, clone, paginate
from taxsync.emulator.resources import (
    SYSTEM_COLLECTION_NAME,
    TaskPolicy,
    applied_taxonomy_ids,
    collection_stats,
    collection_view,
    count_task_read,
    is_terminal,
    kill_task,
    new_backfill_task,
    new_task_id,
    retriever_view,
    searches_collection,
    system_collection,
    task_view,
)
from taxsync.emulator.seed import EVERY_NAMESPACE, Seed, SeedNamespace
from taxsync.wire import (
    ApplyTaxonomyRequest,
    CreateTaxonomyRequest,
    CreateTaxonomyVersionRequest,
    PatchCollectionRequest,
    PatchTaxonomyRequest,
    TaxonomyApplicationConfigInput,
    application_entries,
)

STATE_FORMAT = "taxsync-emulator-state/1"
SYSTEM_METADATA_KEYS = ("validation_warnings",)
NAMESPACE_NAME_MAX = 64
ASYNC_INFERENCE_STRATEGIES = ("cluster", "llm")

_GENERATION_RE = re.compile(rb'^\{"generation":(\d+),')
_JSON_SEPARATORS = (",", ":")


# --- value objects --------------------------------------------------------------


@dataclass(frozen=True)
class ReadyPolicy:
    """When a taxonomy that needs async inference reports ``ready=true``.

    ``after_reads``: the first N single-taxonomy GETs of that version report false and
    later ones true (None: reads never flip it). ``after_seconds``: it is ready that long
    after creation (None: time never flips it). Whichever comes first wins.
    """

    after_reads: int | None = 3
    after_seconds: float | None = None


# --- the store ------------------------------------------------------------------


class Store:
    """Namespaces and taxonomies, in memory or in a shared JSON state file."""

    def __init__(
        self, path: Path | str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._clock = clock
        self._mutex = threading.RLock()
        self._state = _State()
        self._dirty = False
        # (inode, mtime_ns, size, generation) of the file our in-memory state came from.
        self._file_sig: tuple[int, int, int, int] | None = None
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None
        #: How backfill tasks started through this store live (see TaskPolicy); tests and
        #: ``local serve`` set it. Each task keeps the policy it was created under.
        self.task_policy = TaskPolicy()
        #: What a seed declares for every namespace (``"*"``), given to each namespace this
        #: store creates from now on (kept in memory only, like ``task_policy``).
        self.every_namespace: SeedNamespace | None = None
        if self._path is not None:
            with self._transaction(exclusive=True):
                _remove_stale_temp_files(self._path)

    @property
    def path(self) -> Path | None:
        """The state file, or None for an in-memory store."""
        return self._path

    # --- namespaces -----------------------------------------------------------

    def ensure_namespace(self, name: str, description: str | None = None) -> dict[str, Any]:
        """Return the namespace called ``name``, creating it if it does not exist."""
        _check_namespace_name(name)
        with self._transaction(exclusive=True):
            existing = self._state.namespace_by_name(name)
            if existing is not None:
                return _public_namespace(existing)
            return self._create_namespace(name, description)

    def resolve_namespace(self, ident: str, *, create: bool = False) -> dict[str, Any]:
        """Find a namespace by name or ``ns_`` id; with ``create``, create it by name.

        An unknown ``ns_...`` value is never created: it names an id, not a namespace.
        """
        with self._transaction():
            found = self._state.find_namespace(ident)
            if found is not None:
                return _public_namespace(found)
        if not create or ident.startswith("ns_"):
            raise NotFound(
                f"Namespace '{ident}' not found",
                {"resource": "namespace", "id": ident},
            )
        return self.ensure_namespace(ident)

    def get_namespace(self, ident: str) -> dict[str, Any]:
        """The namespace with that name or id; NotFound otherwise."""
        return self.resolve_namespace(ident, create=False)

    def list_namespaces(self, query: ListQuery | None = None) -> Page:
        """A page of namespaces in creation order (or the query's sort)."""
        query = query or ListQuery()
        with self._transaction():
            rows = [(ns["seq"], _public_namespace(ns)) for ns in self._state.namespaces.values()]
            return paginate(rows, query, text_fields=("namespace_id", "namespace_name"))

    # --- taxonomies -------------------------------------------------------------

    def create_taxonomy(
        self, ns: str, request: CreateTaxonomyRequest, ready: ReadyPolicy | None = None
    ) -> dict[str, Any]:
        """Create a taxonomy at version 1 in namespace ``ns`` (name or id)."""
        with self._transaction(exclusive=True):
            ns_id = self._namespace_id(ns)
            if self._state.taxonomy_id_by_name(ns_id, request.taxonomy_name) is not None:
                raise AlreadyExists(
                    f"A taxonomy named '{request.taxonomy_name}' already exists in this namespace",
                    {"resource": "taxonomy", "taxonomy_name": request.taxonomy_name},
                )
            record = self._new_version_record(
                version=1,
                description=request.description,
                config=request.config.model_dump(mode="json", exclude_none=False),
                metadata=_merge_metadata(request.metadata, None),
                ready=ready or ReadyPolicy(),
            )
            entry = {
                "namespace_id": ns_id,
                "taxonomy_id": self._state.new_taxonomy_id(),
                "seq": self._state.next_seq(),
                "taxonomy_name": request.taxonomy_name,
                "versions": [record],
            }
            self._state.add_taxonomy(entry)
            self._dirty = True
            return clone(_taxonomy_view(entry, record, self._clock()))

    def get_taxonomy(
        self, ns: str, ident: str, version: int | None = None, *, count_read: bool = True
    ) -> dict[str, Any]:
        """The head (or ``version``) of a taxonomy found by id or name.

        A GET is what moves a not-yet-ready taxonomy towards ready (see ReadyPolicy);
        ``count_read=False`` looks without counting.
        """
        with self._transaction():
            entry, record = self._find_version(ns, ident, version)
            if not count_read or not _counts_reads(record, self._clock()):
                return clone(_taxonomy_view(entry, record, self._clock()))
        # Counting a read changes state, so redo the lookup under the exclusive lock.
        with self._transaction(exclusive=True):
            entry, record = self._find_version(ns, ident, version)
            if _counts_reads(record, self._clock()):
                _count_read(record)
                self._state.touch(entry["taxonomy_id"])
                self._dirty = True
            return clone(_taxonomy_view(entry, record, self._clock()))

    def list_taxonomies(self, ns: str, query: ListQuery | None = None) -> Page:
        """A page of taxonomy heads in namespace ``ns``, with stats over all matches."""
        query = query or ListQuery()
        with self._transaction():
            ns_id = self._namespace_id(ns)
            now = self._clock()
            rows = [
                (entry["seq"], _taxonomy_view(entry, entry["versions"][-1], now))
                for entry in self._state.taxonomies_in(ns_id)
            ]
            return paginate(
                rows,
                query,
                text_fields=("taxonomy_id", "taxonomy_name", "description"),
                with_stats=True,
            )

    def patch_taxonomy(self, ns: str, ident: str, request: PatchTaxonomyRequest) -> dict[str, Any]:
        """Rename a taxonomy and/or set its head's description and metadata."""
        updates = {
            key: getattr(request, key)
            for key in request.model_fields_set
            if not (key == "taxonomy_name" and request.taxonomy_name is None)
        }
        if not updates:
            raise BadRequest(
                "Empty update: set at least one of taxonomy_name, description, metadata",
                {"patchable_fields": ["taxonomy_name", "description", "metadata"]},
            )
        with self._transaction(exclusive=True):
            entry = self._find_taxonomy(ns, ident)
            head = entry["versions"][-1]
            new_name = updates.get("taxonomy_name")
            if new_name is not None and new_name != entry["taxonomy_name"]:
                if self._state.taxonomy_id_by_name(entry["namespace_id"], new_name) is not None:
                    raise AlreadyExists(
                        f"A taxonomy named '{new_name}' already exists in this namespace",
                        {"resource": "taxonomy", "taxonomy_name": new_name},
                    )
                self._state.rename_taxonomy(entry, new_name)
            if "description" in updates:
                head["description"] = updates["description"]
            if "metadata" in updates:
                head["metadata"] = _merge_metadata(updates["metadata"], head["metadata"])
            self._state.touch(entry["taxonomy_id"])
            self._dirty = True
            return clone(_taxonomy_view(entry, head, self._clock()))

    def delete_taxonomy(self, ns: str, ident: str, *, refuse_if_applied: bool = False) -> str:
        """Delete a taxonomy and all its versions; return its id.

        By default collections that apply it keep their entries, left dangling (the API
        documents no cascade and no refusal). ``refuse_if_applied`` makes that a
        BadRequest naming the collections instead.
        """
        with self._transaction(exclusive=True):
            entry = self._find_taxonomy(ns, ident)
            if refuse_if_applied:
                self._refuse_if_applied(entry)
            self._state.remove_taxonomy(entry)
            self._dirty = True
            return str(entry["taxonomy_id"])

    def create_version(
        self,
        ns: str,
        taxonomy_id: str,
        request: CreateTaxonomyVersionRequest,
        ready: ReadyPolicy | None = None,
    ) -> dict[str, Any]:
        """Store a new config snapshot as version max+1, which becomes the head.

        ``taxonomy_id`` must be an id, not a name. Changing ``taxonomy_type`` is refused.
        Description and metadata carry over from the head unless the request sets them.
        """
        with self._transaction(exclusive=True):
            entry = self._find_taxonomy(ns, taxonomy_id, by_name=False)
            head = entry["versions"][-1]
            config = request.config.model_dump(mode="json", exclude_none=False)
            old_type = head["config"].get("taxonomy_type")
            if config.get("taxonomy_type") != old_type:
                raise BadRequest(
                    f"Cannot change taxonomy_type from '{old_type}' to "
                    f"'{config.get('taxonomy_type')}' with a new version; "
                    "create a new taxonomy instead",
                    {"taxonomy_id": entry["taxonomy_id"], "taxonomy_type": old_type},
                )
            fields = request.model_fields_set
            record = self._new_version_record(
                version=max(v["version"] for v in entry["versions"]) + 1,
                description=request.description if "description" in fields else head["description"],
                config=config,
                metadata=(
                    _merge_metadata(request.metadata, head["metadata"])
                    if "metadata" in fields
                    else clone(head["metadata"])
                ),
                ready=ready or ReadyPolicy(),
            )
            entry["versions"].append(record)
            self._state.touch(entry["taxonomy_id"])
            self._dirty = True
            return clone(_taxonomy_view(entry, record, self._clock()))

    def list_versions(self, ns: str, taxonomy_id: str) -> list[dict[str, Any]]:
        """Every stored version of a taxonomy (found by id only), ascending."""
        with self._transaction():
            entry = self._find_taxonomy(ns, taxonomy_id, by_name=False)
            now = self._clock()
            return [clone(_taxonomy_view(entry, v, now)) for v in entry["versions"]]

    def count_taxonomies(self, ns: str | None = None) -> int:
        """How many taxonomies exist, in one namespace or in all of them."""
        with self._transaction():
            if ns is None:
                return self._state.taxonomy_count()
            return sum(1 for _ in self._state.taxonomies_in(self._namespace_id(ns)))

    # --- collections --------------------------------------------------------------

    def list_collections(
        self, ns: str, query: ListQuery | None = None, *, include_system: bool = False
    ) -> Page:
        """A page of collections in namespace ``ns`` with ``CollectionListStats`` over the
        page; the ``_direct_upsert`` system collection only with ``include_system``."""
        query = query or ListQuery()
        with self._transaction():
            ns_id = self._namespace_id(ns)
            records = list(self._state.collections.in_namespace(ns_id))
            if include_system:
                records.insert(0, system_collection(self._state.namespaces[ns_id]))
            rows = [(r["seq"], self._collection_view(r, in_list=True)) for r in records]
            page = paginate(
                rows, query, text_fields=("collection_id", "collection_name", "description")
            )
            page.stats = collection_stats(page.results)
            return page

    def get_collection(self, ns: str, ident: str) -> dict[str, Any]:
        """One collection, found by id or name."""
        with self._transaction():
            return clone(self._collection_view(self._find_collection(ns, ident), in_list=False))

    def patch_collection(
        self,
        ns: str,
        ident: str,
        request: PatchCollectionRequest,
        *,
        check_taxonomies: bool = True,
    ) -> dict[str, Any]:
        """Set the fields the request sets; a list (``taxonomy_applications``) replaces the
        stored one, null and [] stay distinct, and ``updated_at`` moves.

        ``check_taxonomies``: an entry whose ``taxonomy_id`` is not a taxonomy of the
        namespace is NotFound (False stores it anyway).
        """
        updates = {
            key: getattr(request, key)
            for key in request.model_fields_set
            if not (key == "collection_name" and request.collection_name is None)
        }
        if not updates:
            raise BadRequest(
                "Empty update: set at least one mutable field",
                {"patchable_fields": list(PatchCollectionRequest.model_fields)},
            )
        with self._transaction(exclusive=True):
            record = self._find_collection(ns, ident, for_write=True)
            if "taxonomy_applications" in updates:
                updates["taxonomy_applications"] = self._applications(
                    record["namespace_id"], request.taxonomy_applications, check_taxonomies
                )
            if "collection_name" in updates:
                self._state.collections.rename(record, updates["collection_name"])
            data = record["data"]
            data.update(clone(updates))
            data["updated_at"] = _bumped(data.get("updated_at"), self._clock())
            self._dirty = True
            return clone(self._collection_view(record, in_list=False))

    def apply_taxonomy(
        self,
        ns: str,
        ident: str,
        request: ApplyTaxonomyRequest,
        *,
        refuse_empty: bool = True,
    ) -> dict[str, Any]:
        """Start a backfill task (never deduplicated) and return the ApplyTaxonomyResponse.

        NotFound: the collection, or the taxonomy (by id) in the namespace. BadRequest: a
        ``max_credits`` budget, a taxonomy the collection does not apply, or (with
        ``refuse_empty``) a collection without documents.
        """
        budget = request.budget_limits
        if budget is not None and budget.max_credits is not None:
            raise BadRequest(
                "budget_limits.max_credits is not supported for taxonomy enrichment, which "
                "bills 0 credits; limit the run with max_time_ms",
                {"field": "budget_limits.max_credits"},
            )
        with self._transaction(exclusive=True):
            record = self._find_collection(ns, ident, for_write=True)
            ns_id, data = record["namespace_id"], record["data"]
            self._find_taxonomy(ns_id, request.taxonomy_id, by_name=False)
            self._check_backfill(record, request.taxonomy_id, refuse_empty)
            task = new_backfill_task(
                task_id=self._state.new_task_id(),
                seq=self._state.next_seq(),
                namespace_id=ns_id,
                collection=record,
                request=request,
                policy=self.task_policy,
                created_at=self._task_created_at(),
            )
            self._state.tasks[task["data"]["task_id"]] = task
            self._dirty = True
            return {
                "task_id": task["data"]["task_id"],
                "status": "PENDING",
                "collection_id": data["collection_id"],
                "taxonomy_id": request.taxonomy_id,
                "estimated_documents": data.get("document_count"),
            }

    def count_collections(self, ns: str) -> int:
        """How many (non-system) collections namespace ``ns`` has."""
        with self._transaction():
            return sum(1 for _ in self._state.collections.in_namespace(self._namespace_id(ns)))

    # --- retrievers ---------------------------------------------------------------

    def list_retrievers(self, ns: str, query: ListQuery | None = None) -> Page:
        """A page of retrievers in namespace ``ns``."""
        query = query or ListQuery()
        with self._transaction():
            ns_id = self._namespace_id(ns)
            rows = [
                (r["seq"], retriever_view(r)) for r in self._state.retrievers.in_namespace(ns_id)
            ]
            return paginate(
                rows, query, text_fields=("retriever_id", "retriever_name", "description")
            )

    def get_retriever(self, ns: str, ident: str) -> dict[str, Any]:
        """One retriever, found by id or name."""
        with self._transaction():
            ns_id = self._namespace_id(ns)
            record = self._state.retrievers.find(ns_id, ident)
            if record is None:
                raise self._not_found("Retriever", ns_id, ident)
            return clone(retriever_view(record))

    # --- tasks -------------------------------------------------------------------------

    def get_task(self, task_id: str, *, count_read: bool = True) -> dict[str, Any]:
        """A task by id, in any namespace. A GET is what moves a running task on (see
        TaskPolicy); ``count_read=False`` looks without counting."""
        with self._transaction():
            record = self._find_task(task_id)
            if not count_read or is_terminal(record):
                return clone(task_view(record))
        # Counting a read changes state, so redo the lookup under the exclusive lock.
        with self._transaction(exclusive=True):
            record = self._find_task(task_id)
            if not is_terminal(record):
                count_task_read(record, _iso(self._clock()))
                self._dirty = True
            return clone(task_view(record))

    def list_tasks(
        self,
        query: ListQuery | None = None,
        *,
        status: str | None = None,
        task_type: str | None = None,
    ) -> Page:
        """A page of tasks of every namespace, oldest first unless sorted."""
        query = query or ListQuery()
        conditions = [
            {"field": name, "operator": "eq", "value": value}
            for name, value in (("status", status), ("task_type", task_type))
            if value is not None
        ]
        if query.filters:
            conditions.append(query.filters)
        filters = {"AND": conditions} if conditions else None
        with self._transaction():
            rows = [(t["seq"], task_view(t)) for t in self._state.tasks.values()]
            return paginate(
                rows,
                _replace_filters(query, filters),
                text_fields=("task_id", "task_type", "status"),
            )

    def kill_task(self, task_id: str) -> None:
        """Stop a task: a running one ends CANCELED; a finished or unknown one is left as is."""
        with self._transaction(exclusive=True):
            record = self._state.tasks.get(task_id)
            if record is not None and kill_task(record, _iso(self._clock())):
                self._dirty = True

    def count_tasks(self) -> int:
        """How many tasks exist (finished ones included)."""
        with self._transaction():
            return len(self._state.tasks)

    # --- seeding ---------------------------------------------------------------------

    def seed(self, seed: Seed) -> tuple[int, int]:
        """Put a seed's collections and retrievers into their namespaces (created if need
        be), replacing those of the same id; taxonomies and tasks are kept. Seeding the
        same seed twice changes nothing. Returns (collections, retrievers) seeded.
        """
        named = {n: c for n, c in seed.namespaces.items() if n != EVERY_NAMESPACE}
        for name in named:
            _check_namespace_name(name)
        self.every_namespace = seed.namespaces.get(EVERY_NAMESPACE, self.every_namespace)
        with self._transaction(exclusive=True):
            if self.every_namespace is not None:  # the namespaces that exist already
                for record in list(self._state.namespaces.values()):
                    self._seed_content(str(record["namespace_id"]), self.every_namespace)
            for name, content in named.items():
                self._seed_content(self._seed_namespace(name), content)
            return seed.counts()

    def _seed_content(self, ns_id: str, content: SeedNamespace) -> None:
        for data in content.collections:
            self._seed_record(self._state.collections, ns_id, data)
        for data in content.retrievers:
            self._seed_record(self._state.retrievers, ns_id, data)

    # --- internals ----------------------------------------------------------------

    def _create_namespace(self, name: str, description: str | None) -> dict[str, Any]:
        now = _iso_now()
        record = {
            "object": "namespace",
            "namespace_id": self._state.new_namespace_id(),
            "namespace_name": name,
            "description": description,
            "namespace_ready": True,
            "created_at": now,
            "updated_at": now,
            "seq": self._state.next_seq(),
        }
        self._state.add_namespace(record)
        self._dirty = True
        if self.every_namespace is not None:
            self._seed_content(str(record["namespace_id"]), self.every_namespace)
        return _public_namespace(record)

    def _collection_view(self, record: dict[str, Any], *, in_list: bool) -> dict[str, Any]:
        collection_id = record["data"]["collection_id"]
        retrievers = self._state.retrievers.in_namespace(record["namespace_id"])
        count = sum(1 for r in retrievers if searches_collection(r, collection_id))
        return collection_view(record, retriever_count=count, in_list=in_list)

    def _find_collection(self, ns: str, ident: str, *, for_write: bool = False) -> dict[str, Any]:
        """A stored collection by id or name, or the system collection (read-only)."""
        ns_id = self._namespace_id(ns)
        record = self._state.collections.find(ns_id, ident)
        if record is not None:
            return record
        system = system_collection(self._state.namespaces[ns_id])
        if ident in (SYSTEM_COLLECTION_NAME, system["data"]["collection_id"]):
            if for_write:
                raise BadRequest(
                    f"'{SYSTEM_COLLECTION_NAME}' is the namespace's system collection; "
                    "taxonomies cannot be applied to it",
                    {"collection_id": system["data"]["collection_id"]},
                )
            return system
        raise self._not_found("Collection", ns_id, ident)

    def _not_found(self, kind: str, ns_id: str, ident: str) -> NotFound:
        ns_name = self._state.namespaces[ns_id]["namespace_name"]
        return NotFound(
            f"{kind} '{ident}' not found in namespace '{ns_name}'",
            {"resource": kind.lower(), "id": ident},
        )

    def _applications(
        self,
        ns_id: str,
        entries: list[TaxonomyApplicationConfigInput] | None,
        check_taxonomies: bool,
    ) -> list[dict[str, Any]] | None:
        if entries is None:
            return None
        if check_taxonomies:
            for entry in entries:
                self._find_taxonomy(ns_id, entry.taxonomy_id, by_name=False)
        return application_entries(entries)

    def _check_backfill(self, record: dict[str, Any], taxonomy_id: str, refuse_empty: bool) -> None:
        collection_id = record["data"]["collection_id"]
        if taxonomy_id not in applied_taxonomy_ids(record):
            raise BadRequest(
                f"Taxonomy '{taxonomy_id}' is not in the taxonomy_applications of collection "
                f"'{collection_id}': attach it with PATCH /v1/collections/{collection_id} first",
                {"collection_id": collection_id, "taxonomy_id": taxonomy_id},
            )
        if refuse_empty and not record["data"].get("document_count"):
            raise BadRequest(
                f"Collection '{collection_id}' has no documents: the collection must contain "
                "documents to apply a taxonomy",
                {"collection_id": collection_id, "document_count": 0},
            )

    def _refuse_if_applied(self, entry: dict[str, Any]) -> None:
        users = [
            r["data"]["collection_id"]
            for r in self._state.collections.in_namespace(entry["namespace_id"])
            if entry["taxonomy_id"] in applied_taxonomy_ids(r)
        ]
        if users:
            raise BadRequest(
                f"Taxonomy '{entry['taxonomy_id']}' is applied by collection(s) "
                f"{', '.join(users)}: remove it from their taxonomy_applications first",
                {"taxonomy_id": entry["taxonomy_id"], "collection_ids": users},
            )

    def _task_created_at(self) -> str:
        # Strictly after the previous task's, so sorting tasks by created_at is their order.
        last = next(reversed(self._state.tasks.values()), None)
        return _bumped(last["data"]["created_at"] if last else None, self._clock())

    def _find_task(self, task_id: str) -> dict[str, Any]:
        record = self._state.tasks.get(task_id)
        if record is None:
            raise NotFound(f"Task '{task_id}' not found", {"resource": "task", "id": task_id})
        return record

    def _seed_namespace(self, name: str) -> str:
        existing = self._state.namespace_by_name(name)
        if existing is not None:
            return str(existing["namespace_id"])
        return str(self._create_namespace(name, None)["namespace_id"])

    def _seed_record(self, catalog: _Catalog, ns_id: str, data: dict[str, Any]) -> None:
        """Add or replace one seeded collection or retriever (by id)."""
        ident, name = data[catalog.id_key], data[catalog.name_key]
        if catalog is self._state.collections and name == SYSTEM_COLLECTION_NAME:
            raise BadRequest(f"'{name}' is the name of the namespace's system collection")
        owner = catalog.by_name(ns_id, name)
        if owner is not None and owner["data"][catalog.id_key] != ident:
            raise AlreadyExists(
                f"Cannot seed {catalog.kind} '{ident}': its name '{name}' belongs to "
                f"'{owner['data'][catalog.id_key]}' in this namespace",
                {"resource": catalog.kind, catalog.name_key: name},
            )
        old = catalog.by_id(ns_id, ident)
        data = clone(data)
        now = _iso(self._clock())
        if old is None:
            data.setdefault("created_at", now)
            data.setdefault("updated_at", now)
            catalog.add({"namespace_id": ns_id, "seq": self._state.next_seq(), "data": data})
        elif _without_times(old["data"]) != _without_times(data):
            data.setdefault("created_at", old["data"].get("created_at"))
            data.setdefault("updated_at", now)
            catalog.replace(old, data)
        else:
            return  # the same seed again: keep it as it is, timestamps included
        self._dirty = True

    def _namespace_id(self, ident: str) -> str:
        found = self._state.find_namespace(ident)
        if found is None:
            raise NotFound(f"Namespace '{ident}' not found", {"resource": "namespace", "id": ident})
        return str(found["namespace_id"])

    def _find_taxonomy(self, ns: str, ident: str, *, by_name: bool = True) -> dict[str, Any]:
        ns_id = self._namespace_id(ns)
        entry = self._state.find_taxonomy(ns_id, ident, by_name=by_name)
        if entry is None:
            ns_name = self._state.namespaces[ns_id]["namespace_name"]
            raise NotFound(
                f"Taxonomy '{ident}' not found in namespace '{ns_name}'",
                {"resource": "taxonomy", "id": ident},
            )
        return entry

    def _find_version(
        self, ns: str, ident: str, version: int | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        entry = self._find_taxonomy(ns, ident)
        if version is None:
            return entry, entry["versions"][-1]
        for record in entry["versions"]:
            if record["version"] == version:
                return entry, record
        raise NotFound(
            f"Taxonomy '{ident}' has no version {version}",
            {"resource": "taxonomy_version", "id": entry["taxonomy_id"], "version": version},
        )

    def _new_version_record(
        self,
        *,
        version: int,
        description: str | None,
        config: dict[str, Any],
        metadata: dict[str, Any],
        ready: ReadyPolicy,
    ) -> dict[str, Any]:
        needs_inference = (
            config.get("taxonomy_type") == "hierarchical"
            and config.get("inference_strategy") in ASYNC_INFERENCE_STRATEGIES
        )
        ready_at = None
        if needs_inference and ready.after_seconds is not None:
            ready_at = self._clock() + ready.after_seconds
        return {
            "version": version,
            "description": description,
            "config": config,
            "metadata": metadata,
            "created_at": _iso_now(),
            "ready": not needs_inference,
            "pending_reads": ready.after_reads if needs_inference else None,
            "ready_at": ready_at,
        }

    @contextlib.contextmanager
    def _transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        """Serialise access; with a file, lock it, catch up with other writers and save."""
        with self._mutex:
            if self._path is None:
                yield
                return
            with self._file_lock(exclusive):
                self._refresh()
                self._dirty = False
                try:
                    yield
                except BaseException:
                    if self._dirty:
                        self._discard_unsaved()
                    raise
                if self._dirty:
                    if not exclusive:
                        raise RuntimeError("a read-only transaction changed the state")
                    self._save()

    @contextlib.contextmanager
    def _file_lock(self, exclusive: bool) -> Iterator[None]:
        fd = self._lock_file_fd()
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_file_fd(self) -> int:
        # A forked child shares its parent's open file description, and flock locks
        # belong to that description: reopen so the child gets locks of its own.
        if self._lock_fd is None or self._lock_pid != os.getpid():
            assert self._path is not None
            lock_path = self._path.with_name(self._path.name + ".lock")
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StateFileError(
                    f"cannot open emulator lock file {lock_path}: {exc.strerror or exc}"
                ) from exc
            self._lock_pid = os.getpid()
        return self._lock_fd

    def _refresh(self) -> None:
        """Reload the state file if another process (or a restart) changed it."""
        assert self._path is not None
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            if self._file_sig is not None or self._state.generation:
                self._state = _State()
            self._file_sig = None
            return
        except OSError as exc:
            raise _state_file_error(self._path, exc) from exc
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size, _read_generation(self._path))
        if signature == self._file_sig:
            return
        self._state = _State.load(self._path)
        self._file_sig = signature

    def _save(self) -> None:
        assert self._path is not None
        self._state.generation += 1
        try:
            data = self._state.encode()
            files.replace_file(self._path, data, durable=True, mode=0o600)
            stat = os.stat(self._path)
        except BaseException as exc:
            self._discard_unsaved()
            if isinstance(exc, OSError):
                raise StateFileError(
                    f"cannot write emulator state file {self._path}: {exc.strerror or exc}"
                ) from exc
            raise
        self._file_sig = (stat.st_ino, stat.st_mtime_ns, stat.st_size, self._state.generation)
        self._dirty = False

    def _discard_unsaved(self) -> None:
        """Forget in-memory changes that did not reach the file."""
        self._file_sig = None
        self._dirty = False
        self._state = _State()
        with contextlib.suppress(StateFileError):
            self._refresh()


class _State:
    """The data plus the indexes rebuilt from it; ``encode`` caches per-taxonomy JSON."""

    def __init__(self) -> None:
        self.generation = 0
        self.seq = 0
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.ns_by_name: dict[str, str] = {}
        self.taxonomies: dict[str, dict[str, dict[str, Any]]] = {}
        self.tax_by_name: dict[str, dict[str, str]] = {}
        self.tax_namespace: dict[str, str] = {}
        self.collections = _Catalog("collection", "collection_id", "collection_name")
        self.retrievers = _Catalog("retriever", "retriever_id", "retriever_name")
        # Tasks are organisation-wide, in creation order.
        self.tasks: dict[str, dict[str, Any]] = {}
        # Encoded JSON of each taxonomy, in creation order, and the ids whose JSON is stale:
        # a save re-encodes only what changed, then joins the bytes in one C call.
        self._fragments: dict[str, bytes] = {}
        self._stale: set[str] = set()

    @classmethod
    def load(cls, path: Path) -> _State:
        """Parse a state file; any problem is a StateFileError naming the file."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise _state_file_error(path, exc) from exc
        try:
            data = json.loads(raw)
            return cls._from_json(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateFileError(
                f"emulator state file {path} is corrupt or not a taxsync state file "
                f"({type(exc).__name__}: {exc}); move it aside or delete it to start afresh"
            ) from exc

    @classmethod
    def _from_json(cls, data: Any) -> _State:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"expected a JSON object with format {STATE_FORMAT!r}")
        state = cls()
        state.generation = int(data["generation"])
        state.seq = int(data["seq"])
        for ns in data["namespaces"]:
            state.add_namespace(dict(ns, seq=int(ns["seq"])))
        for entry in data["taxonomies"]:
            entry["seq"] = int(entry["seq"])
            if entry["namespace_id"] not in state.namespaces or not entry["versions"]:
                raise ValueError(f"taxonomy {entry.get('taxonomy_id')!r} is inconsistent")
            state.add_taxonomy(entry)
        # Files written before collections, retrievers and tasks existed have none.
        for catalog, key in ((state.collections, "collections"), (state.retrievers, "retrievers")):
            for record in data.get(key, []):
                if record["namespace_id"] not in state.namespaces:
                    raise ValueError(
                        f"{catalog.kind} {record['data'].get(catalog.id_key)!r} is inconsistent"
                    )
                catalog.add(dict(record, seq=int(record["seq"])))
        for task in data.get("tasks", []):
            state.tasks[task["data"]["task_id"]] = dict(task, seq=int(task["seq"]))
        return state

    def encode(self) -> bytes:
        """The whole state as JSON, the generation first so it can be read cheaply."""
        for tax_id in self._stale:
            entry = self.taxonomies[self.tax_namespace[tax_id]][tax_id]
            self._fragments[tax_id] = _dumps(entry).encode("utf-8")
        self._stale.clear()
        head = (
            f'{{"generation":{self.generation},"format":{_dumps(STATE_FORMAT)},'
            f'"seq":{self.seq},"namespaces":{_dumps(list(self.namespaces.values()))},'
            '"taxonomies":['
        )
        tail = (
            f'],"collections":{_dumps(self.collections.records())},'
            f'"retrievers":{_dumps(self.retrievers.records())},'
            f'"tasks":{_dumps(list(self.tasks.values()))}}}'
        )
        return b"".join(
            (head.encode("utf-8"), b",".join(self._fragments.values()), tail.encode("utf-8"))
        )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def new_taxonomy_id(self) -> str:
        while True:
            candidate = "tax_" + secrets.token_hex(8)
            if candidate not in self.tax_namespace:
                return candidate

    def new_task_id(self) -> str:
        while True:
            candidate = new_task_id()
            if candidate not in self.tasks:
                return candidate

    def new_namespace_id(self) -> str:
        while True:
            candidate = "ns_" + secrets.token_hex(8)
            if candidate not in self.namespaces:
                return candidate

    def add_namespace(self, record: dict[str, Any]) -> None:
        self.namespaces[record["namespace_id"]] = record
        self.ns_by_name[record["namespace_name"]] = record["namespace_id"]
        self.taxonomies.setdefault(record["namespace_id"], {})
        self.tax_by_name.setdefault(record["namespace_id"], {})
        self.collections.add_namespace(record["namespace_id"])
        self.retrievers.add_namespace(record["namespace_id"])

    def namespace_by_name(self, name: str) -> dict[str, Any] | None:
        ns_id = self.ns_by_name.get(name)
        return self.namespaces[ns_id] if ns_id is not None else None

    def find_namespace(self, ident: str) -> dict[str, Any] | None:
        return self.namespaces.get(ident) or self.namespace_by_name(ident)

    def add_taxonomy(self, entry: dict[str, Any]) -> None:
        ns_id, tax_id = entry["namespace_id"], entry["taxonomy_id"]
        self.taxonomies[ns_id][tax_id] = entry
        self.tax_by_name[ns_id][entry["taxonomy_name"]] = tax_id
        self.tax_namespace[tax_id] = ns_id
        self._fragments[tax_id] = b""
        self._stale.add(tax_id)

    def remove_taxonomy(self, entry: dict[str, Any]) -> None:
        ns_id, tax_id = entry["namespace_id"], entry["taxonomy_id"]
        del self.taxonomies[ns_id][tax_id]
        del self.tax_by_name[ns_id][entry["taxonomy_name"]]
        del self.tax_namespace[tax_id]
        del self._fragments[tax_id]
        self._stale.discard(tax_id)

    def rename_taxonomy(self, entry: dict[str, Any], new_name: str) -> None:
        names = self.tax_by_name[entry["namespace_id"]]
        del names[entry["taxonomy_name"]]
        names[new_name] = entry["taxonomy_id"]
        entry["taxonomy_name"] = new_name

    def touch(self, tax_id: str) -> None:
        """Mark a taxonomy changed so its cached JSON is re-encoded."""
        self._stale.add(tax_id)

    def taxonomy_id_by_name(self, ns_id: str, name: str) -> str | None:
        return self.tax_by_name[ns_id].get(name)

    def find_taxonomy(self, ns_id: str, ident: str, *, by_name: bool) -> dict[str, Any] | None:
        per_ns = self.taxonomies[ns_id]
        entry = per_ns.get(ident)
        if entry is None and by_name:
            tax_id = self.tax_by_name[ns_id].get(ident)
            entry = per_ns.get(tax_id) if tax_id is not None else None
        return entry

    def taxonomies_in(self, ns_id: str) -> Iterable[dict[str, Any]]:
        return self.taxonomies[ns_id].values()

    def taxonomy_count(self) -> int:
        return len(self.tax_namespace)


class _Catalog:
    """Records of one kind (collections or retrievers) per namespace, by id and by name.

    Each namespace's records stay in creation (seq) order, which keyset paging needs.
    """

    def __init__(self, kind: str, id_key: str, name_key: str) -> None:
        self.kind, self.id_key, self.name_key = kind, id_key, name_key
        self._by_id: dict[str, dict[str, dict[str, Any]]] = {}
        self._by_name: dict[str, dict[str, str]] = {}

    def add_namespace(self, ns_id: str) -> None:
        self._by_id.setdefault(ns_id, {})
        self._by_name.setdefault(ns_id, {})

    def add(self, record: dict[str, Any]) -> None:
        ns_id, data = record["namespace_id"], record["data"]
        self._by_id[ns_id][data[self.id_key]] = record
        self._by_name[ns_id][data[self.name_key]] = data[self.id_key]

    def replace(self, old: dict[str, Any], data: dict[str, Any]) -> None:
        """Give a record new data in place (same seq, same position)."""
        del self._by_name[old["namespace_id"]][old["data"][self.name_key]]
        old["data"] = data
        self._by_name[old["namespace_id"]][data[self.name_key]] = data[self.id_key]

    def rename(self, record: dict[str, Any], new_name: str) -> None:
        """Change a record's name; AlreadyExists if another record has it."""
        names = self._by_name[record["namespace_id"]]
        ident, old_name = record["data"][self.id_key], record["data"][self.name_key]
        if names.get(new_name, ident) != ident:
            raise AlreadyExists(
                f"A {self.kind} named '{new_name}' already exists in this namespace",
                {"resource": self.kind, self.name_key: new_name},
            )
        del names[old_name]
        names[new_name] = ident
        record["data"][self.name_key] = new_name

    def by_id(self, ns_id: str, ident: str) -> dict[str, Any] | None:
        return self._by_id[ns_id].get(ident)

    def by_name(self, ns_id: str, name: str) -> dict[str, Any] | None:
        ident = self._by_name[ns_id].get(name)
        return self._by_id[ns_id][ident] if ident is not None else None

    def find(self, ns_id: str, ident: str) -> dict[str, Any] | None:
        """By id first, then by name (the API's resolution order is undocumented)."""
        return self.by_id(ns_id, ident) or self.by_name(ns_id, ident)

    def in_namespace(self, ns_id: str) -> Iterable[dict[str, Any]]:
        return self._by_id[ns_id].values()

    def records(self) -> list[dict[str, Any]]:
        return [record for per_ns in self._by_id.values() for record in per_ns.values()]


# --- response shaping -------------------------------------------------------------


def _taxonomy_view(entry: dict[str, Any], record: dict[str, Any], now: float) -> dict[str, Any]:
    """A TaxonomyResponse-shaped dict that shares nested objects with the stored record."""
    return {
        "taxonomy_id": entry["taxonomy_id"],
        "version": record["version"],
        "taxonomy_name": entry["taxonomy_name"],
        "description": record["description"],
        # Legacy top-level fields: the real server still echoes them as null.
        "retriever_id": None,
        "input_mappings": None,
        "config": record["config"],
        "nodes": None,
        "ready": _is_ready(record, now),
        # The record's creation time on every version (TAXONOMIES.md §3.6): the API does not
        # date versions.
        "created_at": entry["versions"][0]["created_at"],
        "metadata": record["metadata"],
    }


def _public_namespace(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "seq"}


def _merge_metadata(
    caller: dict[str, Any] | None, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Caller keys replace the old caller keys; system keys come from the server side."""
    merged = {k: v for k, v in (caller or {}).items() if k not in SYSTEM_METADATA_KEYS}
    for key in SYSTEM_METADATA_KEYS:
        merged[key] = clone((previous or {}).get(key, []))
    return merged


def _is_ready(record: dict[str, Any], now: float) -> bool:
    ready_at = record.get("ready_at")
    return bool(record["ready"]) or (ready_at is not None and now >= ready_at)


def _counts_reads(record: dict[str, Any], now: float) -> bool:
    return not _is_ready(record, now) and record.get("pending_reads") is not None


def _count_read(record: dict[str, Any]) -> None:
    if record["pending_reads"] <= 0:
        record["ready"] = True
        record["pending_reads"] = None
        record["ready_at"] = None
    else:
        record["pending_reads"] -= 1


def _check_namespace_name(name: str) -> None:
    if not name or not name.strip() or len(name) > NAMESPACE_NAME_MAX:
        raise BadRequest(
            f"Namespace name must be 1 to {NAMESPACE_NAME_MAX} characters",
            {"namespace_name": name[:NAMESPACE_NAME_MAX]},
        )


# --- files ---------------------------------------------------------------------------


def _read_generation(path: Path) -> int:
    """The generation counter from the first bytes of the state file (-1 if unreadable)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return -1
    match = _GENERATION_RE.match(head)
    return int(match.group(1)) if match else -1


def _remove_stale_temp_files(path: Path) -> None:
    """Delete temp files a killed writer left behind (call with the exclusive lock held)."""
    for leftover in files.temp_files_of(path):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _state_file_error(path: Path, exc: OSError) -> StateFileError:
    return StateFileError(f"cannot read emulator state file {path}: {exc.strerror or exc}")


# --- small helpers -------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=_JSON_SEPARATORS, ensure_ascii=False, allow_nan=False)


def _iso_now() -> str:
    """Current UTC time as ISO 8601 with a ``Z`` suffix, like the API."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _iso(timestamp: float) -> str:
    """A clock reading as ISO 8601 UTC with a ``Z`` suffix, like the API."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _bumped(previous: str | None, now: float) -> str:
    """``updated_at`` for a change made now: later than ``previous`` even if the clock is not
    (a change must always be visible as a newer timestamp)."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    try:
        last = datetime.fromisoformat(previous.replace("Z", "+00:00")) if previous else None
    except ValueError:
        last = None
    if last is not None and last.tzinfo is not None and moment <= last:
        moment = last + timedelta(microseconds=1)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _without_times(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("created_at", "updated_at")}


def _replace_filters(query: ListQuery, filters: dict[str, Any] | None) -> ListQuery:
    return dataclasses.replace(query, filters=filters)
