"""A delete, or a replace, of a hierarchical taxonomy shows the tree it removes."""

from __future__ import annotations

from taxsync import render
from taxsync.planner import PlanOptions, plan
from taxsync.wire import TaxonomyResponse
from tests.helpers import desired_flat

NS = "production"


def live_tree(name: str = "org") -> TaxonomyResponse:
    nodes = [
        {"collection_id": "col_company", "label": "Company"},
        {"collection_id": "col_sales", "parent_collection_id": "col_company", "label": "Sales"},
    ]
    return TaxonomyResponse.model_validate(
        {
            "taxonomy_id": "tax_org",
            "version": 2,
            "taxonomy_name": name,
            "config": {"taxonomy_type": "hierarchical", "hierarchical_nodes": nodes},
            "metadata": {"managed_by": "taxsync"},
        }
    )


def test_a_pruned_tree_is_drawn_as_removed() -> None:
    options = PlanOptions(prune=True, namespaces=frozenset({NS}))
    (change,) = plan([], {NS: [live_tree()]}, options).changes
    assert change.action == "delete" and change.nodes is not None
    text = render.plan_text(plan([], {NS: [live_tree()]}, options), render.Style(False))
    assert "        - Company (col_company)\n        -   Sales (col_sales)\n" in text
    markdown = render.plan_markdown(plan([], {NS: [live_tree()]}, options))
    assert "```mermaid" in markdown


def test_a_tree_replaced_by_a_flat_taxonomy_is_drawn_as_removed() -> None:
    (change,) = plan([desired_flat("org")], {NS: [live_tree()]}, PlanOptions()).changes
    assert change.action == "replace"
    text = render.plan_text(plan([desired_flat("org")], {NS: [live_tree()]}), render.Style(False))
    assert "        -   Sales (col_sales)\n" in text
