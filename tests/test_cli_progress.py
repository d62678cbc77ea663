"""What apply shows while it waits for backfill tasks: the progress bar's label on a
terminal, a line per status change otherwise; task ids come from the API and are escaped."""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

from taxsync.cli.progress import ApplyProgress
from taxsync.emulator import TaskPolicy
from taxsync.plan import AttachmentChange, Plan
from taxsync.render import Style
from tests.conftest import StartEmulator
from tests.helpers import Api, env, flat, run_cli, write


class _TerminalOut(io.StringIO):
    def isatty(self) -> bool:
        return True


def one_change_plan() -> Plan:
    change = AttachmentChange(
        action="attach",
        namespace="ns",
        name="t",
        taxonomy_type="flat",
        collection_id="col_a",
        collection_name="a",
        application={},
    )
    return Plan(changes=[change])


def test_on_a_terminal_the_bar_label_tells_how_the_backfills_stand() -> None:
    screen = _TerminalOut()
    with mock.patch("sys.stderr", screen):
        progress = ApplyProgress("text", Style(False))
        progress.apply_started(one_change_plan())
        progress.task_polled("task_1", "PENDING")
        progress.task_polled("task_2", "IN_PROGRESS")
        progress.task_polled("task_1", "COMPLETED")
        progress.task_polled("task_\x1b[2J::warning::x", "FAILED")
    shown = screen.getvalue()
    assert "Backfills: 0/1 ended, task_1 PENDING" in shown
    assert "Backfills: 1/2 ended, task_1 COMPLETED" in shown
    assert "Backfills: 2/3 ended, task_\\u001b[2J:\\u003awarning:\\u003ax FAILED" in shown
    assert "\x1b[2J" not in shown


def test_off_a_terminal_each_status_change_is_a_line_on_stderr(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    srv.store.task_policy = TaskPolicy(polls=2, outcome="completed")
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", "production"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    taxonomy_id = Api(srv).taxonomies("production")["products"]["taxonomy_id"]
    body = {"taxonomy_applications": [{"taxonomy_id": taxonomy_id}]}
    Api(srv).call("PATCH", "/v1/collections/col_products_v1", "production", body)
    write(root, "p.yaml", flat("products", "production", top_k=2))

    applied = run_cli("apply", str(root), "--auto-approve", "--backfill", "--wait", env=env(srv))
    assert applied.code == 0, applied.output
    lines = [line for line in applied.err.splitlines() if line.startswith("backfill task ")]
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["PENDING", "IN_PROGRESS", "COMPLETED"]
    assert "backfill task task_" not in applied.out  # stdout keeps one line per change
