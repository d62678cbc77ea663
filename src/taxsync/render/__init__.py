"""Plans, apply results, trees and reports as people and machines read them: text,
markdown and JSON. Rendering only: everything shown comes ready from the plan.

- ``escape``: escaping for each kind of output, and the terminal's colours;
- ``plans``: a plan as text, markdown (the pull-request comment) and JSON;
- ``trees``: the node trees of hierarchical taxonomies (text and Mermaid);
- ``results``: apply results, history and doctor's report;
- ``diffs``: ``taxsync diff``, two namespaces compared.
"""

from taxsync.render.diffs import diff_summary, namespace_diff_json, namespace_diff_text
from taxsync.render.escape import Escape, Style, fenced, json_safe, md_inline, plain, value, visible
from taxsync.render.plans import (
    SAFE_URL,
    SourceLink,
    diff_line,
    diff_lines_markdown,
    headline,
    impact_lines,
    plan_json,
    plan_markdown,
    plan_text,
)
from taxsync.render.results import (
    apply_json,
    apply_markdown,
    apply_summary,
    doctor_json,
    doctor_text,
    history_text,
    result_line,
)
from taxsync.render.trees import (
    MERMAID_CHAR_LIMIT,
    MERMAID_LABEL_CHARS,
    MERMAID_NODE_LIMIT,
    MERMAID_PLAN_LIMIT,
    TREE_FULL_LIMIT,
    NodeTree,
    TreeNode,
    compare_nodes,
    mermaid_text,
    node_tree,
    tree_markdown,
    tree_mermaid,
    tree_text,
)

__all__ = [
    "SAFE_URL",
    "MERMAID_CHAR_LIMIT",
    "MERMAID_LABEL_CHARS",
    "MERMAID_NODE_LIMIT",
    "MERMAID_PLAN_LIMIT",
    "TREE_FULL_LIMIT",
    "Escape",
    "NodeTree",
    "SourceLink",
    "Style",
    "TreeNode",
    "apply_json",
    "apply_markdown",
    "apply_summary",
    "compare_nodes",
    "diff_line",
    "diff_summary",
    "diff_lines_markdown",
    "doctor_json",
    "doctor_text",
    "fenced",
    "headline",
    "history_text",
    "impact_lines",
    "json_safe",
    "md_inline",
    "mermaid_text",
    "namespace_diff_json",
    "namespace_diff_text",
    "node_tree",
    "plain",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "result_line",
    "tree_markdown",
    "tree_mermaid",
    "tree_text",
    "value",
    "visible",
]
