"""Where a change's fields are declared: the manifest line a reviewer should look at.

A diff names fields the way people read them (``config.hierarchical_nodes[col_search].label``,
an item of a keyed list by its key); the loader remembers positions by the manifest's own
shape (``config.hierarchical_nodes[3].label``, by index). This module turns the one into
the other, so a change points at the first line it touches rather than at the
taxonomy's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from taxsync.errors import location
from taxsync.model import KEYED_LISTS, DesiredTaxonomy
from taxsync.plan import FieldChange

# A dotted path's parts: a name, or a bracketed index or key (which may hold dots).
_PART = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


def changed_source(desired: DesiredTaxonomy, diff: Iterable[FieldChange]) -> str:
    """``file:line`` of the first manifest line the diff touches; the name's line when no
    field of it is declared there (only live state has it, or the manifest is not a file
    taxsync read)."""
    lines = [desired.position(spec_path(desired, field.path))[0] for field in diff]
    return location(desired.source.file, min(lines, default=desired.source.line))


def spec_path(desired: DesiredTaxonomy, path: str) -> str:
    """A diff's field path as the loader's positions name it: keyed-list keys as indexes.

    Where the manifest holds no such item (a field being removed), the path stops at the
    deepest part it does hold, which is where the position lookup lands anyway.
    """
    value: Any = {"config": desired.config, "metadata": desired.metadata}
    out = ""
    field = ""
    for key, name in _PART.findall(path):
        if name:
            out, field = (f"{out}.{name}" if out else name), name
            value = value.get(name) if isinstance(value, dict) else None
            continue
        index = _index(value, key, KEYED_LISTS.get(field))
        if index is None:
            return out
        out, value = f"{out}[{index}]", value[index]
    return out


def _index(items: Any, key: str, key_fields: tuple[str, ...] | None) -> int | None:
    if not isinstance(items, list):
        return None
    if key_fields is None:
        return int(key) if key.isdigit() and int(key) < len(items) else None
    for index, item in enumerate(items):
        if isinstance(item, dict):
            found = "/".join(str(item[f]) for f in key_fields if item.get(f) is not None)
            if found == key:
                return index
    return None
