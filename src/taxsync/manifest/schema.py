"""The JSON Schema of a manifest document, as ``taxsync schema`` publishes it."""

from __future__ import annotations

from typing import Any

from taxsync.model import TaxonomyManifest


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document, as ``taxsync schema`` publishes it."""
    schema = TaxonomyManifest.model_json_schema()
    for variant in ("FlatConfig", "HierarchicalConfig"):  # optional for the API, not for us
        definition = schema["$defs"][variant]
        definition["required"] = ["taxonomy_type", *definition.get("required", [])]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "taxsync Taxonomy manifest"
    return schema
