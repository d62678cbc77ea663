"""Retrievers on the wire: listed to check the ``retriever_id`` a taxonomy names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
)

from taxsync.wire.base import (
    DegradedEntry,
    PaginationResponse,
    RequestModel,
    ResponseModel,
)


class ListRetrieversRequest(RequestModel):
    """No pagination keys: paging is by query parameters only. ``filters`` is Mongo-style."""

    search: str | None = None
    filters: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    sort: dict[str, Any] | None = None
    case_sensitive: bool | None = False


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
