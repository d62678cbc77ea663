"""What ``plan --changed-from`` adds to a plan's renderings: the namespaces left out, and the
changes pending before this change in a section of their own (golden files; regenerate with
``TAXSYNC_UPDATE_GOLDEN=1``)."""

from __future__ import annotations

import pytest

from taxsync import changed, render
from taxsync.plan import Plan, Summary
from tests.helpers import check_golden
from tests.test_render import sample_plan

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def split_plan() -> Plan:
    """The sample plan, its first two changes also made by REF's manifests (pending), eleven
    namespaces left out (one more than the line names)."""
    whole = sample_plan()
    before = Plan(changes=whole.changes[:2])
    made = changed.split_pending(whole, before)
    left_out = [f"customer-{n:02d}" for n in range(11)]
    return made.model_copy(update={"changed_from": COMMIT, "left_out": left_out})


def test_pending_changes_are_apart_and_not_counted(split_plan: Plan) -> None:
    whole = sample_plan()
    assert split_plan.pending == whole.changes[:2]
    assert split_plan.changes == whole.changes[2:]
    assert split_plan.summary == Summary.of(whole.changes[2:], whole.summary.unchanged)
    assert split_plan.summary.create == 0 and whole.summary.create == 1


def test_a_change_to_another_effect_is_not_pending() -> None:
    whole = sample_plan()
    other = whole.changes[0].model_copy(update={"diff": []})
    made = changed.split_pending(whole, Plan(changes=[other]))
    assert made.pending == [] and made.changes == whole.changes


def test_text_plan_with_pending(split_plan: Plan) -> None:
    check_golden("plan-changed.txt", render.plan_text(split_plan, render.Style(False)))


def test_markdown_plan_with_pending(split_plan: Plan) -> None:
    check_golden("plan-changed.md", render.plan_markdown(split_plan))


def test_nothing_but_pending() -> None:
    whole = sample_plan()
    made = changed.split_pending(whole, whole).model_copy(update={"changed_from": COMMIT})
    text = render.plan_text(made, render.Style(False))
    assert text.startswith("No changes.")
    assert f"Pending before this change: {len(whole.changes)}" in text
    markdown = render.plan_markdown(made)
    assert f"<details><summary>{len(whole.changes)} pending before this change</summary>" in (
        markdown
    )
    assert "none left out" in markdown


def test_saved_plan_applies_pending_alike(split_plan: Plan) -> None:
    sealed = Plan.model_validate_json(split_plan.to_json())
    merged = changed.with_pending(sealed)
    assert merged.changes == [*split_plan.changes, *split_plan.pending]
    assert merged.pending == []
    assert merged.digest == merged.content_digest()
