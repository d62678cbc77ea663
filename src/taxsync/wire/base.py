"""What every part of the wire format shares: request and response model rules, id
patterns, pagination, errors, filters, and the defaults a model implies.

Request models forbid unknown keys, as the real API has since 2026-11-02. Response
models allow them: a live resource may carry legacy keys that we report but never
treat as drift.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
)

COLLECTION_ID_PATTERN = r"^col_[a-zA-Z0-9_]+$"
RETRIEVER_ID_PATTERN = r"^ret_[a-zA-Z0-9_]+$"

CollectionId = Annotated[str, Field(pattern=COLLECTION_ID_PATTERN)]
RetrieverId = Annotated[str, Field(pattern=RETRIEVER_ID_PATTERN)]


class RequestModel(BaseModel):
    """A model the API receives: unknown keys are a 422 ``extra_forbidden``; NaN and
    infinity (which pydantic would read from strings like 'nan') cannot be sent as JSON."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PagedListRequest(RequestModel):
    """The body of a list route that pages by body keys (taxonomies, collections,
    namespaces): where the page starts and how long it is, then what to list."""

    limit: StrictInt | None = Field(default=None, ge=1, le=1000)
    page_size: StrictInt | None = Field(default=None, ge=1, le=1000)
    offset: StrictInt | None = Field(default=None, ge=0, le=10000)
    page: StrictInt | None = Field(default=None, ge=1)
    search: str | None = None
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    case_sensitive: bool | None = False


class ResponseModel(BaseModel):
    """A model the API returns: unknown keys are kept, never fatal."""

    model_config = ConfigDict(extra="allow")


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The non-null defaults of a model's fields: what the server fills in and echoes back."""
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if not field.is_required() and field.default is not None
    }


class PaginationResponse(ResponseModel):
    total: int | None = None
    page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    next_page: str | None = None
    previous_page: str | None = None
    next_cursor: str | None = None


# A resource a list could not read in full (a list answer's ``warnings``); no docstring, so
# the schema stays the API's.
class DegradedEntry(ResponseModel):
    resource: str
    id: str | None = None
    reason: str
    next_step: str
    stage: str | None = None


class ErrorDetail(ResponseModel):
    message: str
    type: str
    code: str | None = None
    details: dict[str, Any] | None = None


class ErrorResponse(ResponseModel):
    success: bool | None = False
    status: int
    error: ErrorDetail


class LogicalOperatorInput(BaseModel):
    """The ``AND``/``OR``/``NOT`` filter shape; other keys are allowed (field shorthand)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    AND: list[Any] | None = None
    OR: list[Any] | None = None
    NOT: list[Any] | None = None
    case_sensitive: bool | None = False


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
