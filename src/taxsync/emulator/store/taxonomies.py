"""Taxonomies and their versions, and when one that needs inference turns ready.

Taxonomy names are per taxonomy; a version record holds its config snapshot, description,
metadata, readiness and ``created_at``. PATCH edits the head version's description and
metadata (older snapshots keep theirs) and never bumps ``version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taxsync.emulator.errors import AlreadyExists, BadRequest, NotFound
from taxsync.emulator.query import ListQuery, Page, clone, paginate
from taxsync.emulator.resources import applied_taxonomy_ids
from taxsync.emulator.store.persistence import PersistentStore
from taxsync.emulator.store.times import iso_now
from taxsync.wire import CreateTaxonomyRequest, CreateTaxonomyVersionRequest, PatchTaxonomyRequest

SYSTEM_METADATA_KEYS = ("validation_warnings",)
ASYNC_INFERENCE_STRATEGIES = ("cluster", "llm")


@dataclass(frozen=True)
class ReadyPolicy:
    """When a taxonomy that needs async inference reports ``ready=true``.

    ``after_reads``: the first N single-taxonomy GETs of that version report false and
    later ones true (None: reads never flip it). ``after_seconds``: it is ready that long
    after creation (None: time never flips it). Whichever comes first wins.
    """

    after_reads: int | None = 3
    after_seconds: float | None = None


class Taxonomies(PersistentStore):
    """Create, read, list, rename, re-version and delete taxonomies."""

    def create_taxonomy(
        self, ns: str, request: CreateTaxonomyRequest, ready: ReadyPolicy | None = None
    ) -> dict[str, Any]:
        """Create a taxonomy at version 1 in namespace ``ns`` (name or id)."""
        with self._transaction(exclusive=True):
            ns_id = self._state.namespace_id(ns)
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
            ns_id = self._state.namespace_id(ns)
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
            entry = self._state.taxonomy(ns, ident)
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
            entry = self._state.taxonomy(ns, ident)
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
            entry = self._state.taxonomy(ns, taxonomy_id, by_name=False)
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
            entry = self._state.taxonomy(ns, taxonomy_id, by_name=False)
            now = self._clock()
            return [clone(_taxonomy_view(entry, v, now)) for v in entry["versions"]]

    def count_taxonomies(self, ns: str | None = None) -> int:
        """How many taxonomies exist, in one namespace or in all of them."""
        with self._transaction():
            if ns is None:
                return self._state.taxonomy_count()
            return sum(1 for _ in self._state.taxonomies_in(self._state.namespace_id(ns)))

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

    def _find_version(
        self, ns: str, ident: str, version: int | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        entry = self._state.taxonomy(ns, ident)
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
            "created_at": iso_now(),
            "ready": not needs_inference,
            "pending_reads": ready.after_reads if needs_inference else None,
            "ready_at": ready_at,
        }


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
        # The record's creation time on every version (docs/api-contract.md#timestamps-across-versions):
        # the API does not date versions.
        "created_at": entry["versions"][0]["created_at"],
        "metadata": record["metadata"],
    }


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
