"""How a taxonomy evolved: its versions and the field-level diff between consecutive ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from taxsync import normalize, wire
from taxsync.plan import FieldChange
from taxsync.planner import field_diff


class VersionEntry(BaseModel):
    version: int
    created_at: str | None = None
    ready: bool | None = None
    diff: list[FieldChange] = Field(default_factory=list)  # against the previous version


class History(BaseModel):
    namespace: str
    name: str
    taxonomy_id: str | None
    versions: list[VersionEntry]


def history(namespace: str, versions: Sequence[wire.TaxonomyResponse]) -> History:
    """Versions in ascending order, each with what changed since the one before."""
    ordered = sorted(versions, key=lambda v: v.version or 0)
    entries = []
    previous: dict[str, Any] | None = None
    for snapshot in ordered:
        current = {
            "description": snapshot.description,
            "config": normalize.canonical_config(snapshot.config),
        }
        diff = field_diff(previous, current) if previous is not None else []
        entries.append(
            VersionEntry(
                version=snapshot.version or 1,
                created_at=snapshot.created_at,
                ready=snapshot.ready,
                diff=diff,
            )
        )
        previous = current
    head = ordered[-1] if ordered else None
    return History(
        namespace=namespace,
        name=head.taxonomy_name if head else "",
        taxonomy_id=head.taxonomy_id if head else None,
        versions=entries,
    )
