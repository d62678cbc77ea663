"""The API contract's fixtures in tests/contract/: its examples, and a checker for its schema.

``jsonschema`` is not a dependency, so this module checks the subset of draft 2020-12 that
``collections.schema.json`` uses (``$ref`` into ``$defs``, ``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``anyOf``, ``enum``, the numeric and
length bounds, ``minItems``, ``minProperties`` and ``format: date-time``). A keyword it
does not know makes it fail rather than pass silently.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

# The parts of the API contract the suite reads, copied in (tests/contract/README.md).
REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT = REPO_ROOT / "tests" / "contract"
EXAMPLES = CONTRACT / "examples"

# Annotations: they say nothing about validity.
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id"}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def example(name: str) -> dict[str, Any]:
    """A sample payload from the API contract; a missing contract fails the test."""
    path = EXAMPLES / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"API contract example {path} is missing (see tests/contract/README.md)")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@cache
def _defs() -> dict[str, Any]:
    path = CONTRACT / "collections.schema.json"
    if not path.is_file():
        pytest.fail(f"API contract schema {path} is missing (see tests/contract/README.md)")
    defs: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["$defs"]
    return defs


def schema_errors(instance: Any, def_name: str) -> list[str]:
    """Every way ``instance`` breaks ``$defs[def_name]`` of collections.schema.json."""
    errors: list[str] = []
    _check(instance, {"$ref": f"#/$defs/{def_name}"}, def_name, errors)
    return errors


def assert_valid(instance: Any, def_name: str) -> None:
    """Fail the test, listing the problems, unless ``instance`` is a valid ``def_name``."""
    errors = schema_errors(instance, def_name)
    assert not errors, f"not a valid {def_name}:\n" + "\n".join(errors)


def _check(value: Any, schema: dict[str, Any], where: str, errors: list[str]) -> None:
    for key, rule in schema.items():
        if key in _ANNOTATIONS or key.startswith("x-"):
            continue
        checker = _KEYWORDS.get(key)
        if checker is None:
            raise AssertionError(f"{where}: schema keyword {key!r} is not supported here")
        checker(value, rule, schema, where, errors)


def _ref(value: Any, rule: str, _: dict[str, Any], where: str, errors: list[str]) -> None:
    _check(value, _defs()[rule.removeprefix("#/$defs/")], where, errors)


def _type(value: Any, rule: str, _: dict[str, Any], where: str, errors: list[str]) -> None:
    python_types = _TYPES[rule]
    is_bool = isinstance(value, bool)
    if not isinstance(value, python_types) or (is_bool and rule in ("integer", "number")):
        errors.append(f"{where}: {value!r} is not of type {rule}")


def _properties(
    value: Any, rule: dict[str, Any], _: dict[str, Any], where: str, errors: list[str]
) -> None:
    if isinstance(value, dict):
        for name, sub in rule.items():
            if name in value:
                _check(value[name], sub, f"{where}.{name}", errors)


def _required(
    value: Any, rule: list[str], _: dict[str, Any], where: str, errors: list[str]
) -> None:
    if isinstance(value, dict):
        errors += [
            f"{where}: required field {name!r} is missing" for name in rule if name not in value
        ]


def _additional(
    value: Any, rule: Any, schema: dict[str, Any], where: str, errors: list[str]
) -> None:
    if not isinstance(value, dict) or rule is True:
        return
    for name in set(value) - set(schema.get("properties", {})):
        if rule is False:
            errors.append(f"{where}: field {name!r} is not allowed")
        else:
            _check(value[name], rule, f"{where}.{name}", errors)


def _items(
    value: Any, rule: dict[str, Any], _: dict[str, Any], where: str, errors: list[str]
) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, rule, f"{where}[{index}]", errors)


def _any_of(
    value: Any, rule: list[dict[str, Any]], _: dict[str, Any], where: str, errors: list[str]
) -> None:
    attempts = [schema_errors_of(value, option, where) for option in rule]
    if all(attempts):
        errors.append(
            f"{where}: matches none of anyOf: " + " | ".join("; ".join(a) for a in attempts)
        )


def schema_errors_of(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Every way ``value`` breaks an inline ``schema`` (``where`` prefixes the messages)."""
    errors: list[str] = []
    _check(value, schema, where, errors)
    return errors


def _enum(value: Any, rule: list[Any], _: dict[str, Any], where: str, errors: list[str]) -> None:
    if value not in rule:
        errors.append(f"{where}: {value!r} is not one of {rule}")


def _bound(kind: str) -> Any:
    def check(value: Any, rule: Any, _: dict[str, Any], where: str, errors: list[str]) -> None:
        if kind in ("minimum", "maximum"):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                bad = value < rule if kind == "minimum" else value > rule
                if bad:
                    errors.append(f"{where}: {value!r} breaks {kind} {rule}")
            return
        sized = {
            "minLength": str,
            "maxLength": str,
            "minItems": list,
            "minProperties": dict,
        }[kind]
        if isinstance(value, sized):
            bad = len(value) > rule if kind == "maxLength" else len(value) < rule
            if bad:
                errors.append(f"{where}: length {len(value)} breaks {kind} {rule}")

    return check


def _format(value: Any, rule: str, _: dict[str, Any], where: str, errors: list[str]) -> None:
    if rule != "date-time":
        raise AssertionError(f"{where}: format {rule!r} is not supported here")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in value:
            errors.append(f"{where}: {value!r} is not an RFC 3339 date-time")


_KEYWORDS: dict[str, Any] = {
    "$ref": _ref,
    "type": _type,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional,
    "items": _items,
    "anyOf": _any_of,
    "enum": _enum,
    "minimum": _bound("minimum"),
    "maximum": _bound("maximum"),
    "minLength": _bound("minLength"),
    "maxLength": _bound("maxLength"),
    "minItems": _bound("minItems"),
    "minProperties": _bound("minProperties"),
    "format": _format,
}
