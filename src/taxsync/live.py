"""What lives around the taxonomies of a namespace: the collections that apply them and the
resources their configs name.

A taxonomy does nothing on its own: collections apply it (``taxonomy_applications``), and
its config points at retrievers and collections. The planner reads this neighbourhood to
check references, to show what a change affects, and to keep collections wired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The settings of an entry of ``taxonomy_applications`` (all but ``taxonomy_id``), and what
# the server takes a null or missing one to mean (docs/api-contract.md#entry-settings-and-their-defaults).
SETTINGS = (
    "execution_mode",
    "target_collection_id",
    "scroll_filters",
    "execution_phase",
    "priority",
    "hierarchical_enrichment_style",
)
_DEFAULTS: dict[str, Any] = {
    "execution_mode": "materialize",
    "execution_phase": 1,
    "priority": 0,
    "hierarchical_enrichment_style": "combined",
}
# A system collection: never attached to (docs/api-contract.md#system-collections).
SYSTEM_COLLECTIONS = frozenset({"_direct_upsert"})


def settings(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's settings as they behave, for comparing: defaults filled in, nulls absent.
    An entry taxsync wrote reads back equal to what the manifest says."""
    out = {}
    for key in SETTINGS:
        value = entry.get(key)
        if value is None:
            value = _DEFAULTS.get(key)
        if value is not None:
            out[key] = value
    if "scroll_filters" in out:
        out["scroll_filters"] = _without_default_case(out["scroll_filters"])
    return out


def _without_default_case(value: Any) -> Any:
    """A filter without ``case_sensitive: false``, the default the SDK writes into every
    level of a filter it re-emits (docs/api-contract.md#entry-settings-and-their-defaults): with or without it, the same."""
    if isinstance(value, Mapping):
        return {
            k: _without_default_case(v)
            for k, v in value.items()
            if not (k == "case_sensitive" and v is False)
        }
    if isinstance(value, list):
        return [_without_default_case(v) for v in value]
    return value


def declared(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The settings an entry sets (not null), as written: what a manifest says of it."""
    return {key: entry[key] for key in SETTINGS if entry.get(key) is not None}


def non_default(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of an entry that differ from the server's defaults: the shortest
    manifest entry that means the same."""
    return {k: v for k, v in settings(entry).items() if _DEFAULTS.get(k) != v}


@dataclass(frozen=True)
class LiveCollection:
    """A collection, reduced to what taxsync needs; its applications kept as read (raw JSON),
    so a read-modify-write never drops a key taxsync does not know."""

    collection_id: str
    name: str
    document_count: int | None = None
    applications: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LiveCollection:
        """From a ``CollectionResponse`` as JSON (null and missing lists both mean none)."""
        entries = data.get("taxonomy_applications") or []
        return cls(
            collection_id=str(data.get("collection_id") or ""),
            name=str(data.get("collection_name") or ""),
            document_count=data.get("document_count"),
            applications=tuple(e for e in entries if isinstance(e, dict)),
        )

    def application_of(self, taxonomy_id: str | None) -> dict[str, Any] | None:
        """This collection's entry for ``taxonomy_id``, if it applies it."""
        return next((e for e in self.applications if e.get("taxonomy_id") == taxonomy_id), None)


@dataclass(frozen=True)
class Neighbourhood:
    """The collections and retrievers of one namespace."""

    collections: tuple[LiveCollection, ...] = ()
    retrievers: Mapping[str, str] = field(default_factory=dict)  # id → name ("" for none)
    _by_ident: dict[str, LiveCollection] = field(default_factory=dict, compare=False, repr=False)
    _collection_names: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for collection in self.collections:
            self._by_ident.setdefault(collection.name, collection)
            self._collection_names[collection.collection_id] = collection.name
        for collection in self.collections:  # an id wins over a name that looks like one
            self._by_ident[collection.collection_id] = collection

    def collection(self, ident: str) -> LiveCollection | None:
        """The collection with this id or name."""
        return self._by_ident.get(ident)

    def names_of(self, kind: str) -> Mapping[str, str]:
        """Each collection's (``kind="collection"``) or retriever's name, by id."""
        return self.retrievers if kind == "retriever" else self._collection_names

    def applying(self, taxonomy_id: str | None) -> list[LiveCollection]:
        """The collections that apply ``taxonomy_id``, by name."""
        if taxonomy_id is None:
            return []
        found = [c for c in self.collections if c.application_of(taxonomy_id) is not None]
        return sorted(found, key=lambda c: (c.name, c.collection_id))


def neighbourhood(
    collections: Iterable[Mapping[str, Any]], retrievers: Iterable[Mapping[str, Any]]
) -> Neighbourhood:
    """A namespace's neighbourhood from the list routes' results (raw JSON)."""
    retrievers = list(retrievers)
    return Neighbourhood(
        collections=tuple(LiveCollection.from_wire(c) for c in collections),
        retrievers={
            str(r["retriever_id"]): str(r.get("retriever_name") or "")
            for r in retrievers
            if r.get("retriever_id")
        },
    )
