"""Backfill tasks: organisation-wide, found by id only, moved on by being read."""

from __future__ import annotations

import dataclasses
from typing import Any

from taxsync.emulator.errors import NotFound
from taxsync.emulator.query import ListQuery, Page, clone, paginate
from taxsync.emulator.resources import count_task_read, is_terminal, kill_task, task_view
from taxsync.emulator.store.persistence import PersistentStore
from taxsync.emulator.store.times import iso


class Tasks(PersistentStore):
    """Read, list and kill tasks."""

    def get_task(self, task_id: str, *, count_read: bool = True) -> dict[str, Any]:
        """A task by id, in any namespace. A GET is what moves a running task on (see
        TaskPolicy); ``count_read=False`` looks without counting."""
        with self._transaction():
            record = self._find_task(task_id)
            if not count_read or is_terminal(record):
                return clone(task_view(record))
        # Counting a read changes state, so redo the lookup under the exclusive lock.
        with self._transaction(exclusive=True):
            record = self._find_task(task_id)
            if not is_terminal(record):
                count_task_read(record, iso(self._clock()))
                self._dirty = True
            return clone(task_view(record))

    def list_tasks(
        self,
        query: ListQuery | None = None,
        *,
        status: str | None = None,
        task_type: str | None = None,
    ) -> Page:
        """A page of tasks of every namespace, oldest first unless sorted."""
        query = query or ListQuery()
        conditions = [
            {"field": name, "operator": "eq", "value": value}
            for name, value in (("status", status), ("task_type", task_type))
            if value is not None
        ]
        if query.filters:
            conditions.append(query.filters)
        filters = {"AND": conditions} if conditions else None
        with self._transaction():
            rows = [(t["seq"], task_view(t)) for t in self._state.tasks.values()]
            return paginate(
                rows,
                _replace_filters(query, filters),
                text_fields=("task_id", "task_type", "status"),
            )

    def kill_task(self, task_id: str) -> None:
        """Stop a task: a running one ends CANCELED; a finished or unknown one is left as is."""
        with self._transaction(exclusive=True):
            record = self._state.tasks.get(task_id)
            if record is not None and kill_task(record, iso(self._clock())):
                self._dirty = True

    def count_tasks(self) -> int:
        """How many tasks exist (finished ones included)."""
        with self._transaction():
            return len(self._state.tasks)

    def _find_task(self, task_id: str) -> dict[str, Any]:
        record = self._state.tasks.get(task_id)
        if record is None:
            raise NotFound(f"Task '{task_id}' not found", {"resource": "task", "id": task_id})
        return record


def _replace_filters(query: ListQuery, filters: dict[str, Any] | None) -> ListQuery:
    return dataclasses.replace(query, filters=filters)
