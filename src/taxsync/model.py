"""The domain: taxonomies as manifests declare them, and taxsync's bookkeeping on live ones.

The loader (``taxsync.manifest``) produces these objects; the planner, the applier, the
checks of a saved plan and export read them. None of them needs the loader itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from taxsync import wire
from taxsync.errors import location

API_VERSION = "taxsync/v1"
KIND = "Taxonomy"

# taxsync marks what it manages with this metadata entry; prune only ever touches those.
MANAGED_KEY = "managed_by"
MANAGED_VALUE = "taxsync"
# taxsync's backfill bookkeeping: collection id -> {"version", "task", ...} (see
# taxsync.bookkeeping). Never user metadata: no manifest sets it and no diff shows it.
BACKFILLS_KEY = "taxsync_backfills"

# A replace creates its new taxonomy under the old name plus this suffix, until the old
# one is gone.
REPLACEMENT_SUFFIX = ".taxsync-replacement"

# List fields whose items have an identity (the fields that make their key): compared as
# maps from key to item, and shown in diffs as ``list[key]``.
KEYED_LISTS: Mapping[str, tuple[str, ...]] = {
    "input_mappings": ("input_key",),
    "enrichment_fields": ("field_path", "target_field"),
    "hierarchical_nodes": ("collection_id",),
    "covariates": ("name",),
}

Position = tuple[int, int]
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceLocation:
    """Where a manifest declares a taxonomy: its file and the position of its name."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return location(self.file, self.line)


@dataclass(frozen=True)
class DesiredTaxonomy:
    """A taxonomy as a manifest declares it, ready to compare and to send."""

    namespace: str
    name: str
    description: str | None
    metadata: dict[str, Any]
    config: dict[str, Any]  # wire JSON: only the keys the manifest declares
    source: SourceLocation
    previous_names: tuple[str, ...] = ()
    wait: bool = False
    backfill: bool = False  # spec.backfill: onChange
    # spec.appliedTo, each entry as declared ("collection" and the settings it sets);
    # None: the manifest leaves attachments alone.
    applied_to: tuple[dict[str, Any], ...] | None = None
    # Dotted spec paths ("config.top_k") to positions, to map API errors back.
    positions: Mapping[str, Position] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def taxonomy_type(self) -> str:
        return str(self.config["taxonomy_type"])

    def locate(self, spec_path: str) -> str:
        """``file:line:col`` of the deepest known prefix of a dotted spec path."""
        return location(self.source.file, *self.position(spec_path))

    def position(self, spec_path: str) -> Position:
        """(line, col) of the deepest known prefix of a dotted spec path (else the name's)."""
        parts = spec_path.split(".")
        while parts:
            pos = self.positions.get(".".join(parts))
            if pos:
                return pos
            parts.pop()
        return (self.source.line, self.source.col)


# --- the manifest envelope: what one YAML document declares --------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestMetadata(_Strict):
    name: str = Field(min_length=1, max_length=256)
    namespace: str = Field(min_length=1, max_length=64)
    previousNames: list[str] = Field(default_factory=list)  # noqa: N815 (manifest key)


class AppliedTo(_Strict):
    """One collection that applies the taxonomy, and the settings of its entry there
    (``TaxonomyApplicationConfig`` without ``taxonomy_id``: taxsync fills that in)."""

    collection: str = Field(min_length=1, max_length=256, description="the collection's id or name")
    execution_mode: Literal["materialize"] | None = None
    target_collection_id: str | None = Field(default=None, min_length=1)
    scroll_filters: wire.LogicalOperatorInput | None = None
    execution_phase: StrictInt | None = Field(default=None, ge=1, le=3)
    priority: StrictInt | None = Field(default=None, ge=0, le=1000)
    hierarchical_enrichment_style: Literal["full_chain", "best_match", "combined"] | None = None


class ManifestSpec(_Strict):
    description: str | None = None
    metadata: dict[str, Any] | None = None
    config: wire.TaxonomyConfig
    wait: bool = False
    # onChange: after a config change (or an attach), re-enrich the collections it touches.
    backfill: Literal["never", "onChange"] = "never"
    # Present: taxsync owns this taxonomy's entries in every collection of the namespace.
    appliedTo: list[AppliedTo] | None = None  # noqa: N815 (manifest key)


class TaxonomyManifest(_Strict):
    """One YAML document: ``apiVersion``/``kind``/``metadata``/``spec``."""

    apiVersion: Literal["taxsync/v1"]  # noqa: N815 (manifest key)
    kind: Literal["Taxonomy"]
    metadata: ManifestMetadata
    spec: ManifestSpec


def dotted(path: Sequence[Any]) -> str:
    """A field path as people read it: ``config.hierarchical_nodes[1].label``.

    List indexes, and the keys of keyed lists (which canonical forms hold as maps), are
    written in brackets: ``config.input_mappings[text]``.
    """
    out = ""
    for part in path:
        if isinstance(part, int) or (out and _is_keyed_list(out)):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _is_keyed_list(prefix: str) -> bool:
    return prefix.rsplit(".", 1)[-1] in KEYED_LISTS


def is_managed(metadata: Mapping[str, Any] | None) -> bool:
    """Whether a live taxonomy's metadata carries taxsync's marker."""
    return (metadata or {}).get(MANAGED_KEY) == MANAGED_VALUE


def managed_metadata(
    desired: DesiredTaxonomy, live: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata taxsync writes: the manifest's, plus the managed-by marker, plus the
    backfill bookkeeping ``live`` carries (a PATCH replaces the caller's keys whole)."""
    out = {k: v for k, v in desired.metadata.items() if k != BACKFILLS_KEY}
    out[MANAGED_KEY] = MANAGED_VALUE
    kept = (live or {}).get(BACKFILLS_KEY)
    if isinstance(kept, dict) and kept:
        out[BACKFILLS_KEY] = kept
    return out


def replacement_name(name: str) -> str:
    """The name a replace creates its new taxonomy under, until the old one is gone."""
    return f"{name}{REPLACEMENT_SUFFIX}"


_UNION_TAGS = {
    "flat",
    "hierarchical",
    "FlatTaxonomyConfigInput",
    "HierarchicalTaxonomyConfigInput",
}


def strip_union_tags(loc: Sequence[Any]) -> FieldPath:
    """Pydantic (ours, and the API's) puts the union member in a location
    (``config.flat.top_k``); users never wrote it."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if part in _UNION_TAGS and i > 0 and loc[i - 1] == "config":
            continue
        out.append(part)
    return tuple(out)
