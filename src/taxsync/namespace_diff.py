"""``taxsync diff``: how the live taxonomies of two namespaces differ, by name.

Mixpeek gives every collection and retriever its own id in each namespace, so two
namespaces that hold the same taxonomies name different ids. Here each taxonomy is put in
a form both namespaces share before it is compared: references by the names of what they
point at (``names.to_names``), the config in canonical form (as the planner compares it),
taxsync's own bookkeeping left out (``normalize.user_metadata``), and the collections that
apply it by collection name with their settings. Pure: the caller reads both namespaces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taxsync.live import SYSTEM_COLLECTIONS, LiveCollection, Neighbourhood, non_default
from taxsync.names import is_name, to_names
from taxsync.normalize import canonical, canonical_config, user_metadata
from taxsync.plan import FieldChange
from taxsync.planner import field_diff
from taxsync.wire import TaxonomyResponse


@dataclass(frozen=True)
class Differing:
    """A taxonomy both namespaces hold, and each field that differs: ``before`` is
    namespace A's value, ``after`` namespace B's."""

    name: str
    diff: tuple[FieldChange, ...]


@dataclass(frozen=True)
class NamespaceDiff:
    """The taxonomies (by name) only in A, only in B, and in both but different; ``same``:
    how many both hold alike."""

    a: str
    b: str
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    differing: tuple[Differing, ...]
    same: int

    @property
    def equal(self) -> bool:
        """Whether nothing differs."""
        return not (self.only_in_a or self.only_in_b or self.differing)


def compare(
    a: str,
    live_a: Sequence[TaxonomyResponse],
    around_a: Neighbourhood,
    b: str,
    live_b: Sequence[TaxonomyResponse],
    around_b: Neighbourhood,
) -> NamespaceDiff:
    """Compare namespace ``a`` (its live taxonomies and neighbourhood) with ``b``."""
    by_name_a = {t.taxonomy_name: t for t in live_a}
    by_name_b = {t.taxonomy_name: t for t in live_b}
    differing = []
    for name in sorted(by_name_a.keys() & by_name_b.keys()):
        before = comparable(by_name_a[name], around_a)
        after = comparable(by_name_b[name], around_b)
        if before != after:
            differing.append(Differing(name, tuple(field_diff(before, after))))
    both = len(by_name_a.keys() & by_name_b.keys())
    return NamespaceDiff(
        a=a,
        b=b,
        only_in_a=tuple(sorted(by_name_a.keys() - by_name_b.keys())),
        only_in_b=tuple(sorted(by_name_b.keys() - by_name_a.keys())),
        differing=tuple(differing),
        same=both - len(differing),
    )


def comparable(live: TaxonomyResponse, around: Neighbourhood) -> dict[str, Any]:
    """What of a live taxonomy two namespaces can hold alike, in a form they share: the
    description, the user's metadata, the canonical config and ``appliedTo`` (a map from
    collection name to its non-default settings), every id written as ``{name: …}`` where
    the namespace knows the name."""
    applying = _applying(live.taxonomy_id, around)
    settings = [non_default(c.application_of(live.taxonomy_id) or {}) for c in applying]
    config, named_settings, _ = to_names(live.config, settings, around, unique_only=False)
    return {
        "description": live.description,
        "metadata": canonical(user_metadata(live.metadata)),
        "config": _nodes_keyed_by_name(canonical_config(config)),
        "appliedTo": _by_collection(applying, named_settings),
    }


def _applying(taxonomy_id: str | None, around: Neighbourhood) -> list[LiveCollection]:
    """The collections that apply the taxonomy, but system ones (taxsync never attaches to
    them, and a manifest cannot name them), as export leaves them out."""
    return [
        collection
        for collection in around.applying(taxonomy_id)
        if not {collection.name, collection.collection_id} & SYSTEM_COLLECTIONS
    ]


def _by_collection(
    applying: Sequence[LiveCollection], settings: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Each applying collection's settings under its name; under its id when it has no
    name, or shares it with another applying collection (a name must find one)."""
    names = [collection.name for collection in applying]
    out: dict[str, Any] = {}
    for collection, entry in zip(applying, settings, strict=True):
        name = collection.name
        key = name if name and names.count(name) == 1 else collection.collection_id
        out[key] = dict(entry)
    return out


def _nodes_keyed_by_name(config: dict[str, Any]) -> dict[str, Any]:
    """The canonical form keys ``hierarchical_nodes`` by ``collection_id``, which is a
    ``{name: …}`` mapping here: key them by the bare name instead, so a diff reads
    ``config.hierarchical_nodes[managers].label``. An id stays the key it was."""
    nodes = config.get("hierarchical_nodes")
    if not isinstance(nodes, dict):
        return config  # a list: no node had a usable key, compared by position
    rekeyed = {_node_key(key, node): node for key, node in nodes.items()}
    if len(rekeyed) != len(nodes):
        return config  # a name that reads like another node's id: keep the unique keys
    return {**config, "hierarchical_nodes": rekeyed}


def _node_key(key: str, node: Any) -> str:
    ident = node.get("collection_id") if isinstance(node, Mapping) else None
    return str(ident["name"]) if isinstance(ident, Mapping) and is_name(ident) else key
