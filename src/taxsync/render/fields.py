"""A diff's fields as the short lines people read: an object added or removed whole (a
hierarchical node, an input mapping) becomes one line per field it holds, never a JSON
object on one line that scrolls sideways.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from taxsync.model import KEYED_LISTS
from taxsync.plan import FieldChange


def leaf_changes(diff: Iterable[FieldChange]) -> Iterator[FieldChange]:
    """Each field change, with an object (or list of objects) added or removed whole spread
    out into one change per field inside it; everything else as it is (a value changed
    from one thing to another stays one ``before → after``)."""
    for field in diff:
        if not field.before_present:
            leaves = _spread(field.path, field.after)
            yield from (_added(p, v) for p, v in leaves) if leaves else (field,)
        elif not field.after_present:
            leaves = _spread(field.path, field.before)
            yield from (_removed(p, v) for p, v in leaves) if leaves else (field,)
        else:
            yield field


def _spread(path: str, value: Any) -> list[tuple[str, Any]] | None:
    """``(path, value)`` of every leaf inside an object or a list of objects; None for a
    value shown whole (a scalar, a list of scalars, an empty object)."""
    if isinstance(value, dict) and value:
        keyed = _is_keyed_list(path)
        pairs = ((f"{path}[{k}]" if keyed else f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        pairs = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    else:
        return None
    leaves: list[tuple[str, Any]] = []
    for inner, item in pairs:
        leaves += _spread(inner, item) or [(inner, item)]
    return leaves


def _is_keyed_list(path: str) -> bool:
    """Whether ``path`` names a keyed list itself (held as a map), not one of its items."""
    return not path.endswith("]") and path.rsplit(".", 1)[-1] in KEYED_LISTS


def _added(path: str, value: Any) -> FieldChange:
    return FieldChange(path=path, after=value, before_present=False)


def _removed(path: str, value: Any) -> FieldChange:
    return FieldChange(path=path, before=value, after_present=False)
