"""Plans and apply results as people and machines read them: text, markdown, JSON.

The text form follows Terraform's conventions (``+ create``, ``~ update``, ``- delete``,
a closing summary line); markdown is sized for a pull-request comment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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


def value(v: Any) -> str:
    """A value as it reads in a diff: compact JSON."""
    return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))


def headline(change: Change) -> str:
    """``~ new version production/topics v2 → v3`` (without the symbol's colour)."""
    label = change.label
    if change.action == "create":
        text = f"create {label} ({change.taxonomy_type})"
    elif change.action == "new_version":
        base = change.base_version or 0
        text = f"new version {label} v{base} → v{base + 1}"
    elif change.action == "update":
        text = f"update {label}"
        if change.rename_from:
            text += f" (rename {change.rename_from} → {change.name})"
        elif change.adopt:
            text += " (adopt: start managing it)"
    elif change.action == "replace":
        text = f"replace {label} (type change: deleted and recreated with a new id)"
    else:
        text = f"delete {label} ({change.taxonomy_id})"
    return f"{VOCABULARY[change.action].symbol} {text}"


def diff_line(field: FieldChange) -> str:
    if not field.before_present:
        return f"+ {field.path} = {value(field.after)}"
    if not field.after_present:
        return f"- {field.path} (was {value(field.before)})"
    return f"~ {field.path}: {value(field.before)} → {value(field.after)}"


def plan_text(plan: Plan, style: Style) -> str:
    if not plan.changes:
        unchanged = plan.summary.unchanged
        return f"No changes. {unchanged} taxonomy(ies) match the manifests.\n"
    lines = ["taxsync will perform the following actions:", ""]
    for change in plan.changes:
        head = style(headline(change), VOCABULARY[change.action].colour)
        where = style(f"  # {change.source}", "2") if change.source else ""
        lines.append(f"  {head}{where}")
        lines.extend(f"      {_diff_text(f, style)}" for f in change.diff)
        lines.extend(f"      note: {note}" for note in change.notes)
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
        symbol, text = headline(change).split(" ", 1)
        lines.append(f"| `{symbol}` | {_md_escape(text)} | {_md_escape(change.source or '')} |")
    for change in plan.changes:
        if not change.diff and not change.notes:
            continue
        lines += ["", f"<details><summary>{_md_escape(headline(change))}</summary>", "", "```diff"]
        lines.extend(diff_line(f) for f in change.diff)
        lines.extend(f"# note: {note}" for note in change.notes)
        lines += ["```", "</details>"]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def result_line(result: ChangeResult, style: Style) -> str:
    """One line per completed change, as apply reports them."""
    status = style(_STATUS[result.status], _STATUS_COLOUR[result.status])
    text = f"{headline(result.change)}: {status}"
    if result.status == "applied" and result.taxonomy_id:
        text += f" ({result.taxonomy_id}" + (f", v{result.version})" if result.version else ")")
    if result.message:
        text += f": {result.message}"
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
    lines.extend(f"- {_md_escape(result_line(r, Style(False)))}" for r in result.results)
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
    return json.dumps({"summary": summary, "results": list(rows)}, indent=2) + "\n"


def history_text(history: History) -> str:
    """Each version with its creation time and what changed since the one before."""
    count = len(history.versions)
    lines = [f"{history.namespace}/{history.name} ({history.taxonomy_id}): {count} version(s)"]
    for entry in history.versions:
        pending = "" if entry.ready is not False else "  (not ready: inference running)"
        lines.append(f"v{entry.version}  {entry.created_at or 'unknown time'}{pending}")
        if entry.version == history.versions[0].version:
            lines.append("    created")
        elif not entry.diff:
            lines.append("    (no config change)")
        lines.extend(f"    {diff_line(field)}" for field in entry.diff)
    return "\n".join(lines) + "\n"
