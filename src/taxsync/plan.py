"""The Plan: what taxsync would change, as data that can be saved, reviewed and applied.

A saved plan carries every request body it will send, plus each taxonomy's base
version, so ``apply --plan`` applies exactly what was reviewed and can refuse a plan
whose live state moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from taxsync.identifiers import name_problem, namespace_problem, quoted, shown

FORMAT_VERSION = 6  # 2: the digest; 3: attachments; 4: two change types, node trees; 5: pending;
# 6: owed backfills (a third change type)
# A saved plan larger than this is far beyond what taxsync writes; reading it would only
# exhaust memory.
MAX_PLAN_BYTES = 256 * 1024 * 1024

# What happens to a taxonomy, and to its entry in one collection's taxonomy_applications.
TaxonomyAction = Literal["create", "new_version", "update", "delete", "replace"]
AttachmentAction = Literal["attach", "reconfigure", "detach"]
# A backfill an earlier apply owes: never started, its answer lost, or its task failed.
BackfillAction = Literal["backfill"]
Action = Literal[TaxonomyAction, AttachmentAction, BackfillAction]
# What became of one change when a plan was applied.
Status = Literal["applied", "failed", "stale", "not_started"]


@dataclass(frozen=True)
class Words:
    """How one action reads everywhere: in plans, summaries and colours."""

    symbol: str  # Terraform's convention: + create, ~ change, - delete, ± replace
    summary: str  # "2 to create"; the count comes first
    colour: str  # ANSI SGR code


# One vocabulary for every rendering. The order is the summary's reading order.
VOCABULARY: dict[Action, Words] = {
    "create": Words("+", "to create", "32"),
    "new_version": Words("~", "new version", "33"),
    "update": Words("~", "to update", "33"),
    "replace": Words("±", "to replace", "35"),
    "delete": Words("-", "to delete", "31"),
    "attach": Words("+", "to attach", "32"),
    "reconfigure": Words("~", "to reconfigure", "33"),
    "detach": Words("-", "to detach", "31"),
    "backfill": Words("↻", "to backfill", "36"),
}
TAXONOMY_ACTIONS: tuple[TaxonomyAction, ...] = get_args(TaxonomyAction)
ATTACHMENT_ACTIONS: tuple[AttachmentAction, ...] = get_args(AttachmentAction)


@dataclass(frozen=True)
class StatusWords:
    """How one change result's status reads: its word and its colour."""

    word: str
    colour: str


STATUSES: dict[Status, StatusWords] = {
    "applied": StatusWords("done", "32"),
    "failed": StatusWords("FAILED", "31"),
    "stale": StatusWords("STALE", "31"),
    "not_started": StatusWords("not started", "2"),
}

# Backfill tasks (apply-taxonomy): how taxsync reads the API's task statuses
# (docs/api-contract.md#task-statuses). Only COMPLETED is a success; every other end state
# fails the change that started the task (INTERRUPTED and SKIPPED, which the SDK leaves
# unclassified, included). Anything else is still running.
TASK_SUCCEEDED = "COMPLETED"
TASK_FAILED: frozenset[str] = frozenset(
    {"FAILED", "COMPLETED_WITH_ERRORS", "CANCELED", "INTERRUPTED", "SKIPPED"}
)


def task_ended(status: str) -> bool:
    """Whether a backfill task's status is final (taxsync stops polling it)."""
    return status == TASK_SUCCEEDED or status in TASK_FAILED


class FieldChange(BaseModel):
    """One field that differs: ``path`` in dotted form, keyed lists by their key."""

    model_config = ConfigDict(extra="forbid")

    path: str
    before: Any = None
    after: Any = None
    # Whether each side has the field at all (null and absent read differently in a diff).
    before_present: bool = True
    after_present: bool = True


class AppliedBy(BaseModel):
    """A collection that applies the taxonomy a change touches: what the change affects."""

    model_config = ConfigDict(extra="forbid")

    collection_id: str
    collection_name: str
    execution_phase: int = 1
    target_collection_id: str | None = None
    document_count: int | None = None  # approximate: the API caches it


class NodeSides(BaseModel):
    """A hierarchical taxonomy's nodes before and after a change, by collection id, in
    canonical form (nulls dropped): what the plan draws as a tree."""

    model_config = ConfigDict(extra="forbid")

    before: dict[str, dict[str, Any]] = Field(default_factory=dict)
    after: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ResolvedName(BaseModel):
    """A reference a manifest makes by name, and the id it resolved to in the namespace."""

    model_config = ConfigDict(extra="forbid")

    path: str  # the dotted spec path: config.retriever_id, appliedTo[0].target_collection_id
    kind: Literal["collection", "retriever"]
    name: str
    id: str


# The validation context of a plan read from a file (``Plan.model_validate_json(raw,
# context=SAVED)``): its names and namespaces are checked by the rules every other source
# of them follows. A plan made in memory holds what the manifests and the API gave.
SAVED = {"saved": True}


def first_problem(exc: ValidationError) -> str:
    """The first problem of a saved plan that does not validate, on one line, and how many
    more there are."""
    first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = exc.error_count() - 1
    return shown(f"{where}: {first['msg']}") + (f" (and {more} more)" if more else "")


def _saved(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("saved"))


def _checked_if_saved(
    value: str, info: ValidationInfo, rule: Callable[[str], str | None], what: str
) -> str:
    """``value`` itself; in a saved plan, only if it passes ``rule`` (else ValueError)."""
    problem = rule(value) if _saved(info) else None
    if problem:
        raise ValueError(f"{what} {quoted(value)} {problem}")
    return value


class _ChangeCommon(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("namespace")
    @classmethod
    def _a_namespace(cls, value: str, info: ValidationInfo) -> str:
        return _checked_if_saved(value, info, namespace_problem, "namespace")

    @field_validator("name")
    @classmethod
    def _a_name(cls, value: str, info: ValidationInfo) -> str:
        return _checked_if_saved(value, info, name_problem, "name")

    action: Action  # each change type narrows it; a saved plan's changes are told apart by it
    namespace: str
    name: str
    # None for a create, and for an attachment change to a taxonomy this plan creates or
    # replaces: apply uses the id that change gives it.
    taxonomy_id: str | None = None
    taxonomy_type: str
    source: str | None = None  # manifest file:line; None for prunes
    diff: list[FieldChange] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # The collections whose documents apply will re-enrich (apply-taxonomy) after the change.
    backfills: list[str] = Field(default_factory=list)
    # Ids the manifest names that its namespace lacks, let through by
    # --allow-missing-references: shown as notes, not re-checked by apply.
    unchecked: list[str] = Field(default_factory=list)
    # The references the manifest makes by name: apply refuses the plan as stale when one
    # of them resolves to another id by then.
    names: list[ResolvedName] = Field(default_factory=list)


class TaxonomyChange(_ChangeCommon):
    """A change to a taxonomy itself: create, new version, update, replace or delete."""

    action: TaxonomyAction
    base_version: int | None = None  # the live head when planned; None for creates
    rename_from: str | None = None
    adopt: bool = False  # a live taxonomy taxsync starts to manage
    wait: bool = False
    # The collections that apply this taxonomy, for a new version, replace or delete.
    applied_by: list[AppliedBy] = Field(default_factory=list)
    # Why apply will not carry this change out (a delete of a taxonomy still applied).
    blocked: str | None = None
    # The hierarchical nodes the change touches, when it touches any.
    nodes: NodeSides | None = None
    # Exactly what apply sends, in order: create, then version, then patch.
    create_body: dict[str, Any] | None = None
    version_body: dict[str, Any] | None = None
    patch_body: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"


class AttachmentChange(_ChangeCommon):
    """A change to the entry of the taxonomy ``name`` in one collection's
    ``taxonomy_applications``: attach, reconfigure or detach."""

    action: AttachmentAction
    collection_id: str
    collection_name: str
    # The entry's settings apply writes (attach, reconfigure; without taxonomy_id).
    application: dict[str, Any] | None = None
    # The entry as it was read (reconfigure, detach): it must still be there, unchanged,
    # when apply writes.
    live_application: dict[str, Any] | None = None
    # A detach that --detach-deleted makes so that the taxonomy's delete can follow.
    before_delete: bool = False

    @model_validator(mode="after")
    def _carries_its_entries(self) -> AttachmentChange:
        """What apply writes (attach, reconfigure) and what it must find (reconfigure,
        detach): a saved plan without them is not a plan."""
        if self.action != "detach" and self.application is None:
            raise ValueError(f"an {self.action} carries the application it writes")
        if self.action != "attach" and self.live_application is None:
            raise ValueError(f"a {self.action} carries the live_application it saw")
        return self

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name} on {self.collection_name or self.collection_id}"


class BackfillChange(_ChangeCommon):
    """A backfill taxsync owes (recorded in the taxonomy's bookkeeping): the documents of
    one collection are not known to carry the head's labels. Apply starts it (or adopts
    the task a lost answer started); ``backfills`` is that one collection."""

    action: BackfillAction
    collection_id: str
    collection_name: str
    head_version: int
    # The version the collection's documents were last backfilled with (None: not known).
    labelled_version: int | None = None
    reason: str

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name} in {self.collection_name or self.collection_id}"


# A saved plan's changes are told apart by their action.
Change = Annotated[
    TaxonomyChange | AttachmentChange | BackfillChange, Field(discriminator="action")
]
AnyChange = TaxonomyChange | AttachmentChange | BackfillChange


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    create: int = 0
    new_version: int = 0
    update: int = 0
    delete: int = 0
    replace: int = 0
    attach: int = 0
    reconfigure: int = 0
    detach: int = 0
    backfill: int = 0
    unchanged: int = 0  # taxonomies

    @classmethod
    def of(cls, changes: Sequence[AnyChange], unchanged: int) -> Summary:
        """The counts of ``changes`` by action."""
        summary = cls(unchanged=unchanged)
        for change in changes:
            setattr(summary, change.action, summary.count(change.action) + 1)
        return summary

    def count(self, action: Action) -> int:
        number: int = getattr(self, action)
        return number

    def line(self, with_zeros: bool = False) -> str:
        """``2 to create, 1 new version`` (or ``no changes``); with ``with_zeros``, every
        taxonomy action (attachment actions only when there are some)."""
        parts = []
        for action, words in VOCABULARY.items():
            count = self.count(action)
            if count or (with_zeros and action in TAXONOMY_ACTIONS):
                plural = "s" if action == "new_version" and count > 1 else ""
                parts.append(f"{count} {words.summary}{plural}")
        return ", ".join(parts) if parts else "no changes"


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    api_url: str | None = None
    namespaces: list[str] = Field(default_factory=list)
    prune: bool = False
    # The taxonomies (``namespace/name``) planned with backfills on (``--backfill``, or their
    # manifest's ``spec.backfill: onChange``): a saved plan's backfills are planned again
    # with exactly this intent.
    backfill_on_change: list[str] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    changes: list[Change] = Field(default_factory=list)
    # With --changed-from: the commit compared with, the changes its manifests would make too
    # (drift, or a merge not applied: apply makes them as well), the namespaces not planned.
    changed_from: str | None = None
    pending: list[Change] = Field(default_factory=list)
    left_out: list[str] = Field(default_factory=list)
    # With --allow-missing-references: what was let through on taxonomies this plan does not
    # change (a change carries its own in ``unchecked``), so a typo is never silent.
    unchecked: list[str] = Field(default_factory=list)

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return [_checked_if_saved(ns, info, namespace_problem, "namespace") for ns in value]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def taxonomy_changes(self) -> list[TaxonomyChange]:
        return [c for c in self.changes if isinstance(c, TaxonomyChange)]

    @property
    def attachment_changes(self) -> list[AttachmentChange]:
        return [c for c in self.changes if isinstance(c, AttachmentChange)]

    @property
    def backfill_changes(self) -> list[BackfillChange]:
        return [c for c in self.changes if isinstance(c, BackfillChange)]

    # sha256 of the rest of the plan, so an edit after `plan` is caught with a clear
    # message. Not a signature: whoever can edit the file can recompute it.
    digest: str | None = None

    def content_digest(self) -> str:
        """The digest of everything but the digest itself."""
        content = self.model_dump_json(exclude={"digest"})
        return hashlib.sha256(content.encode()).hexdigest()

    def to_json(self) -> str:
        """The saved form: indented JSON, with its digest."""
        sealed = self.model_copy(update={"digest": self.content_digest()})
        return sealed.model_dump_json(indent=2) + "\n"


# --- what an apply did ------------------------------------------------------------------


@dataclass
class ChangeResult:
    """What became of one planned change."""

    change: AnyChange
    status: Status
    message: str = ""
    taxonomy_id: str | None = None
    version: int | None = None
    tasks: list[str] = field(default_factory=list)  # backfill task ids, one per collection


@dataclass
class ApplyResult:
    """Every change's result, in plan order, and whether Ctrl-C cut the run short."""

    results: list[ChangeResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status == "applied" for r in self.results)
