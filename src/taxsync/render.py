"""Plans and apply results as people and machines read them: text, markdown, JSON.

The text form follows Terraform's conventions (``+ create``, ``~ update``, ``- delete``,
a closing summary line); markdown is sized for a pull-request comment, where a changed
value is a ``-`` and a ``+`` line (GitHub colours those) and each manifest place may link to
its line. A change to a hierarchical taxonomy's nodes is also drawn as its tree: a Mermaid
flowchart in markdown, an indented tree in text.

Every string that comes from a manifest, the API or a saved plan is untrusted, and each
output escapes it for where it lands (see "escaping" below): text and step-log lines
(``plain``), markdown prose and HTML (``md_inline``), markdown code (``fenced``), JSON
(``value``, ``json_safe``). Benign text renders unchanged.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from taxsync.history import History
from taxsync.plan import VOCABULARY, ApplyResult, Change, ChangeResult, FieldChange, Plan

if TYPE_CHECKING:
    from taxsync.doctor import DoctorReport

# The colour of a diff line (and of a node of a tree), by its leading symbol.
_DIFF_COLOUR = {"+": "32", "~": "33", "-": "31", ">": "36"}
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
    elif change.action == "delete":
        text = f"delete {label} ({esc(str(change.taxonomy_id))})"
    else:
        text = f"{change.action} {label} {_ON[change.action]} {_collection(change, esc)}"
    return f"{VOCABULARY[change.action].symbol} {text}"


_ON = {"attach": "to", "reconfigure": "on", "detach": "from"}


def _collection(change: Change, esc: Escape) -> str:
    """``collection products (col_products_v1)``: the collection an attachment change edits."""
    name, ident = change.collection_name, str(change.collection_id)
    return f"collection {esc(name)} ({esc(ident)})" if name else f"collection {esc(ident)}"


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
        tree = node_tree(change)
        if tree is not None:
            lines.extend(f"      {line}" for line in tree_text(tree, style))
        lines.extend(f"      note: {plain(note)}" for note in change.notes)
        lines.extend(f"      {line}" for line in impact_lines(change, plain))
    lines += [
        "",
        f"Plan: {plan.summary.line(with_zeros=True)}; {plan.summary.unchanged} unchanged.",
    ]
    return "\n".join(lines) + "\n"


def _diff_text(field: FieldChange, style: Style) -> str:
    line = diff_line(field)
    return style(line, _DIFF_COLOUR[line[0]])


def diff_lines_markdown(field: FieldChange) -> list[str]:
    """One field of a diff in a markdown ``diff`` block: a changed value is a ``-`` line
    and a ``+`` line, which GitHub colours (it leaves a ``~`` line plain)."""
    if field.before_present and field.after_present:
        path = plain(field.path)
        return [f"- {path}: {value(field.before)}", f"+ {path}: {value(field.after)}"]
    return [diff_line(field)]


# Makes the link of a change's ``file:line`` (None: no link). Its URLs are only used when
# they hold nothing but these characters: no markdown, no HTML, no space can come with one.
SourceLink = Callable[[str], str | None]
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~%/:#-]+")


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
        return "\n".join(lines) + "\n"
    lines += ["", "| | change | manifest |", "|---|---|---|"]
    for change in plan.changes:
        symbol, text = headline(change, md_inline).split(" ", 1)
        lines.append(f"| `{symbol}` | {text} | {_source_markdown(change.source, link)} |")
    room = MERMAID_PLAN_LIMIT
    for change in plan.changes:
        tree = node_tree(change)
        if tree is not None:
            section = tree_markdown(change, tree, room)
            room -= sum(len(line) for line in section)
            lines += section
    for change in plan.changes:
        impact = impact_lines(change, plain)
        if not change.diff and not change.notes and not impact:
            continue
        body = [line for f in change.diff for line in diff_lines_markdown(f)]
        body += [f"# note: {plain(note)}" for note in change.notes]
        body += [f"# {line}" for line in impact]
        summary = f"<details><summary>{headline(change, md_inline)}</summary>"
        lines += ["", summary, "", fenced("\n".join(body), "diff") + "</details>"]
    return "\n".join(lines) + "\n"


def impact_lines(change: Change, esc: Escape) -> list[str]:
    """Whom a change affects: the collections that apply its taxonomy, whether a backfill
    follows, and why it is blocked, if it is."""
    lines = [f"note: {esc(m)} (not checked: --allow-missing-references)" for m in change.unchecked]
    if change.blocked:
        lines.append(f"BLOCKED: {esc(change.blocked)}")
    for applied in change.applied_by:
        docs = (
            f", ~{applied.document_count:,} documents" if applied.document_count is not None else ""
        )
        target = (
            f", into {esc(applied.target_collection_id)}" if applied.target_collection_id else ""
        )
        lines.append(
            f"applied by {esc(applied.collection_name)} ({esc(applied.collection_id)}, "
            f"phase {applied.execution_phase}{target}{docs})"
        )
    if change.is_attachment and change.taxonomy_id is None:
        lines.append("uses the new taxonomy's id (its create or replace runs first)")
    if change.backfills:
        lines.append(f"backfill after apply: {', '.join(esc(c) for c in change.backfills)}")
    elif change.applied_by and change.action != "delete":
        lines.append(
            "backfill: not planned (documents already enriched keep their labels; "
            "apply --backfill, or spec.backfill: onChange)"
        )
    elif change.action == "attach":
        lines.append(
            "backfill: not planned (documents already in the collection stay unlabelled; "
            "apply --backfill, or spec.backfill: onChange)"
        )
    return lines


def _source_markdown(source: str | None, link: SourceLink | None) -> str:
    if not source:
        return ""
    shown = md_inline(source)
    url = link(source) if link is not None else None
    if url is None or not _SAFE_URL.fullmatch(url):
        return shown
    return f"[{shown}]({url})"


# --- node trees of hierarchical taxonomies -----------------------------------------------
#
# A change to a hierarchical taxonomy's nodes is shown as the tree it leaves behind: a
# Mermaid flowchart in markdown, an indented tree in text. Both come from the change alone:
# the new nodes from the body apply sends (create_body, version_body), the old ones from
# those and the diff, whose ``config.hierarchical_nodes[KEY]`` entries hold every added or
# removed node whole and every changed field's value before. A delete, and a replace of a
# hierarchical taxonomy, carry the live nodes they remove (``Change.live_nodes``).

_NODES = "config.hierarchical_nodes"
NodeStatus = Literal["added", "removed", "changed", "moved", "unchanged"]
_NODE_MARKER: dict[NodeStatus, str] = {
    "added": "+",
    "removed": "-",
    "changed": "~",
    "moved": ">",
    "unchanged": " ",
}
TREE_FULL_LIMIT = 60  # a bigger tree shows only changed nodes and their ancestors
MERMAID_NODE_LIMIT = 100  # more nodes to draw than this, or a longer chart: no picture
MERMAID_CHAR_LIMIT = 20_000
MERMAID_PLAN_LIMIT = 30_000  # all pictures of a plan: the diffs must fit in a comment too
MERMAID_LABEL_CHARS = 40  # longer labels are cut in the picture (the text tree has them all)
# How the picture reads: one class per status (GitHub's own diff colours), and the legend.
_MERMAID_CLASSES = (
    "  classDef added fill:#dafbe1,stroke:#1a7f37,color:#116329",
    "  classDef removed fill:#ffebe9,stroke:#cf222e,color:#a40e26,stroke-dasharray:5 3",
    "  classDef changed fill:#fff8c5,stroke:#9a6700,color:#7d4e00",
    "  classDef moved fill:#ddf4ff,stroke:#0969da,color:#0550ae",
)
_MERMAID_LEGEND = (
    "green `+` added · red `-` removed · yellow `~` changed · "
    "blue `>` moved (dotted edge from its old parent)"
)


@dataclass(frozen=True)
class TreeNode:
    """A node of a hierarchical taxonomy, and what the change does to it."""

    key: str  # its collection_id
    label: str  # its label, or its collection_id
    status: NodeStatus
    parent: str | None  # where it hangs: its new parent, or its old one when removed
    old_parent: str | None = None  # a moved node's parent before (None: it was a root)
    old_label: str | None = None  # the label before, when it changed ("": it had none)
    fields: tuple[str, ...] = ()  # the other fields that changed

    @property
    def marker(self) -> str:
        return _NODE_MARKER[self.status]


@dataclass(frozen=True)
class NodeTree:
    """The nodes to show, depth first, each with its depth; ``total`` nodes in all."""

    rows: tuple[tuple[int, TreeNode], ...]
    total: int
    labels: Mapping[str, str] = field(default_factory=dict)  # every node's label, by key

    @property
    def partial(self) -> bool:
        return len(self.rows) < self.total

    @property
    def changed(self) -> int:
        return sum(1 for _, node in self.rows if node.status != "unchanged")


NodeMap = dict[str, dict[str, Any]]


def node_tree(change: Change) -> NodeTree | None:
    """The node tree of a change to a hierarchical taxonomy's nodes; None for other changes."""
    sides = _node_sides(change)
    if sides is None:
        return None
    nodes = compare_nodes(*sides)
    if all(node.status == "unchanged" for node in nodes):
        return None
    rows = _layout(nodes)
    if len(rows) > TREE_FULL_LIMIT:
        rows = _changed_with_ancestors(rows)
    labels = {node.key: node.label for node in nodes}
    return NodeTree(tuple(rows), total=len(nodes), labels=labels)


def _node_sides(change: Change) -> tuple[NodeMap, NodeMap, dict[str, set[str]]] | None:
    """The nodes before and after, and the fields the diff says changed, by node key."""
    if change.action in ("create", "replace", "delete"):
        before = _node_map(change.live_nodes)  # what a delete or replace removes
        after = _node_map(_nodes_of((change.create_body or {}).get("config")))
        return (before, after, {}) if before or after else None
    if change.action != "new_version":
        return None
    entries = [
        f for f in change.diff if f.path in ("config", _NODES) or f.path.startswith(_NODES + "[")
    ]
    if not entries:
        return None
    for entry in entries:
        if entry.path in ("config", _NODES):  # the whole list (or config) differs
            pick = _nodes_of if entry.path == "config" else (lambda v: v)
            before = _node_map(pick(entry.before)) if entry.before_present else {}
            after = _node_map(pick(entry.after)) if entry.after_present else {}
            return before, after, {}
    after = _node_map(_nodes_of((change.version_body or {}).get("config")))
    return _before_from_diff(after, entries)


def _nodes_of(config: Any) -> Any:
    return config.get("hierarchical_nodes") if isinstance(config, Mapping) else None


def _node_map(nodes: Any) -> NodeMap:
    """Nodes by collection_id, nulls dropped: from a list (a body) or a keyed map (a diff)."""
    items = nodes.values() if isinstance(nodes, Mapping) else nodes
    if not isinstance(items, Iterable) or isinstance(items, str):
        return {}
    out: NodeMap = {}
    for node in items:
        if isinstance(node, Mapping) and node.get("collection_id") is not None:
            out[str(node["collection_id"])] = {k: v for k, v in node.items() if v is not None}
    return out


def _entry_path(key: str) -> str:
    return f"{_NODES}[{key}]"


def _before_from_diff(
    after: NodeMap, entries: Sequence[FieldChange]
) -> tuple[NodeMap, NodeMap, dict[str, set[str]]]:
    """The old nodes: the new ones with the diff undone; the fields each entry names."""
    before = {key: dict(node) for key, node in after.items()}
    touched: dict[str, set[str]] = {}
    for entry in entries:
        whole = entry.after if entry.after_present else entry.before
        if (
            isinstance(whole, Mapping)
            and _entry_path(str(whole.get("collection_id"))) == entry.path
        ):
            key, rest = str(whole["collection_id"]), ""
        else:
            found = _key_of(entry.path, after)
            if found is None:
                continue  # a key no node has: nothing to place
            key, rest = found
        if not rest:  # the whole node: added, removed, or replaced
            if entry.before_present and isinstance(entry.before, Mapping):
                before[key] = _node_map([entry.before]).get(key, dict(entry.before))
            else:
                before.pop(key, None)
            continue
        name = re.split(r"[.\[]", rest, maxsplit=1)[0]
        touched.setdefault(key, set()).add(name)
        if name == rest and key in before:  # a field of its own: undone exactly
            if entry.before_present and entry.before is not None:
                before[key][name] = entry.before
            else:
                before[key].pop(name, None)
    return before, after, touched


def _key_of(path: str, nodes: Mapping[str, Any]) -> tuple[str, str] | None:
    """The node key a diff path is under (the longest that fits), and the rest of the path."""
    best: str | None = None
    for key in nodes:
        prefix = _entry_path(key)
        fits = path == prefix or path.startswith((prefix + ".", prefix + "["))
        if fits and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        return None
    return best, path[len(_entry_path(best)) :].removeprefix(".")


def compare_nodes(
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    touched: Mapping[str, set[str]] | None = None,
) -> list[TreeNode]:
    """Every node of both trees with its status: the new ones in order, then removed ones.

    ``touched`` names fields known to differ beyond what comparing the nodes shows.
    """
    touched = touched or {}
    nodes = []
    for key, node in after.items():
        parent, label = _parent(node), _label(key, node)
        old = before.get(key)
        if old is None:
            nodes.append(TreeNode(key, label, "added", parent))
            continue
        fields = set(touched.get(key, ())) | {
            name for name in set(old) | set(node) if old.get(name) != node.get(name)
        }
        old_parent = _parent(old)
        status: NodeStatus = (
            "moved" if old_parent != parent else "changed" if fields else "unchanged"
        )
        nodes.append(
            TreeNode(
                key,
                label,
                status,
                parent,
                old_parent=old_parent if status == "moved" else None,
                old_label=_raw_label(old) if "label" in fields else None,
                fields=tuple(sorted(fields - {"parent_collection_id", "label"})),
            )
        )
    for key, node in before.items():
        if key not in after:
            nodes.append(TreeNode(key, _label(key, node), "removed", _parent(node)))
    return nodes


def _parent(node: Mapping[str, Any]) -> str | None:
    parent = node.get("parent_collection_id")
    return None if parent is None else str(parent)


def _label(key: str, node: Mapping[str, Any]) -> str:
    """What a node is shown as: its label, or its collection id."""
    return _raw_label(node) or key


def _raw_label(node: Mapping[str, Any]) -> str:
    label = node.get("label")
    return label if isinstance(label, str) else ""


def _layout(nodes: Sequence[TreeNode]) -> list[tuple[int, TreeNode]]:
    """Depth first from the roots; a node whose parent is no node is a root.

    A parent cycle (possible in live data only) is entered where it is first met.
    """
    keys = {node.key for node in nodes}
    children: dict[str | None, list[TreeNode]] = {}
    for node in nodes:
        parent = node.parent if node.parent in keys and node.parent != node.key else None
        children.setdefault(parent, []).append(node)
    rows: list[tuple[int, TreeNode]] = []
    seen: set[str] = set()
    for start in [*children.get(None, []), *nodes]:
        stack = [(0, start)]
        while stack:
            depth, node = stack.pop()
            if node.key in seen:
                continue
            seen.add(node.key)
            rows.append((depth, node))
            stack.extend((depth + 1, child) for child in reversed(children.get(node.key, [])))
    return rows


def _changed_with_ancestors(rows: Sequence[tuple[int, TreeNode]]) -> list[tuple[int, TreeNode]]:
    """Only the changed nodes and their ancestors (a moved node's old ones too)."""
    by_key = {node.key: node for _, node in rows}
    keep: set[str] = set()
    for _, node in rows:
        if node.status == "unchanged":
            continue
        for start in (node.key, node.old_parent):
            key = start
            while key is not None and key in by_key and key not in keep:
                keep.add(key)
                key = by_key[key].parent
    return [(depth, node) for depth, node in rows if node.key in keep]


def _node_name(key: str | None, labels: Mapping[str, str], esc: Escape) -> str:
    if key is None:
        return "the top level"
    label = labels.get(key, key)
    return esc(key) if label == key else f"{esc(label)} ({esc(key)})"


def tree_text(tree: NodeTree, style: Style) -> list[str]:
    """The tree as lines: each node's marker in one column, then two spaces a level."""
    lines = ["node tree (+ added, - removed, ~ changed, > moved):"]
    if tree.partial:
        lines.append(
            f"  (only the {tree.changed} changed node(s) and their ancestors: "
            f"{len(tree.rows)} of {tree.total} nodes)"
        )
    for depth, node in tree.rows:
        text = f"  {node.marker} {'  ' * depth}{_node_name(node.key, tree.labels, plain)}"
        details = _node_details(node, tree.labels)
        if details:
            text += f": {details}"
        colour = _DIFF_COLOUR.get(node.marker)
        lines.append(style(text, colour) if colour else text)
    return lines


def _node_details(node: TreeNode, labels: Mapping[str, str]) -> str:
    details = []
    if node.status == "moved":
        details.append(f"moved from {_node_name(node.old_parent, labels, plain)}")
    if node.old_label == "":
        details.append("label added")
    elif node.old_label is not None:
        details.append(f"label was {value(node.old_label)}")
    if node.fields:
        details.append("changed " + ", ".join(plain(name) for name in node.fields))
    return "; ".join(details)


def mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: letters, digits and `` _-.,/()`` as they are,
    every other character as Mermaid's entity code (``"`` is ``#34;``).

    No quote can end the label, and no ``#``, ``%``, ``:``, backtick, ``<`` or ``&`` is
    left to spell an entity, a comment, a class, markdown or HTML.
    """
    shown = visible(text)
    return "".join(c if c.isalnum() or c in " _-.,/()" else f"#{ord(c)};" for c in shown)


def _short(text: str) -> str:
    return text if len(text) <= MERMAID_LABEL_CHARS else text[: MERMAID_LABEL_CHARS - 1] + "…"


def tree_mermaid(tree: NodeTree) -> str | None:
    """A Mermaid flowchart of the tree, or None when it is too big to draw.

    Node ids are ``n0``, ``n1``, …: no collection id or label is ever Mermaid syntax.
    """
    if len(tree.rows) > MERMAID_NODE_LIMIT:
        return None
    ids = {node.key: f"n{i}" for i, (_, node) in enumerate(tree.rows)}
    lines = ["flowchart TD", *_MERMAID_CLASSES]
    for _, node in tree.rows:
        label = _short(node.label)
        if node.status != "unchanged":
            label = f"{node.marker} {label}"
        if node.old_label is not None:
            label += f" (was {_short(node.old_label or node.key)})"
        lines.append(f'  {ids[node.key]}["{mermaid_text(label)}"]')
    for _, node in tree.rows:
        if node.parent in ids and node.parent != node.key:
            lines.append(f"  {ids[node.parent]} --> {ids[node.key]}")
        if node.old_parent in ids:
            lines.append(f"  {ids[node.old_parent]} -.-> {ids[node.key]}")
    for status in ("added", "removed", "changed", "moved"):
        members = [ids[node.key] for _, node in tree.rows if node.status == status]
        if members:
            lines.append(f"  class {','.join(members)} {status}")
    chart = "\n".join(lines)
    return chart if len(chart) <= MERMAID_CHAR_LIMIT else None


def tree_markdown(change: Change, tree: NodeTree, room: int = MERMAID_PLAN_LIMIT) -> list[str]:
    """The picture of a change's node tree, with its legend, as markdown lines.

    ``room``: the characters left for pictures in this plan; a chart longer than that is
    left out with a note, as one too big to draw.
    """
    lines = ["", f"**Node tree of {md_inline(change.label)}** · {_MERMAID_LEGEND}"]
    if tree.partial:
        lines += [
            "",
            f"Only the {tree.changed} changed node(s) and their ancestors are drawn: "
            f"{len(tree.rows)} of {tree.total} nodes.",
        ]
    chart = tree_mermaid(tree)
    if chart is None:
        lines += ["", f"{len(tree.rows)} nodes are too many to draw; the diff lists each change."]
    elif len(chart) > room:
        lines += [
            "",
            "No picture: the ones above fill this comment's room; the diff lists each change.",
        ]
    else:
        lines += ["", fenced(chart, "mermaid").rstrip("\n")]
    return lines


def result_line(result: ChangeResult, style: Style, esc: Escape = plain) -> str:
    """One line per completed change, as apply reports them (``esc``: see ``headline``)."""
    status = style(_STATUS[result.status], _STATUS_COLOUR[result.status])
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
            "collection_id": r.change.collection_id,
            "tasks": r.tasks,
        }
        for r in result.results
    )
    summary = {s: result.count(s) for s in ("applied", "failed", "stale", "not_started")}
    return json_safe(json.dumps({"summary": summary, "results": list(rows)}, indent=2)) + "\n"


def plan_json(plan: Plan) -> str:
    """The plan as JSON for a terminal or a log: ``plan.to_json()``, hidden characters escaped."""
    return json_safe(plan.to_json())


def history_text(history: History) -> str:
    """Each version and what changed since the one before.

    The API's ``created_at`` is the record's creation time on every version (TAXONOMIES.md
    §3.6), so it is shown once, in the heading, and never as the time of a version.
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
