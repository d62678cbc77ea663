"""Golden files of the rendered plan: text (Terraform-like), markdown (PR comment), JSON.

Regenerate after an intended change with ``TAXSYNC_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taxsync import render
from taxsync.manifest import load_tree
from taxsync.plan import Plan
from taxsync.planner import PlanOptions, plan
from tests.helpers import flat, hierarchical, live_flat, write

GOLDEN = Path(__file__).parent / "golden"


def sample_plan(root: Path) -> Plan:
    write(root, "manifests/production/products.yaml", flat(top_k=3))
    write(root, "manifests/production/new.yaml", flat("brand-new"))
    write(root, "manifests/production/org.yaml", hierarchical())
    write(root, "manifests/staging/products.yaml", flat(namespace="staging"))
    desired = load_tree(Path("manifests"), {})
    live = {
        "production": [
            live_flat(version=4),
            live_flat(taxonomy_name="org", taxonomy_id="tax_org"),
            live_flat(taxonomy_name="retired", taxonomy_id="tax_retired"),
        ],
        "staging": [live_flat(taxonomy_id="tax_stg", description="old words")],
    }
    return plan(desired, live, PlanOptions(prune=True, api_url="https://api.mixpeek.com"))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TAXSYNC_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
def the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    monkeypatch.chdir(tmp_path)
    return sample_plan(tmp_path)


def test_text_plan(the_plan: Plan) -> None:
    check_golden("plan.txt", render.plan_text(the_plan, render.Style(False)))


def test_markdown_plan(the_plan: Plan) -> None:
    check_golden("plan.md", render.plan_markdown(the_plan))


def test_json_plan(the_plan: Plan) -> None:
    check_golden("plan.json", the_plan.to_json())


def test_colour_only_when_asked(the_plan: Plan) -> None:
    assert "\033[" in render.plan_text(the_plan, render.Style(True))
    assert "\033[" not in render.plan_text(the_plan, render.Style(False))


def test_empty_plan_says_no_changes() -> None:
    assert render.plan_text(Plan(), render.Style(False)).startswith("No changes.")
