"""The Plan: what taxsync would change, as data that can be saved, reviewed and applied.

A saved plan carries every request body it will send, plus each taxonomy's base
version, so ``apply --plan`` applies exactly what was reviewed and can refuse a plan
whose live state moved.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1

Action = Literal["create", "new_version", "update", "delete", "replace"]
ACTIONS: tuple[Action, ...] = ("create", "new_version", "update", "delete", "replace")


class FieldChange(BaseModel):
    """One field that differs: ``path`` in dotted form, keyed lists by their key."""

    path: str
    before: Any = None
    after: Any = None
    # Whether each side has the field at all (null and absent read differently in a diff).
    before_present: bool = True
    after_present: bool = True


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    namespace: str
    name: str
    taxonomy_id: str | None = None
    base_version: int | None = None  # the live head when planned; None for creates
    taxonomy_type: str
    source: str | None = None  # manifest file:line; None for prunes
    diff: list[FieldChange] = Field(default_factory=list)
    rename_from: str | None = None
    adopt: bool = False  # a live taxonomy taxsync starts to manage
    wait: bool = False
    notes: list[str] = Field(default_factory=list)
    # Exactly what apply sends, in order: create, then version, then patch.
    create_body: dict[str, Any] | None = None
    version_body: dict[str, Any] | None = None
    patch_body: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"


class Summary(BaseModel):
    create: int = 0
    new_version: int = 0
    update: int = 0
    delete: int = 0
    replace: int = 0
    unchanged: int = 0

    def line(self) -> str:
        """``2 to create, 1 new version`` (or ``no changes``)."""
        words = {
            "create": "to create",
            "new_version": "new version",
            "update": "to update",
            "replace": "to replace",
            "delete": "to delete",
        }
        parts = []
        for action, word in words.items():
            count = getattr(self, action)
            if count:
                label = word + ("s" if action == "new_version" and count > 1 else "")
                parts.append(f"{count} {label}")
        return ", ".join(parts) if parts else "no changes"


class Plan(BaseModel):
    format_version: int = FORMAT_VERSION
    api_url: str | None = None
    namespaces: list[str] = Field(default_factory=list)
    prune: bool = False
    summary: Summary = Field(default_factory=Summary)
    changes: list[Change] = Field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
