"""Collections, retrievers and backfill tasks: the records the store keeps, the views it
returns, and the rules of a task's life. Pure functions over plain JSON dicts: no locking
and no HTTP (the store does the one, the app the other).

A collection or retriever record is ``{"namespace_id", "seq", "data"}``, where ``data``
holds only the fields that were set; a view fills every other field of the wire model
with its default, in the wire's order, and computes the counters. A task record keeps its
wire fields in ``data`` beside the policy it was created under.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any, Literal, get_args

from taxsync.wire import (
    BACKFILL_TASK_TYPE,
    TASK_TERMINAL_STATUSES,
    ApplyTaxonomyRequest,
    CollectionResponse,
    RetrieverModelOutput,
    TaskResponse,
    response_defaults,
)

SYSTEM_COLLECTION_NAME = "_direct_upsert"
TASK_ID_ALPHABET = string.ascii_letters + string.digits
TASK_ID_LENGTH = 20

TaskOutcome = Literal[
    "completed", "failed", "canceled", "completed_with_errors", "interrupted", "skipped"
]
TASK_OUTCOMES: tuple[str, ...] = get_args(TaskOutcome)
# The statuses the other outcomes end in: each is final (the emulator never moves it on).
_PLAIN_ENDS = {
    "completed_with_errors": "COMPLETED_WITH_ERRORS",
    "interrupted": "INTERRUPTED",
    "skipped": "SKIPPED",
}
DEFAULT_TASK_ERROR = "Taxonomy enrichment failed: injected by the emulator"

_COLLECTION_DEFAULTS = response_defaults(CollectionResponse)
_RETRIEVER_DEFAULTS = response_defaults(RetrieverModelOutput)
_TASK_DEFAULTS = response_defaults(TaskResponse)


@dataclass(frozen=True)
class TaskPolicy:
    """How a backfill task started from now on lives.

    ``polls``: its first N single-task GETs report ``PENDING``, the next N
    ``IN_PROGRESS``, and later ones its outcome (0: the first GET sees the outcome).
    ``outcome``: ``completed``, ``failed`` (with ``error`` and ``additional_data.error``
    set to ``error``), ``canceled`` (as when its ``max_time_ms`` budget runs out), or
    ``completed_with_errors``, ``interrupted`` or ``skipped`` (the API's other ends; the
    first with ``error`` set, as some documents failed).
    A task keeps the policy it was created under.
    """

    polls: int = 1
    outcome: TaskOutcome = "completed"
    error: str = DEFAULT_TASK_ERROR

    def __post_init__(self) -> None:
        if self.polls < 0:
            raise ValueError(f"task polls must be >= 0, got {self.polls}")
        if self.outcome not in TASK_OUTCOMES:
            raise ValueError(
                f"task outcome must be one of {', '.join(TASK_OUTCOMES)}, got {self.outcome!r}"
            )


# --- collections -------------------------------------------------------------------------


def collection_view(
    record: dict[str, Any], *, retriever_count: int, in_list: bool
) -> dict[str, Any]:
    """A CollectionResponse-shaped dict (sharing nested objects with the record).

    ``taxonomy_count`` counts the applications and ``retriever_count`` the namespace's
    retrievers that search this collection. ``indexing_status`` is null in lists, as the
    API documents, and ``quiesced`` (nothing being indexed) on a single GET.
    """
    data = record["data"]
    view = {name: data.get(name, _COLLECTION_DEFAULTS.get(name)) for name in _COLLECTION_FIELDS}
    view["taxonomy_count"] = len(data.get("taxonomy_applications") or [])
    view["retriever_count"] = retriever_count
    view["indexing_status"] = None if in_list else "quiesced"
    return view


_COLLECTION_FIELDS = tuple(CollectionResponse.model_fields)


def system_collection(namespace: dict[str, Any]) -> dict[str, Any]:
    """The namespace's ``_direct_upsert`` collection, derived from the namespace so it
    needs no storage and keeps one id: a record shaped like the stored ones (seq 0, so it
    lists first, as the oldest collection of the namespace)."""
    suffix = namespace["namespace_id"].removeprefix("ns_")
    return {
        "namespace_id": namespace["namespace_id"],
        "seq": 0,
        "system": True,
        "data": {
            "collection_id": f"col_direct_upsert_{suffix}",
            "collection_name": SYSTEM_COLLECTION_NAME,
            "description": "Documents written by documents/upsert without a collection",
            # Not extractor-backed: the API still requires the field, as a placeholder.
            "feature_extractor": {
                "feature_extractor_name": "direct_upsert",
                "version": "v1",
                "feature_extractor_id": "direct_upsert_v1",
            },
            "source": {"type": "direct_upsert"},
            "created_at": namespace["created_at"],
            "updated_at": namespace["created_at"],
            "document_count": 0,
        },
    }


def collection_stats(views: list[dict[str, Any]]) -> dict[str, Any]:
    """``CollectionListStats`` over the collections of one page (as the API's example
    adds them up: its averages divide by the page, not by ``total_count``)."""
    documents = sum(v.get("document_count") or 0 for v in views)
    taxonomies = {
        entry.get("taxonomy_id") for v in views for entry in v.get("taxonomy_applications") or []
    }
    extractors = {v["feature_extractor"].get("feature_extractor_id") for v in views}
    return {
        "total_documents": documents,
        "avg_documents_per_collection": documents / len(views) if views else 0.0,
        "collections_with_taxonomies": sum(1 for v in views if v.get("taxonomy_applications")),
        "total_feature_extractors": len(extractors),
        "total_taxonomies": len(taxonomies),
        "total_retrievers": sum(v.get("retriever_count") or 0 for v in views),
    }


def applied_taxonomy_ids(record: dict[str, Any]) -> list[str]:
    """The taxonomy ids a collection's ``taxonomy_applications`` name, in order."""
    return [entry["taxonomy_id"] for entry in record["data"].get("taxonomy_applications") or []]


# --- retrievers ----------------------------------------------------------------------------


def retriever_view(record: dict[str, Any]) -> dict[str, Any]:
    """A RetrieverModelOutput-shaped dict; ``collection_identifiers`` mirrors ``collection_ids``."""
    data = record["data"]
    view = {name: data.get(name, _RETRIEVER_DEFAULTS.get(name)) for name in _RETRIEVER_FIELDS}
    view["collection_identifiers"] = list(data.get("collection_ids") or [])
    return view


_RETRIEVER_FIELDS = tuple(RetrieverModelOutput.model_fields)


def searches_collection(record: dict[str, Any], collection_id: str) -> bool:
    """Whether a retriever record searches that collection."""
    return collection_id in (record["data"].get("collection_ids") or [])


# --- tasks -----------------------------------------------------------------------------------


def new_task_id() -> str:
    """``task_`` and 20 random letters and digits, like the API's examples."""
    return "task_" + "".join(secrets.choice(TASK_ID_ALPHABET) for _ in range(TASK_ID_LENGTH))


def new_backfill_task(
    *,
    task_id: str,
    seq: int,
    namespace_id: str,
    collection: dict[str, Any],
    request: ApplyTaxonomyRequest,
    policy: TaskPolicy,
    created_at: str,
) -> dict[str, Any]:
    """The record of a backfill task just accepted (``PENDING``)."""
    data = collection["data"]
    inputs: dict[str, Any] = {
        "collection_id": data["collection_id"],
        "taxonomy_id": request.taxonomy_id,
        "batch_size": request.batch_size,
        "parallelism": request.parallelism,
    }
    if request.scroll_filters is not None:
        inputs["scroll_filters"] = request.scroll_filters
    budget = request.budget_limits.model_dump(exclude_none=True) if request.budget_limits else None
    return {
        "seq": seq,
        "namespace_id": namespace_id,
        "polls": policy.polls,
        "outcome": policy.outcome,
        "error_message": policy.error,
        "reads": 0,
        "documents": data.get("document_count") or 0,
        "budget": budget,
        "data": {
            "task_id": task_id,
            "task_type": BACKFILL_TASK_TYPE,
            "status": "PENDING",
            "inputs": [inputs],
            "outputs": None,
            "additional_data": {
                "job_id": "raysubmit_" + secrets.token_hex(6),
                "namespace_id": namespace_id,
                "collection_id": data["collection_id"],
                "taxonomy_id": request.taxonomy_id,
            },
            "error": None,
            "created_at": created_at,
        },
    }


def task_view(record: dict[str, Any]) -> dict[str, Any]:
    """A TaskResponse-shaped dict (plus ``created_at``, which the API sorts tasks by)."""
    data = record["data"]
    view = {name: data.get(name, _TASK_DEFAULTS.get(name)) for name in _TASK_FIELDS}
    view["created_at"] = data.get("created_at")
    return view


_TASK_FIELDS = tuple(TaskResponse.model_fields)


def is_terminal(record: dict[str, Any]) -> bool:
    """Whether the task has reached a status it never leaves."""
    status = record["data"]["status"]
    return status in TASK_TERMINAL_STATUSES or status in _PLAIN_ENDS.values()


def count_task_read(record: dict[str, Any], now: str) -> None:
    """One GET of a running task: it moves on after every ``polls`` reads."""
    record["reads"] += 1
    polls, reads = record["polls"], record["reads"]
    if reads <= polls:
        return
    if reads <= 2 * polls:
        record["data"]["status"] = "IN_PROGRESS"
        return
    _finish(record, now)


def kill_task(record: dict[str, Any], now: str) -> bool:
    """``DELETE /v1/tasks/{id}``: a running task ends ``CANCELED`` (True); a finished one
    stays as it is (False)."""
    if is_terminal(record):
        return False
    data = record["data"]
    data["status"] = "CANCELED"
    data["additional_data"] = {**data["additional_data"], "canceled_by": "kill", "stopped_at": now}
    return True


def _finish(record: dict[str, Any], now: str) -> None:
    data, documents = record["data"], record["documents"]
    outcome = record["outcome"]
    if outcome == "completed":
        data["status"] = "COMPLETED"
        data["outputs"] = [
            {"documents_processed": documents, "documents_enriched": documents, "errors": 0}
        ]
    elif outcome in _PLAIN_ENDS:
        data["status"] = _PLAIN_ENDS[outcome]
        if outcome == "completed_with_errors":
            data["error"] = record["error_message"]
            data["outputs"] = [
                {"documents_processed": documents, "documents_enriched": 0, "errors": documents}
            ]
    elif outcome == "failed":
        data["status"] = "FAILED"
        data["error"] = record["error_message"]
        data["additional_data"] = {**data["additional_data"], "error": record["error_message"]}
    else:
        # Stopped by its time budget: what was enriched stays, and the stats say where.
        budget = record.get("budget") or {}
        data["status"] = "CANCELED"
        data["additional_data"] = {
            **data["additional_data"],
            "stats": {
                "budget": budget,
                "spent": {"time_ms": budget.get("max_time_ms")},
                "stopped_at": now,
                "documents_processed": documents // 2,
            },
        }
