"""Plans as people read them: text in Terraform's conventions (``+ create``, ``~ update``,
``- delete``, a closing summary line), markdown sized for a pull-request comment (a changed
value is a ``-`` and a ``+`` line, which GitHub colours; each manifest place may link to its
line), and JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from taxsync.plan import (
    VOCABULARY,
    AnyChange,
    AppliedBy,
    AttachmentChange,
    BackfillChange,
    FieldChange,
    Plan,
    ResolvedName,
)
from taxsync.render.changed import changed_markdown, changed_text
from taxsync.render.escape import (
    DIFF_COLOUR,
    Escape,
    Style,
    fenced,
    json_safe,
    md_inline,
    plain,
    value,
)
from taxsync.render.fields import leaf_changes
from taxsync.render.trees import MERMAID_PLAN_LIMIT, node_tree, tree_markdown, tree_text

# --- plans ---------------------------------------------------------------------------------


def headline(change: AnyChange, esc: Escape = plain) -> str:
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
    elif change.action == "delete":
        text = f"delete {label} ({esc(str(change.taxonomy_id))})"
    elif isinstance(change, BackfillChange):
        text = f"backfill {label} in {_collection(change, esc)}: {owed_words(change, esc)}"
    else:
        assert isinstance(change, AttachmentChange)
        text = f"{change.action} {label} {_ON[change.action]} {_collection(change, esc)}"
    return f"{VOCABULARY[change.action].symbol} {text}"


_ON = {"attach": "to", "reconfigure": "on", "detach": "from"}


def owed_words(change: BackfillChange, esc: Escape = plain) -> str:
    """``documents of products labelled by v3; head is v4``."""
    name = esc(change.collection_name or change.collection_id)
    if change.labelled_version is None:
        return f"documents of {name} not known to be labelled by v{change.head_version} (head)"
    return (
        f"documents of {name} labelled by v{change.labelled_version}; "
        f"head is v{change.head_version}"
    )


def _collection(change: AttachmentChange | BackfillChange, esc: Escape) -> str:
    """``collection products (col_products_v1)``: the collection an attachment change edits."""
    name, ident = change.collection_name, change.collection_id
    return f"collection {esc(name)} ({esc(ident)})" if name else f"collection {esc(ident)}"


Named = Mapping[str, ResolvedName]  # the change's references by name, by spec path


def diff_line(field: FieldChange, named: Named | None = None) -> str:
    """One field of a diff, for text and markdown code blocks alike: values as JSON, and a
    reference the manifest makes by name as ``name (id)``."""
    path, after = plain(field.path), _after(field, named)
    if not field.before_present:
        return f"+ {path} = {after}"
    if not field.after_present:
        return f"- {path} (was {value(field.before)})"
    return f"~ {path}: {value(field.before)} → {after}"


def _after(field: FieldChange, named: Named | None) -> str:
    name = (named or {}).get(field.path)
    if name is not None and field.after == name.id:
        return f"{plain(name.name)} ({plain(name.id)})"
    return value(field.after)


def name_lines(change: AnyChange) -> list[str]:
    """The references by name no diff line shows (inside a node, or unchanged): each with
    the id it resolved to."""
    shown = {f.path for f in change.diff}
    return [
        f"name {plain(n.path)}: {plain(n.name)} ({plain(n.id)})"
        for n in change.names
        if n.path not in shown
    ]


def _named(change: AnyChange) -> dict[str, ResolvedName]:
    return {n.path: n for n in change.names}


def plan_text(plan: Plan, style: Style) -> str:
    if not plan.changes:
        unchanged = plan.summary.unchanged
        lines = [f"No changes. {unchanged} taxonomy(ies) match the manifests."]
        lines += unchecked_lines(plan, plain)
        return "\n".join(lines + changed_text(plan, style)) + "\n"
    lines = ["taxsync will perform the following actions:", ""]
    for change in plan.changes:
        head = style(headline(change), VOCABULARY[change.action].colour)
        where = style(f"  # {plain(change.source)}", "2") if change.source else ""
        lines.append(f"  {head}{where}")
        named = _named(change)
        lines.extend(f"      {_diff_text(f, style, named)}" for f in leaf_changes(change.diff))
        lines.extend(f"      {line}" for line in name_lines(change))
        tree = node_tree(change)
        if tree is not None:
            lines.extend(f"      {line}" for line in tree_text(tree, style))
        lines.extend(f"      note: {plain(note)}" for note in change.notes)
        lines.extend(f"      {line}" for line in impact_lines(change, plain))
    lines += [
        "",
        f"Plan: {plan.summary.line(with_zeros=True)}; {plan.summary.unchanged} unchanged.",
        *unchecked_lines(plan, plain),
    ]
    return "\n".join(lines + changed_text(plan, style)) + "\n"


def unchecked_lines(plan: Plan, esc: Callable[[str], str]) -> list[str]:
    """The references let through on taxonomies the plan does not change: a typo the
    reviewer must still see (those of a change are among its notes)."""
    return [f"note: {esc(u)} (not checked: --allow-missing-references)" for u in plan.unchecked]


def _diff_text(field: FieldChange, style: Style, named: Named) -> str:
    line = diff_line(field, named)
    return style(line, DIFF_COLOUR[line[0]])


def diff_lines_markdown(field: FieldChange, named: Named | None = None) -> list[str]:
    """One field of a diff in a markdown ``diff`` block: a changed value is a ``-`` line
    and a ``+`` line, which GitHub colours (it leaves a ``~`` line plain)."""
    if field.before_present and field.after_present:
        path = plain(field.path)
        return [f"- {path}: {value(field.before)}", f"+ {path}: {_after(field, named)}"]
    return [diff_line(field, named)]


# Makes the link of a change's ``file:line`` (None: no link). Its URLs are only used when
# they hold nothing but these characters: no markdown, no HTML, no space can come with one.
SourceLink = Callable[[str], str | None]
SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~%/:#-]+")


def plan_markdown(plan: Plan, link: SourceLink | None = None) -> str:
    """A PR-comment-sized markdown rendering of the plan.

    ``link`` turns a change's ``file:line`` into the URL of that line (the GitHub
    integration passes one); without it, or when it answers None, the place is plain text.
    """
    lines = [
        "### taxsync plan",
        "",
        f"**{plan.summary.line()}** · {plan.summary.unchanged} unchanged",
    ]
    if not plan.changes:
        lines += ["", *unchecked_lines(plan, md_inline)] if plan.unchecked else []
        return "\n".join(lines + changed_markdown(plan)) + "\n"
    changes = sorted(plan.changes, key=lambda c: c.namespace)  # stable: as planned within
    several = len({c.namespace for c in changes}) > 1
    lines += ["", "| | change | affects | manifest |", "|---|---|---|---|"]
    for index, change in enumerate(changes):
        if several and (index == 0 or changes[index - 1].namespace != change.namespace):
            lines.append(f"| | **{md_inline(change.namespace)}** | | |")
        symbol, text = headline(change, md_inline).split(" ", 1)
        where = _source_markdown(change.source, link)
        lines.append(f"| `{symbol}` | {text} | {affects_markdown(change)} | {where} |")
    lines += _spread_lines(changes, link)
    room = MERMAID_PLAN_LIMIT
    for change in changes:
        tree = node_tree(change)
        if tree is not None:
            section = tree_markdown(change, tree, room)
            room -= sum(len(line) for line in section)
            lines += section
    for change in changes:
        lines += _details_markdown(change)
    lines += ["", *unchecked_lines(plan, md_inline)] if plan.unchecked else []
    return "\n".join(lines + changed_markdown(plan)) + "\n"


def _details_markdown(change: AnyChange) -> list[str]:
    """A change's diff in a collapsed block; its notes and whom it affects as prose after
    the code, where they wrap instead of scrolling out of sight."""
    named = _named(change)
    body = [line for f in leaf_changes(change.diff) for line in diff_lines_markdown(f, named)]
    body += [f"# {line}" for line in name_lines(change)]
    prose = [f"note: {md_inline(note)}" for note in change.notes]
    prose += impact_lines(change, md_inline)
    if not body and not prose:
        return []
    lines = ["", f"<details><summary>{headline(change, md_inline)}</summary>"]
    if body:
        lines += ["", fenced("\n".join(body), "diff").rstrip("\n")]
    if prose:
        lines += ["", *(f"- {line}" for line in prose)]
    return [*lines, "", "</details>"]


def affects_markdown(change: AnyChange) -> str:
    """The table's ``affects`` cell: the collections a change reaches (with their
    approximate document counts where the live read had them) and whether a backfill
    follows; empty for a change that reaches no collection."""
    if isinstance(change, AttachmentChange):
        reached = [_collection_name(change.collection_name, change.collection_id)]
        backfill = change.action == "attach" or bool(change.backfills)
    else:
        reached = [
            _collection_name(a.collection_name, a.collection_id, a.document_count)
            for a in getattr(change, "applied_by", [])
        ]
        backfill = bool(reached) and change.action != "delete"
    if not reached:
        return ""
    if backfill:
        reached.append("backfill planned" if change.backfills else "no backfill")
    return " · ".join(reached)


def _collection_name(name: str, ident: str, documents: int | None = None) -> str:
    shown = md_inline(name or ident)
    return f"{shown} (~{documents:,} docs)" if documents is not None else shown


def _spread_lines(changes: Sequence[AnyChange], link: SourceLink | None) -> list[str]:
    """A line per manifest that declares one taxonomy in several namespaces (its changes
    share a file across namespaces, each at the line it changes there): which of them this
    plan changes."""
    spread: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for change in changes:
        if change.source:
            file = change.source.rpartition(":")[0] or change.source
            _, found = spread.setdefault((file, change.name), (change.source, []))
            if change.namespace not in found:
                found.append(change.namespace)
    lines = [
        f"{_source_markdown(source, link)} declares {md_inline(name)} in several namespaces; "
        f"this plan changes it in {', '.join(md_inline(n) for n in namespaces)}"
        for (_, name), (source, namespaces) in spread.items()
        if len(namespaces) > 1
    ]
    return ["", *lines] if lines else []


def impact_lines(change: AnyChange, esc: Escape) -> list[str]:
    """Whom a change affects: the collections that apply its taxonomy, whether a backfill
    follows, and why it is blocked, if it is."""
    lines = [f"note: {esc(m)} (not checked: --allow-missing-references)" for m in change.unchecked]
    if isinstance(change, AttachmentChange):
        return lines + _attachment_impact(change, esc)
    if isinstance(change, BackfillChange):
        return [*lines, f"owed: {esc(change.reason)}"]
    if change.blocked:
        lines.append(f"BLOCKED: {esc(change.blocked)}")
    lines += [_applied_by_line(applied, esc) for applied in change.applied_by]
    if change.backfills:
        lines.append(_backfill_line(change, esc))
    elif change.applied_by and change.action != "delete":
        lines.append(
            "backfill: not planned (documents already enriched keep their labels; "
            "apply --backfill, or spec.backfill: onChange)"
        )
    return lines


def _attachment_impact(change: AttachmentChange, esc: Escape) -> list[str]:
    lines = []
    if change.taxonomy_id is None:
        lines.append("uses the new taxonomy's id (its create or replace runs first)")
    if change.backfills:
        lines.append(_backfill_line(change, esc))
    elif change.action == "attach":
        lines.append(
            "backfill: not planned (documents already in the collection stay unlabelled; "
            "apply --backfill, or spec.backfill: onChange)"
        )
    return lines


def _applied_by_line(applied: AppliedBy, esc: Escape) -> str:
    docs = f", ~{applied.document_count:,} documents" if applied.document_count is not None else ""
    target = f", into {esc(applied.target_collection_id)}" if applied.target_collection_id else ""
    return (
        f"applied by {esc(applied.collection_name)} ({esc(applied.collection_id)}, "
        f"phase {applied.execution_phase}{target}{docs})"
    )


def _backfill_line(change: AnyChange, esc: Escape) -> str:
    return f"backfill after apply: {', '.join(esc(c) for c in change.backfills)}"


def _source_markdown(source: str | None, link: SourceLink | None) -> str:
    if not source:
        return ""
    shown = md_inline(source)
    url = link(source) if link is not None else None
    if url is None or not SAFE_URL.fullmatch(url):
        return shown
    return f"[{shown}]({url})"


def plan_json(plan: Plan) -> str:
    """The plan as JSON for a terminal or a log: ``plan.to_json()``, hidden characters escaped."""
    return json_safe(plan.to_json())
