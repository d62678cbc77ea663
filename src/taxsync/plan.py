"""The Plan: what taxsync would change, as data that can be saved, reviewed and applied.

A saved plan carries every request body it will send, plus each taxonomy's base
version, so ``apply --plan`` applies exactly what was reviewed and can refuse a plan
whose live state moved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 3  # 2: the digest; 3: attachments (attach, reconfigure, detach)

# What happens to a taxonomy, and to its entry in one collection's taxonomy_applications.
TaxonomyAction = Literal["create", "new_version", "update", "delete", "replace"]
AttachmentAction = Literal["attach", "reconfigure", "detach"]
Action = Literal[TaxonomyAction, AttachmentAction]
ATTACHMENT_ACTIONS: frozenset[str] = frozenset(("attach", "reconfigure", "detach"))


@dataclass(frozen=True)
class ActionWords:
    """How one action reads everywhere: in plans, summaries and colours."""

    symbol: str  # Terraform's convention: + create, ~ change, - delete, ± replace
    summary: str  # "2 to create"; the count comes first
    colour: str  # ANSI SGR code of the symbol's colour


# One vocabulary for every rendering. The order is the summary's reading order.
VOCABULARY: dict[Action, ActionWords] = {
    "create": ActionWords("+", "to create", "32"),
    "new_version": ActionWords("~", "new version", "33"),
    "update": ActionWords("~", "to update", "33"),
    "replace": ActionWords("±", "to replace", "35"),
    "delete": ActionWords("-", "to delete", "31"),
    "attach": ActionWords("+", "to attach", "32"),
    "reconfigure": ActionWords("~", "to reconfigure", "33"),
    "detach": ActionWords("-", "to detach", "31"),
}


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


class Change(BaseModel):
    """One planned change: to a taxonomy, or (attach, reconfigure, detach) to the entry of
    the taxonomy ``name`` in one collection's ``taxonomy_applications``."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    namespace: str
    name: str
    # For an attachment change, None when this plan creates or replaces the taxonomy:
    # apply uses the id that change gives it.
    taxonomy_id: str | None = None
    base_version: int | None = None  # the live head when planned; None for creates
    taxonomy_type: str
    source: str | None = None  # manifest file:line; None for prunes
    diff: list[FieldChange] = Field(default_factory=list)
    rename_from: str | None = None
    adopt: bool = False  # a live taxonomy taxsync starts to manage
    wait: bool = False
    notes: list[str] = Field(default_factory=list)
    # The collections that apply this taxonomy, for a new version, replace or delete.
    applied_by: list[AppliedBy] = Field(default_factory=list)
    # Why apply will not carry this change out (a delete of a taxonomy still applied).
    blocked: str | None = None
    # The collections whose documents apply will re-enrich (apply-taxonomy) after the change.
    backfills: list[str] = Field(default_factory=list)
    # Ids the manifest names that its namespace lacks, let through by
    # --allow-missing-references: shown as notes, not re-checked by apply.
    unchecked: list[str] = Field(default_factory=list)
    # The live hierarchical_nodes a delete or replace removes, so the plan can draw them.
    live_nodes: list[dict[str, Any]] | None = None
    # Exactly what apply sends, in order: create, then version, then patch.
    create_body: dict[str, Any] | None = None
    version_body: dict[str, Any] | None = None
    patch_body: dict[str, Any] | None = None
    # An attachment change: the collection, the entry's settings apply writes (attach,
    # reconfigure; the manifest's, without taxonomy_id), and the entry as it was read
    # (reconfigure, detach), which must still be there, unchanged, when apply writes.
    collection_id: str | None = None
    collection_name: str | None = None
    application: dict[str, Any] | None = None
    live_application: dict[str, Any] | None = None

    @property
    def is_attachment(self) -> bool:
        return self.action in ATTACHMENT_ACTIONS

    @property
    def label(self) -> str:
        if self.is_attachment:
            return f"{self.namespace}/{self.name} on {self.collection_name or self.collection_id}"
        return f"{self.namespace}/{self.name}"


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
    unchanged: int = 0  # taxonomies

    @classmethod
    def of(cls, changes: list[Change], unchanged: int) -> Summary:
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
            if count or (with_zeros and action not in ATTACHMENT_ACTIONS):
                plural = "s" if action == "new_version" and count > 1 else ""
                parts.append(f"{count} {words.summary}{plural}")
        return ", ".join(parts) if parts else "no changes"


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    api_url: str | None = None
    namespaces: list[str] = Field(default_factory=list)
    prune: bool = False
    summary: Summary = Field(default_factory=Summary)
    changes: list[Change] = Field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

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

Status = Literal["applied", "failed", "stale", "not_started"]


@dataclass
class ChangeResult:
    """What became of one planned change."""

    change: Change
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
