"""References by name: the places where a taxonomy names a collection or a retriever, and
the two ways between ids and names in one namespace.

Mixpeek gives every collection and retriever its own generated id in each namespace, so a
manifest may name them by name instead (``retriever_id: {name: clip}``): resolved per
namespace at plan time (``resolve``). The other way (``to_names``) lets export write names,
and ``taxsync diff`` compare two namespaces whose ids differ. Pure: the neighbourhood is
read by the caller.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taxsync.errors import ManifestProblem
from taxsync.live import Neighbourhood
from taxsync.model import DesiredTaxonomy, FieldPath, dotted

Kind = Literal["collection", "retriever"]


@dataclass(frozen=True)
class Slot:
    """A place that holds a reference: a path in the spec (``config.retriever_id``,
    ``appliedTo[0].target_collection_id``), and what kind of thing it names."""

    path: FieldPath
    kind: Kind

    @property
    def spec_path(self) -> str:
        return dotted(self.path)


def slots(config: Mapping[str, Any], applied_to: Sequence[Mapping[str, Any]] = ()) -> list[Slot]:
    """Every place of a config (and of ``appliedTo`` entries) that holds a reference now."""
    return [slot for slot, _ in held(config, applied_to)]


def held(
    config: Mapping[str, Any], applied_to: Sequence[Mapping[str, Any]] = ()
) -> Iterator[tuple[Slot, Any]]:
    """Each place that holds a reference, with what it holds (read straight from the
    config: every manifest of a tree goes through here)."""
    if config.get("retriever_id") is not None:
        yield Slot(("config", "retriever_id"), "retriever"), config["retriever_id"]
    source = config.get("source_collection")
    if isinstance(source, Mapping) and source.get("collection_id") is not None:
        yield (
            Slot(("config", "source_collection", "collection_id"), "collection"),
            source["collection_id"],
        )
    for index, node in enumerate(_list(config.get("hierarchical_nodes"))):
        if isinstance(node, Mapping):
            for key, kind in _NODE_REFERENCES:
                if node.get(key) is not None:
                    yield Slot(("config", "hierarchical_nodes", index, key), kind), node[key]
    for index, ident in enumerate(_list(config.get("inference_collections"))):
        if ident is not None:
            yield Slot(("config", "inference_collections", index), "collection"), ident
    for index, entry in enumerate(applied_to):
        if entry.get("target_collection_id") is not None:
            slot = Slot(("appliedTo", index, "target_collection_id"), "collection")
            yield slot, entry["target_collection_id"]


_NODE_REFERENCES: tuple[tuple[str, Kind], ...] = (
    ("collection_id", "collection"),
    ("retriever_id", "retriever"),
    ("parent_collection_id", "collection"),
)


def any_mapping(config: Mapping[str, Any], applied_to: Sequence[Mapping[str, Any]] = ()) -> bool:
    """Whether any place that holds a reference holds a mapping (a name, or a mistake).
    A shortcut for the loader: most manifests hold ids only, and ``held`` costs more."""
    source = config.get("source_collection")
    return (
        isinstance(config.get("retriever_id"), dict)
        or (isinstance(source, dict) and isinstance(source.get("collection_id"), dict))
        or any(
            isinstance(node, dict)
            and any(isinstance(node.get(k), dict) for k, _ in _NODE_REFERENCES)
            for node in _list(config.get("hierarchical_nodes"))
        )
        or any(isinstance(c, dict) for c in _list(config.get("inference_collections")))
        or any(isinstance(e.get("target_collection_id"), dict) for e in applied_to)
    )


def is_name(value: Any) -> bool:
    """Whether a value is a reference by name: a one-key mapping ``{name: NAME}``."""
    return isinstance(value, Mapping) and list(value) == ["name"] and isinstance(value["name"], str)


# --- names to ids -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """A taxonomy with every name resolved to an id, what each name resolved to (spec path,
    kind, name, id), and the names its namespace lacks (problems at their lines)."""

    desired: DesiredTaxonomy
    names: tuple[tuple[str, Kind, str, str], ...]
    problems: tuple[ManifestProblem, ...]


def resolve(desired: DesiredTaxonomy, around: Neighbourhood) -> Resolution:
    """``desired`` with each ``{name: …}`` replaced by the id of what it names in its
    namespace. An unknown or ambiguous name is a problem (with a close name, if there is
    one), and stays as written."""
    if not any_mapping(desired.config, desired.applied_to or ()):
        return Resolution(desired, (), ())  # ids only: what most manifests hold
    spec: dict[str, Any] = {"config": desired.config, "appliedTo": list(desired.applied_to or ())}
    names: list[tuple[str, Kind, str, str]] = []
    problems: list[ManifestProblem] = []
    for slot, value in held(desired.config, desired.applied_to or ()):
        if not is_name(value):
            continue
        name = value["name"]
        ident, why = look_up(slot.kind, name, around)
        if ident is None:
            message = f"{slot.kind} {name!r} {why} in namespace {desired.namespace}"
            line, col = desired.position(slot.spec_path)
            problems.append(
                ManifestProblem(desired.source.file, line, col, f"spec.{slot.spec_path}", message)
            )
            continue
        spec = with_value(spec, slot.path, ident)
        names.append((slot.spec_path, slot.kind, name, ident))
    if names:
        applied = tuple(spec["appliedTo"]) if desired.applied_to is not None else None
        desired = dataclasses.replace(desired, config=spec["config"], applied_to=applied)
    return Resolution(desired, tuple(names), tuple(problems))


def look_up(kind: Kind, name: str, around: Neighbourhood) -> tuple[str | None, str]:
    """The id of the one ``kind`` called ``name``, or None and why not."""
    known = around.names_of(kind)
    matches = sorted(ident for ident, its_name in known.items() if its_name == name)
    if len(matches) == 1:
        return matches[0], ""
    if matches:
        return None, f"names {len(matches)} {kind}s ({', '.join(matches)}): use an id"
    close = difflib.get_close_matches(name, sorted(set(known.values())), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return None, f"does not exist{hint}"


# --- ids to names -------------------------------------------------------------------------


def to_names(
    config: Mapping[str, Any],
    applied_to: Sequence[Mapping[str, Any]],
    around: Neighbourhood,
    unique_only: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Slot]]:
    """The config and ``appliedTo`` entries with each id written as ``{name: …}`` where
    its namespace knows the name (with ``unique_only``, only names no other thing of its
    kind has), and the slots left as ids because of that."""
    spec: dict[str, Any] = {"config": dict(config), "appliedTo": [dict(e) for e in applied_to]}
    kept: list[Slot] = []
    for slot, ident in held(config, applied_to):
        if not isinstance(ident, str):
            continue
        name = _name_of(slot.kind, ident, around)
        if name is None:
            continue
        if unique_only and not _unique(slot.kind, name, around):
            kept.append(slot)
            continue
        spec = with_value(spec, slot.path, {"name": name})
    return spec["config"], spec["appliedTo"], kept


def _name_of(kind: Kind, ident: str, around: Neighbourhood) -> str | None:
    known = around.names_of(kind)
    return known.get(ident) or None


def _unique(kind: Kind, name: str, around: Neighbourhood) -> bool:
    known = around.names_of(kind)
    return sum(1 for its_name in known.values() if its_name == name) == 1


# --- paths in plain data ------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def value_at(tree: Any, path: FieldPath) -> Any:
    """The value at ``path`` in plain data, or None where there is none."""
    for part in path:
        if isinstance(part, int):
            if not isinstance(tree, list) or part >= len(tree):
                return None
        elif not isinstance(tree, Mapping):
            return None
        tree = tree[part] if isinstance(part, int) else tree.get(part)
    return tree


def with_value(tree: Any, path: FieldPath, value: Any) -> Any:
    """A copy of ``tree`` with ``value`` at ``path`` (only the containers on the way are
    copied)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, list):
        out_list = list(tree)
        out_list[int(head)] = with_value(out_list[int(head)], rest, value)
        return out_list
    out = dict(tree)
    out[head] = with_value(out.get(head), rest, value)
    return out
