"""References by name in a manifest (``retriever_id: {name: clip}``), through validation.

The wire model checks ids by pattern, and a name is resolved only at plan time, in its
namespace. So each ``{name: …}`` is swapped for a stand-in id of its kind while the document
is validated (a node and a parent that name the same collection get the same stand-in, so
the hierarchy checks hold), and swapped back in the ``DesiredTaxonomy``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from taxsync import names
from taxsync.manifest.document import Document
from taxsync.model import FieldPath

_PREFIX = {"collection": "col_", "retriever": "ret_"}
StandIns = dict[str, str]  # stand-in id → the name it stands for


def names_out(value: dict[str, Any], document: Document) -> tuple[dict[str, Any], StandIns] | None:
    """``value`` with each reference by name swapped for a stand-in id; None (with a
    problem) when a reference is neither an id nor ``{name: NAME}``."""
    spec = value.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        return value, {}
    config = spec["config"]
    applied: list[Any] = spec["appliedTo"] if isinstance(spec.get("appliedTo"), list) else []
    entries = [e for e in applied if isinstance(e, dict)]
    usable = entries if len(entries) == len(applied) else []
    if not names.any_mapping(config, usable):  # the common case: ids only, nothing to swap
        return value, {}
    mappings = [(s, v) for s, v in names.held(config, usable) if isinstance(v, dict)]
    stand_ins: StandIns = {}
    tree: dict[str, Any] = {"config": config, "appliedTo": applied}
    for slot, written in mappings:
        path: FieldPath = ("spec", *slot.path)
        if not names.is_name(written) or not written["name"]:
            document.problem_at(_position(document, path), path, _MALFORMED[slot.kind])
            return None
        stand_in = _stand_in(slot.kind, written["name"])
        stand_ins[stand_in] = written["name"]
        tree = names.with_value(tree, slot.path, stand_in)
    swapped = {**spec, "config": tree["config"]}
    if "appliedTo" in spec:
        swapped["appliedTo"] = tree["appliedTo"]
    return {**value, "spec": swapped}, stand_ins


_MALFORMED = {
    "collection": "must be a collection id (col_…) or {name: COLLECTION_NAME}",
    "retriever": "must be a retriever id (ret_…) or {name: RETRIEVER_NAME}",
}


def names_back(value: Any, stand_ins: StandIns) -> Any:
    """``value`` with each stand-in id back as the ``{name: …}`` it stood for."""
    if not stand_ins:
        return value
    if isinstance(value, str):
        return {"name": stand_ins[value]} if value in stand_ins else value
    if isinstance(value, dict):
        return {k: names_back(v, stand_ins) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(names_back(v, stand_ins) for v in value)
    return value


def shown(message: str, stand_ins: StandIns) -> str:
    """A validation message as the manifest reads: stand-ins shown as the names they are."""
    for stand_in, name in stand_ins.items():
        message = message.replace(stand_in, f"{{name: {name}}}")
    return message


def _stand_in(kind: names.Kind, name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    return f"{_PREFIX[kind]}taxsync_name_{digest}"


def _position(document: Document, path: FieldPath) -> tuple[int, int]:
    for end in range(len(path), -1, -1):
        if path[:end] in document.positions:
            return document.positions[path[:end]]
    return (1, 1)
