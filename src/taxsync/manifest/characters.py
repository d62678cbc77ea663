"""The character rules of manifests: what names, keys and free text may hold.

Names, namespaces, keys and ids travel in URLs, headers and terminal output, so they hold
no control, line-separator or bidirectional-text character at all; free text keeps
newlines and tabs. Messages show a refused character by its code point, never as itself.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from taxsync.identifiers import BIDI_CONTROLS as _BIDI_CONTROLS
from taxsync.identifiers import NOT_IN_NAMES as NOT_IN_NAMES
from taxsync.identifiers import describe_character as describe_character
from taxsync.identifiers import shown
from taxsync.model import FieldPath

# Free text (descriptions, other values): newlines and tabs are kept (values are quoted when
# printed); carriage returns, escapes and other controls are not.
NOT_IN_TEXT = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
# Values that name things (fields, collections, retrievers, nodes) follow the rule for names.
_NAME_VALUED_CONFIG_KEYS = frozenset(
    {
        "input_key",
        "field_path",
        "target_field",
        "collection_id",
        "parent_collection_id",
        "label",
        "retriever_id",
        "path_field",
        "timestamp_field",
        "sequence_id_field",
        "step_key_field_path",
    }
)


def shown_path(path: Path | str) -> str:
    """The path as messages print it: control and bidi characters escaped."""
    return shown(str(path))


def shown_key(key: str) -> str:
    """A key as a message may print it: escaped, and not too long."""
    shown = key if len(key) <= 40 else key[:37] + "..."
    return shown if not NOT_IN_NAMES.search(shown) else repr(shown)


def _names_something(path: FieldPath) -> bool:
    """Whether the string at ``path`` is a name, namespace or id (strict characters)."""
    if path[:1] == ("metadata",):
        return len(path) > 1 and path[1] in ("name", "namespace", "previousNames")
    if path[:2] == ("spec", "appliedTo"):
        return len(path) == 4 and path[3] in ("collection", "target_collection_id")
    if path[:2] != ("spec", "config") or len(path) < 3:
        return False
    last = path[-1]
    if isinstance(last, int):
        return path[-2] == "inference_collections"
    return last in _NAME_VALUED_CONFIG_KEYS


@functools.lru_cache(maxsize=4096)
def forbidden_at(path: FieldPath) -> re.Pattern[str]:
    """The characters a string at ``path`` must not hold (the same paths recur in every
    manifest: worked out once each)."""
    return NOT_IN_NAMES if _names_something(path) else NOT_IN_TEXT
