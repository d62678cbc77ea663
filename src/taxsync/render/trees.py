"""Node trees of hierarchical taxonomies.

A change to a hierarchical taxonomy's nodes is shown as the tree it leaves behind: a
Mermaid flowchart in markdown, an indented tree in text. The planner hands over the nodes
before and after (``TaxonomyChange.nodes``); this module only compares and draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from taxsync.plan import (
    AnyChange,
    TaxonomyChange,
)
from taxsync.render.escape import (
    DIFF_COLOUR,
    Escape,
    Style,
    fenced,
    md_inline,
    plain,
    value,
    visible,
)

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
    "green `+` added · red `-` removed (dashed edge) · yellow `~` changed · "
    "blue `>` moved (dotted edge from its old parent)"
)
# The edge to a removed node goes with it; a moved node's old edge is where it was.
_REMOVED_EDGE = "stroke:#cf222e,stroke-dasharray:5 3"
_MOVED_EDGE = "stroke:#0969da,stroke-dasharray:2 2"


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


def node_tree(change: AnyChange) -> NodeTree | None:
    """The node tree of a change to a hierarchical taxonomy's nodes; None for other changes."""
    if not isinstance(change, TaxonomyChange) or change.nodes is None:
        return None
    nodes = compare_nodes(change.nodes.before, change.nodes.after)
    if all(node.status == "unchanged" for node in nodes):
        return None
    rows = _layout(nodes)
    if len(rows) > TREE_FULL_LIMIT:
        rows = _changed_with_ancestors(rows)
    labels = {node.key: node.label for node in nodes}
    return NodeTree(tuple(rows), total=len(nodes), labels=labels)


def compare_nodes(
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
) -> list[TreeNode]:
    """Every node of both trees with its status: the new ones in order, then removed ones."""
    nodes = []
    for key, node in after.items():
        parent, label = _parent(node), _label(key, node)
        old = before.get(key)
        if old is None:
            nodes.append(TreeNode(key, label, "added", parent))
            continue
        fields = {name for name in set(old) | set(node) if old.get(name) != node.get(name)}
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
        colour = DIFF_COLOUR.get(node.marker)
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
    lines += _mermaid_edges(tree, ids)
    for status in ("added", "removed", "changed", "moved"):
        members = [ids[node.key] for _, node in tree.rows if node.status == status]
        if members:
            lines.append(f"  class {','.join(members)} {status}")
    chart = "\n".join(lines)
    return chart if len(chart) <= MERMAID_CHAR_LIMIT else None


def _mermaid_edges(tree: NodeTree, ids: Mapping[str, str]) -> list[str]:
    """Solid edges to a node's parent; dashed red ones to a removed node (it goes, and its
    edge with it); dotted blue ones from a moved node's old parent."""
    edges: list[str] = []
    styles: list[str] = []
    for _, node in tree.rows:
        parent, old = ids.get(node.parent or ""), ids.get(node.old_parent or "")
        if parent is not None and node.parent != node.key:
            if node.status == "removed":
                styles.append(f"  linkStyle {len(edges)} {_REMOVED_EDGE}")
                edges.append(f"  {parent} -.-> {ids[node.key]}")
            else:
                edges.append(f"  {parent} --> {ids[node.key]}")
        if old is not None:
            styles.append(f"  linkStyle {len(edges)} {_MOVED_EDGE}")
            edges.append(f"  {old} -.-> {ids[node.key]}")
    return edges + styles


def tree_markdown(change: AnyChange, tree: NodeTree, room: int = MERMAID_PLAN_LIMIT) -> list[str]:
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
