"""Validation errors that teach: each names the bad value and, where a key or an enum value
is misspelt, the close match the model itself offers ("did you mean 'top_k'?").

Pydantic says "unknown key" and "Input should be 'replace' or 'append'"; what the user
needs is which value is wrong and what was probably meant. Candidates come from the manifest
models (their field names and ``Literal`` values), so they cannot drift from what the loader
accepts.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag

from taxsync import wire
from taxsync.model import API_VERSION, FieldPath, ManifestMetadata, ManifestSpec

MAX_SHOWN = 40  # characters of a bad value quoted in a message; longer ones are cut
_MAX_LISTED_KEYS = 8  # an unknown key with no close match lists the keys when this few

# Keys the loader reads before the model sees the document (environments): valid too.
_READ_BEFORE = {ManifestMetadata: ("namespaces",), ManifestSpec: ("overrides",)}

_ID_KINDS = {
    wire.COLLECTION_ID_PATTERN: "collection id (col_ then letters, digits or _)",
    wire.RETRIEVER_ID_PATTERN: "retriever id (ret_ then letters, digits or _)",
}
_BOUNDS = {
    "less_than_equal": "<=",
    "less_than": "<",
    "greater_than_equal": ">=",
    "greater_than": ">",
}
# Errors whose message already says all there is, or whose input is not one value.
_NO_VALUE = {"extra_forbidden", "missing", "finite_number", "ambiguous_taxonomy_type"}


def quoted(value: Any) -> str:
    """A value as a message quotes it: strings in quotes with every control character
    escaped (``repr``), cut to ``MAX_SHOWN`` characters; other values by their kind."""
    if isinstance(value, str):
        return repr(value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 1] + "…")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def did_you_mean(word: Any, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (case aside), or ``""``."""
    if not isinstance(word, str) or not choices:
        return ""
    folded = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=0.6)
    return f"; did you mean {folded[found[0]]!r}?" if found else ""


def teaching(model: type[BaseModel], error: Any) -> tuple[FieldPath, str]:
    """Where a pydantic error of ``model`` belongs (its raw location, union tags kept) and
    what to say there."""
    kind, loc = error["type"], tuple(error["loc"])
    given = error.get("input")
    if kind == "ambiguous_taxonomy_type":
        return _taxonomy_type(model, loc, given)
    if kind == "extra_forbidden":
        return loc, f"unknown key {quoted(loc[-1])}" + _key_hint(model, loc)
    if kind == "missing":
        return loc, "required key is missing"
    if kind == "finite_number":
        return loc, "must be a finite number: JSON has no NaN or infinity"
    if kind == "literal_error":
        allowed = _literal_values(_type_at(model, loc))
        if loc == ("apiVersion",):
            return loc, f"must be {API_VERSION!r}, got {quoted(given)}"
        return loc, f"{error['msg']}, got {quoted(given)}" + did_you_mean(given, allowed)
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        if pattern in _ID_KINDS:
            return loc, f"{quoted(given)} is not a {_ID_KINDS[pattern]}"
    if kind in _BOUNDS:
        limit = next(iter(error.get("ctx", {}).values()), "?")
        return loc, f"must be {_BOUNDS[kind]} {limit}, got {quoted(given)}"
    return loc, f"{error['msg']}, got {quoted(given)}"


def id_message(value: str, pattern: str) -> str:
    """A reference that is not an id of its kind, as the semantic checks report it."""
    return f"{quoted(value)} is not a {_ID_KINDS.get(pattern, f'match for {pattern!r}')}"


def _taxonomy_type(model: type[BaseModel], loc: FieldPath, given: Any) -> tuple[FieldPath, str]:
    """A config whose variant cannot be told: at ``taxonomy_type`` when that is the culprit."""
    types_ = sorted(_tags(_type_at(model, loc)))
    listed = ", ".join(types_)
    if isinstance(given, dict) and "taxonomy_type" in given:
        bad = given["taxonomy_type"]
        hint = did_you_mean(bad, types_)
        return (*loc, "taxonomy_type"), f"{quoted(bad)} is not a taxonomy type ({listed}){hint}"
    if not isinstance(given, dict):
        return loc, f"must be a mapping with taxonomy_type ({listed}), got {quoted(given)}"
    return loc, f"config is ambiguous: set taxonomy_type ({listed})"


def _key_hint(model: type[BaseModel], loc: FieldPath) -> str:
    keys = _keys(_type_at(model, loc[:-1]))
    hint = did_you_mean(loc[-1], keys)
    if hint or not keys or len(keys) > _MAX_LISTED_KEYS:
        return hint
    return f" (expected one of: {', '.join(keys)})"


# --- the type at a location -----------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: unions flattened, ``Annotated`` kept (its tag)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _bare(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _tags(annotation: Any) -> dict[str, Any]:
    """Union members by their discriminator tag (``flat`` → ``FlatConfig``)."""
    found = {}
    for member in _members(annotation):
        if get_origin(member) is Annotated:
            for extra in get_args(member)[1:]:
                if isinstance(extra, Tag):
                    found[extra.tag] = get_args(member)[0]
    return found


def _step(annotation: Any, part: str | int) -> Any:
    tagged = _tags(annotation)
    if isinstance(part, str) and part in tagged:
        return tagged[part]
    for member in map(_bare, _members(annotation)):
        origin = get_origin(member)
        if isinstance(part, int) and origin is list:
            return get_args(member)[0]
        if isinstance(part, str) and origin is dict:
            return get_args(member)[1]
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(str(part))
            if field is not None:
                return field.annotation
    return None


def _type_at(model: type[BaseModel], loc: FieldPath) -> Any:
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return None
    return annotation


def _keys(annotation: Any) -> list[str]:
    for member in map(_bare, _members(annotation)):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return [*member.model_fields, *_READ_BEFORE.get(member, ())]
    return []


def _literal_values(annotation: Any) -> list[str]:
    return [
        str(value)
        for member in map(_bare, _members(annotation))
        if get_origin(member) is Literal
        for value in get_args(member)
    ]
