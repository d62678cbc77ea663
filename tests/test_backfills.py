"""The backfill bookkeeping (pure) and how an owed backfill reads in a plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxsync import bookkeeping, normalize, reconcile
from taxsync.errors import ConfigError
from taxsync.live import neighbourhood
from taxsync.model import BACKFILLS_KEY, MANAGED_KEY
from taxsync.plan import BackfillChange, Plan, Summary
from taxsync.render import plan_markdown, plan_text
from taxsync.render.escape import Style
from tests.helpers import live_flat

COLLECTION = {
    "collection_id": "col_products_v1",
    "collection_name": "products",
    "taxonomy_applications": [{"taxonomy_id": "tax_products"}],
}


def live_with(book: dict, version: int = 4) -> object:
    metadata = {MANAGED_KEY: "taxsync", BACKFILLS_KEY: book}
    return live_flat(version=version, metadata=metadata)


def owed_of(book: dict, states: dict[str, str] | None = None) -> list[BackfillChange]:
    around = neighbourhood([COLLECTION], [])
    return bookkeeping.owed("production", [live_with(book)], around, states or {})  # type: ignore[list-item]


def test_an_intent_without_a_task_is_owed() -> None:
    (change,) = owed_of({"col_products_v1": {"version": 4, "task": None}})
    assert change.head_version == 4 and change.collection_name == "products"
    assert "not known to have started" in change.reason
    assert change.backfills == ["col_products_v1"]


@pytest.mark.parametrize("status", ["FAILED", "CANCELED", "INTERRUPTED", "SKIPPED"])
def test_a_task_at_the_head_that_ended_badly_is_owed(status: str) -> None:
    book = {"col_products_v1": {"version": 4, "task": "task_a", "labelled": 3}}
    (change,) = owed_of(book, {"task_a": status})
    assert change.reason == f"backfill task task_a ended {status}"
    assert change.labelled_version == 3


@pytest.mark.parametrize("state", ["COMPLETED", "IN_PROGRESS", None])
def test_a_completed_running_or_unread_task_is_not_owed(state: str | None) -> None:
    book = {"col_products_v1": {"version": 4, "task": "task_a"}}
    assert owed_of(book, {"task_a": state} if state else {}) == []


def test_nothing_is_owed_for_a_version_that_never_landed_or_a_collection_detached() -> None:
    assert owed_of({"col_products_v1": {"version": 5, "task": None}}) == []
    assert owed_of({"col_other": {"version": 4, "task": None}}) == []


def test_only_tasks_at_the_head_without_a_recorded_end_are_read() -> None:
    book = {
        "col_a": {"version": 4, "task": "task_a"},
        "col_b": {"version": 4, "task": "task_b", "status": "COMPLETED"},
        "col_c": {"version": 3, "task": "task_c"},
    }
    assert bookkeeping.tasks_to_read([live_with(book)]) == ["task_a"]  # type: ignore[list-item]


def test_an_intent_keeps_the_earlier_tasks_and_what_was_labelled() -> None:
    done = bookkeeping.Record(version=3, task="task_a", status="COMPLETED", previous=("task_0",))
    record = bookkeeping.intent(done, 4, "run1")
    assert record == bookkeeping.Record(
        version=4, previous=("task_0", "task_a"), labelled=3, run="run1"
    )
    assert bookkeeping.started(record, "task_b").to_json() == {
        "version": 4,
        "task": "task_b",
        "previous": ["task_0", "task_a"],
        "labelled": 3,
    }


def test_malformed_records_read_as_none() -> None:
    metadata = {BACKFILLS_KEY: {"a": {"version": "4"}, "b": [], "c": {"version": 2, "task": 7}}}
    assert bookkeeping.records(metadata) == {"c": bookkeeping.Record(version=2)}


def test_the_patch_keeps_user_keys_and_leaves_system_keys_to_the_server() -> None:
    metadata = {"team": "search", "validation_warnings": [], BACKFILLS_KEY: {"x": {"version": 1}}}
    written = bookkeeping.metadata_with(metadata, {"y": bookkeeping.Record(version=2)})
    assert written == {
        "team": "search",
        BACKFILLS_KEY: {"x": {"version": 1}, "y": {"version": 2, "task": None}},
    }
    assert normalize.user_metadata(written) == {"team": "search"}


def owed_plan() -> Plan:
    (change,) = owed_of(
        {"col_products_v1": {"version": 4, "task": "task_a", "labelled": 3}}, {"task_a": "FAILED"}
    )
    return Plan(
        api_url=reconcile.DEFAULT_API_URL,
        namespaces=["production"],
        summary=Summary.of([change], 0),
        changes=[change],
    )


def test_an_owed_backfill_reads_as_its_own_change_in_text_and_markdown() -> None:
    plan = owed_plan()
    text = plan_text(plan, Style(False))
    assert (
        "↻ backfill production/products in collection products (col_products_v1): "
        "documents of products labelled by v3; head is v4" in text
    )
    assert "owed: backfill task task_a ended FAILED" in text
    assert "Plan: 0 to create, 0 new version, 0 to update, 0 to replace, 0 to delete, " in text
    assert "1 to backfill" in text
    assert "| `↻` | backfill production/products in collection products" in plan_markdown(plan)


def test_a_saved_plan_with_an_owed_backfill_loads_and_an_older_format_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(owed_plan().to_json())
    loaded = reconcile.load_plan(path, reconcile.Settings(api_key="k"))
    assert isinstance(loaded.changes[0], BackfillChange)
    path.write_text(owed_plan().to_json().replace('"format_version": 6', '"format_version": 5'))
    with pytest.raises(ConfigError, match="plan format 5 is not supported"):
        reconcile.load_plan(path, reconcile.Settings(api_key="k"))


def test_a_plan_that_deletes_or_detaches_owes_nothing_there() -> None:
    import asyncio

    from taxsync.backfills import with_owed
    from taxsync.planner import delete_change

    book = {"col_products_v1": {"version": 4, "task": None}}
    live = {"production": [live_with(book)]}
    around = {"production": neighbourhood([COLLECTION], [])}
    empty = Plan(namespaces=["production"])
    owing = asyncio.run(with_owed(None, empty, live, around, 1))  # type: ignore[arg-type]
    assert [c.action for c in owing.changes] == ["backfill"] and owing.summary.backfill == 1
    deleting = Plan(
        namespaces=["production"], changes=[delete_change("production", live["production"][0])]
    )  # type: ignore[arg-type]
    assert asyncio.run(with_owed(None, deleting, live, around, 1)).changes == deleting.changes  # type: ignore[arg-type]


def test_a_saved_owed_backfill_of_a_collection_that_does_not_apply_the_taxonomy_is_refused() -> (
    None
):
    from taxsync import verify

    plan = owed_plan()
    live = {"production": [live_with({}, version=4)]}
    around = {"production": neighbourhood([COLLECTION], [])}
    assert verify.live_problems(plan, live, around) == []  # type: ignore[arg-type]
    forged = plan.changes[0].model_copy(update={"collection_id": "col_a", "backfills": ["col_a"]})
    bad = plan.model_copy(update={"changes": [forged]})
    (problem,) = verify.live_problems(bad, live, around)  # type: ignore[arg-type]
    assert "an owed backfill is of its own collection" in problem
