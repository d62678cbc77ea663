"""Backfills on the wire: ``apply-taxonomy`` on a collection and the tasks it starts, with
the statuses and types a task reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    StrictInt,
    StrictStr,
)

from taxsync.wire.base import (
    LogicalOperatorInput,
    PaginationResponse,
    RequestModel,
    ResponseModel,
)

TaskStatus = Literal[
    "PENDING",
    "QUEUED",
    "IN_PROGRESS",
    "PROCESSING",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCELED",
    "INTERRUPTED",
    "UNKNOWN",
    "SKIPPED",
    "DRAFT",
    "ACTIVE",
    "ARCHIVED",
    "SUSPENDED",
    "DEACTIVATED",
]
#: Statuses after which a task never changes again (the enum docstring's list; the
#: emulator ends its tasks in these). How taxsync reads them: ``plan.TASK_FAILED``.
TASK_TERMINAL_STATUSES: tuple[str, ...] = (
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCELED",
)

TaskType = Literal[
    "api_namespaces_create",
    "api_namespaces_delete",
    "api_namespaces_snapshot_create",
    "api_namespaces_snapshot_restore",
    "api_namespaces_migrations_run",
    "api_buckets_objects_create",
    "api_buckets_delete",
    "api_buckets_batches_process",
    "api_buckets_batches_submit",
    "api_buckets_uploads_create",
    "api_buckets_uploads_confirm",
    "api_buckets_uploads_batch_confirm",
    "api_collections_documents_create",
    "api_collections_documents_bulk_update",
    "api_collections_documents_bulk_delete",
    "api_collections_reembed",
    "api_collections_extraction_artifacts",
    "api_taxonomies_create",
    "api_taxonomies_execute",
    "api_taxonomies_materialize",
    "api_evaluations_run",
    "api_evaluations_dataset_create",
    "api_retrievers_publish",
    "api_manifest_apply",
    "api_retrievers_execute",
    "api_collections_export",
    "api_collections_trigger",
    "engine_feature_extractor_run",
    "engine_inference_run",
    "engine_object_processing",
    "engine_cluster_build",
    "thumbnail",
    "video_segment",
    "audio_segment",
    "converted_video",
    "materialize",
    "plugin_custom",
    "model_custom",
]
#: The task type of a backfill started by ``POST /v1/collections/{id}/apply-taxonomy``.
BACKFILL_TASK_TYPE = "api_taxonomies_materialize"


class ListTasksRequest(RequestModel):
    """No pagination keys: paging is by query parameters only."""

    status: TaskStatus | None = None
    task_type: TaskType | None = None
    filters: LogicalOperatorInput | None = None
    sort: dict[str, Any] | None = None
    search: str | None = None


class BudgetLimits(RequestModel):
    max_credits: float | None = Field(default=None, ge=0)
    max_time_ms: StrictInt | None = Field(default=None, ge=0)


class ApplyTaxonomyRequest(RequestModel):
    taxonomy_id: StrictStr
    scroll_filters: dict[str, Any] | None = None
    batch_size: StrictInt | None = Field(default=1000, ge=100, le=5000)
    parallelism: StrictInt | None = Field(default=4, ge=1, le=20)
    budget_limits: BudgetLimits | None = None


class ApplyTaxonomyResponse(ResponseModel):
    task_id: str
    status: str  # a free string on the wire, not the task status enum
    collection_id: str
    taxonomy_id: str
    estimated_documents: int | None = None


class TaskResponse(ResponseModel):
    """A task. ``status`` and ``task_type`` are kept as plain strings: the API adds values,
    and a reader must not fail on one it does not know (docs/api-contract.md#task-statuses)."""

    task_id: str
    task_type: str
    status: str
    inputs: list[str | dict[str, Any]] | None = None
    outputs: list[str | dict[str, Any]] | None = None
    additional_data: dict[str, Any] | None = None
    error: str | None = None
    cancellation: dict[str, Any] | None = None
    queue_position: int | None = None
    estimated_wait_minutes: float | None = None


class ListTasksResponse(ResponseModel):
    """No count: only ``results`` and ``pagination``."""

    results: list[TaskResponse]
    pagination: PaginationResponse
