"""Plans and apply results as people and machines read them: text, markdown, JSON.

The text form follows Terraform's conventions (``+ create``, ``~ update``, ``- delete``,
a closing summary line); markdown is sized for a pull-request comment.

Every string that comes from a manifest, the API or a saved plan is untrusted, and each
output escapes it for where it lands (see "escaping" below): text and step-log lines
(``plain``), markdown prose and HTML (``md_inline``), markdown code (``fenced``), JSON
(``value``, ``json_safe``). Benign text renders unchanged.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from taxsync.history import History
from taxsync.plan import VOCABULARY, ApplyResult, Change, ChangeResult, FieldChange, Plan

# The colour of a diff line, by its leading symbol.
_DIFF_COLOUR = {"+": "32", "~": "33", "-": "31"}
_STATUS = {"applied": "done", "failed": "FAILED", "stale": "STALE", "not_started": "not started"}
_STATUS_COLOUR = {"applied": "32", "failed": "31", "stale": "31", "not_started": "2"}


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


# --- plans ---------------------------------------------------------------------------------


def headline(change: Change, esc: Escape = plain) -> str:
    """``~ new version production/topics v2 → v3`` (without the symbol's colour).

    ``esc`` escapes each untrusted part for the output: ``plain`` or ``md_inline``.
    """
    label = f"{esc(change.namespace)}/{esc(change.name)}"
    if change.action == "create":
        text = f"create {label} ({esc(change.taxonomy_type)})"
    elif change.action == "new_version":
        base = change.base_version or 0
        text = f"new version {label} v{base} → v{base + 1}"
    elif change.action == "update":
        text = f"update {label}"
        if change.rename_from:
            text += f" (rename {esc(change.rename_from)} → {esc(change.name)})"
        elif change.adopt:
            text += " (adopt: start managing it)"
    elif change.action == "replace":
        text = f"replace {label} (type change: deleted and recreated with a new id)"
    else:
        text = f"delete {label} ({esc(str(change.taxonomy_id))})"
    return f"{VOCABULARY[change.action].symbol} {text}"


def diff_line(field: FieldChange) -> str:
    """One field of a diff, for text and markdown code blocks alike: values as JSON."""
    path = plain(field.path)
    if not field.before_present:
        return f"+ {path} = {value(field.after)}"
    if not field.after_present:
        return f"- {path} (was {value(field.before)})"
    return f"~ {path}: {value(field.before)} → {value(field.after)}"


def plan_text(plan: Plan, style: Style) -> str:
    if not plan.changes:
        unchanged = plan.summary.unchanged
        return f"No changes. {unchanged} taxonomy(ies) match the manifests.\n"
    lines = ["taxsync will perform the following actions:", ""]
    for change in plan.changes:
        head = style(headline(change), VOCABULARY[change.action].colour)
        where = style(f"  # {plain(change.source)}", "2") if change.source else ""
        lines.append(f"  {head}{where}")
        lines.extend(f"      {_diff_text(f, style)}" for f in change.diff)
        lines.extend(f"      note: {plain(note)}" for note in change.notes)
    lines += [
        "",
        f"Plan: {plan.summary.line(with_zeros=True)}; {plan.summary.unchanged} unchanged.",
    ]
    return "\n".join(lines) + "\n"


def _diff_text(field: FieldChange, style: Style) -> str:
    line = diff_line(field)
    return style(line, _DIFF_COLOUR[line[0]])


def plan_markdown(plan: Plan) -> str:
    """A PR-comment-sized markdown rendering of the plan."""
    lines = [
        "### taxsync plan",
        "",
        f"**{plan.summary.line()}** · {plan.summary.unchanged} unchanged",
    ]
    if not plan.changes:
        return "\n".join(lines) + "\n"
    lines += ["", "| | change | manifest |", "|---|---|---|"]
    for change in plan.changes:
        symbol, text = headline(change, md_inline).split(" ", 1)
        lines.append(f"| `{symbol}` | {text} | {md_inline(change.source or '')} |")
    for change in plan.changes:
        if not change.diff and not change.notes:
            continue
        body = [diff_line(f) for f in change.diff]
        body += [f"# note: {plain(note)}" for note in change.notes]
        summary = f"<details><summary>{headline(change, md_inline)}</summary>"
        lines += ["", summary, "", fenced("\n".join(body), "diff") + "</details>"]
    return "\n".join(lines) + "\n"


def result_line(result: ChangeResult, style: Style, esc: Escape = plain) -> str:
    """One line per completed change, as apply reports them (``esc``: see ``headline``)."""
    status = style(_STATUS[result.status], _STATUS_COLOUR[result.status])
    text = f"{headline(result.change, esc)}: {status}"
    if result.status == "applied" and result.taxonomy_id:
        version = f", v{result.version}" if result.version else ""
        text += f" ({esc(result.taxonomy_id)}{version})"
    if result.message:
        text += f": {esc(result.message)}"
    return text


def apply_summary(result: ApplyResult) -> str:
    parts = [f"{result.count('applied')} applied", f"{result.count('failed')} failed"]
    if result.count("stale"):
        parts.append(f"{result.count('stale')} stale")
    if result.count("not_started"):
        parts.append(f"{result.count('not_started')} not started")
    return "Apply: " + ", ".join(parts) + "."


def apply_markdown(result: ApplyResult) -> str:
    lines = ["### taxsync apply", "", f"**{apply_summary(result)}**", ""]
    lines.extend(f"- {result_line(r, Style(False), md_inline)}" for r in result.results)
    return "\n".join(lines) + "\n"


def apply_json(result: ApplyResult) -> str:
    rows: Iterable[dict[str, Any]] = (
        {
            "action": r.change.action,
            "namespace": r.change.namespace,
            "name": r.change.name,
            "status": r.status,
            "message": r.message or None,
            "taxonomy_id": r.taxonomy_id,
            "version": r.version,
        }
        for r in result.results
    )
    summary = {s: result.count(s) for s in ("applied", "failed", "stale", "not_started")}
    return json_safe(json.dumps({"summary": summary, "results": list(rows)}, indent=2)) + "\n"


def plan_json(plan: Plan) -> str:
    """The plan as JSON for a terminal or a log: ``plan.to_json()``, hidden characters escaped."""
    return json_safe(plan.to_json())


def history_text(history: History) -> str:
    """Each version with its creation time and what changed since the one before."""
    count = len(history.versions)
    label = f"{plain(history.namespace)}/{plain(history.name)}"
    lines = [f"{label} ({plain(str(history.taxonomy_id))}): {count} version(s)"]
    for entry in history.versions:
        pending = "" if entry.ready is not False else "  (not ready: inference running)"
        lines.append(f"v{entry.version}  {plain(entry.created_at or 'unknown time')}{pending}")
        if entry.version == history.versions[0].version:
            lines.append("    created")
        elif not entry.diff:
            lines.append("    (no config change)")
        lines.extend(f"    {diff_line(field)}" for field in entry.diff)
    return "\n".join(lines) + "\n"
