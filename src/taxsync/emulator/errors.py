"""What the emulator's store raises on purpose; the app maps each class to a status."""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base class of everything the store raises on purpose."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(StoreError):
    """The namespace, taxonomy or version does not exist."""


class AlreadyExists(StoreError):
    """A taxonomy with that name already exists in the namespace."""


class BadRequest(StoreError):
    """The request is well-formed but cannot be applied (empty patch, type change...)."""


class StateFileError(StoreError):
    """The state file cannot be read, parsed or written; the message names the file."""
