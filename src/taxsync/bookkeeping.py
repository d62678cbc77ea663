"""taxsync's backfill bookkeeping on a live taxonomy, and the backfills it shows are owed.

Under ``metadata[BACKFILLS_KEY]`` each collection the taxonomy was backfilled in (or is to
be) has a record: the ``version`` the backfill is for, its ``task`` (null until the task
is known to have started), its final ``status`` once taxsync saw it, the ``previous`` task
ids of the pair, the ``labelled`` version a backfill last completed with, and the ``run``
that wrote an intent. An intent (task null) is written before the write it depends on, so
whatever cuts a run short leaves a record the next one reads. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from taxsync import normalize
from taxsync.live import Neighbourhood
from taxsync.model import BACKFILLS_KEY
from taxsync.plan import TASK_FAILED, TASK_SUCCEEDED, BackfillChange, task_ended
from taxsync.wire import TaxonomyResponse

# Earlier task ids kept per pair: enough to tell a lost task from the ones taxsync knows.
MAX_PREVIOUS = 50


@dataclass(frozen=True)
class Record:
    """One collection's backfill of one taxonomy, as recorded."""

    version: int
    task: str | None = None
    status: str | None = None
    previous: tuple[str, ...] = ()
    labelled: int | None = None
    run: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "task": self.task}
        if self.status is not None:
            out["status"] = self.status
        if self.previous:
            out["previous"] = list(self.previous)
        if self.labelled is not None:
            out["labelled"] = self.labelled
        if self.run is not None and self.task is None:
            out["run"] = self.run
        return out

    @property
    def failed(self) -> bool:
        return self.status is not None and self.status in TASK_FAILED

    @property
    def known(self) -> tuple[str, ...]:
        """Every task id recorded for the pair."""
        return (*self.previous, self.task) if self.task else self.previous


def records(metadata: Mapping[str, Any] | None) -> dict[str, Record]:
    """The records a taxonomy's metadata holds; a malformed one is left out (read as none)."""
    raw = (metadata or {}).get(BACKFILLS_KEY)
    if not isinstance(raw, dict):
        return {}
    out = {}
    for collection_id, entry in raw.items():
        record = _record(entry)
        if record is not None:
            out[str(collection_id)] = record
    return out


def _record(entry: Any) -> Record | None:
    if not isinstance(entry, dict):
        return None
    version, task, status = entry.get("version"), entry.get("task"), entry.get("status")
    previous, labelled, run = entry.get("previous") or [], entry.get("labelled"), entry.get("run")
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    if not isinstance(previous, list) or not all(isinstance(p, str) for p in previous):
        return None
    return Record(
        version=version,
        task=task if isinstance(task, str) else None,
        status=status if isinstance(status, str) else None,
        previous=tuple(previous),
        labelled=labelled if isinstance(labelled, int) else None,
        run=run if isinstance(run, str) else None,
    )


def metadata_with(metadata: Mapping[str, Any] | None, updates: Mapping[str, Record]) -> dict:
    """The metadata to PATCH (the caller's keys, whole: a PATCH replaces them) with
    ``updates`` written into the bookkeeping; system keys are the server's to keep."""
    out = {k: v for k, v in (metadata or {}).items() if k not in normalize.SYSTEM_METADATA_KEYS}
    kept = out.get(BACKFILLS_KEY)
    book = dict(kept) if isinstance(kept, dict) else {}
    book.update({c: r.to_json() for c, r in updates.items()})
    out[BACKFILLS_KEY] = book
    return out


def intent(record: Record | None, version: int, run: str | None) -> Record:
    """What to record before starting a backfill of ``version``: no task yet; the task
    before it (if any) joins the pair's previous ones."""
    if record is None:
        return Record(version=version, run=run)
    labelled = record.version if record.status == TASK_SUCCEEDED else record.labelled
    return Record(
        version=version,
        previous=record.known[-MAX_PREVIOUS:],
        labelled=labelled,
        run=run,
    )


def started(record: Record, task_id: str) -> Record:
    """The task the intent started (or that a lost answer started and a look-up found)."""
    return replace(record, task=task_id, status=None, run=None)


def ended(record: Record, status: str) -> Record:
    """A task's final status, once seen."""
    labelled = record.version if status == TASK_SUCCEEDED else record.labelled
    return replace(record, status=status, labelled=labelled)


def tasks_to_read(live: Iterable[TaxonomyResponse]) -> list[str]:
    """The tasks whose state decides whether a backfill is owed: recorded at the head,
    final status not recorded."""
    return sorted(
        {
            r.task
            for t in live
            for r in records(t.metadata).values()
            if r.task is not None and r.status is None and r.version == t.version
        }
    )


def owed(
    namespace: str,
    live: Sequence[TaxonomyResponse],
    around: Neighbourhood,
    states: Mapping[str, str],
) -> list[BackfillChange]:
    """The backfills the bookkeeping shows are owed, in collections that still apply the
    taxonomy: an intent whose task is not known (never started, cut short, answer lost),
    or a task at the head that ended failed. ``states``: the tasks read (id -> status)."""
    changes = []
    for taxonomy in sorted(live, key=lambda t: t.taxonomy_name):
        if taxonomy.taxonomy_id is None or taxonomy.version is None:
            continue
        applying = {c.collection_id: c for c in around.applying(taxonomy.taxonomy_id)}
        for collection_id, record in sorted(records(taxonomy.metadata).items()):
            why = _why_owed(record, taxonomy.version, states)
            collection = applying.get(collection_id)
            if why is None or collection is None:
                continue
            changes.append(
                BackfillChange(
                    action="backfill",
                    namespace=namespace,
                    name=taxonomy.taxonomy_name,
                    taxonomy_id=taxonomy.taxonomy_id,
                    taxonomy_type=normalize.config_type(taxonomy.config),
                    collection_id=collection_id,
                    collection_name=collection.name,
                    head_version=taxonomy.version,
                    labelled_version=record.labelled,
                    reason=why,
                    backfills=[collection_id],
                )
            )
    return changes


def _why_owed(record: Record, head: int, states: Mapping[str, str]) -> str | None:
    if record.version > head:
        return None  # an intent for a version that never landed: nothing to backfill
    if record.task is None:
        return (
            f"the backfill of v{record.version} is not known to have started (an apply was "
            "cut short or lost its answer)"
        )
    status = record.status or (states.get(record.task) if record.version == head else None)
    if status is not None and task_ended(status) and status != TASK_SUCCEEDED:
        return f"backfill task {record.task} ended {status}"
    return None


def without_planned(
    owed_changes: Sequence[BackfillChange], planned: Iterable[tuple[str, str, str]]
) -> list[BackfillChange]:
    """The owed backfills the plan does not backfill anyway (namespace, taxonomy name,
    collection id): a new version's backfill runs the head, which settles the owed one."""
    done = set(planned)
    return [c for c in owed_changes if (c.namespace, c.name, c.collection_id) not in done]
