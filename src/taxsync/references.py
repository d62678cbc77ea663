"""Which ids and names a manifest names, and which of them its namespace lacks: checked, and
names resolved, at plan time.

A typo in ``retriever_id`` or a ``collection_id`` would otherwise be found only when the API
refuses the write, or not at all. Pure: the neighbourhood is read by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taxsync.errors import ManifestError, ManifestProblem
from taxsync.live import SYSTEM_COLLECTIONS, Neighbourhood
from taxsync.model import DesiredTaxonomy
from taxsync.names import resolve
from taxsync.plan import AnyChange, AttachmentChange, Plan, ResolvedName

Kind = Literal["retriever", "collection"]


@dataclass(frozen=True)
class Reference:
    """One id a manifest names, and where (a dotted spec path such as ``config.retriever_id``)."""

    kind: Kind
    ident: str
    spec_path: str
    # ``appliedTo[].collection`` takes an id or a name; every other field an id only (a name
    # there would reach the API as an id that does not exist).
    any_name: bool = False


def references(desired: DesiredTaxonomy) -> Iterator[Reference]:
    """Every retriever and collection the taxonomy's config and ``appliedTo`` name."""
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
    for index, entry in enumerate(desired.applied_to or ()):
        path = f"appliedTo[{index}].collection"
        yield Reference("collection", entry["collection"], path, any_name=True)
        if entry.get("target_collection_id"):
            path = f"appliedTo[{index}].target_collection_id"
            yield Reference("collection", entry["target_collection_id"], path)


def missing(
    desired: Sequence[DesiredTaxonomy], neighbourhoods: Mapping[str, Neighbourhood]
) -> dict[tuple[str, str], list[ManifestProblem]]:
    """For each taxonomy (by namespace and name) that names ids its namespace does not have,
    a problem at the manifest line of each (a name in an id field is ``names_as_ids``')."""
    found: dict[tuple[str, str], list[ManifestProblem]] = {}
    for taxonomy in desired:
        around = neighbourhoods.get(taxonomy.namespace)
        if around is None:
            continue  # not read (not a covered namespace)
        for ref in references(taxonomy):
            if _exists(ref, around) or _named(ref, around) is not None:
                continue
            message = f"{ref.kind} {ref.ident} does not exist in namespace {taxonomy.namespace}"
            found.setdefault(taxonomy.key, []).append(_problem(taxonomy, ref.spec_path, message))
    return found


def names_as_ids(
    desired: Sequence[DesiredTaxonomy], neighbourhoods: Mapping[str, Neighbourhood]
) -> list[ManifestProblem]:
    """Each id field that holds the name of a collection or retriever instead of an id: never
    let through (the API would be sent an id that does not exist); ``{name: …}`` says it."""
    problems = []
    for taxonomy in desired:
        around = neighbourhoods.get(taxonomy.namespace)
        if around is None:
            continue
        for ref in references(taxonomy):
            ident = None if _exists(ref, around) else _named(ref, around)
            if ident is not None:
                message = (
                    f"{ref.ident!r} is the name of {ref.kind} {ident}, not an id: this field "
                    f"takes ids only; write {{name: {ref.ident}}} to name it"
                )
                problems.append(_problem(taxonomy, ref.spec_path, message))
    return problems


def attachment_problems(
    desired: Sequence[DesiredTaxonomy], neighbourhoods: Mapping[str, Neighbourhood]
) -> list[ManifestProblem]:
    """``appliedTo`` entries no flag lets through: two naming one collection (by id and by
    name), and a system collection."""
    problems = []
    for taxonomy in desired:
        around = neighbourhoods.get(taxonomy.namespace)
        if around is None or not taxonomy.applied_to:
            continue
        seen: dict[str, int] = {}
        for index, entry in enumerate(taxonomy.applied_to):
            collection = around.collection(entry["collection"])
            if collection is None:
                continue
            path = f"appliedTo[{index}].collection"
            first = seen.setdefault(collection.collection_id, index)
            if first != index:
                message = (
                    f"{entry['collection']} is collection {collection.collection_id}, already "
                    f"listed at appliedTo[{first}]"
                )
                problems.append(_problem(taxonomy, path, message))
            if {collection.name, collection.collection_id} & SYSTEM_COLLECTIONS:
                message = f"{collection.name} is a system collection: taxsync never attaches to it"
                problems.append(_problem(taxonomy, path, message))
    return problems


def _problem(taxonomy: DesiredTaxonomy, spec_path: str, message: str) -> ManifestProblem:
    line, col = taxonomy.position(spec_path)
    return ManifestProblem(taxonomy.source.file, line, col, f"spec.{spec_path}", message)


def _exists(ref: Reference, around: Neighbourhood) -> bool:
    if ref.any_name:
        return around.collection(ref.ident) is not None
    return ref.ident in around.names_of(ref.kind)


def _named(ref: Reference, around: Neighbourhood) -> str | None:
    """The id of a ``ref.kind`` whose name ``ref`` holds in an id field (the first by id)."""
    if ref.any_name:
        return None
    known = around.names_of(ref.kind)
    return min((i for i, name in known.items() if name == ref.ident), default=None)


@dataclass(frozen=True)
class Checked:
    """Manifests ready to plan: names resolved to ids in their namespaces, what each name
    resolved to, and the missing ids let through (``check_references`` off)."""

    desired: list[DesiredTaxonomy]
    names: Mapping[tuple[str, str], tuple[ResolvedName, ...]]
    missing: Mapping[tuple[str, str], list[ManifestProblem]]

    def annotate(self, plan: Plan) -> Plan:
        """Each change with the names its manifest resolved and the ids let through."""
        for change in plan.changes:
            key = (change.namespace, change.name)
            change.unchecked.extend(p.message for p in self.missing.get(key, []))
            change.names.extend(n for n in self.names.get(key, ()) if _concerns(change, n))
        changed = {(c.namespace, c.name) for c in plan.changes}
        for key, let_through in sorted(self.missing.items()):
            if key not in changed:
                plan.unchecked.extend(str(problem) for problem in let_through)
        return plan


def checked(
    desired: Sequence[DesiredTaxonomy],
    neighbourhoods: Mapping[str, Neighbourhood],
    check_references: bool = True,
) -> Checked:
    """Resolve every name and check every reference against the namespaces read; all the
    problems together in one ``ManifestError`` (missing ids only with ``check_references``)."""
    resolved: list[DesiredTaxonomy] = []
    names: dict[tuple[str, str], tuple[ResolvedName, ...]] = {}
    problems: list[ManifestProblem] = []
    for taxonomy in desired:
        around = neighbourhoods.get(taxonomy.namespace)
        if around is None:
            resolved.append(taxonomy)
            continue
        resolution = resolve(taxonomy, around)
        resolved.append(resolution.desired)
        problems += resolution.problems
        names[taxonomy.key] = tuple(
            ResolvedName(path=path, kind=kind, name=name, id=ident)
            for path, kind, name, ident in resolution.names
        )
    absent = missing(resolved, neighbourhoods)
    problems += names_as_ids(resolved, neighbourhoods)
    problems += attachment_problems(resolved, neighbourhoods)
    if check_references:
        problems += [p for found in absent.values() for p in found]
    if problems:
        raise ManifestError(sorted(problems, key=lambda p: (p.file, p.line or 0, p.col or 0)))
    return Checked(resolved, names, absent if not check_references else {})


def _concerns(change: AnyChange, name: ResolvedName) -> bool:
    """A taxonomy change shows the names of its config; an attachment change the target
    collection its entry names."""
    if isinstance(change, AttachmentChange):
        target = (change.application or {}).get("target_collection_id")
        return name.path.startswith("appliedTo") and name.id == target
    return name.path.startswith("config")
