"""``taxsync diff`` as people and machines read it: text in the plan's conventions (``-``
only in A, ``+`` only in B, ``~`` differs, with its field lines, a closing summary line)
and JSON. Names, paths and values come from the API: escaped as the plan's are.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from taxsync.render.escape import DIFF_COLOUR, Style, json_safe, plain
from taxsync.render.fields import leaf_changes
from taxsync.render.plans import diff_line

if TYPE_CHECKING:
    from taxsync.namespace_diff import NamespaceDiff


def namespace_diff_text(result: NamespaceDiff, style: Style) -> str:
    """Each taxonomy that differs between namespace A and B; in a field line the value
    before the arrow is A's, the one after it B's."""
    a, b = plain(result.a), plain(result.b)
    if result.equal:
        return f"No differences. {result.same} taxonomy(ies) are the same in {a} and {b}.\n"
    lines = [f"taxsync diff: {a} (A) → {b} (B)", ""]
    lines += [f"  {style('-', DIFF_COLOUR['-'])} {plain(n)}: only in {a}" for n in result.only_in_a]
    lines += [f"  {style('+', DIFF_COLOUR['+'])} {plain(n)}: only in {b}" for n in result.only_in_b]
    for taxonomy in result.differing:
        lines.append(f"  {style('~', DIFF_COLOUR['~'])} {plain(taxonomy.name)}: differs")
        for field in leaf_changes(taxonomy.diff):
            line = diff_line(field)
            lines.append(f"      {style(line, DIFF_COLOUR[line[0]])}")
    lines += ["", f"Diff: {diff_summary(result)}."]
    return "\n".join(lines) + "\n"


def diff_summary(result: NamespaceDiff) -> str:
    """``1 only in staging, 0 only in production, 2 differ, 5 the same``."""
    return (
        f"{len(result.only_in_a)} only in {plain(result.a)}, "
        f"{len(result.only_in_b)} only in {plain(result.b)}, "
        f"{len(result.differing)} differ, {result.same} the same"
    )


def namespace_diff_json(result: NamespaceDiff) -> str:
    """The comparison as JSON (docs/commands.md#taxsync-diff-ns_a-ns_b): ``namespaces``
    (``a``, ``b``), ``only_in_a``, ``only_in_b`` (taxonomy names), ``differing`` (each
    ``name`` and its ``diff``: ``path``, ``before`` (A), ``after`` (B), ``before_present``,
    ``after_present``), ``same`` (a count); hidden characters escaped."""
    document: dict[str, Any] = {
        "namespaces": {"a": result.a, "b": result.b},
        "only_in_a": list(result.only_in_a),
        "only_in_b": list(result.only_in_b),
        "differing": [
            {"name": t.name, "diff": [field.model_dump(mode="json") for field in t.diff]}
            for t in result.differing
        ],
        "same": result.same,
    }
    return json_safe(json.dumps(document, indent=2, ensure_ascii=False)) + "\n"
