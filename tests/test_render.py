"""Golden files of the rendered plan: text (Terraform-like), markdown (PR comment), JSON.

Regenerate after an intended change with ``TAXSYNC_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py``
(refused under CI; see ``tests.helpers.check_golden``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taxsync import github, names, references, render
from taxsync.live import neighbourhood
from taxsync.model import SourceLocation
from taxsync.plan import Plan, ResolvedName
from taxsync.planner import PlanOptions, plan
from taxsync.wire import TaxonomyResponse
from tests import helpers
from tests.helpers import check_golden, desired_flat, desired_hierarchical, live_flat


def at(file: str) -> SourceLocation:
    """The metadata.name line of a manifest at ``file``, as the plan shows it."""
    return SourceLocation(f"manifests/{file}", 4, 3)


def node(collection_id: str, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    """A hierarchical node: ``node("col_b", "col_a", label="B")``."""
    return {"collection_id": collection_id, "parent_collection_id": parent, **fields}


# A hierarchical taxonomy whose new version changes its nodes every way there is: Interns
# is added, Legacy accounts removed, Platform moved under Engineering, Search relabelled
# (with characters that Mermaid, HTML and markdown must not read as syntax), Sales' keywords
# changed; EMEA has no label and is shown by its collection id.
TEAMS_BEFORE = [
    node("col_company", label="Company"),
    node("col_engineering", "col_company", label="Engineering"),
    node("col_platform", "col_company", label="Platform"),
    node("col_search", "col_engineering", label="Search"),
    node("col_sales", "col_company", label="Sales", keywords=["revenue"]),
    node("col_emea", "col_sales"),
    node("col_legacy", "col_sales", label="Legacy accounts"),
]
TEAMS_AFTER = [
    node("col_company", label="Company"),
    node("col_engineering", "col_company", label="Engineering"),
    node("col_platform", "col_engineering", label="Platform"),
    node("col_search", "col_engineering", label='R&D "Search" <beta> #1'),
    node("col_interns", "col_engineering", label="Interns"),
    node("col_sales", "col_company", label="Sales", keywords=["deals"]),
    node("col_emea", "col_sales"),
]


def live_teams() -> TaxonomyResponse:
    config = {**desired_hierarchical(config={"hierarchical_nodes": TEAMS_BEFORE}).config}
    return live_flat(
        taxonomy_name="teams",
        taxonomy_id="tax_teams",
        version=7,
        description=None,
        config=config,
        metadata={"managed_by": "taxsync"},
    )


def sample_plan() -> Plan:
    desired = [
        desired_flat(top_k=3, source=at("production/products.yaml")),
        desired_flat("brand-new", source=at("production/new.yaml")),
        desired_hierarchical(source=at("production/org.yaml")),
        desired_hierarchical(
            "teams",
            config={"hierarchical_nodes": TEAMS_AFTER},
            source=at("production/teams.yaml"),
        ),
        desired_flat(namespace="staging", source=at("staging/products.yaml")),
    ]
    live = {
        "production": [
            live_flat(version=4),
            live_flat(taxonomy_name="org", taxonomy_id="tax_org"),
            live_flat(taxonomy_name="retired", taxonomy_id="tax_retired"),
            live_teams(),
        ],
        "staging": [live_flat(taxonomy_id="tax_stg", description="old words")],
    }
    # Products moves to phase 2 on its collection, attaches to images and leaves archive;
    # brand-new attaches to images (with the id its create gives it); retired is blocked.
    desired[0] = replace(
        desired[0],
        applied_to=({"collection": "products", "execution_phase": 2}, {"collection": "images"}),
        backfill=True,
    )
    # Brand-new names its retriever by name: the plan shows the id the name resolved to.
    named = {**desired[1].config, "retriever_id": {"name": "clip"}}
    applied = ({"collection": "col_images", "priority": 3},)
    desired[1] = replace(desired[1], config=named, applied_to=applied)
    products = {"taxonomy_id": "tax_products", "execution_phase": 1, "priority": 0}
    theirs = {"taxonomy_id": "tax_theirs", "execution_phase": 3}
    around = {
        "production": neighbourhood(
            [
                _collection("col_products_v1", "products", [products, theirs], 1200),
                _collection("col_images", "images", [], 98000),
                _collection(
                    "col_archive",
                    "archive",
                    [
                        {"taxonomy_id": "tax_products", "priority": 5},
                        {"taxonomy_id": "tax_retired"},
                    ],
                    None,
                ),
            ],
            [{"retriever_id": "ret_clip8f3k", "retriever_name": "clip"}],
        ),
        "staging": neighbourhood([], []),
    }
    options = PlanOptions(prune=True, api_url="https://api.mixpeek.com")
    resolution = names.resolve(desired[1], around["production"])
    desired[1] = resolution.desired
    resolved = tuple(ResolvedName(path=p, kind=k, name=n, id=i) for p, k, n, i in resolution.names)
    checked = references.Checked(desired, {desired[1].key: resolved}, {})
    return checked.annotate(plan(desired, live, options, around))


def _collection(
    collection_id: str, name: str, applications: list[dict[str, Any]], documents: int | None
) -> dict[str, Any]:
    return {
        "collection_id": collection_id,
        "collection_name": name,
        "taxonomy_applications": applications,
        "document_count": documents,
    }


@pytest.fixture
def the_plan() -> Plan:
    return sample_plan()


def test_text_plan(the_plan: Plan) -> None:
    check_golden("plan.txt", render.plan_text(the_plan, render.Style(False)))


def test_markdown_plan(the_plan: Plan) -> None:
    """As a pull request's comment shows it: each manifest place links to its line."""
    check_golden("plan.md", render.plan_markdown(the_plan, link=github.source_link(pr_context())))


def pr_context() -> github.GitHubContext:
    """A pull request's run whose workspace is the current directory (the plan's files
    are relative to it)."""
    ctx = github.GitHubContext.from_env(
        {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_REPOSITORY": "acme/taxonomies",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_WORKSPACE": str(Path.cwd()),
        }
    )
    return dataclasses.replace(ctx, pr_head_sha="0123456789abcdef0123456789abcdef01234567")


def test_json_plan(the_plan: Plan) -> None:
    check_golden("plan.json", the_plan.to_json())


def test_colour_only_when_asked(the_plan: Plan) -> None:
    assert "\033[" in render.plan_text(the_plan, render.Style(True))
    assert "\033[" not in render.plan_text(the_plan, render.Style(False))


def test_empty_plan_says_no_changes() -> None:
    assert render.plan_text(Plan(), render.Style(False)).startswith("No changes.")


def test_golden_update_switch_is_refused_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    (golden / "x.txt").write_text("reviewed\n", encoding="utf-8")
    monkeypatch.setattr(helpers, "GOLDEN", golden)
    monkeypatch.setenv("TAXSYNC_UPDATE_GOLDEN", "1")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(BaseException) as outcome:  # a skip would not do: it hides the check
        check_golden("x.txt", "anything at all\n")
    assert outcome.type is pytest.fail.Exception
    assert "TAXSYNC_UPDATE_GOLDEN is set under CI" in str(outcome.value)
    assert (golden / "x.txt").read_text(encoding="utf-8") == "reviewed\n"  # not rewritten


def test_golden_update_rewrites_without_claiming_a_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    monkeypatch.setattr(helpers, "GOLDEN", golden)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TAXSYNC_UPDATE_GOLDEN", raising=False)
    with pytest.raises(pytest.fail.Exception, match="is missing"):
        check_golden("x.txt", "new\n")
    (golden / "x.txt").write_text("old\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="differs from golden file x.txt"):
        check_golden("x.txt", "new\n")
    monkeypatch.setenv("TAXSYNC_UPDATE_GOLDEN", "1")
    with pytest.raises(pytest.skip.Exception, match="rewritten"):
        check_golden("x.txt", "new\n")
    assert (golden / "x.txt").read_text(encoding="utf-8") == "new\n"
