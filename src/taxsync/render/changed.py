"""What a plan ``--changed-from`` adds to its renderings: which namespaces it left out, and
the changes that were pending before this change, in a section of their own (collapsed:
headlines in text, a ``<details>`` in markdown), apart from the plan's own changes."""

from __future__ import annotations

from taxsync.plan import VOCABULARY, Plan
from taxsync.render.escape import Style, fenced, md_inline, plain

# Namespaces named on the left-out line; JSON lists them all.
LEFT_OUT_SHOWN = 10
_WHY = "drift, or a merge not yet applied; apply makes them as well"


def _commit(plan: Plan) -> str:
    return (plan.changed_from or "")[:12]


def _left_out(plan: Plan) -> str:
    shown = plan.left_out[:LEFT_OUT_SHOWN]
    more = len(plan.left_out) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def scope_line(plan: Plan) -> str | None:
    """``Planned only the namespaces whose manifests changed since abc123: 2; left out 3: …``"""
    if plan.changed_from is None:
        return None
    planned = len(plan.namespaces)
    line = (
        f"Planned only the namespaces whose manifests changed since {_commit(plan)}: "
        f"{planned} namespace(s)"
    )
    if not plan.left_out:
        return line + "; none left out."
    return f"{line}; left out {len(plan.left_out)}: {_left_out(plan)}."


def pending_text(plan: Plan, style: Style) -> list[str]:
    """The pending section of the text plan: one headline per change, after the plan's own."""
    from taxsync.render.plans import headline

    if not plan.pending:
        return []
    lines = [
        "",
        f"Pending before this change: {len(plan.pending)}, which the manifests at "
        f"{_commit(plan)} would make too ({_WHY}):",
    ]
    for change in plan.pending:
        head = style(headline(change), VOCABULARY[change.action].colour)
        where = style(f"  # {plain(change.source)}", "2") if change.source else ""
        lines.append(f"  {head}{where}")
    return lines


def changed_text(plan: Plan, style: Style) -> list[str]:
    """Everything ``--changed-from`` adds to the text plan, after its summary line."""
    line = scope_line(plan)
    return pending_text(plan, style) + (["", plain(line)] if line else [])


def changed_markdown(plan: Plan) -> list[str]:
    """The left-out line and the collapsed pending section of the markdown plan."""
    from taxsync.render.plans import diff_lines_markdown, headline

    line = scope_line(plan)
    lines = ["", f"_{md_inline(line)}_"] if line else []
    if not plan.pending:
        return lines
    body: list[str] = []
    for change in plan.pending:
        where = f"  ({plain(change.source)})" if change.source else ""
        body.append(f"@@ {headline(change)}{where} @@")
        body += [diff for field in change.diff for diff in diff_lines_markdown(field)]
    summary = f"<details><summary>{len(plan.pending)} pending before this change</summary>"
    explain = f"The manifests at `{md_inline(_commit(plan))}` would make these changes too: {_WHY}."
    return lines + ["", summary, "", explain, "", fenced("\n".join(body), "diff") + "</details>"]
