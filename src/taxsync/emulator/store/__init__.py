"""State of the emulator: namespaces, taxonomies and their versions, collections,
retrievers and backfill tasks, one module per resource, on top of ``persistence`` (in
memory or a shared JSON state file) and ``state`` (the data and its indexes).

The store knows nothing about HTTP. It takes validated wire models, returns plain dicts
shaped like the API's responses, and raises the small exception classes of
``taxsync.emulator.errors``, which the app maps to error envelopes.

Collections and retrievers live in a namespace and are found by id or name; nothing
creates them over HTTP, a seed does (``Store.seed``). Tasks are organisation-wide, found
by id only. Their records and rules are in ``taxsync.emulator.resources``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from taxsync.emulator.resources import TaskPolicy
from taxsync.emulator.store.collections import Collections
from taxsync.emulator.store.namespaces import Namespaces
from taxsync.emulator.store.retrievers import Retrievers
from taxsync.emulator.store.tasks import Tasks
from taxsync.emulator.store.taxonomies import ReadyPolicy, Taxonomies

__all__ = ["ReadyPolicy", "Store"]


class Store(Namespaces, Taxonomies, Collections, Retrievers, Tasks):
    """Namespaces, taxonomies, collections, retrievers and tasks, in memory (``path``
    None) or in a shared JSON state file."""

    def __init__(
        self, path: Path | str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.task_policy = TaskPolicy()
        self.every_namespace = None
        super().__init__(path, clock=clock)
