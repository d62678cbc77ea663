"""Taxonomies on the wire: their configuration (flat or hierarchical), the requests that
create, version, patch and list them, and what the API answers (namespaces included).

``TaxonomyConfig`` picks its variant the way the API's untagged union does, and the
server's defaults are derived from the models, so they never count as differences.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    StrictInt,
    Tag,
)

from taxsync.wire.base import (
    CollectionId,
    PagedListRequest,
    PaginationResponse,
    RequestModel,
    ResponseModel,
    RetrieverId,
    model_defaults,
)

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


class ListTaxonomiesRequest(PagedListRequest):
    pass


class ListNamespacesRequest(PagedListRequest):
    pass


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
