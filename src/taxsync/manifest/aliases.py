"""The budget YAML aliases may spend: values they add, per file and per run.

An alias bomb ("billion laughs") is measured on the composed nodes, without expanding it,
before any value of its document is converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from taxsync.manifest.characters import shown_key
from taxsync.manifest.document import Document
from taxsync.model import FieldPath
from taxsync.safe_read import MAX_ALIAS_VALUES, AliasCycle, expanded

# Alias bombs ("billion laughs"): how many values YAML aliases may add, beyond the nodes the
# text itself holds, in one file and in one run. Checked before any value is converted.
MAX_ALIAS_VALUES_PER_FILE = MAX_ALIAS_VALUES  # the budget of every YAML file taxsync reads
MAX_ALIAS_VALUES_PER_RUN = 1_000_000


@dataclass
class RunBudget:
    """What one run may still spend on values YAML aliases add."""

    # Read when a run starts, so a test can lower the limit.
    alias_values: int = field(default_factory=lambda: MAX_ALIAS_VALUES_PER_RUN)
    exhausted: bool = False


def _values(node: yaml.Node) -> list[yaml.Node]:
    """The nodes conversion descends into: mapping values (keys are plain scalars), items."""
    if isinstance(node, yaml.MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_sizes(root: yaml.Node, document: Document) -> dict[int, int] | None:
    """How many values each node of a document converts to, aliases expanded (the walk
    every YAML file taxsync reads gets). A value that contains itself is a problem (None):
    conversion would never end."""
    try:
        return expanded(root, _values)[0]
    except AliasCycle as cycle:
        where = cycle.parent
        if isinstance(where, yaml.MappingNode):  # at the entry's key
            where = next(k for k, v in where.value if v is cycle.child)
        document.problem(where, (), str(cycle))
        return None


def _heaviest(root: yaml.Node, sizes: Mapping[int, int]) -> tuple[yaml.Node, FieldPath]:
    """Where most of a document's expansion is: follow the child holding most of it."""
    node, at = root, root
    path: FieldPath = ()
    while True:
        entries: list[tuple[yaml.Node, yaml.Node, str | int]]
        if isinstance(node, yaml.MappingNode):
            entries = [(k, v, shown_key(str(k.value))) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            entries = [(item, item, i) for i, item in enumerate(node.value)]
        else:
            return at, path
        if not entries:
            return at, path
        mark, child, part = max(entries, key=lambda entry: sizes[id(entry[1])])
        if sizes[id(child)] * 2 <= sizes[id(node)]:
            return at, path
        node, at, path = child, mark, (*path, part)


def check_aliases(
    root: yaml.Node, document: Document, budget: RunBudget, file_values: int
) -> int | None:
    """The values aliases add to this document, or None if the file must not be read on."""
    sizes = _expanded_sizes(root, document)
    if sizes is None:
        return None
    added = sizes[id(root)] - len(sizes)
    if added <= 0:
        return 0
    if file_values + added > MAX_ALIAS_VALUES_PER_FILE:
        node, path = _heaviest(root, sizes)
        limit = MAX_ALIAS_VALUES_PER_FILE
        document.problem(node, path, f"YAML aliases expand this file by more than {limit} values")
        return None
    if budget.exhausted:
        return None  # already reported once for this run
    budget.alias_values -= added
    if budget.alias_values < 0:
        budget.exhausted = True
        node, path = _heaviest(root, sizes)
        limit = MAX_ALIAS_VALUES_PER_RUN
        document.problem(
            node, path, f"YAML aliases expand the manifests by more than {limit} values"
        )
        return None
    return added
