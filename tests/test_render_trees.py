"""The node tree of a change to a hierarchical taxonomy: statuses, the text tree, the
Mermaid picture, and which changes get one.

Changes are made by the real planner (``planner.compare``) from a desired taxonomy and a
live one, so the trees are drawn from exactly what a plan carries.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from taxsync import render
from taxsync.model import DesiredTaxonomy, SourceLocation
from taxsync.plan import FieldChange, Plan, Summary, TaxonomyChange
from taxsync.planner import compare, delete_change
from taxsync.wire import TaxonomyResponse

RETRIEVER = {
    "retriever_id": "ret_face_matcher",
    "input_mappings": [{"input_key": "face_vec", "source_type": "vector", "path": "features.face"}],
}


def node(collection_id: str, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"collection_id": collection_id, "parent_collection_id": parent, **fields}


def hierarchical(nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"taxonomy_type": "hierarchical", **RETRIEVER, "hierarchical_nodes": nodes, **extra}


FLAT = {
    "taxonomy_type": "flat",
    "retriever_id": "ret_clip_v1",
    "input_mappings": [{"input_key": "image", "source_type": "vector", "path": "features.clip"}],
    "source_collection": {"collection_id": "col_products"},
}


def desired(config: dict[str, Any]) -> DesiredTaxonomy:
    return DesiredTaxonomy(
        namespace="production",
        name="teams",
        description=None,
        metadata={},
        config=config,
        source=SourceLocation("teams.yaml", 4, 3),
    )


def live(config: dict[str, Any]) -> TaxonomyResponse:
    return TaxonomyResponse(
        taxonomy_id="tax_teams",
        version=3,
        taxonomy_name="teams",
        config=config,
        metadata={"managed_by": "taxsync"},
    )


def change_of(before: dict[str, Any] | None, after: dict[str, Any]) -> TaxonomyChange:
    """What the planner plans for ``after`` over a live ``before`` (None: absent)."""
    made = compare(desired(after), None if before is None else live(before), None)
    assert made is not None, "no change"
    return made


def statuses(tree: render.NodeTree | None) -> dict[str, str]:
    assert tree is not None
    return {n.key: n.status for _, n in tree.rows}


BEFORE = [
    node("col_company", label="Company"),
    node("col_eng", "col_company", label="Engineering"),
    node("col_platform", "col_company", label="Platform"),
    node("col_search", "col_eng", label="Search"),
    node("col_sales", "col_company", label="Sales", keywords=["revenue"]),
    node("col_legacy", "col_sales", label="Legacy"),
    node("col_solo", label="Solo"),
]
AFTER = [
    node("col_company", label="Company"),
    node("col_eng", "col_company", label="Engineering"),
    node("col_platform", "col_eng", label="Platform"),  # moved
    node("col_search", "col_eng", label="Search & Ranking"),  # relabelled
    node("col_interns", "col_eng", label="Interns"),  # added
    node("col_sales", "col_company", label="Sales", keywords=["deals"]),  # changed
    node("col_solo", "col_company", label="Solo"),  # a root no more
]


def test_every_kind_of_node_change() -> None:
    tree = render.node_tree(change_of(hierarchical(BEFORE), hierarchical(AFTER)))
    assert statuses(tree) == {
        "col_company": "unchanged",
        "col_eng": "unchanged",
        "col_platform": "moved",
        "col_search": "changed",
        "col_interns": "added",
        "col_sales": "changed",
        "col_legacy": "removed",
        "col_solo": "moved",
    }
    assert tree is not None and not tree.partial and tree.total == 8
    by_key = {n.key: n for _, n in tree.rows}
    assert by_key["col_platform"].old_parent == "col_company"
    assert by_key["col_solo"].old_parent is None, "it was a root"
    assert by_key["col_search"].old_label == "Search" and by_key["col_search"].fields == ()
    assert by_key["col_sales"].fields == ("keywords",) and by_key["col_sales"].old_label is None
    assert by_key["col_legacy"].parent == "col_sales", "a removed node hangs where it was"


def test_the_text_tree() -> None:
    tree = render.node_tree(change_of(hierarchical(BEFORE), hierarchical(AFTER)))
    assert tree is not None
    assert render.tree_text(tree, render.Style(False)) == [
        "node tree (+ added, - removed, ~ changed, > moved):",
        "    Company (col_company)",
        "      Engineering (col_eng)",
        "  >     Platform (col_platform): moved from Company (col_company)",
        '  ~     Search & Ranking (col_search): label was "Search"',
        "  +     Interns (col_interns)",
        "  ~   Sales (col_sales): changed keywords",
        "  -     Legacy (col_legacy)",
        "  >   Solo (col_solo): moved from the top level",
    ]
    coloured = render.tree_text(tree, render.Style(True))
    assert coloured[3].startswith("\033[36m  >") and coloured[1] == "    Company (col_company)"


def test_the_mermaid_picture() -> None:
    tree = render.node_tree(change_of(hierarchical(BEFORE), hierarchical(AFTER)))
    assert tree is not None
    chart = render.tree_mermaid(tree)
    assert chart is not None
    lines = chart.split("\n")
    assert lines[0] == "flowchart TD"
    assert [line for line in lines if line.startswith(("  n", "  linkStyle"))] == [
        '  n0["Company"]',
        '  n1["Engineering"]',
        '  n2["#62; Platform"]',
        '  n3["#126; Search #38; Ranking (was Search)"]',
        '  n4["#43; Interns"]',
        '  n5["#126; Sales"]',
        '  n6["- Legacy"]',
        '  n7["#62; Solo"]',
        "  n0 --> n1",
        "  n1 --> n2",
        "  n0 -.-> n2",  # moved: a dotted edge from its old parent
        "  n1 --> n3",
        "  n1 --> n4",
        "  n0 --> n5",
        "  n5 -.-> n6",  # removed: its edge is dashed (and red, below)
        "  n0 --> n7",  # it was a root: no dotted edge
        "  linkStyle 2 stroke:#0969da,stroke-dasharray:2 2",
        "  linkStyle 6 stroke:#cf222e,stroke-dasharray:5 3",
    ]
    assert lines[-4:] == [
        "  class n4 added",
        "  class n6 removed",
        "  class n3,n5 changed",
        "  class n2,n7 moved",
    ]
    assert {line.split()[1] for line in lines if line.startswith("  classDef")} == {
        "added",
        "removed",
        "changed",
        "moved",
    }


def test_the_markdown_section() -> None:
    change = change_of(hierarchical(BEFORE), hierarchical(AFTER))
    markdown = render.plan_markdown(Plan(changes=[change], summary=Summary.of([change], 0)))
    section = markdown.split("**Node tree of production/teams** · ", 1)[1]
    legend, rest = section.split("\n", 1)
    assert legend == (
        "green `+` added · red `-` removed (dashed edge) · yellow `~` changed · "
        "blue `>` moved (dotted edge from its old parent)"
    )
    assert rest.startswith("\n```mermaid\nflowchart TD\n")
    assert markdown.index("```mermaid") < markdown.index("<details>"), "above the diffs"


def test_a_create_draws_every_node_as_added() -> None:
    change = change_of(None, hierarchical(AFTER))
    assert change.action == "create"
    assert set(statuses(render.node_tree(change)).values()) == {"added"}
    text = render.plan_text(Plan(changes=[change]), render.Style(False))
    assert "        +   Engineering (col_eng)\n" in text


def test_a_replace_from_flat_draws_the_new_tree() -> None:
    change = change_of(FLAT, hierarchical(AFTER))
    assert change.action == "replace"
    assert set(statuses(render.node_tree(change)).values()) == {"added"}


@pytest.mark.parametrize(
    "make",
    [
        # No node changed: another config field.
        lambda: change_of(hierarchical(AFTER), hierarchical(AFTER, llm_sample_size=5)),
        # Flat taxonomies have no nodes.
        lambda: change_of(FLAT, {**FLAT, "top_k": 4}),
    ],
    ids=["other-field", "flat"],
)
def test_changes_without_a_tree(make: Any) -> None:
    change = make()
    assert render.node_tree(change) is None
    assert "node tree" not in render.plan_text(Plan(changes=[change]), render.Style(False))
    assert "```mermaid" not in render.plan_markdown(Plan(changes=[change]))


def test_a_node_list_without_keys_is_compared_whole() -> None:
    # Live data may repeat a collection id: the list cannot be keyed, and the diff holds
    # both whole lists; the tree still reads from them.
    before = [*BEFORE, node("col_solo", label="Solo again")]
    change = change_of(hierarchical(before), hierarchical(AFTER))
    assert [f.path for f in change.diff] == ["config.hierarchical_nodes"]
    found = statuses(render.node_tree(change))
    assert found["col_interns"] == "added" and found["col_legacy"] == "removed"
    assert found["col_platform"] == "moved" and found["col_company"] == "unchanged"


def test_a_parent_cycle_in_live_data_is_drawn_once() -> None:
    # Two removed nodes that are each other's parent: nothing reaches them from a root.
    before = [*AFTER, node("col_x", "col_y", label="X"), node("col_y", "col_x", label="Y")]
    tree = render.node_tree(change_of(hierarchical(before), hierarchical(AFTER)))
    assert tree is not None
    keys = [n.key for _, n in tree.rows]
    assert sorted(keys) == sorted([n["collection_id"] for n in AFTER] + ["col_x", "col_y"])
    assert statuses(tree)["col_x"] == statuses(tree)["col_y"] == "removed"


def wide_tree(count: int) -> list[dict[str, Any]]:
    """A root with ``count - 1`` nodes in chains of four under it."""
    nodes = [node("col_root", label="Root")]
    for i in range(1, count):
        parent = "col_root" if i % 4 == 1 else f"col_n{i - 1}"
        nodes.append(node(f"col_n{i}", parent, label=f"Node {i}"))
    return nodes


def test_a_big_tree_shows_changed_nodes_and_their_ancestors() -> None:
    before = wide_tree(80)
    after = [dict(n) for n in before]
    after[7]["label"] = "Renamed"  # col_n7: under col_n6, col_n5, root
    after[11]["parent_collection_id"] = "col_n2"  # col_n11 moves from col_n10 to col_n2
    tree = render.node_tree(change_of(hierarchical(before), hierarchical(after)))
    assert tree is not None and tree.partial and tree.total == 80 and tree.changed == 2
    shown = {n.key for _, n in tree.rows}
    # The old parent of a moved node is shown too, so its dotted edge has both ends.
    assert shown == {"col_root", "col_n5", "col_n6", "col_n7", "col_n1", "col_n2", "col_n11"} | {
        "col_n9",
        "col_n10",
    }
    text = render.tree_text(tree, render.Style(False))
    assert text[1] == "  (only the 2 changed node(s) and their ancestors: 9 of 80 nodes)"
    markdown = render.tree_markdown(change_of(hierarchical(before), hierarchical(after)), tree)
    assert "Only the 2 changed node(s) and their ancestors are drawn: 9 of 80 nodes." in markdown
    chart = render.tree_mermaid(tree)
    assert chart is not None and chart.count('["') == 9


def test_a_tree_of_up_to_sixty_nodes_is_shown_whole() -> None:
    before = wide_tree(render.TREE_FULL_LIMIT)
    after = [*before[:-1], {**before[-1], "label": "Renamed"}]
    tree = render.node_tree(change_of(hierarchical(before), hierarchical(after)))
    assert tree is not None and not tree.partial and len(tree.rows) == 60


def test_too_big_a_picture_is_left_out_with_a_note() -> None:
    change = change_of(None, hierarchical(wide_tree(render.MERMAID_NODE_LIMIT + 1)))
    tree = render.node_tree(change)
    assert tree is not None and render.tree_mermaid(tree) is None
    markdown = "\n".join(render.tree_markdown(change, tree))
    assert "```mermaid" not in markdown
    assert "101 nodes are too many to draw; the diff lists each change." in markdown
    assert len(render.tree_text(tree, render.Style(False))) == 1 + 101, "the text lists all"
    # Long labels of escaped characters make a long chart: it stays under its budget.
    long = [{**n, "label": "\u300c" * 200} for n in wide_tree(90)]
    tree = render.node_tree(change_of(None, hierarchical(long)))
    assert tree is not None and render.tree_mermaid(tree) is None
    short = render.node_tree(change_of(None, hierarchical(long[:3])))
    assert short is not None
    chart = render.tree_mermaid(short)
    assert chart is not None and '["#43; ' + "#12300;" * 39 + '#8230;"]' in chart, "cut at 40"


def test_changed_values_in_markdown_are_a_minus_and_a_plus_line() -> None:
    fields = [
        FieldChange(path="config.top_k", before=1, after=3),
        FieldChange(path="description", after="new", before_present=False),
        FieldChange(path="metadata.team", before="search", after_present=False),
    ]
    change = TaxonomyChange(
        action="update",
        namespace="production",
        name="products",
        taxonomy_type="flat",
        diff=fields,
    )
    plan = Plan(changes=[change], summary=Summary.of([change], 0))
    block = re.search(r"```diff\n(.*?)\n```", render.plan_markdown(plan), re.S)
    assert block is not None
    assert block[1].split("\n") == [
        "- config.top_k: 1",
        "+ config.top_k: 3",
        '+ description = "new"',
        '- metadata.team (was "search")',
    ]
    # The text plan keeps one "~" line per changed value.
    assert "      ~ config.top_k: 1 → 3\n" in render.plan_text(plan, render.Style(False))


def test_links_only_when_a_safe_url_is_given() -> None:
    change = TaxonomyChange(
        action="update",
        namespace="production",
        name="products",
        taxonomy_type="flat",
        source="m/a.yaml:4",
    )
    plan = Plan(changes=[change], summary=Summary.of([change], 0))

    def row(markdown: str) -> str:
        return next(line for line in markdown.split("\n") if line.startswith("| `"))

    assert row(render.plan_markdown(plan)).endswith("| m/a.yaml:4 |"), "no link-maker: text"
    assert row(render.plan_markdown(plan, lambda s: None)).endswith("| m/a.yaml:4 |")
    url = "https://github.com/o/r/blob/abc1234/m/a.yaml#L4"
    assert row(render.plan_markdown(plan, lambda s: url)).endswith(f"| [m/a.yaml:4]({url}) |")
    for unsafe in ("javascript:alert(1)", "https://x/a) [y](https://z", "https://x/a b", "//x/a"):
        assert row(render.plan_markdown(plan, lambda s, u=unsafe: u)).endswith("| m/a.yaml:4 |")


def test_a_label_given_or_taken_away() -> None:
    before = [node("col_a", label="A"), node("col_b", "col_a")]
    after = [node("col_a"), node("col_b", "col_a", label="B")]
    tree = render.node_tree(change_of(hierarchical(before), hierarchical(after)))
    assert tree is not None
    assert render.tree_text(tree, render.Style(False))[1:] == [
        '  ~ col_a: label was "A"',
        "  ~   B (col_b): label added",
    ]
    chart = render.tree_mermaid(tree)
    assert chart is not None
    assert '  n0["#126; col_a (was A)"]' in chart and '  n1["#126; B (was col_b)"]' in chart


def test_pictures_leave_room_for_the_diffs() -> None:
    # Each chart fits on its own; together they would crowd the diffs out of the comment.
    labels = [{**n, "label": "\u300c" * 30} for n in wide_tree(60)]
    changes = [
        compare(
            DesiredTaxonomy(
                namespace="production",
                name=f"t{i}",
                description=None,
                metadata={},
                config=hierarchical(labels),
                source=SourceLocation(f"t{i}.yaml", 4, 3),
            ),
            None,
            None,
        )
        for i in range(4)
    ]
    plan = Plan(changes=changes, summary=Summary.of(changes, 0))  # type: ignore[arg-type]
    markdown = render.plan_markdown(plan)
    charts = re.findall(r"```mermaid\n.*?\n```", markdown, re.S)
    assert 1 <= len(charts) < 4 and sum(map(len, charts)) <= render.MERMAID_PLAN_LIMIT
    note = "No picture: the ones above fill this comment's room; the diff lists each change."
    assert markdown.count(note) == 4 - len(charts)
    assert markdown.count("<details>") == 4, "every diff is still there"


@pytest.mark.parametrize(
    "make",
    [
        lambda: change_of(hierarchical(AFTER), FLAT),
        lambda: delete_change("production", live(hierarchical(AFTER))),
    ],
    ids=["replace-to-flat", "delete"],
)
def test_what_a_delete_or_replace_removes_is_drawn_removed(make: Any) -> None:
    change = make()
    assert set(statuses(render.node_tree(change)).values()) == {"removed"}
    assert "```mermaid" in render.plan_markdown(Plan(changes=[change]))
