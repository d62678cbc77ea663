"""Listing for the emulator: filters, search, sort and keyset-cursor pagination.

Pure functions over ``(seq, view)`` rows (plain JSON dicts in creation order); the store
decides which rows, this module decides which page of them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from taxsync.emulator.errors import BadRequest


@dataclass(frozen=True)
class ListQuery:
    """A resolved list request: page size already capped, body-over-query precedence applied."""

    limit: int = 100
    cursor: str | None = None
    offset: int | None = None
    filters: dict[str, Any] | None = None
    search: str | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    case_sensitive: bool = False
    include_total: bool = False
    #: ``"logical"``: the AND/OR/NOT condition lists of most list routes; ``"mongo"``: the
    #: ``{field: value}`` / ``{field: {"$in": [...]}}`` dialect of the retrievers list.
    filter_dialect: str = "logical"


@dataclass
class Page:
    """One page of a list, plus what the response's ``pagination`` object needs."""

    results: list[dict[str, Any]]
    total_count: int
    next_cursor: str | None
    page: int
    page_size: int
    include_total: bool = False
    stats: dict[str, Any] | None = None

    def pagination(self) -> dict[str, Any]:
        """The ``PaginationResponse`` object; totals only when ``include_total`` was asked."""
        total_pages = -(-self.total_count // self.page_size) if self.include_total else None
        return {
            "total": self.total_count if self.include_total else None,
            "page": self.page,
            "page_size": self.page_size,
            "total_pages": total_pages,
            "next_page": None,
            "previous_page": None,
            "next_cursor": self.next_cursor,
        }


_STRING_OPERATORS = {
    "contains": lambda a, b: b in a,
    "starts_with": lambda a, b: a.startswith(b),
    "ends_with": lambda a, b: a.endswith(b),
}
_ORDER_OPERATORS = {
    "gt": lambda c: c > 0,
    "gte": lambda c: c >= 0,
    "lt": lambda c: c < 0,
    "lte": lambda c: c <= 0,
}
_FIELD_ALIASES = {"taxonomy_type": "config.taxonomy_type"}


_Keyed = tuple[list[Any], dict[str, Any]]


def paginate(
    rows: list[tuple[int, dict[str, Any]]],
    query: ListQuery,
    *,
    text_fields: tuple[str, ...],
    with_stats: bool = False,
) -> Page:
    """Filter, sort and slice ``(seq, view)`` rows that arrive in creation order."""
    case_sensitive = bool(query.case_sensitive)
    if query.filters:
        matches = _mongo_matches if query.filter_dialect == "mongo" else _matches
        rows = [r for r in rows if matches(r[1], query.filters, case_sensitive)]
    if query.search:
        pattern = _search_pattern(query.search, case_sensitive)
        rows = [r for r in rows if any(_search_hit(r[1], f, pattern) for f in text_fields)]
    sort_spec = _parse_sort(query.sort, query.sorts)
    keyed = [(_sort_key(view, sort_spec, seq), view) for seq, view in rows]
    if sort_spec:

        def by_key(a: _Keyed, b: _Keyed) -> int:
            return _compare_keys(sort_spec, a[0], b[0])

        keyed.sort(key=functools.cmp_to_key(by_key))
    limit = query.limit
    if query.cursor is not None:
        after, page_no = _decode_cursor(query.cursor, sort_spec)
        start = _first_after(keyed, after, sort_spec)
    else:
        start = query.offset or 0
        page_no = start // limit + 1
    window = keyed[start : start + limit]
    more = start + limit < len(keyed)
    next_cursor = _encode_cursor(window[-1][0], sort_spec, page_no) if more and window else None
    return Page(
        results=[clone(view) for _, view in window],
        total_count=len(keyed),
        next_cursor=next_cursor,
        page=page_no,
        page_size=limit,
        include_total=query.include_total,
        stats=_taxonomy_stats([view for _, view in keyed]) if with_stats else None,
    )


def _taxonomy_stats(views: list[dict[str, Any]]) -> dict[str, int]:
    types = [view["config"].get("taxonomy_type") for view in views]
    return {
        "total_taxonomies": len(views),
        "flat_taxonomies": types.count("flat"),
        "hierarchical_taxonomies": types.count("hierarchical"),
        "taxonomies_with_retrievers": sum(1 for v in views if v["config"].get("retriever_id")),
    }


def _field(view: dict[str, Any], path: str) -> Any:
    value: Any = view
    for part in _FIELD_ALIASES.get(path, path).split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _candidates(view: dict[str, Any], path: str) -> list[Any]:
    """Every value a dot path reaches: a list on the way fans out over its elements, and a
    list at the end offers itself and each element (so ``taxonomy_applications.taxonomy_id``
    and ``collection_ids`` match if any element does). Nothing reached counts as one null."""
    values: list[Any] = [view]
    for part in _FIELD_ALIASES.get(path, path).split("."):
        stepped: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            stepped += [item.get(part) for item in items if isinstance(item, dict)]
        values = stepped
    reached = [
        v for value in values for v in ([value, *value] if isinstance(value, list) else [value])
    ]
    return reached or [None]


def _fold(value: Any, case_sensitive: bool) -> Any:
    return value if case_sensitive or not isinstance(value, str) else value.casefold()


def _matches(view: dict[str, Any], filters: dict[str, Any], case_sensitive: bool) -> bool:
    """Evaluate a LogicalOperatorInput: AND / OR / NOT lists plus ``field: value`` shorthand."""
    if not isinstance(filters, dict):
        raise BadRequest("filters must be an object", {"filters": filters})
    case_sensitive = bool(filters.get("case_sensitive", case_sensitive))
    for key, value in filters.items():
        if key == "case_sensitive":
            continue
        if key in ("AND", "OR", "NOT"):
            if not isinstance(value, list):
                raise BadRequest(f"filters.{key} must be a list", {"filters": filters})
            results = [_matches_item(view, item, case_sensitive) for item in value]
            ok = all(results) if key == "AND" else any(results) if key == "OR" else not any(results)
        else:
            ok = _condition(view, key, "eq", value, case_sensitive)
        if not ok:
            return False
    return True


def _matches_item(view: dict[str, Any], item: Any, case_sensitive: bool) -> bool:
    if isinstance(item, dict) and "field" in item:
        return _condition(
            view, item["field"], item.get("operator") or "eq", item.get("value"), case_sensitive
        )
    return _matches(view, item, case_sensitive)


def _condition(
    view: dict[str, Any], field: Any, operator: Any, value: Any, case_sensitive: bool
) -> bool:
    if not isinstance(field, str):
        raise BadRequest("a filter condition's field must be a string", {"field": field})
    candidates = _candidates(view, field)
    if operator in ("exists", "is_null"):
        # Presence is a property of the path, not of one reached value.
        present = any(a is not None for a in candidates)
        wanted = bool(value if value is not None else True)
        return present == wanted if operator == "exists" else (not present) == wanted
    # Negative operators hold only if no reached value matches (as MongoDB reads them).
    if operator in _NEGATIONS:
        return not any(
            _test(a, _NEGATIONS[operator], value, field, case_sensitive) for a in candidates
        )
    return any(_test(a, operator, value, field, case_sensitive) for a in candidates)


_NEGATIONS = {"ne": "eq", "nin": "in"}


def _test(actual: Any, operator: Any, value: Any, field: str, case_sensitive: bool) -> bool:
    """One reached value against one operator."""
    actual = _fold(actual, case_sensitive)
    wanted = _fold(value, case_sensitive)
    if operator == "eq":
        return bool(actual == wanted)
    if operator == "in":
        if not isinstance(value, list):
            raise BadRequest("operator 'in' needs a list value", {"field": field})
        return actual in [_fold(v, case_sensitive) for v in value]
    if operator in _STRING_OPERATORS:
        return (
            isinstance(actual, str)
            and isinstance(wanted, str)
            and _STRING_OPERATORS[operator](actual, wanted)
        )
    if operator == "regex":
        flags = 0 if case_sensitive else re.IGNORECASE
        try:
            return isinstance(actual, str) and re.search(str(value), actual, flags) is not None
        except re.error as exc:
            raise BadRequest(f"invalid regex {value!r}: {exc}", {"field": field}) from exc
    if operator in _ORDER_OPERATORS:
        if actual is None or wanted is None:
            return False
        return _ORDER_OPERATORS[operator](_cmp(_rank(actual), _rank(wanted)))
    raise BadRequest(
        f"Filter operator '{operator}' is not supported here",
        {"field": field, "operator": operator},
    )


_MONGO_OPERATORS = {"$eq": "eq", "$ne": "ne", "$in": "in", "$nin": "nin", "$exists": "exists"}


def _mongo_matches(view: dict[str, Any], filters: dict[str, Any], case_sensitive: bool) -> bool:
    """Evaluate a Mongo-style filter: ``{field: value}`` is equality, ``{field: {"$in": [...]}}``
    (and ``$eq``, ``$ne``, ``$nin``, ``$exists``) an operator; all keys must hold."""
    if not isinstance(filters, dict):
        raise BadRequest("filters must be an object", {"filters": filters})
    for field, spec in filters.items():
        if field.startswith("$"):
            raise BadRequest(
                f"Filter operator '{field}' is not supported here", {"operator": field}
            )
        is_operators = (
            isinstance(spec, dict) and bool(spec) and all(k.startswith("$") for k in spec)
        )
        conditions = spec.items() if is_operators else [("$eq", spec)]
        for name, value in conditions:
            if name not in _MONGO_OPERATORS:
                raise BadRequest(
                    f"Filter operator '{name}' is not supported here",
                    {"field": field, "operator": name, "supported": list(_MONGO_OPERATORS)},
                )
            if not _condition(view, field, _MONGO_OPERATORS[name], value, case_sensitive):
                return False
    return True


def _search_pattern(search: str, case_sensitive: bool) -> re.Pattern[str]:
    """``*`` is a wildcard; anything else matches as a substring."""
    body = ".*".join(re.escape(part) for part in search.split("*"))
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def _search_hit(view: dict[str, Any], field: str, pattern: re.Pattern[str]) -> bool:
    value = view.get(field)
    return isinstance(value, str) and pattern.search(value) is not None


SortSpec = tuple[tuple[str, str], ...]


def _parse_sort(sort: dict[str, Any] | None, sorts: list[dict[str, Any]] | None) -> SortSpec:
    """``sorts`` (a list, first is primary) beats the legacy single ``sort``."""
    items = sorts if sorts else ([sort] if sort else [])
    spec = []
    for item in items:
        field = item.get("field") if isinstance(item, dict) else None
        direction = str(item.get("direction") or "asc").lower() if isinstance(item, dict) else ""
        if not isinstance(field, str) or not field or direction not in ("asc", "desc"):
            raise BadRequest(
                "each sort must be {field: <name>, direction: 'asc' | 'desc'}", {"sort": item}
            )
        spec.append((field, direction))
    return tuple(spec)


def _rank(value: Any) -> tuple[int, Any]:
    """A total order over JSON values: null < bool < number < string < anything else."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True))


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def _sort_key(view: dict[str, Any], spec: SortSpec, seq: int) -> list[Any]:
    """The values a cursor remembers: the sort fields' values, then the creation seq."""
    return [_field(view, field) for field, _ in spec] + [seq]


def _compare_keys(spec: SortSpec, a: list[Any], b: list[Any]) -> int:
    for index, (_, direction) in enumerate(spec):
        order = _cmp(_rank(a[index]), _rank(b[index]))
        if order:
            return order if direction == "asc" else -order
    return _cmp(a[-1], b[-1])


def _first_after(keyed: list[_Keyed], after: list[Any], spec: SortSpec) -> int:
    """Index of the first row that sorts after the cursor's row (keyset pagination)."""
    for index, (key, _) in enumerate(keyed):
        if _compare_keys(spec, key, after) > 0:
            return index
    return len(keyed)


def _encode_cursor(key: list[Any], spec: SortSpec, page_no: int) -> str:
    payload = {"k": key, "s": [list(item) for item in spec], "p": page_no}
    return (
        base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def _decode_cursor(cursor: str, spec: SortSpec) -> tuple[list[Any], int]:
    """Return (key of the last row seen, number of the page it was on)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key, sort, page_no = payload["k"], payload["s"], int(payload["p"])
        if not isinstance(key, list) or len(key) != len(spec) + 1 or not isinstance(key[-1], int):
            raise ValueError("bad key")
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise BadRequest("Invalid pagination cursor", {"cursor": cursor}) from None
    if [tuple(item) for item in sort] != list(spec):
        raise BadRequest("The cursor was issued for a different sort order", {"cursor": cursor})
    return key, page_no + 1


def clone(value: Any) -> Any:
    """Deep copy of plain JSON data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone(item) for item in value]
    return value
