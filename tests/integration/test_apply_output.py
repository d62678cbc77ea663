"""What apply prints as it runs, on a terminal (a pseudo-terminal) and off it: a line per
change as it completes, what it waits for and for how long, backfill task ids; a stale
saved plan prints nothing but why it is refused."""

from __future__ import annotations

import os
import pty
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, hierarchical, run_cli, write

NS = "production"
INFERRED = (
    "    inference_strategy: llm\n    inference_collections: [col_a]\n    hierarchical_nodes:"
)


def tree(root: Path, top_k: int = 1) -> Path:
    write(root, "products.yaml", flat("products", NS, top_k=top_k))
    write(
        root, "topics.yaml", hierarchical("topics", NS).replace("    hierarchical_nodes:", INFERRED)
    )
    return root


def on_a_terminal(srv: EmulatorHandle, *args: str) -> tuple[int, str]:
    """``taxsync ARGS`` in its own process whose stdout and stderr are a pseudo-terminal:
    its exit code and everything the terminal received."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "taxsync", *args],
        env={**os.environ, **env(srv), "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    received = b""
    deadline = time.monotonic() + WAIT_FAILSAFE_S
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: every process holding it ended
                break
            if not chunk:
                break
            received += chunk
        code = process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    return code, received.decode("utf-8", errors="replace")


def test_off_a_terminal_a_line_per_change_and_the_waits_told_at_intervals(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(ready_after_reads=None, ready_after_seconds=1.2)
    root = tree(tmp_path / "m")
    with mock.patch("taxsync.cli.progress.TELL_EVERY_S", 0.3):
        applied = run_cli("apply", str(root), "--auto-approve", "--wait", env=env(srv))
    assert applied.code == 0, applied.output
    ids = {name: t["taxonomy_id"] for name, t in Api(srv).taxonomies(NS).items()}
    assert f"+ create production/products (flat): done ({ids['products']}, v1)" in applied.out
    topics = f"+ create production/topics (hierarchical): done ({ids['topics']}, v1)"
    assert topics in applied.out
    waits = [line for line in applied.err.splitlines() if line.startswith("waiting for ")]
    assert waits[0] == "waiting for production/topics v1 to be ready (inference running)"
    reminders = [line for line in waits[1:] if line.endswith("s)")]
    assert len(reminders) >= 2, applied.err  # about every 0.3 s over a wait of 1.2 s or more
    assert "waiting" not in applied.out  # stdout keeps one line per change


def test_on_a_terminal_each_change_is_a_line_above_the_bar(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(ready_after_reads=None, ready_after_seconds=1.0)
    root = tree(tmp_path / "m")
    code, screen = on_a_terminal(srv, "apply", str(root), "--auto-approve", "--wait")
    assert code == 0, screen
    assert "+ create production/products (flat): done (tax_" in screen
    assert "+ create production/topics (hierarchical): done (tax_" in screen
    assert "Applying [" in screen and "] 2/2" in screen
    assert "waiting for production/topics v1 to be ready (inference running)" in screen
    # Each line is printed where the bar was (cleared first), and the bar drawn again after.
    line_at = screen.index("+ create production/products (flat): done")
    assert screen[:line_at].endswith("\r\x1b[K")


def test_backfill_task_ids_are_printed_without_wait_on_a_terminal(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    taxonomy_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    body = {"taxonomy_applications": [{"taxonomy_id": taxonomy_id}]}
    Api(srv).call("PATCH", "/v1/collections/col_products_v1", NS, body)
    write(root, "p.yaml", flat("products", NS, top_k=2))

    code, screen = on_a_terminal(srv, "apply", str(root), "--auto-approve", "--backfill")
    assert code == 0, screen
    assert "~ new version production/products v1 → v2: done (" in screen
    assert ", v2) (backfill task(s): task_" in screen


def test_a_stale_saved_plan_prints_only_why_it_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "p.yaml", flat("products", NS, top_k=3))
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(plan_file), env=env(srv)).code == 0
    head = api.taxonomies(NS)["products"]
    api.new_version(NS, head["taxonomy_id"], {**head["config"], "top_k": 7})

    refused = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert refused.code == 1
    assert "the saved plan is stale" in refused.err
    assert refused.out == ""  # not the plan it refuses

    fresh = tmp_path / "fresh.json"
    assert run_cli("plan", str(root), "--out", str(fresh), env=env(srv)).code == 0
    applied = run_cli("apply", "--plan", str(fresh), env=env(srv))
    assert applied.code == 0, applied.output
    plan_at = applied.out.index("~ new version production/products v2 → v3")
    assert plan_at < applied.out.index("Apply: 1 applied, 0 failed.")


def test_a_change_is_printed_when_it_completes_not_when_its_phase_does(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Two creates in one phase: while one is held at the API, the other's line is out."""
    from tests.helpers import spawn_cli, wait_held

    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("alpha", NS))
    write(root, "b.yaml", flat("beta", NS))
    hold = srv.hold(
        lambda r: (
            (r.method, r.path) == ("POST", "/v1/taxonomies")
            and (r.json() or {}).get("taxonomy_name") == "beta"
        )
    )
    process = spawn_cli(srv, "apply", str(root), "--auto-approve")
    wait_held(hold, process)
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(x) for x in iter(process.stdout.readline, "")]
    )
    reader.start()
    try:
        seen = ""
        while not ("alpha" in seen and "done" in seen):
            seen = lines.get(timeout=10)  # Empty: alpha's line did not come while beta was held
    finally:
        hold.release(forward=True)
    reader.join(timeout=WAIT_FAILSAFE_S)
    rest = "".join(lines.queue)
    hold.release(forward=True)
    err = process.stderr.read() if process.stderr else ""
    assert process.wait(timeout=WAIT_FAILSAFE_S) == 0, rest + err
    assert "beta" in rest and "Apply: 2 applied" in rest
