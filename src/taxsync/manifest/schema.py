"""The JSON Schema of a manifest document, as ``taxsync schema`` publishes it."""

from __future__ import annotations

import copy
from typing import Any

from taxsync.model import TaxonomyManifest

# Where a manifest may name a collection or a retriever by name (``{name: …}``), by
# definition and property; ``items`` marks a list of references.
_REFERENCES = {
    "FlatConfig": ("retriever_id",),
    "SourceCollection": ("collection_id",),
    "HierarchicalConfig": ("retriever_id", "inference_collections.items"),
    "HierarchicalNode": ("collection_id", "retriever_id", "parent_collection_id"),
    "AppliedTo": ("target_collection_id",),
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
    definitions["NameReference"] = _NAME_REFERENCE
    for name, properties in _REFERENCES.items():
        for dotted in properties:
            _allow_name(definitions[name]["properties"], dotted)
    _environments(definitions)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "taxsync Taxonomy manifest"
    return schema


def _allow_name(properties: dict[str, Any], dotted: str) -> None:
    """The property (or the items of the list it is) also takes ``{name: …}``."""
    key, _, items = dotted.partition(".")
    target = properties[key]
    if items:
        target = next(v for v in target.get("anyOf", [target]) if v.get("type") == "array")
        target = target["items"]
    choices = target.pop("anyOf", None) or [
        {k: target.pop(k) for k in list(target) if k not in ("title", "default", "description")}
    ]
    target["anyOf"] = [*choices, {"$ref": "#/$defs/NameReference"}]


def _environments(definitions: dict[str, Any]) -> None:
    """``metadata.namespaces`` instead of ``metadata.namespace``, and ``spec.overrides``:
    per namespace, a partial spec merged over the shared one."""
    metadata = definitions["ManifestMetadata"]
    metadata["properties"]["namespaces"] = {
        "title": "Namespaces",
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
        key: {"anyOf": [copy.deepcopy(value), {"type": "null"}]}
        for key, value in spec["properties"].items()
    }
    properties["config"] = {
        "type": "object",
        "description": "Merged over the shared config: mappings merge, lists and scalars "
        "replace, null removes.",
    }
    partial = {"type": "object", "properties": properties, "additionalProperties": False}
    spec["properties"]["overrides"] = {
        "title": "Overrides",
        "description": "Per namespace of metadata.namespaces, a partial spec merged over this "
        "one (JSON Merge Patch: mappings merge, lists and scalars replace, null removes).",
        "type": "object",
        "additionalProperties": partial,
    }
