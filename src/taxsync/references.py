"""Which ids a manifest names, and which of them its namespace lacks: checked at plan time.

A typo in ``retriever_id`` or a ``collection_id`` would otherwise be found only when the API
refuses the write, or not at all. Pure: the neighbourhood is read by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taxsync.errors import ManifestProblem
from taxsync.live import Neighbourhood
from taxsync.manifest import DesiredTaxonomy

Kind = Literal["retriever", "collection"]


@dataclass(frozen=True)
class Reference:
    """One id a manifest names, and where (a dotted spec path such as ``config.retriever_id``)."""

    kind: Kind
    ident: str
    spec_path: str


def references(desired: DesiredTaxonomy) -> Iterator[Reference]:
    """Every retriever and collection the taxonomy's config names."""
    config: Mapping[str, Any] = desired.config
    if isinstance(config.get("retriever_id"), str):
        yield Reference("retriever", config["retriever_id"], "config.retriever_id")
    source = config.get("source_collection")
    if isinstance(source, Mapping) and isinstance(source.get("collection_id"), str):
        path = "config.source_collection.collection_id"
        yield Reference("collection", source["collection_id"], path)
    for index, node in enumerate(config.get("hierarchical_nodes") or []):
        where = f"config.hierarchical_nodes[{index}]"
        if isinstance(node.get("collection_id"), str):
            yield Reference("collection", node["collection_id"], f"{where}.collection_id")
        if isinstance(node.get("retriever_id"), str):
            yield Reference("retriever", node["retriever_id"], f"{where}.retriever_id")
    for index, ident in enumerate(config.get("inference_collections") or []):
        if isinstance(ident, str):
            yield Reference("collection", ident, f"config.inference_collections[{index}]")


def missing(
    desired: Sequence[DesiredTaxonomy], neighbourhoods: Mapping[str, Neighbourhood]
) -> dict[tuple[str, str], list[ManifestProblem]]:
    """For each taxonomy (by namespace and name) that names ids its namespace does not have,
    a problem at the manifest line of each."""
    found: dict[tuple[str, str], list[ManifestProblem]] = {}
    for taxonomy in desired:
        around = neighbourhoods.get(taxonomy.namespace)
        if around is None:
            continue  # not read (not a covered namespace)
        for ref in references(taxonomy):
            if _exists(ref, around):
                continue
            line, col = taxonomy.position(ref.spec_path)
            message = f"{ref.kind} {ref.ident} does not exist in namespace {taxonomy.namespace}"
            path = f"spec.{ref.spec_path}"
            problem = ManifestProblem(taxonomy.source.file, line, col, path, message)
            found.setdefault(taxonomy.key, []).append(problem)
    return found


def _exists(ref: Reference, around: Neighbourhood) -> bool:
    if ref.kind == "retriever":
        return around.has_retriever(ref.ident)
    return around.collection(ref.ident) is not None
