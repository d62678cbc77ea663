"""Retrievers (found by id or name; a seed creates them)."""

from __future__ import annotations

from typing import Any

from taxsync.emulator.query import ListQuery, Page, clone, paginate
from taxsync.emulator.resources import retriever_view
from taxsync.emulator.store.persistence import PersistentStore


class Retrievers(PersistentStore):
    """List and read retrievers."""

    def list_retrievers(self, ns: str, query: ListQuery | None = None) -> Page:
        """A page of retrievers in namespace ``ns``."""
        query = query or ListQuery()
        with self._transaction():
            ns_id = self._state.namespace_id(ns)
            rows = [
                (r["seq"], retriever_view(r)) for r in self._state.retrievers.in_namespace(ns_id)
            ]
            return paginate(
                rows, query, text_fields=("retriever_id", "retriever_name", "description")
            )

    def get_retriever(self, ns: str, ident: str) -> dict[str, Any]:
        """One retriever, found by id or name."""
        with self._transaction():
            ns_id = self._state.namespace_id(ns)
            record = self._state.retrievers.find(ns_id, ident)
            if record is None:
                raise self._state.not_found("Retriever", ns_id, ident)
            return clone(retriever_view(record))
