"""The pull-request comment as a reviewer reads it: short diff lines, notes in full, what a
change affects, and links to the lines a change touches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from taxsync import render
from taxsync.manifest import load_tree
from taxsync.plan import AppliedBy, AttachmentChange, Plan, Summary, TaxonomyChange
from taxsync.planner import PlanOptions, plan
from tests.helpers import desired_hierarchical, hierarchical, live_flat, write
from tests.test_render import sample_plan

NS = "production"
LONG = "A label long enough to make one line of JSON scroll sideways in a comment"


def live_org(nodes: list[dict[str, Any]]) -> Any:
    config = {**desired_hierarchical(config={"hierarchical_nodes": nodes}).config}
    return live_flat(
        taxonomy_name="org",
        taxonomy_id="tax_org",
        version=3,
        description=None,
        config=config,
        metadata={"managed_by": "taxsync"},
    )


def code_lines(markdown: str) -> list[str]:
    """Every line inside a fenced code block."""
    return [
        line
        for block in re.findall(r"\n```diff\n(.*?)\n```\n", markdown, re.S)
        for line in block.split("\n")
    ]


def test_an_added_or_removed_node_is_one_short_line_per_field() -> None:
    before = [
        {"collection_id": "col_employees", "label": "Employees"},
        {"collection_id": "col_gone", "parent_collection_id": "col_employees", "label": LONG},
    ]
    after = [
        {"collection_id": "col_employees", "label": "Employees"},
        {
            "collection_id": "col_new",
            "parent_collection_id": "col_employees",
            "label": LONG,
            "keywords": ["one", "two"],
        },
    ]
    desired = desired_hierarchical("org", config={"hierarchical_nodes": after})
    the_plan = plan([desired], {NS: [live_org(before)]}, PlanOptions())
    text = render.plan_text(the_plan, render.Style(False))
    markdown = render.plan_markdown(the_plan)
    for lines in (text.split("\n"), code_lines(markdown)):
        nodes = [line.strip() for line in lines if "hierarchical_nodes[" in line]
        assert nodes and all(len(line) <= 160 and "{" not in line for line in nodes), nodes
    assert '+ config.hierarchical_nodes[col_new].label = "A label long' in text
    assert '+ config.hierarchical_nodes[col_new].keywords = ["one", "two"]' in text
    assert '- config.hierarchical_nodes[col_gone].parent_collection_id (was "col_employees")' in (
        text
    )


def test_notes_are_prose_after_the_diff_never_cut_by_a_code_block() -> None:
    markdown = render.plan_markdown(sample_plan())
    note = (
        "- backfill: not planned (documents already in the collection stay unlabelled; "
        "apply --backfill, or spec.backfill: onChange)"
    )
    assert f"\n{note}\n" in markdown
    assert all(
        not line.startswith(("# note", "# backfill", "# applied")) for line in code_lines(markdown)
    )


def change_row(markdown: str, headline: str) -> list[str]:
    (row,) = [line for line in markdown.split("\n") if f"| {headline} |" in line]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_the_table_says_what_each_change_affects() -> None:
    version = TaxonomyChange(
        action="new_version",
        namespace=NS,
        name="products",
        taxonomy_id="tax_p",
        base_version=1,
        taxonomy_type="flat",
        applied_by=[
            AppliedBy(collection_id="col_p", collection_name="products", document_count=12345),
            AppliedBy(collection_id="col_a", collection_name="archive"),
        ],
        backfills=["col_p"],
    )
    unfilled = version.model_copy(update={"name": "tags", "backfills": []})
    attach = AttachmentChange(
        action="attach",
        namespace=NS,
        name="tags",
        taxonomy_id="tax_t",
        taxonomy_type="flat",
        collection_id="col_i",
        collection_name="images|<b>",
        application={"execution_phase": 1},
    )
    changes = [version, unfilled, attach]
    markdown = render.plan_markdown(Plan(changes=changes, summary=Summary.of(changes, 0)))
    assert change_row(markdown, "new version production/products v1 → v2")[2] == (
        "products (~12,345 docs) · archive · backfill planned"
    )
    assert change_row(markdown, "new version production/tags v1 → v2")[2] == (
        "products (~12,345 docs) · archive · no backfill"
    )
    cells = change_row(
        markdown, "attach production/tags to collection images&#124;&lt;b&gt; (col_i)"
    )
    assert cells[2] == "images&#124;&lt;b&gt; · no backfill"


def test_a_change_points_at_the_first_line_it_changes(tmp_path: Path) -> None:
    # The manifest's second node (line 13) carries the label "Managers"; live says "Bosses".
    write(tmp_path, "prod/org.yaml", hierarchical("org"))
    (desired,) = load_tree(tmp_path)
    nodes = [
        {"collection_id": "col_employees", "label": "Employees"},
        {"collection_id": "col_managers", "parent_collection_id": "col_employees", "label": "B"},
    ]
    (change,) = plan([desired], {NS: [live_org(nodes)]}, PlanOptions()).changes
    assert change.source == f"{tmp_path / 'prod/org.yaml'}:13"

    # A node only live state has is not in the manifest: the list that drops it is.
    nodes.append({"collection_id": "col_gone", "label": "Gone"})
    nodes[1]["label"] = "Managers"
    (change,) = plan([desired], {NS: [live_org(nodes)]}, PlanOptions()).changes
    assert change.source == f"{tmp_path / 'prod/org.yaml'}:11"

    link = render.plan_markdown(
        Plan(changes=[change], summary=Summary.of([change], 0)),
        link=lambda source: "https://github.test/blob/" + source.rsplit(":", 1)[1],
    )
    assert "](https://github.test/blob/11) |" in link
