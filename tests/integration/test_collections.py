"""Taxonomies in their namespace, over HTTP against the emulator: references checked at plan
time, the collections a change affects, deletes that would leave collections dangling, and
backfills."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from taxsync.client import MixpeekClient
from taxsync.emulator import Faults, TaskPolicy
from taxsync.errors import NotFoundError
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, run_cli, write

NS = "production"
COLLECTION = "/v1/collections/col_products_v1"


def apply_products(tmp_path: Path, srv: EmulatorHandle, top_k: int = 1) -> Path:
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS, top_k=top_k))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    return root


def attach(srv: EmulatorHandle, taxonomy_id: str, **settings: Any) -> None:
    entry = {"taxonomy_id": taxonomy_id, **settings}
    Api(srv).call("PATCH", COLLECTION, NS, {"taxonomy_applications": [entry]})


def backfills(srv: EmulatorHandle) -> list[tuple[str, Any]]:
    return [
        (r.path, r.json()["taxonomy_id"])
        for r in srv.committed()
        if r.path.endswith("/apply-taxonomy")
    ]


# --- references ----------------------------------------------------------------------------


def test_ids_that_do_not_exist_are_plan_errors_at_their_lines(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    text = flat("products", NS).replace("ret_clip_v1", "ret_clip_v2")
    write(root, "p.yaml", text.replace("col_products_v1", "col_typo"))
    for command in ("plan", "apply"):
        result = run_cli(
            command, str(root), "--auto-approve" if command == "apply" else "-v", env=env(srv)
        )
        assert result.code == 1, result.output
        assert (
            f"{root / 'p.yaml'}:11:5: spec.config.retriever_id: retriever ret_clip_v2 does not exist in namespace production"
            in result.err
        )
        assert (
            f"{root / 'p.yaml'}:16:7: spec.config.source_collection.collection_id: collection col_typo does not exist in namespace production"
            in result.err
        )
    assert srv.writes() == []


def test_missing_references_may_be_let_through_as_notes(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS).replace("ret_clip_v1", "ret_later"))
    result = run_cli("plan", str(root), "--allow-missing-references", env=env(srv))
    assert result.code == 0, result.output
    assert "note: retriever ret_later does not exist in namespace production" in result.out


@pytest.mark.parametrize("route", ["list_collections", "list_retrievers"])
def test_an_unresolved_namespace_is_an_error_never_empty(
    emulator: StartEmulator, route: str
) -> None:
    """The lists answer an unknown X-Namespace with 200 and no results: not its contents."""
    srv = emulator(namespaces=["elsewhere"])

    async def read() -> None:
        async with MixpeekClient(srv.url, srv.api_key) as client:
            await getattr(client, route)("production")

    with pytest.raises(NotFoundError, match="'production' does not exist in the Mixpeek"):
        asyncio.run(read())


# --- impact --------------------------------------------------------------------------------


def test_a_new_version_lists_the_collections_that_apply_it(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = apply_products(tmp_path, srv)
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    attach(srv, taxonomy_id, execution_phase=2)
    write(root, "p.yaml", flat("products", NS, top_k=3))

    text = run_cli("plan", str(root), env=env(srv)).out
    assert "applied by products (col_products_v1, phase 2, ~1,200 documents)" in text
    assert "backfill: not planned" in text
    markdown = run_cli("plan", str(root), "--format", "markdown", env=env(srv)).out
    assert "\n- applied by products (col_products_v1, phase 2, ~1,200 documents)\n" in markdown
    assert "| products (~1,200 docs) · no backfill |" in markdown
    (change,) = json.loads(run_cli("plan", str(root), "--format", "json", env=env(srv)).out)[
        "changes"
    ]
    assert change["applied_by"] == [
        {
            "collection_id": "col_products_v1",
            "collection_name": "products",
            "execution_phase": 2,
            "target_collection_id": None,
            "document_count": 1200,
        }
    ]
    assert change["backfills"] == []


# --- deletes -------------------------------------------------------------------------------


def test_a_delete_of_an_applied_taxonomy_is_blocked(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = apply_products(tmp_path, srv)
    attach(srv, Api(srv).taxonomies(NS)["products"]["taxonomy_id"])
    (root / "p.yaml").unlink()
    write(root, "other.yaml", flat("other", NS))

    planned = run_cli("plan", str(root), "--prune", env=env(srv))
    assert "BLOCKED: still applied by 1 collection(s): products; detach it first" in planned.out
    srv.forget()
    applied = run_cli("apply", str(root), "--prune", "--auto-approve", env=env(srv))
    assert applied.code == 1
    assert "blocked: still applied by 1 collection(s)" in applied.output
    assert "products" in Api(srv).taxonomies(NS)
    assert [r.method for r in srv.committed()] == ["POST"]  # only the create of "other"


def test_a_saved_delete_is_refused_if_a_collection_applies_it_since(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = apply_products(tmp_path, srv)
    (root / "p.yaml").unlink()
    write(root, "other.yaml", flat("other", NS))
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--prune", "--out", str(plan_file), env=env(srv)).code == 0
    attach(srv, Api(srv).taxonomies(NS)["products"]["taxonomy_id"])  # after the plan

    applied = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert applied.code == 1
    assert "still applied by products; detach it first" in applied.output
    assert "products" in Api(srv).taxonomies(NS)


# --- backfills -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--backfill", "spec.backfill"])
def test_a_config_change_backfills_each_collection_once(
    tmp_path: Path, emulator: StartEmulator, how: str
) -> None:
    srv = emulator()
    root = apply_products(tmp_path, srv)
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    attach(srv, taxonomy_id)
    text = flat("products", NS, top_k=3)
    if how == "spec.backfill":
        text = text.replace("spec:\n", "spec:\n  backfill: onChange\n")
    write(root, "p.yaml", text)
    flags = ["--backfill"] if how == "--backfill" else []

    planned = run_cli("plan", str(root), *flags, env=env(srv))
    assert "backfill after apply: col_products_v1" in planned.out
    applied = run_cli("apply", str(root), "--auto-approve", *flags, env=env(srv))
    assert applied.code == 0, applied.output
    assert "backfill task(s): task_" in applied.out
    assert backfills(srv) == [(f"{COLLECTION}/apply-taxonomy", taxonomy_id)]


def test_a_lost_backfill_answer_is_found_in_the_task_list_not_repeated(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = apply_products(tmp_path, srv)
    attach(srv, Api(srv).taxonomies(NS)["products"]["taxonomy_id"])
    write(root, "p.yaml", flat("products", NS, top_k=3))
    srv.lose(lambda r: r.path.endswith("/apply-taxonomy"), committed=True)

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv))
    assert applied.code == 0, applied.output
    assert len(backfills(srv)) == 1  # carried out once, and not sent again
    assert srv.store.count_tasks() == 1


def test_backfills_survive_throttling(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    root = apply_products(tmp_path, srv)
    attach(srv, Api(srv).taxonomies(NS)["products"]["taxonomy_id"])
    write(root, "p.yaml", flat("products", NS, top_k=3))
    srv.app.faults = Faults(rate_429=0.5, rate_503=0.3, retry_after_seconds=0.01, seed=3)

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv))
    srv.app.faults = Faults()
    assert applied.code == 0, applied.output
    assert len(backfills(srv)) == 1  # 429/503 stored nothing: retried, done exactly once


@pytest.mark.parametrize("outcome", ["completed", "failed", "canceled"])
def test_wait_follows_the_backfill_task(
    tmp_path: Path, emulator: StartEmulator, outcome: str
) -> None:
    srv = emulator()
    srv.store.task_policy = TaskPolicy(polls=1, outcome=outcome, error="ran out of workers")
    root = apply_products(tmp_path, srv)
    attach(srv, Api(srv).taxonomies(NS)["products"]["taxonomy_id"])
    write(root, "p.yaml", flat("products", NS, top_k=3))

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", "--wait", env=env(srv))
    task_reads = [r for r in srv.requests if r.path.startswith("/v1/tasks/")]
    assert len(task_reads) >= 3  # PENDING, IN_PROGRESS, then its end
    if outcome == "completed":
        assert applied.code == 0, applied.output
    else:
        assert applied.code == 1
        assert f"ended {outcome.upper()}" in applied.output
    if outcome == "failed":
        assert "ran out of workers" in applied.output


def test_a_saved_plan_with_unchecked_references_still_applies(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Notes about references let through are not part of what apply re-checks."""
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS).replace("col_products_v1", "col_later"))
    plan_file = tmp_path / "plan.json"
    planned = run_cli(
        "plan", str(root), "--allow-missing-references", "--out", str(plan_file), env=env(srv)
    )
    assert planned.code == 0 and "col_later does not exist" in planned.out, planned.output
    applied = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert applied.code == 0, applied.output
    assert "products" in Api(srv).taxonomies(NS)
