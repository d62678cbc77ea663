"""Markdown cut to a size limit (a comment, a step summary) without breaking its blocks.

Whole lines are kept; whatever the cut leaves open (a code fence, ``<details>``) is
closed, and a note says where the full plan is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from taxsync.github.context import GitHubContext
from taxsync.render import SAFE_URL


def comment_length(text: str) -> int:
    """A length GitHub's own count cannot exceed: UTF-16 units, each newline as CRLF."""
    return len(text.encode("utf-16-le")) // 2 + text.count("\n")


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def trim_markdown(markdown: str, limit: int, note: str, measure: Any = comment_length) -> str:
    """``markdown`` if it fits in ``limit``; else whole leading lines, closed blocks, ``note``.

    ``measure`` counts a string the way the limit is counted (characters, bytes). The
    closers of whatever the cut leaves open (a code fence, ``<details>``) always fit.
    """
    if measure(markdown) <= limit:
        return markdown
    room = limit - measure(note)
    blocks = _Blocks()
    kept: list[str] = []
    used = 0
    for line in _lines(markdown):
        after = blocks.after(line)
        if used + measure(line) + measure(after.closers()) > room:
            break
        kept.append(line)
        used += measure(line)
        blocks = after
    return "".join(kept) + blocks.closers() + note


def _lines(text: str) -> list[str]:
    """``text`` cut after each LF only (``splitlines`` would also cut at U+2028, VT, …)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# An opening or closing code fence (CommonMark): up to 3 spaces, 3+ backticks or tildes.
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


@dataclass(frozen=True)
class _Blocks:
    """What is open after some lines of markdown: a code fence, ``<details>`` blocks.

    Inside a code block nothing counts but the line that closes it (as long a run of the
    same fence character, alone on its line): text there is not markup.
    """

    fence: str = ""
    details: int = 0

    def after(self, line: str) -> _Blocks:
        text = line.rstrip("\r\n")
        match = _FENCE.fullmatch(text)
        if self.fence:
            closes = (
                match is not None
                and match[1][0] == self.fence[0]
                and len(match[1]) >= len(self.fence)
                and not match[2].strip()
            )
            return _Blocks("", self.details) if closes else self
        if match is not None and not (match[1][0] == "`" and "`" in match[2]):
            return _Blocks(match[1], self.details)
        opened = self.details + text.count("<details>") - text.count("</details>")
        return _Blocks("", max(opened, 0))

    def closers(self) -> str:
        return (self.fence + "\n" if self.fence else "") + "</details>\n" * self.details


def trim_note(ctx: GitHubContext, where: str) -> str:
    url = ctx.run_url  # None unless the run's values are sound
    run = f"[the workflow run]({url})" if url and SAFE_URL.fullmatch(url) else "the workflow run"
    return (
        f"\n> [!NOTE]\n> This plan was trimmed to fit in {where}. "
        f"The full plan is in {run}: its step summary and the JSON plan file.\n"
    )
