"""The markdown plan (the PR comment) groups its changes by namespace, and says which
namespaces a manifest declaring several of them changes."""

from __future__ import annotations

from taxsync import render
from taxsync.model import SourceLocation
from taxsync.planner import PlanOptions, plan
from tests.helpers import desired_flat

SHARED = SourceLocation("taxonomies/product-categories.yaml", 9, 3)


def rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")][1:]


def test_changes_are_grouped_by_namespace_and_a_shared_manifest_says_where_it_changes() -> None:
    desired = [
        desired_flat("product-categories", namespace=ns, top_k=3, source=SHARED)
        for ns in ("staging", "production")
    ]
    desired.append(
        desired_flat("labels", namespace="qa", source=SourceLocation("taxonomies/l.yaml", 4, 3))
    )
    live = {"staging": [], "production": [], "qa": []}
    markdown = render.plan_markdown(plan(desired, live, PlanOptions()))

    assert rows(markdown) == [
        "| | **production** | | |",
        "| `+` | create production/product-categories (flat) |  | "
        "taxonomies/product-categories.yaml:9 |",
        "| | **qa** | | |",
        "| `+` | create qa/labels (flat) |  | taxonomies/l.yaml:4 |",
        "| | **staging** | | |",
        "| `+` | create staging/product-categories (flat) |  | "
        "taxonomies/product-categories.yaml:9 |",
    ]
    assert (
        "\ntaxonomies/product-categories.yaml:9 declares product-categories in several "
        "namespaces; this plan changes it in production, staging\n"
    ) in markdown
    assert "taxonomies/l.yaml:4 declares" not in markdown


def test_changes_planned_out_of_namespace_order_are_grouped_all_the_same() -> None:
    desired = [desired_flat("x", namespace=ns, source=SHARED) for ns in ("b", "a")]
    planned = plan(desired, {"a": [], "b": []}, PlanOptions())
    shuffled = planned.model_copy(
        update={"changes": sorted(planned.changes, key=lambda c: c.namespace, reverse=True)}
    )
    assert [r.split(" | ")[1] for r in rows(render.plan_markdown(shuffled))] == [
        "**a**",
        "create a/x (flat)",
        "**b**",
        "create b/x (flat)",
    ]


def test_one_namespace_gets_no_group_rows_and_no_spread_line() -> None:
    desired = [desired_flat("a", source=SHARED), desired_flat("b", source=SHARED)]
    markdown = render.plan_markdown(plan(desired, {"production": []}, PlanOptions()))
    assert [row.split(" | ")[1] for row in rows(markdown)] == [
        "create production/a (flat)",
        "create production/b (flat)",
    ]
    assert "declares" not in markdown


def test_namespaces_and_paths_cannot_break_the_comment() -> None:
    hostile = "ns|*x*<b>@team\n# heading"
    source = SourceLocation("t/[x](http://evil)|`.yaml", 2, 1)
    desired = [desired_flat("c", namespace=ns, source=source) for ns in (hostile, "prod")]
    markdown = render.plan_markdown(plan(desired, {hostile: [], "prod": []}, PlanOptions()))
    assert "\n# heading" not in markdown and "<b>" not in markdown and "@team" not in markdown
    assert "](http://evil)" not in markdown
    group = next(r for r in rows(markdown) if r.startswith("| | **ns"))
    assert group.count("|") == 5  # the row still has its four cells
    (spread,) = [line for line in markdown.splitlines() if "declares" in line]
    assert "|" not in spread.replace("&#124;", "")  # no cell break in a line outside the table
