"""One manifest, several namespaces: ``metadata.namespaces`` and ``spec.overrides``.

A document that lists ``metadata.namespaces`` declares the same taxonomy in each; its
``spec.overrides`` holds, per namespace, a partial spec merged over the shared one as a JSON
Merge Patch (RFC 7386: mappings merge, lists and scalars replace, ``null`` removes). Each
namespace's document is then validated as if written alone, with every value keeping its
source position: a value an override set points at the override's line.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from taxsync.manifest.document import Document
from taxsync.model import FieldPath, Position


def per_namespace(
    value: dict[str, Any], document: Document
) -> list[tuple[dict[str, Any], Document]]:
    """The document as one document per namespace it declares, each with its positions.

    A document with ``metadata.namespace`` (or a malformed one, left for validation to
    report) is returned as it is. Problems with ``namespaces`` or ``overrides`` themselves
    go to ``document.problems`` and nothing is returned.
    """
    metadata, spec = value.get("metadata"), value.get("spec")
    if not isinstance(metadata, dict) or "namespaces" not in metadata:
        if isinstance(spec, dict) and "overrides" in spec:
            _problem(document, ("spec", "overrides"), "needs metadata.namespaces")
            return []
        return [(value, document)]
    namespaces = _namespaces(metadata, document)
    overrides = _overrides(spec, namespaces, document) if namespaces is not None else None
    if namespaces is None or overrides is None:
        return []
    return [_one(value, document, namespaces, index, overrides) for index in range(len(namespaces))]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``target`` (neither is changed)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, change in patch.items():
        if change is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), change)
    return out


def _namespaces(metadata: Mapping[str, Any], document: Document) -> list[str] | None:
    where: FieldPath = ("metadata", "namespaces")
    if "namespace" in metadata:
        _problem(document, where, "use metadata.namespace or metadata.namespaces, not both")
        return None
    listed = metadata["namespaces"]
    if not isinstance(listed, list) or not listed:
        _problem(document, where, "must be a non-empty list of namespaces")
        return None
    seen: set[str] = set()
    for index, namespace in enumerate(listed):
        if not isinstance(namespace, str):
            _problem(document, (*where, index), "must be a namespace (a string)")
            return None
        if namespace in seen:
            _problem(document, (*where, index), f"{namespace!r} is listed twice")
            return None
        seen.add(namespace)
    return list(listed)


def _overrides(
    spec: Any, namespaces: list[str], document: Document
) -> dict[str, dict[str, Any]] | None:
    overrides = spec.get("overrides") if isinstance(spec, dict) else None
    if overrides is None:
        return {}
    where: FieldPath = ("spec", "overrides")
    if not isinstance(overrides, dict):
        _problem(document, where, "must be a mapping from namespace to a partial spec")
        return None
    for namespace, patch in overrides.items():
        if namespace not in namespaces:
            listed = ", ".join(namespaces)
            message = f"{namespace!r} is not a namespace of this manifest ({listed})"
            _problem(document, (*where, namespace), message)
            return None
        if not isinstance(patch, dict):
            _problem(document, (*where, namespace), "must be a mapping (a partial spec)")
            return None
        if "overrides" in patch:
            _problem(document, (*where, namespace, "overrides"), "overrides do not nest")
            return None
    return overrides


def _one(
    value: dict[str, Any],
    document: Document,
    namespaces: list[str],
    index: int,
    overrides: Mapping[str, dict[str, Any]],
) -> tuple[dict[str, Any], Document]:
    """The document of ``namespaces[index]``: its namespace, its spec merged."""
    namespace = namespaces[index]
    metadata = {k: v for k, v in value["metadata"].items() if k != "namespaces"}
    metadata["namespace"] = namespace
    spec = value.get("spec")
    patch = overrides.get(namespace, {})
    if isinstance(spec, dict):
        spec = merge_patch({k: v for k, v in spec.items() if k != "overrides"}, patch)
    one = {**value, "metadata": metadata, "spec": spec}
    view = copy.copy(document)
    view.positions = _positions(document.positions, namespace, patch)
    where = document.positions.get(("metadata", "namespaces", index))
    if where is not None:
        view.positions[("metadata", "namespace")] = where
    return one, view


def _positions(
    positions: Mapping[FieldPath, Position], namespace: str, patch: Mapping[str, Any]
) -> dict[FieldPath, Position]:
    """The document's positions with the override's moved in place of what it replaces."""
    out = {p: pos for p, pos in positions.items() if p[:2] != ("spec", "overrides")}
    _place(out, positions, ("spec", "overrides", namespace), ("spec",), patch)
    return out


def _place(
    out: dict[FieldPath, Position],
    positions: Mapping[FieldPath, Position],
    source: FieldPath,
    target: FieldPath,
    patch: Mapping[str, Any],
) -> None:
    for key, change in patch.items():
        here, there = (*source, key), (*target, key)
        if isinstance(change, dict):  # merged: what it does not mention keeps its place
            if here in positions:
                out[there] = positions[here]
            _place(out, positions, here, there, change)
            continue
        for path in [p for p in out if p[: len(there)] == there]:
            del out[path]  # replaced (or removed) whole
        if change is None:
            continue
        for path, pos in positions.items():
            if path[: len(here)] == here:
                out[there + path[len(here) :]] = pos


def _problem(document: Document, path: FieldPath, message: str) -> None:
    line, col = document.positions.get(path, (1, 1))
    document.problem_at((line, col), path, message)
