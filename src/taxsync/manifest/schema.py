"""The JSON Schema of a manifest document, as ``taxsync schema`` publishes it."""

from __future__ import annotations

import copy
from typing import Any

from taxsync import wire
from taxsync.manifest.schema_text import (
    CONFIG_SNIPPETS,
    DOCUMENT_SNIPPETS,
    SPEC_SNIPPETS,
    TITLES,
    described,
)
from taxsync.model import TaxonomyManifest

# Where a manifest may name a collection or a retriever by name (``{name: …}``), by
# definition and property (``items``: a list of references), and the pattern an id there
# must match: the ones ``taxsync validate`` enforces, so the editor underlines the same ids.
_COLLECTION, _RETRIEVER = wire.COLLECTION_ID_PATTERN, wire.RETRIEVER_ID_PATTERN
_REFERENCES = {
    "FlatConfig": {"retriever_id": _RETRIEVER},
    "SourceCollection": {"collection_id": _COLLECTION},
    "HierarchicalConfig": {"retriever_id": _RETRIEVER, "inference_collections.items": _COLLECTION},
    "HierarchicalNode": {
        "collection_id": _COLLECTION,
        "retriever_id": _RETRIEVER,
        "parent_collection_id": _COLLECTION,
    },
    "AppliedTo": {"target_collection_id": _COLLECTION},
}
_NAME_REFERENCE = {
    "title": "NameReference",
    "description": "A collection or retriever of the namespace, by its name: resolved to "
    "its id in each namespace at plan time.",
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1}},
    "required": ["name"],
    "additionalProperties": False,
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document, as ``taxsync schema`` publishes it."""
    schema = TaxonomyManifest.model_json_schema()
    definitions = schema["$defs"]
    for variant in ("FlatConfig", "HierarchicalConfig"):  # optional for the API, not for us
        definition = definitions[variant]
        definition["required"] = ["taxonomy_type", *definition.get("required", [])]
    definitions["NameReference"] = copy.deepcopy(_NAME_REFERENCE)
    for name, properties in _REFERENCES.items():
        for dotted, pattern in properties.items():
            _allow_name(definitions[name]["properties"], dotted, pattern)
    _for_editors(schema)
    _environments(definitions)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _for_editors(schema: dict[str, Any]) -> None:
    """Hover text and completions: a title and a description on every property, no null
    default (an editor would insert ``null``), and snippets that make a valid document."""
    definitions = schema["$defs"]
    for name, definition in [("TaxonomyManifest", schema), *definitions.items()]:
        definition["title"] = TITLES.get(name, name)
        properties = definition.get("properties", {})
        described(name, properties)
        for prop in properties.values():
            if prop.get("default", ...) is None or "const" in prop:
                prop.pop("default", None)
    backfill = definitions["ManifestSpec"]["properties"]["backfill"]
    # One value to insert (the default) rather than an enum of two, which editors complete
    # to an empty value; the choices stay, as constants.
    backfill["anyOf"] = [{"const": value} for value in backfill.pop("enum")]
    backfill.pop("type")
    definitions["ManifestSpec"]["properties"]["config"]["defaultSnippets"] = CONFIG_SNIPPETS
    definitions["ManifestSpec"]["defaultSnippets"] = SPEC_SNIPPETS
    schema["defaultSnippets"] = DOCUMENT_SNIPPETS


def _allow_name(properties: dict[str, Any], dotted: str, pattern: str) -> None:
    """The property (or the items of the list it is) also takes ``{name: …}``, and an id
    there matches ``pattern``."""
    key, _, items = dotted.partition(".")
    target = properties[key]
    if items:
        target = next(v for v in target.get("anyOf", [target]) if v.get("type") == "array")
        target = target["items"]
    choices = target.pop("anyOf", None) or [
        {k: target.pop(k) for k in list(target) if k not in ("title", "default", "description")}
    ]
    for choice in choices:
        if choice.get("type") == "string":
            choice["pattern"] = pattern
    target["anyOf"] = [*choices, {"$ref": "#/$defs/NameReference"}]


def _environments(definitions: dict[str, Any]) -> None:
    """``metadata.namespaces`` instead of ``metadata.namespace``, and ``spec.overrides``:
    per namespace, a partial spec merged over the shared one."""
    metadata = definitions["ManifestMetadata"]
    metadata["properties"]["namespaces"] = {
        "title": "namespaces",
        "description": "Declare the taxonomy in each of these namespaces.",
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 64},
        "minItems": 1,
        "uniqueItems": True,
    }
    metadata["required"] = [r for r in metadata["required"] if r != "namespace"]
    metadata["oneOf"] = [{"required": ["namespace"]}, {"required": ["namespaces"]}]
    spec = definitions["ManifestSpec"]
    # A partial spec: any key may be left out, and null removes it. Its config is merged
    # over the shared config, so no key of it is required either.
    properties: dict[str, Any] = {
        key: {
            "title": value["title"],
            "description": value["description"],
            "anyOf": [_untitled(value), {"type": "null"}],
        }
        for key, value in spec["properties"].items()
    }
    properties["config"] = {
        "title": "config",
        "type": "object",
        "description": "Merged over the shared config: mappings merge, lists and scalars "
        "replace, null removes.",
    }
    partial = {"type": "object", "properties": properties, "additionalProperties": False}
    spec["properties"]["overrides"] = {
        "title": "overrides",
        "description": "Per namespace of metadata.namespaces, a partial spec merged over this "
        "one (JSON Merge Patch: mappings merge, lists and scalars replace, null removes).",
        "type": "object",
        "additionalProperties": partial,
    }


def _untitled(prop: dict[str, Any]) -> dict[str, Any]:
    """A copy of a property without the words an enclosing property already says."""
    inner = copy.deepcopy(prop)
    for key in ("title", "description", "defaultSnippets", "default"):
        inner.pop(key, None)
    return inner
