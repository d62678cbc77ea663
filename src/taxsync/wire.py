"""Pydantic models of the Mixpeek taxonomy wire format.

One source of truth, shared by the manifest loader (which validates a manifest's
``spec.config`` with these models), the HTTP client (which parses responses with them)
and the emulator (which validates request bodies with them).

Request models forbid unknown keys, as the real API has since 2026-11-02. Response
models allow them: a live taxonomy may carry legacy keys that we report but never
treat as drift.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

COLLECTION_ID_PATTERN = r"^col_[a-zA-Z0-9_]+$"
RETRIEVER_ID_PATTERN = r"^ret_[a-zA-Z0-9_]+$"

CollectionId = Annotated[str, Field(pattern=COLLECTION_ID_PATTERN)]
RetrieverId = Annotated[str, Field(pattern=RETRIEVER_ID_PATTERN)]


class RequestModel(BaseModel):
    """A model the API receives: unknown keys are a 422 ``extra_forbidden``; NaN and
    infinity (which pydantic would read from strings like 'nan') cannot be sent as JSON."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ResponseModel(BaseModel):
    """A model the API returns: unknown keys are kept, never fatal."""

    model_config = ConfigDict(extra="allow")


# --- configuration --------------------------------------------------------------


class InputMapping(RequestModel):
    input_key: str
    source_type: Literal["payload", "literal", "vector", "blob"] | None = None
    path: str | None = None
    override: Any = None


class EnrichmentField(RequestModel):
    field_path: str
    target_field: str | None = None
    merge_mode: Literal["replace", "append"] | None = None


class SourceCollection(RequestModel):
    collection_id: str
    # None (omitted) copies the whole node payload; [] copies nothing. Keep them apart.
    enrichment_fields: list[EnrichmentField] | None = None


class CovariateConfig(RequestModel):
    field_path: str
    covariate_type: Literal["categorical", "numeric", "embedding", "cluster_id"]
    name: str = Field(min_length=1, max_length=100)
    binning_strategy: Literal["quartiles", "deciles", "custom"] | None = "quartiles"
    clustering_method: Literal["kmeans", "hdbscan"] | None = "kmeans"
    n_clusters: StrictInt | None = Field(default=10, ge=2, le=100)


class StepAnalyticsConfig(RequestModel):
    timestamp_field: str
    sequence_id_field: str
    step_key_source: Literal["assignment_label", "assignment_node_id", "field_path"] | None = None
    step_key_field_path: str | None = None
    covariates: list[CovariateConfig] | None = Field(default=None, max_length=20)
    max_sequence_duration_days: StrictInt | None = Field(default=None, ge=1, le=365)


class HierarchicalNode(RequestModel):
    collection_id: CollectionId
    parent_collection_id: CollectionId | None = None
    label: str | None = None
    summary: str | None = None
    keywords: list[str] | None = None
    retriever_id: RetrieverId | None = None
    enrichment_fields: list[EnrichmentField] | None = None
    input_mappings: list[InputMapping] | None = None


class FlatConfig(RequestModel):
    taxonomy_type: Literal["flat"] = "flat"
    retriever_id: str
    input_mappings: list[InputMapping]
    source_collection: SourceCollection
    top_k: StrictInt | None = Field(default=1, ge=1, le=50)
    step_analytics: StepAnalyticsConfig | None = None


class HierarchicalConfig(RequestModel):
    taxonomy_type: Literal["hierarchical"] = "hierarchical"
    retriever_id: str | None = None
    input_mappings: list[InputMapping] | None = None
    inference_strategy: Literal["schema", "cluster", "llm"] | None = None
    inference_collections: list[str] | None = None
    llm_provider: Literal["openai_chat_v1"] | None = None
    llm_model: str | None = None
    llm_prompt_template: str | None = None
    llm_sample_size: StrictInt | None = 0
    cluster_ids: list[str] | None = None
    cluster_overlap_threshold: float | None = 0.7
    hierarchical_nodes: list[HierarchicalNode] | None = None
    step_analytics: StepAnalyticsConfig | None = None
    path_field: str | None = None
    path_separator: str | None = Field(default="/", min_length=1)


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The non-null defaults of a model's fields: what the server fills in and echoes back."""
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if not field.is_required() and field.default is not None
    }


# Server defaults, derived from the models so there is one source of truth; they never
# count as differences. Nested models with defaults: only covariates have any.
SERVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": model_defaults(FlatConfig),
    "hierarchical": model_defaults(HierarchicalConfig),
}
COVARIATE_DEFAULTS = model_defaults(CovariateConfig)

# Keys whose presence alone marks a config as flat (they are required there).
_FLAT_ONLY_KEYS = ("source_collection",)


def config_tag(value: Any) -> str | None:
    """Pick the config variant the way the API's untagged union does.

    Without ``taxonomy_type`` a hierarchical config (all fields optional) is still
    unambiguous, but a flat one also matches the hierarchical variant: the SDK and the
    API refuse that as "multiple matches", so we return None, which pydantic reports
    with the custom error below.
    """
    if isinstance(value, BaseModel):
        return getattr(value, "taxonomy_type", None)
    if not isinstance(value, dict):
        return None
    declared = value.get("taxonomy_type")
    if declared is not None:
        return str(declared)
    if any(key in value for key in _FLAT_ONLY_KEYS):
        return None
    return "hierarchical"


TaxonomyConfig = Annotated[
    Annotated[FlatConfig, Tag("flat")] | Annotated[HierarchicalConfig, Tag("hierarchical")],
    Discriminator(
        config_tag,
        custom_error_type="ambiguous_taxonomy_type",
        custom_error_message=(
            "config is ambiguous or of unknown type: set taxonomy_type to 'flat' or 'hierarchical'"
        ),
    ),
]


# --- requests -------------------------------------------------------------------


class CreateTaxonomyRequest(RequestModel):
    taxonomy_name: str
    description: str | None = None
    config: TaxonomyConfig
    metadata: dict[str, Any] | None = None


class CreateTaxonomyVersionRequest(RequestModel):
    config: TaxonomyConfig
    description: str | None = None
    metadata: dict[str, Any] | None = None


class PatchTaxonomyRequest(RequestModel):
    taxonomy_name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class ListTaxonomiesRequest(RequestModel):
    limit: StrictInt | None = Field(default=None, ge=1, le=1000)
    page_size: StrictInt | None = Field(default=None, ge=1, le=1000)
    offset: StrictInt | None = Field(default=None, ge=0, le=10000)
    page: StrictInt | None = Field(default=None, ge=1)
    search: str | None = None
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    case_sensitive: bool | None = False


class ListNamespacesRequest(RequestModel):
    limit: StrictInt | None = Field(default=None, ge=1, le=1000)
    page_size: StrictInt | None = Field(default=None, ge=1, le=1000)
    offset: StrictInt | None = Field(default=None, ge=0, le=10000)
    page: StrictInt | None = Field(default=None, ge=1)
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    search: str | None = None
    case_sensitive: bool | None = False


# --- responses ------------------------------------------------------------------


class TaxonomyResponse(ResponseModel):
    taxonomy_id: str | None = None
    version: int | None = Field(default=1, ge=1)
    taxonomy_name: str
    description: str | None = None
    retriever_id: str | None = None
    input_mappings: list[dict[str, Any]] | None = None
    # Kept as plain JSON: live configs may hold legacy keys we must report, not reject.
    config: dict[str, Any]
    nodes: list[dict[str, Any]] | None = None
    ready: bool | None = True
    created_at: str | None = None
    metadata: dict[str, Any] | None = None


class PaginationResponse(ResponseModel):
    total: int | None = None
    page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    next_page: str | None = None
    previous_page: str | None = None
    next_cursor: str | None = None


class TaxonomyListStats(ResponseModel):
    total_taxonomies: int | None = 0
    flat_taxonomies: int | None = 0
    hierarchical_taxonomies: int | None = 0
    taxonomies_with_retrievers: int | None = 0


class ListTaxonomiesResponse(ResponseModel):
    results: list[TaxonomyResponse]
    pagination: PaginationResponse = Field(default_factory=PaginationResponse)
    total_count: int
    stats: TaxonomyListStats | None = None


class NamespaceModel(ResponseModel):
    object: str | None = "namespace"
    namespace_id: str | None = None
    namespace_name: str = Field(max_length=64)
    description: str | None = None
    namespace_ready: bool | None = True
    created_at: str | None = None
    updated_at: str | None = None


class ListNamespacesResponse(ResponseModel):
    results: list[NamespaceModel]
    pagination: PaginationResponse = Field(default_factory=PaginationResponse)
    total_count: int


class ErrorDetail(ResponseModel):
    message: str
    type: str
    code: str | None = None
    details: dict[str, Any] | None = None


class ErrorResponse(ResponseModel):
    success: bool | None = False
    status: int
    error: ErrorDetail


# =====================================================================================
# Collections, retrievers and backfill tasks (COLLECTIONS.md). A separate section: the
# taxonomy models above do not depend on anything below.
# =====================================================================================

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
#: Statuses after which a task never changes again (the enum docstring's list).
TASK_TERMINAL_STATUSES: tuple[str, ...] = (
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCELED",
)
#: Statuses a client keeps polling.
TASK_ACTIVE_STATUSES: tuple[str, ...] = ("PENDING", "QUEUED", "IN_PROGRESS", "PROCESSING")

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

#: Collection fields a PATCH may not change: 400, not 422 (COLLECTIONS.md §3.5, §10). The
#: first four are documented as immutable ("clone instead"); the rest are server-assigned.
COLLECTION_READ_ONLY_FIELDS: tuple[str, ...] = (
    "source",
    "feature_extractor",
    "field_passthrough",
    "tiering_rules",
    "collection_id",
    "input_schema",
    "output_schema",
    "source_bucket_schemas",
    "source_lineage",
    "vector_indexes",
    "payload_indexes",
    "disabled_reason",
    "trigger_id",
    "created_at",
    "updated_at",
    "lifecycle_state",
    "s3_vector_index",
    "last_lifecycle_transition",
    "document_count",
    "schema_version",
    "last_schema_sync",
    "vector_count",
    "taxonomy_count",
    "retriever_count",
    "indexing_status",
    "indexing_status_scoped",
    "warnings",
)


class LogicalOperatorInput(BaseModel):
    """The ``AND``/``OR``/``NOT`` filter shape; other keys are allowed (field shorthand)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    AND: list[Any] | None = None
    OR: list[Any] | None = None
    NOT: list[Any] | None = None
    case_sensitive: bool | None = False


class TaxonomyApplicationConfigInput(BaseModel):
    """One entry of a collection's ``taxonomy_applications``.

    Unknown keys are allowed, as in the API's schema (``additionalProperties: true``):
    the SDK keeps and re-emits them, and the emulator stores and echoes them.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    taxonomy_id: StrictStr
    execution_mode: Literal["materialize"] | None = None
    target_collection_id: str | None = None
    scroll_filters: LogicalOperatorInput | None = None
    execution_phase: StrictInt | None = Field(default=1, ge=1, le=3)
    priority: StrictInt | None = Field(default=0, ge=0, le=1000)
    hierarchical_enrichment_style: Literal["full_chain", "best_match", "combined"] | None = None


#: What the server fills into a stored entry the caller left them out of.
TAXONOMY_APPLICATION_DEFAULTS: dict[str, Any] = {"execution_phase": 1, "priority": 0}


def application_entries(entries: list[TaxonomyApplicationConfigInput]) -> list[dict[str, Any]]:
    """Entries as sent (explicit nulls and unknown keys kept) plus the server's defaults."""
    stored = []
    for entry in entries:
        sent = entry.model_dump(mode="json", exclude_unset=True)
        stored.append(
            {**sent, **{k: v for k, v in TAXONOMY_APPLICATION_DEFAULTS.items() if k not in sent}}
        )
    return stored


class PatchCollectionRequest(RequestModel):
    """The mutable fields of ``PATCH /v1/collections/{id}`` (the SDK types the body as a
    plain dict). Lists replace the stored list; absent keys stay as they are."""

    collection_name: str | None = Field(default=None, min_length=3, max_length=100)
    description: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    taxonomy_applications: list[TaxonomyApplicationConfigInput] | None = None
    schedule: dict[str, Any] | None = None
    tiering: dict[str, Any] | None = None
    index_map: dict[str, str] | None = None
    retriever_transform: dict[str, Any] | None = None

    @field_validator("taxonomy_applications")
    @classmethod
    def _one_entry_per_taxonomy(
        cls, entries: list[TaxonomyApplicationConfigInput] | None
    ) -> list[TaxonomyApplicationConfigInput] | None:
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries or []):
            if entry.taxonomy_id in seen:
                raise PydanticCustomError(
                    "duplicate_taxonomy_id",
                    "taxonomy_id '{taxonomy_id}' appears twice (entries {first} and {second})",
                    {
                        "taxonomy_id": entry.taxonomy_id,
                        "first": seen[entry.taxonomy_id],
                        "second": index,
                    },
                )
            seen[entry.taxonomy_id] = index
        return entries


class ListCollectionsRequest(RequestModel):
    limit: StrictInt | None = Field(default=None, ge=1, le=1000)
    page_size: StrictInt | None = Field(default=None, ge=1, le=1000)
    offset: StrictInt | None = Field(default=None, ge=0, le=10000)
    page: StrictInt | None = Field(default=None, ge=1)
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    search: str | None = None
    include_system: bool | None = False
    case_sensitive: bool | None = False


class ListRetrieversRequest(RequestModel):
    """No pagination keys: paging is by query parameters only. ``filters`` is Mongo-style."""

    search: str | None = None
    filters: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    sort: dict[str, Any] | None = None
    case_sensitive: bool | None = False


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


class TaxonomyApplicationConfigOutput(ResponseModel):
    taxonomy_id: str
    execution_mode: str | None = None
    target_collection_id: str | None = None
    scroll_filters: dict[str, Any] | None = None
    execution_phase: int | None = Field(default=1, ge=1, le=3)
    priority: int | None = Field(default=0, ge=0, le=1000)
    hierarchical_enrichment_style: str | None = None


class FeatureExtractorConfigOutput(ResponseModel):
    feature_extractor_name: str
    version: str
    feature_extractor_id: str
    params: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    input_mappings: dict[str, Any] | None = None
    field_passthrough: list[dict[str, Any]] | None = None
    include_all_source_fields: bool | None = False


class SourceConfigOutput(ResponseModel):
    type: Literal["bucket", "collection", "taxonomy", "cluster", "direct_upsert", "signals", "none"]
    bucket_ids: list[str] | None = Field(default=None, min_length=1)
    source_namespace_id: str | None = None
    collection_id: str | None = None
    collection_ids: list[str] | None = Field(default=None, min_length=1)
    inherited_bucket_ids: list[str] | None = None
    source_filters: dict[str, Any] | None = None
    field_map: dict[str, Any] | None = None


class CollectionResponse(ResponseModel):
    """A collection as the API returns it; the field order and defaults are the wire's."""

    collection_id: str | None = None
    collection_name: str = Field(min_length=3, max_length=100)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    feature_extractor: FeatureExtractorConfigOutput
    source: SourceConfigOutput
    source_bucket_schemas: dict[str, Any] | None = None
    source_lineage: list[dict[str, Any]] | None = None
    index_map: dict[str, str] | None = None
    vector_indexes: list[dict[str, Any]] | None = None
    payload_indexes: list[Any] | None = None
    embedding_task: str | None = None
    enabled: bool | None = True
    disabled_reason: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    trigger_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    lifecycle_state: str | None = "active"
    s3_vector_index: str | None = None
    last_lifecycle_transition: str | None = None
    tiering_rules: list[dict[str, Any]] | None = None
    tiering: dict[str, Any] | None = None
    document_count: int | None = None
    schema_version: int | None = 1
    last_schema_sync: str | None = None
    schema_sync_enabled: bool | None = True
    document_schema: dict[str, Any] | None = None
    schema_validation: Literal["strict", "warn", "off"] | None = "off"
    taxonomy_applications: list[TaxonomyApplicationConfigOutput] | None = None
    cluster_applications: list[dict[str, Any]] | None = None
    alert_applications: list[dict[str, Any]] | None = None
    retriever_enrichments: list[dict[str, Any]] | None = None
    retriever_transform: dict[str, Any] | None = None
    vector_count: int | None = None
    taxonomy_count: int | None = None
    retriever_count: int | None = None
    indexing_status: str | None = None
    indexing_status_scoped: bool | None = None
    # Create-time problems, as strings (unlike the DegradedEntry warnings of lists).
    warnings: list[str] | None = None


class DegradedEntry(ResponseModel):
    resource: str
    id: str | None = None
    reason: str
    next_step: str
    stage: str | None = None


class CollectionListStats(ResponseModel):
    total_documents: int | None = 0
    avg_documents_per_collection: float | None = 0.0
    collections_with_taxonomies: int | None = 0
    total_feature_extractors: int | None = 0
    total_taxonomies: int | None = 0
    total_retrievers: int | None = 0


class ListCollectionsResponse(ResponseModel):
    results: list[CollectionResponse]
    pagination: PaginationResponse
    total_count: int
    stats: CollectionListStats | None = None
    warnings: list[DegradedEntry] | None = None


class StageConfigOutput(ResponseModel):
    stage_name: str = Field(min_length=1)
    stage_type: Literal["filter", "sort", "reduce", "apply", "enrich"] | None = None
    config: dict[str, Any]
    batch_size: str | None = None
    on_error: str | None = None
    output_alias: str | None = None
    # A mirror of config.parameters.
    parameters: dict[str, Any]


class RetrieverModelOutput(ResponseModel):
    """A retriever as the API returns it; ``fusion`` is required but nullable."""

    retriever_id: str | None = None
    retriever_name: str = Field(min_length=1)
    description: str | None = None
    collection_ids: list[str] | None = None
    stages: list[StageConfigOutput] = Field(min_length=1)
    input_schema: dict[str, Any] | None = None
    budget_limits: dict[str, Any] | None = None
    feature_dependencies: list[dict[str, Any]] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    display_config: dict[str, Any] | None = None
    version: int | None = Field(default=1, ge=1)
    created_at: str | None = None
    updated_at: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    is_published: bool | None = False
    marketplace_listing_id: str | None = None
    fusion: str | None
    # "Always equal to collection_ids".
    collection_identifiers: list[str]


class ListRetrieversResponse(ResponseModel):
    results: list[RetrieverModelOutput] | None = None
    # The count is ``total`` here, not ``total_count``.
    total: int | None = 0
    pagination: PaginationResponse | None = None
    warnings: list[DegradedEntry] | None = None


class ApplyTaxonomyResponse(ResponseModel):
    task_id: str
    status: str  # a free string on the wire, not the task status enum
    collection_id: str
    taxonomy_id: str
    estimated_documents: int | None = None


class TaskResponse(ResponseModel):
    """A task. ``status`` and ``task_type`` are kept as plain strings: the API adds values,
    and a reader must not fail on one it does not know (COLLECTIONS.md §4.2)."""

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


class GenericDeleteResponse(ResponseModel):
    message: str | None = "Successfully deleted"
    success: bool | None = True


def response_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Every optional field of a response model with its default, in wire order (nulls too)."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required()
    }
