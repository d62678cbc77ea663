"""Canonical forms of taxonomies, so that desired and live compare without noise.

The recipe is docs/api-contract.md#server-defaults-and-server-owned-fields: fill the server's defaults, drop nulls, ignore
server-owned fields and system metadata, compare keyed lists by key, compare numbers
numerically. Empty lists are kept: ``enrichment_fields: []`` and an absent list mean
different things to the API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from taxsync import wire
from taxsync.model import BACKFILLS_KEY, KEYED_LISTS, MANAGED_KEY, DesiredTaxonomy

# Metadata keys the server writes itself; never a user change.
SYSTEM_METADATA_KEYS = frozenset({"validation_warnings"})

_CONFIG_FIELDS = {
    "flat": frozenset(wire.FlatConfig.model_fields),
    "hierarchical": frozenset(wire.HierarchicalConfig.model_fields),
}


def config_type(config: Mapping[str, Any]) -> str:
    """The taxonomy type of a (possibly legacy) config, as the API would resolve it."""
    declared = config.get("taxonomy_type")
    if declared in _CONFIG_FIELDS:
        return str(declared)
    return "flat" if "source_collection" in config else "hierarchical"


def unmanaged_keys(config: Mapping[str, Any]) -> list[str]:
    """Live config keys the current API does not declare (legacy): reported, not diffed."""
    known = _CONFIG_FIELDS[config_type(config)]
    return sorted(key for key in config if key not in known)


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config with every server default filled (nested ones too), nulls and legacy keys
    dropped, keyed lists as maps: the same form whichever side it came from."""
    kind = config_type(config)
    known = _CONFIG_FIELDS[kind]
    filled = dict(wire.SERVER_DEFAULTS[kind])
    filled.update({k: v for k, v in config.items() if k in known and v is not None})
    filled["taxonomy_type"] = kind
    analytics = filled.get("step_analytics")
    if isinstance(analytics, dict) and isinstance(analytics.get("covariates"), list):
        covariates = [_with_defaults(c, wire.COVARIATE_DEFAULTS) for c in analytics["covariates"]]
        filled["step_analytics"] = {**analytics, "covariates": covariates}
    return canonical(filled)


def _with_defaults(item: Any, defaults: Mapping[str, Any]) -> Any:
    if not isinstance(item, dict):
        return item
    return {**defaults, **{k: v for k, v in item.items() if v is not None}}


def canonical(value: Any, field: str | None = None) -> Any:
    """Nulls dropped, keyed lists as maps from key to item, integral floats as ints."""
    if isinstance(value, dict):
        return {k: canonical(v, k) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        items = [canonical(item) for item in value]
        keyed = _as_keyed(items, KEYED_LISTS.get(field or ""))
        return keyed if keyed is not None else items
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 1.0 and 1 are the same number to the API
    return value


def _as_keyed(items: list[Any], key_fields: tuple[str, ...] | None) -> dict[str, Any] | None:
    if not key_fields or not all(isinstance(item, dict) for item in items):
        return None
    keyed: dict[str, Any] = {}
    for item in items:
        key = "/".join(str(item[f]) for f in key_fields if item.get(f) is not None)
        if not key or key in keyed:
            return None  # no usable identity: order is all we can compare
        keyed[key] = item
    return keyed


def user_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's metadata: system keys and taxsync's own marker and bookkeeping removed."""
    skip = SYSTEM_METADATA_KEYS | {MANAGED_KEY, BACKFILLS_KEY}
    return {k: v for k, v in (metadata or {}).items() if k not in skip}


def comparable_live(live: wire.TaxonomyResponse) -> dict[str, Any]:
    """The parts of a live taxonomy a manifest controls, in canonical form."""
    return {
        "description": live.description,
        "metadata": canonical(user_metadata(live.metadata)),
        "config": canonical_config(live.config),
    }


def comparable_desired(desired: DesiredTaxonomy) -> dict[str, Any]:
    """The desired side of the comparison, in the same canonical form."""
    return {
        "description": desired.description,
        "metadata": canonical(user_metadata(desired.metadata)),
        "config": canonical_config(desired.config),
    }


def fingerprint(value: Any) -> str:
    """A stable hash of canonical data: equal pairs are found without a field diff."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
