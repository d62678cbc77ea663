"""Collections (found by id or name; a seed creates them), their
``taxonomy_applications``, and apply-taxonomy, which starts a backfill task."""

from __future__ import annotations

from typing import Any

from taxsync.emulator.errors import BadRequest
from taxsync.emulator.query import ListQuery, Page, clone, paginate
from taxsync.emulator.resources import (
    SYSTEM_COLLECTION_NAME,
    TaskPolicy,
    applied_taxonomy_ids,
    collection_stats,
    collection_view,
    new_backfill_task,
    searches_collection,
    system_collection,
)
from taxsync.emulator.store.persistence import PersistentStore
from taxsync.emulator.store.times import bumped
from taxsync.wire import (
    ApplyTaxonomyRequest,
    PatchCollectionRequest,
    TaxonomyApplicationConfigInput,
    application_entries,
)


class Collections(PersistentStore):
    """List, read and PATCH collections; start backfills on them."""

    #: How backfill tasks started through this store live (see TaskPolicy); tests and
    #: ``local serve`` set it. Each task keeps the policy it was created under.
    task_policy: TaskPolicy

    def list_collections(
        self, ns: str, query: ListQuery | None = None, *, include_system: bool = False
    ) -> Page:
        """A page of collections in namespace ``ns`` with ``CollectionListStats`` over the
        page; the ``_direct_upsert`` system collection only with ``include_system``."""
        query = query or ListQuery()
        with self._transaction():
            ns_id = self._state.namespace_id(ns)
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
            data["updated_at"] = bumped(data.get("updated_at"), self._clock())
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
            self._state.taxonomy(ns_id, request.taxonomy_id, by_name=False)
            self._check_backfill(record, request.taxonomy_id, refuse_empty)
            task = new_backfill_task(
                task_id=self._state.new_task_id(),
                seq=self._state.next_seq(),
                namespace_id=ns_id,
                collection=record,
                request=request,
                policy=self.task_policy,
                created_at=self._state.next_task_time(self._clock()),
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
            return sum(
                1 for _ in self._state.collections.in_namespace(self._state.namespace_id(ns))
            )

    def _collection_view(self, record: dict[str, Any], *, in_list: bool) -> dict[str, Any]:
        collection_id = record["data"]["collection_id"]
        retrievers = self._state.retrievers.in_namespace(record["namespace_id"])
        count = sum(1 for r in retrievers if searches_collection(r, collection_id))
        return collection_view(record, retriever_count=count, in_list=in_list)

    def _find_collection(self, ns: str, ident: str, *, for_write: bool = False) -> dict[str, Any]:
        """A stored collection by id or name, or the system collection (read-only)."""
        ns_id = self._state.namespace_id(ns)
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
        raise self._state.not_found("Collection", ns_id, ident)

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
                self._state.taxonomy(ns_id, entry.taxonomy_id, by_name=False)
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
