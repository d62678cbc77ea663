"""What a namespace and a taxonomy name may be, wherever one enters taxsync.

Both travel as URL path segments, and a namespace also as an HTTP header value. They come
from manifests, seed files, ``-n/--namespace`` and saved plans; each source checks them
with these rules before any request is made, and shows a refused value escaped (a newline
in a value must never become a line break in a message).
"""

from __future__ import annotations

import re

from taxsync.errors import ConfigError

# Invisible characters that reorder or hide text (Trojan Source): bidi embeddings,
# overrides and isolates, and the left-to-right, right-to-left and Arabic letter marks.
BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Names, namespaces, keys and ids: no control character at all (C0 with tab, newline and
# carriage return, DEL, C1), no line or paragraph separator, no bidi control.
NOT_IN_NAMES = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")

NAMESPACE_MAX = 64
NAME_MAX = 256


def shown(text: str) -> str:
    """``text`` as a message may print it: control and bidi characters as ``\\uXXXX``."""
    return NOT_IN_NAMES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def quoted(value: str, limit: int = 80) -> str:
    """``value`` quoted for a message: escaped, and cut short past ``limit`` characters (a
    hostile file may hold a namespace of a megabyte)."""
    cut = value if len(value) <= limit else value[: limit - 3] + "..."
    return shown(repr(cut))


def describe_character(character: str) -> str:
    code = ord(character)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        kind = "a control character"
    elif code in (0x2028, 0x2029):
        kind = "a line separator"
    else:
        kind = "an invisible bidirectional-text control"
    return f"{kind} U+{code:04X}"


def name_problem(name: str, limit: int = NAME_MAX) -> str | None:
    """Why ``name`` cannot name a taxonomy (a phrase such as ``must not be empty``), or None."""
    if not name:
        return "must not be empty"
    if len(name) > limit:
        return f"must be at most {limit} characters"
    bad = NOT_IN_NAMES.search(name)
    if bad:
        return f"must not contain {describe_character(bad.group())}"
    if name in (".", ".."):
        return f"must not be {name!r} (it is a URL path segment)"
    return None


def namespace_problem(namespace: str) -> str | None:
    """Why ``namespace`` cannot be a namespace, or None: a name's rules, and as it is also
    an HTTP header value, ASCII without whitespace at its ends, and no ``/``."""
    problem = name_problem(namespace, NAMESPACE_MAX)
    if problem:
        return problem
    if not namespace.isascii():
        character = next(c for c in namespace if not c.isascii())
        return f"must be ASCII (it is sent in an HTTP header): U+{ord(character):04X}"
    if namespace != namespace.strip():
        return "must not start or end with whitespace"
    if "/" in namespace:
        return "must not contain '/' (it is a URL path segment)"
    return None


class BadIdentifier(ConfigError):
    """A namespace or name an option gives that breaks the rules; the message names the
    option, and it is refused before any request."""


def check_namespace(namespace: str, where: str) -> str:
    """``namespace`` itself, or BadIdentifier(``"<where> <value>: <why>"``)."""
    problem = namespace_problem(namespace)
    if problem:
        raise BadIdentifier(f"{where} {quoted(namespace)}: {problem}")
    return namespace


def check_name(name: str, where: str) -> str:
    """``name`` itself, or BadIdentifier(``"<where> <value>: <why>"``)."""
    problem = name_problem(name)
    if problem:
        raise BadIdentifier(f"{where} {quoted(name)}: {problem}")
    return name
