"""The last step of an apply: every collection it wrote is read once more.

A collection's ``taxonomy_applications`` is rewritten whole and the API has no concurrency
token, so another process's read-modify-write that lands after this apply verified its own
(two applies at once) drops this apply's entry without an error to either. Read again at
the very end, such a lost update is caught: the change whose entry is missing or differs
fails, instead of passing silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from taxsync.client import MixpeekClient
from taxsync.errors import TaxsyncError
from taxsync.live import LiveCollection, declared, settings
from taxsync.plan import AttachmentChange, ChangeResult


async def recheck_attachments(
    client: MixpeekClient,
    results: list[ChangeResult],
    on_result: Callable[[ChangeResult], None] | None = None,
) -> None:
    """Read every collection an applied attachment change wrote (once each) and fail each
    change whose entry is not as it wrote it; ``on_result`` hears each change failed so."""
    written: dict[tuple[str, str], list[ChangeResult]] = {}
    for result in results:
        if result.status == "applied" and isinstance(result.change, AttachmentChange):
            key = (result.change.namespace, result.change.collection_id)
            written.setdefault(key, []).append(result)
    found = await asyncio.gather(*(_read(client, *key) for key in written))
    for (key, changed), collection in zip(written.items(), found, strict=True):
        for result in changed:
            why = _lost(result, collection)
            if why is None:
                continue
            result.status = "failed"
            result.message = (
                f"applied, but collection {key[1]} {why} when read again at the end of the "
                "apply: another writer overwrote it (two applies at once?); run apply again, "
                "and run one apply at a time per namespace"
            )
            if on_result is not None:
                on_result(result)


async def _read(client: MixpeekClient, namespace: str, collection_id: str) -> Any:
    """The collection as it is now; None if it is gone, the error if it cannot be read."""
    try:
        found = await client.get_collection(namespace, collection_id)
    except TaxsyncError as exc:
        return exc
    return None if found is None else LiveCollection.from_wire(found)


def _lost(result: ChangeResult, collection: Any) -> str | None:
    """Why the entry this change wrote is not there as written (None: it is)."""
    change = result.change
    assert isinstance(change, AttachmentChange)
    if isinstance(collection, TaxsyncError):
        return f"could not be read ({collection})"
    if collection is None:
        return "no longer exists"
    entry = collection.application_of(result.taxonomy_id)
    if change.action == "detach":
        return None if entry is None else "applies the taxonomy again"
    if entry is None:
        return "no longer holds its entry"
    if settings(entry) != settings(declared(change.application or {})):
        return "holds its entry with other settings"
    return None
