"""Collections on the wire: their ``taxonomy_applications`` (what ``appliedTo`` becomes),
the PATCH that changes them, the fields a PATCH may not touch, and the collections the
API lists."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)
from pydantic_core import PydanticCustomError

from taxsync.wire.base import (
    DegradedEntry,
    LogicalOperatorInput,
    PagedListRequest,
    PaginationResponse,
    RequestModel,
    ResponseModel,
)

#: Collection fields a PATCH may not change: 400, not 422 (docs/api-contract.md#patch-a-collection). The
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


class ListCollectionsRequest(PagedListRequest):
    include_system: bool | None = False


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
