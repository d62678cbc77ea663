"""Namespaces, and what a seed puts in them (collections and retrievers, also in each
namespace created later when the seed says ``"*"``)."""

from __future__ import annotations

from typing import Any

from taxsync.emulator.errors import AlreadyExists, BadRequest, NotFound
from taxsync.emulator.query import ListQuery, Page, clone, paginate
from taxsync.emulator.resources import SYSTEM_COLLECTION_NAME
from taxsync.emulator.seed import EVERY_NAMESPACE, Seed, SeedNamespace
from taxsync.emulator.store.persistence import PersistentStore
from taxsync.emulator.store.state import Catalog
from taxsync.emulator.store.times import iso, iso_now

NAMESPACE_NAME_MAX = 64


class Namespaces(PersistentStore):
    """Find, create, list and seed namespaces."""

    #: What a seed declares for every namespace (``"*"``), given to each namespace this
    #: store creates from now on (kept in memory only, like ``task_policy``).
    every_namespace: SeedNamespace | None

    # --- namespaces -----------------------------------------------------------

    def ensure_namespace(self, name: str, description: str | None = None) -> dict[str, Any]:
        """Return the namespace called ``name``, creating it if it does not exist."""
        _check_namespace_name(name)
        with self._transaction(exclusive=True):
            existing = self._state.namespace_by_name(name)
            if existing is not None:
                return _public_namespace(existing)
            return self._create_namespace(name, description)

    def get_namespace(self, ident: str) -> dict[str, Any]:
        """The namespace with that name or ``ns_`` id; NotFound otherwise. Naming a
        namespace never creates it (only the seed, ``namespaces`` and
        ``ensure_namespace`` do), so a misspelt one is unresolved as on the real API."""
        with self._transaction():
            found = self._state.find_namespace(ident)
            if found is not None:
                return _public_namespace(found)
        raise NotFound(f"Namespace '{ident}' not found", {"resource": "namespace", "id": ident})

    def list_namespaces(self, query: ListQuery | None = None) -> Page:
        """A page of namespaces in creation order (or the query's sort)."""
        query = query or ListQuery()
        with self._transaction():
            rows = [(ns["seq"], _public_namespace(ns)) for ns in self._state.namespaces.values()]
            return paginate(rows, query, text_fields=("namespace_id", "namespace_name"))

    # --- seeding: what a seed puts in a namespace ----------------------------------

    def seed(self, seed: Seed) -> tuple[int, int]:
        """Put a seed's collections and retrievers into their namespaces (created if need
        be): what the seed declares is added or updated, and what requests made is kept
        (taxonomies, tasks, and the taxonomy entries collections gained by PATCH, see
        ``reseeded``). Seeding the same seed twice changes nothing. Returns (collections,
        retrievers) seeded.
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

    def _create_namespace(self, name: str, description: str | None) -> dict[str, Any]:
        now = iso_now()
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

    def _seed_namespace(self, name: str) -> str:
        existing = self._state.namespace_by_name(name)
        if existing is not None:
            return str(existing["namespace_id"])
        return str(self._create_namespace(name, None)["namespace_id"])

    def _seed_record(self, catalog: Catalog, ns_id: str, data: dict[str, Any]) -> None:
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
        now = iso(self._clock())
        if old is None:
            data = clone(data)
            data.setdefault("created_at", now)
            data.setdefault("updated_at", now)
            catalog.add({"namespace_id": ns_id, "seq": self._state.next_seq(), "data": data})
        else:
            merged = reseeded(old["data"], data)
            if _without_times(old["data"]) == _without_times(merged):
                return  # the same seed again: keep it as it is, timestamps included
            merged["updated_at"] = data.get("updated_at") or now
            catalog.replace(old, merged)
        self._dirty = True


def reseeded(live: dict[str, Any], seeded: dict[str, Any]) -> dict[str, Any]:
    """A collection or retriever seeded again: the fields the seed declares take its values,
    the others keep their live ones. ``taxonomy_applications`` merge by ``taxonomy_id``:
    an entry the seed declares replaces the live one for that taxonomy (or is appended),
    and live entries the seed does not name stay, so re-seeding keeps what apply attached.
    """
    merged = clone({**live, **seeded})
    declared = seeded.get("taxonomy_applications")
    kept = live.get("taxonomy_applications")
    if declared is not None and kept:
        by_taxonomy = {entry["taxonomy_id"]: entry for entry in declared}
        entries = [by_taxonomy.pop(entry["taxonomy_id"], entry) for entry in kept]
        merged["taxonomy_applications"] = clone([*entries, *by_taxonomy.values()])
    return merged


def _public_namespace(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "seq"}


def _check_namespace_name(name: str) -> None:
    if not name or not name.strip() or len(name) > NAMESPACE_NAME_MAX:
        raise BadRequest(
            f"Namespace name must be 1 to {NAMESPACE_NAME_MAX} characters",
            {"namespace_name": name[:NAMESPACE_NAME_MAX]},
        )


def _without_times(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("created_at", "updated_at")}
