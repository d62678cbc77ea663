"""Escaping: every string from a manifest, the API or a saved plan is untrusted, and each
output escapes it for where it lands. Text and step-log lines (``plain``), markdown prose
and HTML (``md_inline``), markdown code (``fenced``), JSON (``value``, ``json_safe``).
Benign text renders unchanged. Also the terminal's colours (``Style``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

# The colour of a diff line (and of a node of a tree), by its leading symbol.
DIFF_COLOUR = {"+": "32", "~": "33", "-": "31", ">": "36"}


class Style:
    """ANSI colour, or none (NO_COLOR, no terminal)."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text


# --- escaping ----------------------------------------------------------------------------
#
# One helper per place untrusted text lands:
#   visible       every output: control, format and separator characters become \u escapes
#   plain         a field in a text or step-log line (and markdown code): visible, and no
#                 GitHub Actions workflow command (``::cmd::`` at a line's start, ``##[cmd]``
#                 anywhere in a line) can be spelt
#   md_inline     markdown prose, table cells and HTML: no markup, no entity, no @mention
#   fenced        a markdown code block
#   mermaid_text  a quoted label of a Mermaid chart (below, with the node trees)
#   value         a value in a diff: JSON; json_safe: a whole JSON document

# Characters a terminal or a reader must never receive raw: C0 and C1 controls and DEL (Cc;
# ESC, CSI U+009B, and newlines, which would start a line of their own), format characters
# (Cf: bidi overrides and isolates such as U+202E, zero-width characters, soft hyphen, BOM,
# tag characters), line and paragraph separators (Zl, Zp) and lone surrogates (Cs).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
# Raw in a JSON document: structural white space; every other C0 control is escaped
# inside strings by the serialiser, but DEL, C1, format characters and U+2028 are not.
_JSON_SUSPECT = re.compile(r"[^\x20-\x7e\n\r\t]")
# What the GitHub Actions runner reads as a workflow command in a line of the step log:
# ``::`` at the start (after whitespace), and the legacy ``##[`` anywhere in the line. A
# field never holds ``::`` at all, so no concatenation can put one at a line's start.
_COMMAND_OPENERS = re.compile(r"::|##\[")
_NEUTRAL_OPENER = {"::": ":\\u003a", "##[": "##\\u005b"}


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def _visible_code(char: str) -> str:
    point = ord(char)
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


def visible(text: str, keep: str = "") -> str:
    """``text`` with every hidden character (see above) but those in ``keep`` as ``\\u001b``."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to look at

    def one(match: re.Match[str]) -> str:
        char = match[0]
        return _visible_code(char) if char not in keep and _hidden(char) else char

    return _NOT_PRINTABLE_ASCII.sub(one, text)


def plain(text: str) -> str:
    """A field of a text or step-log line: visible, and unable to spell a workflow command."""
    return _COMMAND_OPENERS.sub(lambda m: _NEUTRAL_OPENER[m[0]], visible(text))


# Entities render as the character in prose and in HTML blocks alike (a backslash escape
# would show in a <summary>). "&" first, in effect: translate() replaces in one pass, so
# a name holding "&#64;" or "&lt;" shows as typed instead of decoding into "@" or "<". An
# @ is followed by a zero-width space (as an entity), so "@user" reads the same but names
# no one: GitHub looks for mentions in the rendered text, where "&#64;" would be "@" again.
_MD_INLINE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "&#124;",
        "`": "&#96;",
        "[": "&#91;",
        "]": "&#93;",
        "@": "@&#8203;",
    }
)


def md_inline(text: str) -> str:
    """Markdown prose, a table cell or HTML text: no markup, entity, mention or new line."""
    return visible(text).translate(_MD_INLINE)


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def fenced(text: str, info: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside ``text``.

    ``text`` is shown as it is (make its lines ``plain`` or ``visible`` first): in a code
    block nothing is markup and no @mention notifies, but a line of enough backticks would
    end the block.
    """
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{info}\n{text}\n{fence}\n"


def json_safe(text: str) -> str:
    """A JSON document with hidden characters and ``##[`` as JSON escapes (same data).

    Both can only occur inside strings, where ``\\u…`` means the same character.
    """
    text = _JSON_SUSPECT.sub(lambda m: _json_code(m[0]), text)
    return text.replace("##[", "##\\u005b")


def _json_code(char: str) -> str:
    if not _hidden(char):
        return char
    if ord(char) <= 0xFFFF:
        return f"\\u{ord(char):04x}"
    high, low = divmod(ord(char) - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def value(v: Any) -> str:
    """A value as it reads in a diff: compact JSON, readable non-ASCII, hidden ones escaped."""
    return json_safe(json.dumps(v, ensure_ascii=False, separators=(", ", ": ")))


Escape = Callable[[str], str]
