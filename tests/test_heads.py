"""The heads apply checks changes against: one shared read per namespace, read again once
older than the staleness window."""

from __future__ import annotations

import asyncio
from typing import Any

from taxsync.heads import Heads
from tests.helpers import live_flat


class _Lister:
    """A client whose list of taxonomies is counted, and slow enough for callers to overlap."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.version = 1

    async def list_taxonomies(self, namespace: str) -> list[Any]:
        self.reads.append(namespace)
        await asyncio.sleep(0.01)
        return [live_flat(taxonomy_id="tax_a", version=self.version)]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_changes_of_a_namespace_share_one_read() -> None:
    lister = _Lister()
    heads = Heads(lister, max_age=10.0, clock=_Clock())  # type: ignore[arg-type]

    async def many() -> list[Any]:
        lookups = [heads.head(ns, "tax_a") for ns in ("p", "p", "p", "s")]
        return await asyncio.gather(*lookups, heads.head("p", "tax_gone"))

    found = asyncio.run(many())
    assert sorted(lister.reads) == ["p", "s"]
    assert [h.version for h in found[:4]] == [1, 1, 1, 1]
    assert found[4] is None  # not in the read: deleted


def test_a_read_older_than_the_window_is_made_again() -> None:
    lister, clock = _Lister(), _Clock()
    heads = Heads(lister, max_age=10.0, clock=clock)  # type: ignore[arg-type]

    async def head_version() -> int | None:
        head = await heads.head("p", "tax_a")
        return None if head is None else head.version

    assert asyncio.run(head_version()) == 1
    lister.version = 2  # someone re-versions it
    clock.now += 10.0
    assert asyncio.run(head_version()) == 1  # within the window: the read is reused
    clock.now += 0.5
    assert asyncio.run(head_version()) == 2
    assert lister.reads == ["p", "p"]
