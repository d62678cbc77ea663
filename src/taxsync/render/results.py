"""What an apply did, a taxonomy's history and doctor's report, as text, markdown and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taxsync.history import History
from taxsync.plan import (
    STATUSES,
    ApplyResult,
    AttachmentChange,
    BackfillChange,
    ChangeResult,
)

if TYPE_CHECKING:
    from taxsync.doctor import DoctorReport

from taxsync.render.escape import Escape, Style, json_safe, md_inline, plain
from taxsync.render.plans import diff_line, headline


def result_line(result: ChangeResult, style: Style, esc: Escape = plain) -> str:
    """One line per completed change, as apply reports them (``esc``: see ``headline``)."""
    words = STATUSES[result.status]
    status = style(words.word, words.colour)
    text = f"{headline(result.change, esc)}: {status}"
    if result.status == "applied" and result.taxonomy_id:
        version = f", v{result.version}" if result.version else ""
        text += f" ({esc(result.taxonomy_id)}{version})"
    if result.tasks:
        text += f" (backfill task(s): {', '.join(esc(t) for t in result.tasks)})"
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
    lines.extend(
        f"- {_not_a_marker(result_line(r, Style(False), md_inline))}" for r in result.results
    )
    return "\n".join(lines) + "\n"


def _not_a_marker(line: str) -> str:
    """A bullet's text that begins like a list item (``+ attach …``, ``- delete …``) would
    render as an empty bullet holding a nested one: its first character is escaped."""
    return "\\" + line if line[:2] in ("+ ", "- ", "* ") else line


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
            "collection_id": (
                r.change.collection_id
                if isinstance(r.change, AttachmentChange | BackfillChange)
                else None
            ),
            "tasks": r.tasks,
        }
        for r in result.results
    )
    summary = {s: result.count(s) for s in ("applied", "failed", "stale", "not_started")}
    return json_safe(json.dumps({"summary": summary, "results": list(rows)}, indent=2)) + "\n"


def history_text(history: History) -> str:
    """Each version and what changed since the one before.

    The API's ``created_at`` is the record's creation time on every version (docs/api-contract.md#timestamps-across-versions), so it is shown once, in the heading, and never as the time of a version.
    """
    count = len(history.versions)
    label = f"{plain(history.namespace)}/{plain(history.name)}"
    lines = [f"{label} ({plain(str(history.taxonomy_id))}): {count} version(s)"]
    created = next((e.created_at for e in history.versions if e.created_at), None)
    if created is not None:
        lines.append(f"created {plain(created)} (the record; the API does not date versions)")
    for entry in history.versions:
        pending = "" if entry.ready is not False else "  (not ready: inference running)"
        lines.append(f"v{entry.version}{pending}")
        if entry.version == history.versions[0].version:
            lines.append("    first version")
        elif not entry.diff:
            lines.append("    (no config change)")
        lines.extend(f"    {diff_line(field)}" for field in entry.diff)
    return "\n".join(lines) + "\n"


def doctor_text(report: DoctorReport) -> str:
    """One line per assumption, then what was cleaned up and anything left behind."""
    head = f"taxsync doctor: namespace {plain(report.namespace)}, probe {plain(report.probe)}"
    lines = [head]
    for check in report.checks:
        line = f"{check.status:<8} {plain(check.check)}: {plain(check.what)}"
        if check.observed:
            said = "why" if check.status == "skipped" else "server"
            line += f" | {said}: {plain(check.observed)}"
        if check.consequence:
            line += f" | taxsync: {plain(check.consequence)}"
        lines.append(line)
    if report.error:
        lines.append(f"stopped: {plain(report.error)}")
    if report.interrupted:
        lines.append("interrupted: the remaining checks were not run")
    lines.extend(f"cleaned up: {plain(item)}" for item in report.cleaned)
    lines.extend(f"LEFT BEHIND: {plain(item)}" for item in report.left_behind)
    counts = {s: sum(c.status == s for c in report.checks) for s in ("ok", "differs", "skipped")}
    lines.append(
        f"{counts['ok']} ok, {counts['differs']} differ(s), {counts['skipped']} skipped; "
        + ("every checked assumption holds" if report.ok else "see the lines above")
    )
    return "\n".join(lines) + "\n"


def doctor_json(report: DoctorReport) -> str:
    """The report as JSON, hidden characters escaped."""
    return json_safe(json.dumps(report.as_dict(), indent=2, ensure_ascii=False)) + "\n"
