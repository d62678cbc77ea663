"""``GET /v1/collections/{id}/features``: the features a collection's documents carry, told
from what the collection record holds (its extractor and its ``vector_indexes``), since the
emulator runs no extractor.

One ``CollectionFeatureDescriptor`` per vector index that has a ``feature_uri``, in the
record's order; the first is the primary one (the output a short feature address means).
Fields the record cannot tell (the index's ``description``) are derived from what it can,
or taken from the index entry when a seed gives them (``description``, ``purpose``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A collection's vector index ``type`` (single or multi) as a VectorIndex ``type``.
_VECTOR_TYPES = {"single": "dense", "multi": "multi_dense"}
# The VectorIndex fields an index entry's nested ``index`` object carries as they are.
_INDEX_FIELDS = ("dimensions", "distance", "inference_name")
# Fields of a VectorIndex a seed may give on the index entry itself.
_ENTRY_FIELDS = ("purpose", "inference_service_id")


def describe_features(collection: Mapping[str, Any]) -> dict[str, Any]:
    """The DescribeCollectionFeaturesResponse of a collection (as the store shows it)."""
    extractor = collection.get("feature_extractor") or {}
    indexes = [
        entry
        for entry in collection.get("vector_indexes") or []
        if isinstance(entry, Mapping) and entry.get("feature_uri")
    ]
    features = [
        _descriptor(collection, extractor, entry, primary=position == 0)
        for position, entry in enumerate(indexes)
    ]
    return {"features": features}


def _descriptor(
    collection: Mapping[str, Any],
    extractor: Mapping[str, Any],
    entry: Mapping[str, Any],
    *,
    primary: bool,
) -> dict[str, Any]:
    uri = str(entry["feature_uri"])
    return {
        "feature_address": uri,
        "feature_extractor_name": extractor.get("feature_extractor_name", ""),
        "version": extractor.get("version", ""),
        "vector_index": _vector_index(collection, entry),
        "primary": primary,
        "feature_uri": uri,
    }


def _vector_index(collection: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    raw = entry.get("index")
    nested: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    name = nested.get("name") or entry.get("name")
    description = entry.get("description") or (
        f"Vector index {entry.get('name') or name} of collection {collection['collection_name']}"
    )
    index: dict[str, Any] = {
        "name": name,
        "description": description,
        "type": _VECTOR_TYPES.get(str(entry.get("type")), "dense"),
    }
    index.update({key: nested[key] for key in _INDEX_FIELDS if nested.get(key) is not None})
    index.update({key: entry[key] for key in _ENTRY_FIELDS if entry.get(key) is not None})
    return index
