"""Backfills pinned from the outside before the code around them moves: how a backfill task
ends decides the apply's outcome, and Ctrl-C before the backfills start starts none.

Only public surfaces are driven: the CLI, ``taxsync.reconcile`` and HTTP to the emulator.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taxsync import reconcile
from taxsync.emulator import TaskPolicy
from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, run_cli, settings_for, spawn_cli, wait_held, write

NS = "production"
COLLECTION = "/v1/collections/col_products_v1"


class TaskEndsAs:
    """Between the recorder and the emulator: a backfill task the emulator reports
    ``COMPLETED`` reads as ``status`` instead. The emulator's own tasks only end completed,
    failed or canceled; the API has more ways to end, and taxsync must know each of them."""

    def __init__(self, app: ASGIApp, status: str) -> None:
        self.app, self.status = app, status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/tasks/"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        start, body = messages[0], b"".join(m.get("body", b"") for m in messages[1:])
        task = json.loads(body)
        if task.get("status") == "COMPLETED":
            task["status"] = self.status
            body = json.dumps(task).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def products_applied_to_its_collection(tmp_path: Path, srv: EmulatorHandle) -> Path:
    """``products`` applied and attached to col_products_v1, its manifest then edited (top_k
    3): the next apply makes a new version, which ``--backfill`` re-enriches the collection
    with."""
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    entry = {"taxonomy_id": taxonomy_id}
    Api(srv).call("PATCH", COLLECTION, NS, {"taxonomy_applications": [entry]})
    write(root, "p.yaml", flat("products", NS, top_k=3))
    return root


def backfills_sent(srv: EmulatorHandle) -> list[str]:
    return [r.path for r in srv.requests if r.path.endswith("/apply-taxonomy")]


ENDS = ["COMPLETED", "COMPLETED_WITH_ERRORS", "INTERRUPTED", "SKIPPED"]


@pytest.mark.parametrize("status", ENDS)
def test_only_a_completed_backfill_task_lets_the_apply_succeed(
    tmp_path: Path, emulator: StartEmulator, status: str
) -> None:
    srv = emulator()
    srv.store.task_policy = TaskPolicy(polls=0)  # the first read of the task sees its end
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.recorder.app = TaskEndsAs(srv.recorder.app, status)

    # A short timeout: a status taken for "still running" must fail fast, not hang the suite.
    wait = ("--backfill", "--wait", "--wait-timeout", "3")
    applied = run_cli("apply", str(root), "--auto-approve", *wait, env=env(srv))
    assert backfills_sent(srv) == [f"{COLLECTION}/apply-taxonomy"]
    assert any(r.path.startswith("/v1/tasks/") for r in srv.requests)  # the task was followed
    if status == "COMPLETED":
        assert applied.code == 0, applied.output
        return
    assert applied.code == 1, applied.output
    assert f"ended {status}" in applied.output
    assert "Apply: 0 applied, 1 failed." in applied.out


@pytest.mark.parametrize("status", ENDS)
def test_the_python_api_reports_the_change_of_a_task_that_did_not_complete_as_failed(
    tmp_path: Path, emulator: StartEmulator, status: str
) -> None:
    srv = emulator()
    srv.store.task_policy = TaskPolicy(polls=0)
    root = products_applied_to_its_collection(tmp_path, srv)
    srv.recorder.app = TaskEndsAs(srv.recorder.app, status)
    settings = settings_for(srv)

    plan = reconcile.plan_tree(root, settings, reconcile.PlanChoices(backfill=True))
    result = reconcile.apply(plan, settings, wait=True, wait_timeout=3)
    (change,) = result.results
    assert change.change.backfills == ["col_products_v1"]
    if status == "COMPLETED":
        assert result.ok and change.status == "applied", change.message
        return
    assert not result.ok
    assert change.status == "failed"
    assert change.message is not None and f"ended {status}" in change.message


def test_ctrl_c_before_the_backfills_start_sends_none(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = products_applied_to_its_collection(tmp_path, srv)
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    # The new version is the apply's one taxonomy write; its backfill would come after it.
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
        for line in process.stderr:  # release the write once apply has taken the interrupt in
            said.append(line)
            if line.startswith("Interrupt: finishing in-flight writes"):
                break
        else:
            raise AssertionError("apply never acknowledged the interrupt:\n" + "".join(said))
    finally:
        failsafe.cancel()
    hold.release(forward=True)  # the in-flight new version lands
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    assert process.returncode == 130, out + "".join(said) + err
    assert Api(srv).get(NS, taxonomy_id)["version"] == 2  # the write in flight finished
    assert backfills_sent(srv) == []  # and no backfill was started after the interrupt
    assert "not started" in out + err
