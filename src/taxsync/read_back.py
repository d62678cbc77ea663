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
from taxsync.plan import AttachmentChange, ChangeResult, TaxonomyChange


async def recheck_attachments(
    client: MixpeekClient,
    results: list[ChangeResult],
    on_result: Callable[[ChangeResult], None] | None = None,
) -> None:
    """Read every collection an applied attachment change or replace wrote (once each) and
    fail each change whose entry is not as it wrote it; ``on_result`` hears each change
    failed so."""
    written: dict[tuple[str, str], list[ChangeResult]] = {}
    for result in results:
        for collection_id in _collections_written(result):
            written.setdefault((result.change.namespace, collection_id), []).append(result)
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


def _collections_written(result: ChangeResult) -> list[str]:
    """The collections an applied change rewrote: an attachment change's own, and each one
    a replace re-pointed from the old taxonomy to the new (those the plan saw applying it)."""
    change = result.change
    if result.status != "applied":
        return []
    if isinstance(change, AttachmentChange):
        return [change.collection_id]
    if isinstance(change, TaxonomyChange) and change.action == "replace":
        return [a.collection_id for a in change.applied_by]
    return []


def _lost(result: ChangeResult, collection: Any) -> str | None:
    """Why the entry this change wrote is not there as written (None: it is)."""
    change = result.change
    if isinstance(collection, TaxsyncError):
        return f"could not be read ({collection})"
    if collection is None:
        return None if isinstance(change, TaxonomyChange) else "no longer exists"
    entry = collection.application_of(result.taxonomy_id)
    if isinstance(change, TaxonomyChange):  # a replace: the new taxonomy, the old one gone
        if collection.application_of(change.taxonomy_id) is not None:
            return "applies the replaced taxonomy again"
        return None if entry is not None else "no longer applies the new taxonomy"
    assert isinstance(change, AttachmentChange)
    if change.action == "detach":
        return None if entry is None else "applies the taxonomy again"
    if entry is None:
        return "no longer holds its entry"
    if settings(entry) != settings(declared(change.application or {})):
        return "holds its entry with other settings"
    return None
