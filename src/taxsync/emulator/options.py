"""Every setting of an emulator, in one frozen object that ``local serve``, ``create_app``,
``serve``, ``local_transport`` and the tests build and pass on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from taxsync.emulator.faults import Faults
from taxsync.emulator.resources import TaskOutcome
from taxsync.emulator.seed import Seed

#: What deleting a taxonomy that collections apply does: leave their entries, or refuse.
AppliedTaxonomyDelete = Literal["dangling", "strict"]
APPLIED_DELETE_MODES: tuple[str, ...] = ("dangling", "strict")

#: A seed, its data, or a seed file.
SeedSource = Seed | Mapping[str, Any] | Path | str


@dataclass(frozen=True)
class EmulatorOptions:
    """How an emulator behaves; the defaults are those of ``taxsync local serve``.

    State: ``state_path`` persists it in a JSON file several processes may share (None:
    in memory). ``namespaces`` are created up front, and so is every namespace the
    ``seed`` (a Seed, its data, or a seed file) names, with its collections and
    retrievers. No request ever creates a namespace: an ``X-Namespace`` naming none is
    unresolved, as on the real API (lists answer empty and flagged, other routes 404).

    Requests: ``api_key`` is the only bearer token accepted (None: any non-empty one).
    ``faults`` injects latency, throttling, errors and lost connections. List pages hold
    ``default_page_size`` items unless asked otherwise, and never more than
    ``max_page_size``.

    Readiness: a cluster/llm hierarchical taxonomy reports ``ready=false`` for its first
    ``ready_after_reads`` GETs, or until ``ready_after_seconds`` after it was created,
    whichever comes first (None: that one never flips it).

    Collections and backfills: ``lenient_taxonomy_refs`` lets a collection PATCH name
    taxonomies that do not exist (default: 404). ``applied_taxonomy_delete``:
    ``"dangling"`` deletes a taxonomy that collections apply and leaves their entries;
    ``"strict"`` refuses with a 400 naming them. ``refuse_empty_backfill``:
    apply-taxonomy on a collection with no documents is a 400. ``task_polls`` /
    ``task_outcome``, when given, change how backfill tasks progress and end (see
    ``TaskPolicy``).
    """

    state_path: Path | None = None
    namespaces: tuple[str, ...] = ()
    seed: SeedSource | None = None
    api_key: str | None = None
    faults: Faults | None = None
    max_page_size: int = 1000
    default_page_size: int = 100
    ready_after_reads: int | None = 3
    ready_after_seconds: float | None = None
    lenient_taxonomy_refs: bool = False
    applied_taxonomy_delete: AppliedTaxonomyDelete = "dangling"
    refuse_empty_backfill: bool = True
    task_polls: int | None = None
    task_outcome: TaskOutcome | None = None

    def __post_init__(self) -> None:
        # Callers may give a str path and a list of names; keep one shape of each.
        if self.state_path is not None:
            object.__setattr__(self, "state_path", Path(self.state_path))
        object.__setattr__(self, "namespaces", tuple(self.namespaces))
        if self.max_page_size < 1 or self.default_page_size < 1:
            raise ValueError("max_page_size and default_page_size must be >= 1")
        if self.ready_after_reads is not None and self.ready_after_reads < 0:
            raise ValueError("ready_after_reads must be >= 0 or None")
        if self.applied_taxonomy_delete not in APPLIED_DELETE_MODES:
            raise ValueError(
                f"applied_taxonomy_delete must be one of {', '.join(APPLIED_DELETE_MODES)}"
            )

    def __repr__(self) -> str:
        # Deliberately leaves the API key out.
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__dataclass_fields__
            if name != "api_key"
        )
        return f"EmulatorOptions({shown}, api_key={'set' if self.api_key else None})"
