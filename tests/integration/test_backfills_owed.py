"""No backfill lost: what an apply did not finish is recorded on the taxonomy, shown by
``plan`` and finished by the next ``apply`` (or ``taxsync backfill``), exactly once per
collection, taxonomy and version, whatever cut the earlier run short.

Over real HTTP against the emulator; tasks are counted in the emulator itself.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from taxsync.emulator import TaskPolicy
from taxsync.emulator.faults import Faults
from taxsync.model import BACKFILLS_KEY
from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, Seen, StartEmulator
from tests.helpers import Api, env, flat, run_cli, spawn_cli, wait_held, write
from tests.integration.test_pins_backfills import (
    COLLECTION,
    NS,
    backfills_sent,
    products_applied_to_its_collection,
)

FINISH = "taxsync backfill products --namespace production --collection col_products_v1"


def tasks_of_products(srv: EmulatorHandle) -> list[dict]:
    """Every backfill task of products in col_products_v1, read in the emulator's store."""
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    page = srv.store.list_tasks(task_type="api_taxonomies_materialize")
    return [
        t
        for t in page.results
        if t["inputs"][0]["collection_id"] == "col_products_v1"
        and t["inputs"][0]["taxonomy_id"] == taxonomy_id
    ]


def bookkeeping(srv: EmulatorHandle) -> dict:
    return Api(srv).taxonomies(NS)["products"]["metadata"].get(BACKFILLS_KEY) or {}


def plan_output(root: Path, srv: EmulatorHandle, *extra: str) -> tuple[int, str]:
    planned = run_cli("plan", str(root), "--detailed-exitcode", *extra, env=env(srv))
    return planned.code, planned.out


def backfilled_once(root: Path, srv: EmulatorHandle) -> dict[str, Any]:
    """Exactly one task for products in its collection, recorded in the bookkeeping, and
    nothing left for a plan to do."""
    (task,) = tasks_of_products(srv)
    assert bookkeeping(srv)["col_products_v1"]["task"] == task["task_id"]
    assert plan_output(root, srv)[0] == 0
    return task


def is_task_list(request: Seen) -> bool:
    return request.path == "/v1/tasks/list"


def interrupted_before_the_backfill(tmp_path: Path, srv: EmulatorHandle) -> Path:
    """An apply --backfill Ctrl-C'd while its new version is in flight: the version lands,
    its backfill never starts."""
    root = products_applied_to_its_collection(tmp_path, srv)
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    new_version = ("POST", f"/v1/taxonomies/{taxonomy_id}/versions")
    hold = srv.hold(lambda r: (r.method, r.path) == new_version)
    process = spawn_cli(srv, "apply", str(root), "--auto-approve", "--backfill")
    assert process.stderr is not None
    wait_held(hold, process)
    process.send_signal(signal.SIGINT)
    said = []
    failsafe = threading.Timer(WAIT_FAILSAFE_S, process.kill)
    failsafe.start()
    try:
        for line in process.stderr:
            said.append(line)
            if line.startswith("Interrupt: finishing in-flight writes"):
                break
    finally:
        failsafe.cancel()
    hold.release(forward=True)
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    assert process.returncode == 130, out + "".join(said) + err
    assert backfills_sent(srv) == []
    return root


def test_an_apply_cut_short_before_its_backfills_leaves_them_owed_and_the_next_finishes_them(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = interrupted_before_the_backfill(tmp_path, srv)
    assert bookkeeping(srv)["col_products_v1"] == {
        "version": 2,
        "task": None,
        "run": bookkeeping(srv)["col_products_v1"]["run"],
    }

    code, out = plan_output(root, srv)
    assert code == 2, out  # an owed backfill is a change
    assert "↻ backfill production/products in collection products (col_products_v1)" in out
    assert "documents of products not known to be labelled by v2 (head)" in out
    assert "1 to backfill" in out

    srv.forget()
    applied = run_cli("apply", str(root), "--auto-approve", env=env(srv))  # no --backfill
    assert applied.code == 0, applied.output
    assert backfills_sent(srv) == [f"{COLLECTION}/apply-taxonomy"]
    (task,) = tasks_of_products(srv)
    assert bookkeeping(srv)["col_products_v1"]["task"] == task["task_id"]
    assert plan_output(root, srv)[0] == 0  # nothing owed any more


def test_plan_json_carries_the_owed_backfill(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    root = interrupted_before_the_backfill(tmp_path, srv)
    planned = run_cli("plan", str(root), "--format", "json", env=env(srv))
    data = json.loads(planned.out)
    assert data["format_version"] == 6
    assert data["summary"]["backfill"] == 1
    (owed,) = [c for c in data["changes"] if c["action"] == "backfill"]
    assert owed["collection_id"] == "col_products_v1"
    assert owed["head_version"] == 2
    assert owed["labelled_version"] is None
    assert "not known to have started" in owed["reason"]


def test_a_lost_backfill_answer_is_adopted_from_the_task_list(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.lose(lambda r: r.path.endswith("/apply-taxonomy"), committed=True)

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv))
    assert applied.code == 0, applied.output
    assert any(is_task_list(r) for r in srv.requests)  # looked up, not re-sent
    backfilled_once(root, srv)


def test_a_lost_answer_with_nothing_started_is_sent_once_more(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.lose(lambda r: r.path.endswith("/apply-taxonomy"), committed=False, limit=1)

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv))
    assert applied.code == 0, applied.output
    assert len(backfills_sent(srv)) == 2  # the first never reached the emulator
    assert len(tasks_of_products(srv)) == 1


def test_an_undecidable_backfill_names_the_command_that_finishes_it_exactly_once(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.lose(lambda r: r.path.endswith("/apply-taxonomy"), committed=True, limit=1)
    refused = srv.answer(is_task_list, 403, "tasks are not readable with this key")

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv))
    assert applied.code == 1, applied.output
    assert "may or may not have started" in applied.output
    assert f"`{FINISH}`" in applied.output
    assert len(tasks_of_products(srv)) == 1  # the lost one, not sent again
    assert bookkeeping(srv)["col_products_v1"]["task"] is None  # still owed

    refused.release()
    finished = run_cli(*FINISH.split()[1:], env=env(srv))
    assert finished.code == 0, finished.output
    (task,) = tasks_of_products(srv)  # adopted: exactly one task for the pair and version
    assert f"task {task['task_id']}" in finished.out
    assert bookkeeping(srv)["col_products_v1"]["task"] == task["task_id"]
    assert plan_output(root, srv)[0] == 0


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("failed", "FAILED"),
        ("canceled", "CANCELED"),
        ("completed_with_errors", "COMPLETED_WITH_ERRORS"),
        ("interrupted", "INTERRUPTED"),
        ("skipped", "SKIPPED"),
    ],
)
def test_a_backfill_whose_task_did_not_complete_is_run_again_by_the_next_apply(
    tmp_path: Path, emulator: StartEmulator, outcome: str, status: str
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.store.task_policy = TaskPolicy(polls=0, outcome=outcome)  # type: ignore[arg-type]
    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv))
    assert applied.code == 0, applied.output  # not waited for: its end is not known yet
    (first,) = tasks_of_products(srv)

    code, out = plan_output(root, srv)
    assert code == 2, out
    assert f"backfill task {first['task_id']} ended {status}" in out

    srv.store.task_policy = TaskPolicy(polls=0)
    again = run_cli("apply", str(root), "--auto-approve", "--wait", env=env(srv))
    assert again.code == 0, again.output
    second = [t for t in tasks_of_products(srv) if t["task_id"] != first["task_id"]]
    assert [t["status"] for t in second] == ["COMPLETED"]
    record = bookkeeping(srv)["col_products_v1"]
    assert record["status"] == "COMPLETED" and record["previous"] == [first["task_id"]]
    assert plan_output(root, srv)[0] == 0


def test_backfill_follows_a_running_task_instead_of_starting_another(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    srv.store.task_policy = TaskPolicy(polls=5)  # stays PENDING for a while
    root = products_applied_to_its_collection(tmp_path, srv)
    assert run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv)).code == 0
    (running,) = tasks_of_products(srv)

    again = run_cli("backfill", "products", "--namespace", NS, env=env(srv))
    assert again.code == 0, again.output
    assert f"task {running['task_id']} (followed" in again.out
    assert len(tasks_of_products(srv)) == 1


def test_backfill_refuses_a_collection_that_does_not_apply_the_taxonomy(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0

    refused = run_cli(
        "backfill", "products", "--namespace", NS, "--collection", "col-a", env=env(srv)
    )
    assert refused.code == 1
    assert "--collection col-a: it does not apply 'products'" in refused.err
    assert "Traceback" not in refused.output
    assert backfills_sent(srv) == []


def test_after_faults_each_collection_is_backfilled_once_per_version(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.app.faults = Faults(
        rate_drop_after_commit=0.4, rate_503=0.1, retry_after_seconds=0.01, seed=5
    )
    codes = []
    for _ in range(6):  # apply again until it says it is done, as an operator would
        codes.append(run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv)).code)
        if codes[-1] == 0:
            break
    srv.app.faults = Faults()
    assert codes[-1] == 0, codes
    assert run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv)).code == 0
    assert Api(srv).taxonomies(NS)["products"]["version"] == 2
    assert len(tasks_of_products(srv)) == 1


def test_a_metadata_update_keeps_the_bookkeeping_and_is_not_a_diff(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = interrupted_before_the_backfill(tmp_path, srv)
    owed = bookkeeping(srv)
    manifest = flat("products", NS, top_k=3).replace("{team: search}", "{team: catalog}")
    write(root, "p.yaml", manifest)

    planned = run_cli("plan", str(root), env=env(srv))
    assert BACKFILLS_KEY not in planned.out  # taxsync's own key is never shown as a change
    assert "~ update production/products" in planned.out
    # The PATCH of the new metadata leaves the record of the owed backfill as it was.
    applied = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert applied.code == 0, applied.output
    assert Api(srv).taxonomies(NS)["products"]["metadata"]["team"] == "catalog"
    update, *_bookkeeping = [  # the update's PATCH, then the backfill's own
        r.json()["metadata"]
        for r in srv.requests
        if r.method == "PATCH" and r.json()["metadata"].get("team") == "catalog"
    ]
    assert update[BACKFILLS_KEY] == owed
    assert bookkeeping(srv)["col_products_v1"]["task"] is not None  # and the backfill ran
    assert bookkeeping(srv)["col_products_v1"]["version"] == owed["col_products_v1"]["version"]


def test_the_next_apply_resolves_an_undecided_backfill_once_the_task_list_answers(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.lose(lambda r: r.path.endswith("/apply-taxonomy"), committed=True, limit=1)
    refused = srv.answer(is_task_list, 403, "tasks are not readable with this key")
    assert run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv)).code == 1
    refused.release()

    code, out = plan_output(root, srv)
    assert code == 2 and "↻ backfill production/products" in out, out
    srv.forget()
    applied = run_cli("apply", str(root), "--auto-approve", "--format", "json", env=env(srv))
    assert applied.code == 0, applied.output
    assert backfills_sent(srv) == []  # the task the lost answer started was adopted
    (task,) = tasks_of_products(srv)
    assert bookkeeping(srv)["col_products_v1"]["task"] == task["task_id"]
    (result,) = json.loads(applied.out)["results"]
    assert result["action"] == "backfill" and result["status"] == "applied"
    assert result["collection_id"] == "col_products_v1"
    assert result["tasks"] == [task["task_id"]]


def test_the_emulator_lists_tasks_by_the_pair_their_inputs_name(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(refuse_empty_backfill=False)  # col_a holds no documents
    products_applied_to_its_collection(tmp_path, srv)
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    Api(srv).call(
        "PATCH",
        "/v1/collections/col_a",
        NS,
        {"taxonomy_applications": [{"taxonomy_id": taxonomy_id}]},
    )
    for collection in ("col_products_v1", "col_a"):
        Api(srv).call(
            "POST", f"/v1/collections/{collection}/apply-taxonomy", NS, {"taxonomy_id": taxonomy_id}
        )

    def listed(body: dict) -> list[str]:
        answer = Api(srv).call("POST", "/v1/tasks/list", NS, body)
        return [t["inputs"][0]["collection_id"] for t in answer["results"]]

    pair = {
        "AND": [
            {"field": "inputs.collection_id", "operator": "eq", "value": "col_a"},
            {"field": "inputs.taxonomy_id", "operator": "eq", "value": taxonomy_id},
        ]
    }
    assert listed({"task_type": "api_taxonomies_materialize", "filters": pair}) == ["col_a"]
    assert sorted(listed({"task_type": "api_taxonomies_materialize"})) == [
        "col_a",
        "col_products_v1",
    ]
    assert listed({"task_type": "api_collections_export"}) == []
    assert listed({"status": "COMPLETED"}) == []


@pytest.mark.parametrize("landed", [True, False])
def test_an_apply_killed_while_its_backfill_is_in_flight_is_finished_once(
    tmp_path: Path, emulator: StartEmulator, landed: bool
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    hold = srv.hold(lambda r: r.path.endswith("/apply-taxonomy"))
    process = spawn_cli(srv, "apply", str(root), "--auto-approve", "--backfill")
    wait_held(hold, process)
    process.kill()  # SIGKILL: no handler runs, nothing is tidied up
    process.communicate(timeout=WAIT_FAILSAFE_S)
    hold.release(forward=landed)  # the backfill the dead process sent starts, or never does
    assert len(tasks_of_products(srv)) == (1 if landed else 0)

    code, out = plan_output(root, srv)
    assert code == 2 and "↻ backfill production/products" in out, out
    applied = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert applied.code == 0, applied.output
    backfilled_once(root, srv)


def test_a_rerun_of_a_failed_backfill_killed_in_flight_is_not_run_twice(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.store.task_policy = TaskPolicy(polls=0, outcome="failed")
    assert run_cli("apply", str(root), "--auto-approve", "--backfill", env=env(srv)).code == 0
    assert plan_output(root, srv)[0] == 2  # reads the task: FAILED, so owed
    srv.store.task_policy = TaskPolicy(polls=0)
    hold = srv.hold(lambda r: r.path.endswith("/apply-taxonomy"))
    process = spawn_cli(srv, "apply", str(root), "--auto-approve")
    wait_held(hold, process)
    process.kill()
    process.communicate(timeout=WAIT_FAILSAFE_S)
    hold.release(forward=True)  # the re-run started; its answer went nowhere

    applied = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert applied.code == 0, applied.output
    assert len(tasks_of_products(srv)) == 2  # the failed one and its one re-run
    assert plan_output(root, srv)[0] == 0


def test_an_attach_killed_before_its_backfill_leaves_the_backfill_owed(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    attached = "  backfill: onChange\n  appliedTo:\n    - {collection: col_products_v1}\n"
    write(root, "p.yaml", flat("products", NS) + attached)
    hold = srv.hold(lambda r: (r.method, r.path) == ("PATCH", COLLECTION))
    process = spawn_cli(srv, "apply", str(root), "--auto-approve")
    wait_held(hold, process)
    process.kill()
    process.communicate(timeout=WAIT_FAILSAFE_S)
    hold.release(forward=True)  # the attach lands; its backfill was never sent

    code, out = plan_output(root, srv)
    assert code == 2 and "↻ backfill production/products" in out, out
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    assert len(tasks_of_products(srv)) == 1


def test_a_saved_plan_with_an_update_and_an_owed_backfill_applies(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = interrupted_before_the_backfill(tmp_path, srv)
    write(root, "p.yaml", flat("products", NS, top_k=3).replace("{team: search}", "{team: ads}"))
    saved = tmp_path / "plan.json"
    planned = run_cli("plan", str(root), "--out", str(saved), env=env(srv))
    assert planned.code == 0, planned.output
    assert [c["action"] for c in json.loads(saved.read_text())["changes"]] == [
        "update",
        "backfill",
    ]
    applied = run_cli("apply", "--plan", str(saved), "--auto-approve", env=env(srv))
    assert applied.code == 0, applied.output
    assert len(tasks_of_products(srv)) == 1
    assert bookkeeping(srv)["col_products_v1"]["task"] == tasks_of_products(srv)[0]["task_id"]
