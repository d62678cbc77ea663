"""The heads apply checks each change against, read in bulk.

Before a new version, an update or a delete, apply makes sure the taxonomy is still at the
version the plan saw. Reading each head on its own doubles the requests of an apply; instead
a namespace's heads are read as one list (a page per 1,000 taxonomies) that every change of
that namespace shares, and read again once it is older than ``max_age`` seconds. A change
is therefore checked against a read at most ``max_age`` old: a taxonomy re-versioned between
plan and apply is refused as before, and one re-versioned within the window is caught by the
version the write answers (see ``applier``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from taxsync.client import MixpeekClient
from taxsync.wire import TaxonomyResponse

DEFAULT_MAX_AGE = 30.0


@dataclass
class _Snapshot:
    read_at: float
    by_id: dict[str, TaxonomyResponse]


class Heads:
    """One apply's view of its namespaces' heads: one shared read per namespace at a time."""

    def __init__(
        self,
        client: MixpeekClient,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.max_age, self.clock = client, max_age, clock
        self._snapshots: dict[str, _Snapshot] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def head(self, namespace: str, taxonomy_id: str) -> TaxonomyResponse | None:
        """The taxonomy's head as of a read at most ``max_age`` seconds old; None if that
        read does not hold it (deleted)."""
        snapshot = await self._fresh(namespace)
        return snapshot.by_id.get(taxonomy_id)

    async def _fresh(self, namespace: str) -> _Snapshot:
        # One lock per namespace: changes that find the snapshot old wait for the one read
        # the first of them started, rather than each listing the namespace again.
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            snapshot = self._snapshots.get(namespace)
            if snapshot is None or self.clock() - snapshot.read_at > self.max_age:
                read_at = self.clock()
                heads = await self.client.list_taxonomies(namespace)
                by_id = {h.taxonomy_id: h for h in heads if h.taxonomy_id is not None}
                snapshot = self._snapshots[namespace] = _Snapshot(read_at, by_id)
            return snapshot
