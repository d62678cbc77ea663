"""The character rules of manifests: what names, keys and free text may hold.

Names, namespaces, keys and ids travel in URLs, headers and terminal output, so they hold
no control, line-separator or bidirectional-text character at all; free text keeps
newlines and tabs. Messages show a refused character by its code point, never as itself.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from taxsync.model import FieldPath

# Invisible characters that reorder or hide text (Trojan Source): bidi embeddings,
# overrides and isolates, and the left-to-right, right-to-left and Arabic letter marks.
_BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Names, namespaces, keys and ids: no control character at all (C0 with tab, newline and
# carriage return, DEL, C1), no line or paragraph separator, no bidi control.
NOT_IN_NAMES = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI_CONTROLS}]")
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
    text = str(path)
    return NOT_IN_NAMES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def describe_character(character: str) -> str:
    code = ord(character)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        kind = "a control character"
    elif code in (0x2028, 0x2029):
        kind = "a line separator"
    else:
        kind = "an invisible bidirectional-text control"
    return f"{kind} U+{code:04X}"


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
