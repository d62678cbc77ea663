"""From a converted document to a ``DesiredTaxonomy``, or problems at ``file:line:col``.

The manifest model (``taxsync.model``) checks the shape; this adds what it cannot: names
that travel in URLs and headers, ids the API accepts, a hierarchy without dangling parents
or cycles, ``appliedTo`` entries listed once, and one declaration per taxonomy in a tree.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from taxsync import wire
from taxsync.errors import ManifestProblem
from taxsync.identifiers import name_problem, namespace_problem
from taxsync.manifest.document import Document
from taxsync.manifest.environments import per_namespace
from taxsync.manifest.messages import id_message, teaching
from taxsync.manifest.references import StandIns, names_back, names_out, shown
from taxsync.model import (
    MANAGED_KEY,
    AppliedTo,
    DesiredTaxonomy,
    FieldPath,
    ManifestSpec,
    Position,
    SourceLocation,
    TaxonomyManifest,
    dotted,
    strip_union_tags,
)


def validated(
    value: Any, document: Document, node: yaml.Node, problems: list[ManifestProblem]
) -> list[DesiredTaxonomy]:
    """The taxonomies one converted document declares (one per namespace it lists), or
    none, with its problems added to ``problems``."""
    if not isinstance(value, dict):
        document.problem(node, (), "a manifest document must be a mapping")
        problems.extend(document.problems)
        return []
    variants = per_namespace(value, document)
    problems.extend(document.problems)
    found: list[DesiredTaxonomy] = []
    for one, view in variants:
        own: list[ManifestProblem] = []
        taxonomy = _validated_one(one, view, own)
        problems.extend(p for p in own if p not in problems)  # shared parts: said once
        if taxonomy is not None:
            found.append(taxonomy)
    return found if len(found) == len(variants) else []


def _validated_one(
    value: dict[str, Any], document: Document, problems: list[ManifestProblem]
) -> DesiredTaxonomy | None:
    config = value.get("spec", {}).get("config") if isinstance(value.get("spec"), dict) else None
    if isinstance(config, dict) and "taxonomy_type" not in config:
        _add(problems, document, ("spec", "config"), "taxonomy_type is required in manifests")
        return None
    swapped = names_out(value, document)
    if swapped is None:
        problems.extend(document.problems)
        return None
    value, stand_ins = swapped
    try:
        manifest = TaxonomyManifest.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors():
            loc, message = teaching(TaxonomyManifest, error)
            _add(problems, document, strip_union_tags(loc), shown(message, stand_ins))
        return None
    before = len(problems)
    _check_names(manifest, document, problems)
    _check_semantics(manifest, document, problems)
    if len(problems) > before:
        problems[before:] = [
            dataclasses.replace(p, message=shown(p.message, stand_ins)) for p in problems[before:]
        ]
        return None
    return _desired(manifest, document, stand_ins)


def _add(
    problems: list[ManifestProblem], document: Document, path: FieldPath, message: str
) -> None:
    line, col = _nearest_position(document.positions, path)
    problems.append(ManifestProblem(document.file, line, col, dotted(path), message))


def _nearest_position(positions: Mapping[FieldPath, Position], path: FieldPath) -> Position:
    for end in range(len(path), -1, -1):
        pos = positions.get(path[:end])
        if pos:
            return pos
    return (1, 1)


def _check_names(
    manifest: TaxonomyManifest, document: Document, problems: list[ManifestProblem]
) -> None:
    """Names and namespaces are URL path segments, and a namespace is an HTTP header value:
    the rules every other way in (seeds, ``--namespace``, saved plans) applies too."""
    metadata = manifest.metadata
    checks: list[tuple[FieldPath, str | None]] = [
        (("metadata", "namespace"), namespace_problem(metadata.namespace)),
        (("metadata", "name"), name_problem(metadata.name)),
    ]
    checks += [
        (("metadata", "previousNames", i), name_problem(old))
        for i, old in enumerate(metadata.previousNames)
    ]
    for path, problem in checks:
        if problem:
            _add(problems, document, path, problem)


def _check_semantics(
    manifest: TaxonomyManifest, document: Document, problems: list[ManifestProblem]
) -> None:
    def report(path: FieldPath, message: str) -> None:
        _add(problems, document, ("spec", *path), message)

    metadata = manifest.spec.metadata or {}
    if MANAGED_KEY in metadata:
        report(("metadata", MANAGED_KEY), "is reserved: taxsync sets it on what it manages")
    config = manifest.spec.config
    id_checks: list[tuple[FieldPath, str | None, str]] = [
        (("config", "retriever_id"), config.retriever_id, wire.RETRIEVER_ID_PATTERN)
    ]
    if isinstance(config, wire.FlatConfig):
        collection = config.source_collection.collection_id
        id_checks.append(
            (
                ("config", "source_collection", "collection_id"),
                collection,
                wire.COLLECTION_ID_PATTERN,
            )
        )
    else:
        for i, collection in enumerate(config.inference_collections or []):
            path: FieldPath = ("config", "inference_collections", i)
            id_checks.append((path, collection, wire.COLLECTION_ID_PATTERN))
        _check_hierarchy(config, report)
    for i, entry in enumerate(manifest.spec.appliedTo or []):
        target = ("appliedTo", i, "target_collection_id")
        id_checks.append((target, entry.target_collection_id, wire.COLLECTION_ID_PATTERN))
    for id_path, value, pattern in id_checks:
        if value is not None and not re.match(pattern, value):
            report(id_path, id_message(value, pattern))
    _check_applied_to(manifest.spec, report)


def _check_applied_to(spec: ManifestSpec, report: Any) -> None:
    """One entry per collection (as written: an id and a name of the same collection are
    caught at plan time), and settings the taxonomy's type can use."""
    seen: dict[str, int] = {}
    for i, entry in enumerate(spec.appliedTo or []):
        first = seen.setdefault(entry.collection, i)
        if first != i:
            report(
                ("appliedTo", i, "collection"),
                f"{entry.collection!r} is already listed at appliedTo[{first}]",
            )
        style = entry.hierarchical_enrichment_style
        if style is not None and spec.config.taxonomy_type != "hierarchical":
            report(
                ("appliedTo", i, "hierarchical_enrichment_style"),
                "is for hierarchical taxonomies only",
            )


def _check_hierarchy(config: wire.HierarchicalConfig, report: Any) -> None:
    nodes = config.hierarchical_nodes or []
    if config.path_field is not None and (nodes or config.inference_strategy):
        report(("config", "path_field"), "cannot be combined with hierarchical_nodes or inference")
    parents: dict[str, str | None] = {}
    for i, node in enumerate(nodes):
        if node.collection_id in parents:
            report(("config", "hierarchical_nodes", i, "collection_id"), "duplicate node")
        parents[node.collection_id] = node.parent_collection_id
    for i, node in enumerate(nodes):
        parent = node.parent_collection_id
        path = ("config", "hierarchical_nodes", i, "parent_collection_id")
        if parent is not None and parent not in parents:
            report(path, f"parent {parent!r} is not a node of this taxonomy")
        elif parent is not None and _in_cycle(node.collection_id, parents):
            report(path, f"parent cycle through {node.collection_id!r}")


def _in_cycle(start: str, parents: Mapping[str, str | None]) -> bool:
    seen = {start}
    current = parents.get(start)
    while current is not None:
        if current in seen:
            return current == start
        seen.add(current)
        current = parents.get(current)
    return False


class _SpecPositions(Mapping[str, Position]):
    """Dotted spec paths ("config.top_k") to positions, built on first use: a plan looks one
    up only to point an error at its line, and naming every value of every manifest up front
    cost a tenth of a large plan's time."""

    def __init__(self, positions: Mapping[FieldPath, Position]) -> None:
        self._positions = positions
        self._table: dict[str, Position] | None = None

    def _built(self) -> dict[str, Position]:
        if self._table is None:
            self._table = {
                dotted(path[1:]): pos
                for path, pos in self._positions.items()
                if path and path[0] == "spec" and len(path) > 1
            }
        return self._table

    def __getitem__(self, key: str) -> Position:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def _desired(
    manifest: TaxonomyManifest, document: Document, stand_ins: StandIns
) -> DesiredTaxonomy:
    spec_positions = _SpecPositions(document.positions)
    # Changes and duplicate errors point at the taxonomy's name, the line a reviewer looks for.
    line, col = document.positions.get(("metadata", "name"), document.positions.get((), (1, 1)))
    return DesiredTaxonomy(
        namespace=manifest.metadata.namespace,
        name=manifest.metadata.name,
        description=manifest.spec.description,
        metadata=dict(manifest.spec.metadata or {}),
        # Only what the manifest declares is sent; the server fills its own defaults.
        config=names_back(
            manifest.spec.config.model_dump(mode="json", exclude_unset=True)
            | {"taxonomy_type": manifest.spec.config.taxonomy_type},
            stand_ins,
        ),
        source=SourceLocation(document.file, line, col),
        previous_names=tuple(manifest.metadata.previousNames),
        wait=manifest.spec.wait,
        backfill=manifest.spec.backfill == "onChange",
        applied_to=names_back(_applied_to(manifest.spec.appliedTo), stand_ins),
        positions=spec_positions,
    )


def _applied_to(entries: list[AppliedTo] | None) -> tuple[dict[str, Any], ...] | None:
    if entries is None:
        return None
    # As written: no default of the filter model (case_sensitive) added, no null kept.
    return tuple(
        entry.model_dump(mode="json", exclude_unset=True, exclude_none=True) for entry in entries
    )


def cross_file_problems(desired: list[DesiredTaxonomy]) -> list[ManifestProblem]:
    problems = []
    first: dict[tuple[str, str], DesiredTaxonomy] = {}
    for taxonomy in desired:
        seen = first.setdefault(taxonomy.key, taxonomy)
        if seen is not taxonomy:
            src = taxonomy.source
            message = f"{taxonomy.namespace}/{taxonomy.name} is already declared at {seen.source}"
            problems.append(ManifestProblem(src.file, src.line, src.col, "metadata.name", message))
    return problems
