"""Reading a request: its JSON body validated with the wire models, its query
parameters, and the paging a list asks for; anything invalid is a 422 (or 400) envelope
that names the offending keys."""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, NoReturn, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Field, Tag, TypeAdapter, ValidationError
from starlette.requests import Request

from taxsync.emulator.query import ListQuery
from taxsync.emulator.replies import ErrorReply
from taxsync.wire import COLLECTION_READ_ONLY_FIELDS, PatchCollectionRequest

MAX_OFFSET = 10000
_M = TypeVar("_M", bound=BaseModel)
PAGE_SIZE = TypeAdapter(Annotated[int, Field(ge=1, le=1000)])
OFFSET = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_OFFSET)])
POSITIVE = TypeAdapter(Annotated[int, Field(ge=1)])
BOOL = TypeAdapter(bool)


async def optional_body(request: Request, model: type[_M]) -> _M | None:
    """Validate an optional JSON body with a wire model; None when there is no body."""
    raw = await request.body()
    return _validate_body(raw, model) if raw.strip() else None


async def required_body(request: Request, model: type[_M]) -> _M:
    """Validate a required JSON body with a wire model; 422 envelopes on failure."""
    raw = await request.body()
    if not raw.strip():
        raise ErrorReply(
            422,
            "Request validation failed: a JSON body is required",
            {"validation_errors": [{"loc": ["body"], "msg": "Field required", "type": "missing"}]},
        )
    return _validate_body(raw, model)


async def patch_collection_body(request: Request) -> PatchCollectionRequest:
    """The PATCH body: read-only fields are a 400 (before unknown keys, a 422)."""
    raw = await request.body()
    if not raw.strip():
        # No body at all is the same empty update as {}: a 400, not a 422.
        return PatchCollectionRequest()
    data = parse_json(raw)
    read_only = (
        [key for key in data if key in COLLECTION_READ_ONLY_FIELDS]
        if isinstance(data, dict)
        else []
    )
    if read_only:
        raise ErrorReply(
            400,
            f"Read-only collection field(s) {', '.join(read_only)} cannot be changed with "
            "PATCH (source, feature_extractor and field_passthrough need a clone)",
            {"read_only_fields": read_only},
        )
    return validate_data(data, PatchCollectionRequest)


def _validate_body(raw: bytes, model: type[_M]) -> _M:
    return validate_data(parse_json(raw), model)


def parse_json(raw: bytes) -> Any:
    """The body as JSON; a 422 envelope when it is not JSON (NaN and Infinity included)."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        position = getattr(exc, "pos", 0)
        raise ErrorReply(
            422,
            "Request validation failed: the body is not valid JSON",
            {
                "validation_errors": [
                    {
                        "loc": ["body", position],
                        "msg": f"JSON decode error: {exc}",
                        "type": "json_invalid",
                    }
                ]
            },
        ) from None


def validate_data(data: Any, model: type[_M]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, ("body",), model)


def query_value(request: Request, name: str, adapter: TypeAdapter[Any]) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        _raise_validation(exc, ("query", name), None)


def _raise_validation(
    exc: ValidationError, prefix: tuple[str, ...], model: type[BaseModel] | None
) -> NoReturn:
    """Turn pydantic errors into a 422 envelope; unknown keys list the accepted keys."""
    errors: list[dict[str, Any]] = []
    unknown: list[str] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *error["loc"]]
        entry: dict[str, Any] = {"loc": loc, "msg": error["msg"], "type": error["type"]}
        if error["type"] == "extra_forbidden" and model is not None:
            accepted = accepted_keys(model, tuple(error["loc"][:-1]))
            entry["msg"] = f"Extra inputs are not permitted; accepted keys: {', '.join(accepted)}"
            entry["accepted_keys"] = accepted
            unknown.append(
                f"'{'.'.join(str(p) for p in loc)}' (accepted keys: {', '.join(accepted)})"
            )
        errors.append(entry)
    message = "Request validation failed"
    if unknown:
        message += ": unknown key(s) " + "; ".join(unknown)
    raise ErrorReply(422, message, {"validation_errors": errors})


def accepted_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model`` ([] if ambiguous)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    models = [a for _, a in _members(annotation) if _is_model(a)]
    return list(models[0].model_fields) if len(models) == 1 else []


def _members(annotation: Any) -> list[tuple[str | None, Any]]:
    """Flatten Optional/Union/Annotated into (union tag, type) pairs."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        tag = next((m.tag for m in metadata if isinstance(m, Tag)), None)
        return [(tag or inner_tag, inner) for inner_tag, inner in _members(base)]
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) if arg is not type(None) for m in _members(arg)]
    return [(None, annotation)]


def _step(annotation: Any, part: Any) -> Any:
    members = _members(annotation)
    if isinstance(part, int):
        return next((get_args(a)[0] for _, a in members if get_origin(a) is list), None)
    for tag, member in members:
        if tag == part:
            return member
    for _, member in members:
        if _is_model(member) and part in member.model_fields:
            return member.model_fields[part].annotation
    return None


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def list_query(
    request: Request, body: BaseModel | None, *, default_limit: int, max_limit: int
) -> ListQuery:
    """Resolve page size, offset and cursor: body beats query, ``limit`` beats ``page_size``.

    Bodies without pagination keys (retrievers, tasks) page by the query alone."""
    query_limit = query_value(request, "limit", PAGE_SIZE)
    query_page_size = query_value(request, "page_size", PAGE_SIZE)
    query_offset = query_value(request, "offset", OFFSET)
    query_page = query_value(request, "page", POSITIVE)
    include_total = bool(query_value(request, "include_total", BOOL))
    cursor = next(
        (
            request.query_params[name]
            for name in ("cursor", "next_cursor", "after")
            if request.query_params.get(name)
        ),
        None,
    )
    size = first(
        getattr(body, "limit", None),
        getattr(body, "page_size", None),
        query_limit,
        query_page_size,
    )
    limit = min(size or default_limit, max_limit)
    offset = first(getattr(body, "offset", None), query_offset)
    page = first(getattr(body, "page", None), query_page)
    if offset is None and page is not None:
        offset = (page - 1) * limit
        if offset > MAX_OFFSET:
            raise ErrorReply(
                400,
                f"Offset paging cannot go past {MAX_OFFSET} items; use the cursor",
                {"page": page, "limit": limit},
            )
    filters = getattr(body, "filters", None)
    if isinstance(filters, BaseModel):  # a typed LogicalOperatorInput: back to the JSON sent
        filters = filters.model_dump(mode="json", exclude_unset=True)
    return ListQuery(
        limit=limit,
        cursor=cursor,
        offset=offset,
        filters=filters,
        search=getattr(body, "search", None),
        sort=getattr(body, "sort", None),
        sorts=getattr(body, "sorts", None),
        case_sensitive=bool(getattr(body, "case_sensitive", False)),
        include_total=include_total,
    )


def first(*values: Any) -> Any:
    """The first value that is not None (None if all are)."""
    return next((v for v in values if v is not None), None)
