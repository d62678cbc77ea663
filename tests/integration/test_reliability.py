"""Nothing lost or done twice: applies under injected faults, interruptions and races."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from taxsync import reconcile
from taxsync.emulator import Faults
from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, Rule, StartEmulator
from tests.helpers import (
    Api,
    env,
    flat,
    hierarchical,
    refused_url,
    run_cli,
    settings_for,
    spawn_cli,
    wait_held,
    write,
)

NAMESPACES = ("alpha", "beta", "gamma")

# About a quarter of all requests fail, in every way the network and the server can fail.
QUARTER_FAULTS = dict(
    rate_429=0.06,
    rate_503=0.05,
    rate_500=0.05,
    rate_reset=0.04,
    rate_drop_after_commit=0.10,
    retry_after_seconds=0,
)


def fleet(root: Path, per_namespace: int, top_k: int = 1) -> Path:
    for ns in NAMESPACES:
        for i in range(per_namespace):
            text = (
                flat(f"flat-{i}", ns, top_k)
                if i % 3
                else hierarchical(f"tree-{i}", ns, f"L{top_k}")
            )
            write(root, f"{ns}/{i}.yaml", text)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_apply_under_a_quarter_of_requests_failing(
    tmp_path: Path, emulator: StartEmulator, seed: int
) -> None:
    faults = Faults(seed=seed, **QUARTER_FAULTS)
    srv = emulator(faults=faults)
    root = fleet(tmp_path / "m", per_namespace=12)

    created = run_cli("apply", str(root), "--auto-approve", "-v", env=env(srv))
    assert created.code == 0, created.output
    assert failed_calls(created.err) >= 10  # the faults really fired
    api = Api(srv)
    for ns in NAMESPACES:
        names = api.names(ns)
        assert len(names) == 12 and Counter(names).most_common(1)[0][1] == 1  # exactly once

    fleet(root, per_namespace=12, top_k=2)
    versioned = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert versioned.code == 0, versioned.output
    for ns in NAMESPACES:
        assert {t["version"] for t in api.listing(ns)} == {2}  # never a second new version

    again = run_cli("plan", str(root), "--detailed-exitcode", env=env(srv))
    assert again.code == 0, again.output  # planning under the same faults is still right


def failed_calls(verbose_log: str) -> int:
    """HTTP calls in a ``-v`` log that did not answer 200: injected faults seen by the client."""
    calls = [line.split() for line in verbose_log.splitlines() if line.startswith("http: ")]
    return sum(1 for call in calls if call[3] != "200")


def test_lost_response_to_a_new_version_is_not_repeated(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = fleet(tmp_path / "m", per_namespace=3)
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    srv.app.faults = Faults(rate_drop_after_commit=1.0)  # every write commits, then the line drops
    fleet(root, per_namespace=3, top_k=5)
    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert result.code == 0, result.output
    for ns in NAMESPACES:
        assert {t["version"] for t in Api(srv).listing(ns)} == {2}


def test_retries_give_up_with_a_clear_error_naming_the_request(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(faults=Faults(rate_503=1.0, retry_after_seconds=0.05))
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha"))
    result = run_cli("plan", str(root), "--retry-timeout", "1", env=env(srv))
    assert result.code == 1
    (first, *_) = result.err.splitlines()
    # The namespace and its neighbourhood are read at once: whichever read gives up first
    # is the one named.
    named = re.match(r"Error: (GET|POST) (/v1/\S+) \[alpha\]: ", first) or re.match(
        r"Error: (GET) (/v1/namespaces/alpha): ", first
    )
    assert named is not None, first
    assert "last: HTTP 503 InferenceServiceUnavailableError" in first
    # It retried, waiting as told (0.05 s) between attempts within its 1 s budget, and
    # says how often it tried.
    assert {r.status for r in srv.requests} == {503}
    sent = sum(1 for r in srv.requests if (r.method, r.path) == named.groups())
    assert 2 <= sent <= 1 / 0.05 + 1
    assert f"gave up after {sent} attempt(s)" in first


def test_unreachable_api_fails_fast(tmp_path: Path) -> None:
    root = fleet(tmp_path / "m", per_namespace=1)
    with refused_url() as url:
        result = run_cli("plan", str(root), env={"MIXPEEK_API_URL": url, "MIXPEEK_API_KEY": "sk_x"})
    assert result.code == 1 and "cannot connect" in result.err
    assert "after 4 attempt(s)" in result.err  # gives up early, not at the 30 s budget
    assert "Traceback" not in result.output


def test_change_whose_head_moved_after_planning_is_refused_as_stale(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    settings = settings_for(srv)
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha"))
    write(root, "b.yaml", flat("b", "alpha"))
    assert reconcile.apply(reconcile.plan_tree(root, settings), settings).ok
    write(root, "a.yaml", flat("a", "alpha", top_k=2))
    write(root, "b.yaml", flat("b", "alpha", top_k=2))
    the_plan = reconcile.plan_tree(root, settings)

    # Someone else re-versions "a" between our plan and our write.
    api = Api(srv)
    head = api.taxonomies("alpha")["a"]
    api.new_version("alpha", head["taxonomy_id"], {**head["config"], "top_k": 9})
    result = reconcile.apply(the_plan, settings)

    assert {r.change.name: r.status for r in result.results} == {"a": "stale", "b": "applied"}
    live = api.taxonomies("alpha")
    assert live["a"]["config"]["top_k"] == 9 and live["a"]["version"] == 2


@pytest.mark.parametrize("saved", [False, True], ids=["from manifests", "saved plan"])
def test_server_422_names_the_manifest_line(
    tmp_path: Path, emulator: StartEmulator, saved: bool
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha", top_k=7))
    # The API refuses a value offline validation accepts (a limit of the account, say).
    problem = {"loc": ["body", "config", "top_k"], "msg": "must be <= 5 on this plan"}
    srv.answer(
        lambda r: r.is_write, 422, "Request validation failed", {"validation_errors": [problem]}
    )
    if saved:
        plan_file = tmp_path / "plan.json"
        assert run_cli("plan", str(root), "--out", str(plan_file), env=env(srv)).code == 0
        result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
        where = f"{root / 'a.yaml'}:4"  # the manifest, as the plan recorded it
    else:
        result = run_cli("apply", str(root), "--auto-approve", env=env(srv))
        where = f"{root / 'a.yaml'}:12:5"  # the very line of top_k
    assert result.code == 1
    assert f"{where}: spec.config.top_k: must be <= 5 on this plan" in result.output
    assert "HTTP 422" in result.output


def _apply_under_way(
    tmp_path: Path, emulator: StartEmulator
) -> tuple[EmulatorHandle, Path, subprocess.Popen[str], Rule]:
    """An apply of 16 creates in a subprocess, caught with exactly three landed: every
    later write is held by the emulator until the test releases it.

    It returns once both writes its concurrency allows are held: the apply can send
    nothing more until one is answered. (Caught with one held, a second write may still
    be on its way, and reach the emulator only after the test released the hold.)
    """
    srv = emulator()
    root = tmp_path / "m"
    for i in range(16):
        write(root, f"{i}.yaml", flat(f"t-{i}", "alpha"))
    hold = srv.hold(lambda r: r.is_write and (r.write_index or 0) > 3)
    process = spawn_cli(srv, "apply", str(root), "--auto-approve", "--concurrency", "2")
    srv.wait_for_committed(3)
    wait_held(hold, process)
    srv.recorder.wait_for(lambda: len(hold.held) == 2, "the second write in flight")
    return srv, root, process, hold


def test_killed_apply_is_finished_by_the_next_one(tmp_path: Path, emulator: StartEmulator) -> None:
    srv, root, process, hold = _apply_under_way(tmp_path, emulator)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT_FAILSAFE_S)
    hold.release()  # the held writes never reach the emulator
    api = Api(srv)
    assert len(api.names("alpha")) == 3

    finish = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert finish.code == 0, finish.output
    assert "Plan: 13 to create" in finish.out  # exactly the rest
    names = api.names("alpha")
    assert sorted(names) == sorted(f"t-{i}" for i in range(16))


def test_ctrl_c_finishes_in_flight_writes_and_exits_130(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root, process, hold = _apply_under_way(tmp_path, emulator)
    assert process.stderr is not None
    process.send_signal(signal.SIGINT)
    # Release the held writes only once apply has taken the interrupt in.
    err_lines = []
    failsafe = threading.Timer(WAIT_FAILSAFE_S, process.kill)
    failsafe.start()
    try:
        for line in process.stderr:
            err_lines.append(line)
            if line.startswith("Interrupt: finishing in-flight writes"):
                break
        else:
            raise AssertionError("apply never acknowledged the interrupt:\n" + "".join(err_lines))
    finally:
        failsafe.cancel()
    hold.release(forward=True)  # the in-flight writes complete
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    err = "".join(err_lines) + err
    assert process.returncode == 130, out + err
    assert "not started" in out + err
    assert "Traceback" not in err
    api = Api(srv)
    done = len(api.names("alpha"))
    assert 4 <= done < 16  # the three before, plus what was in flight; no new ones
    assert out.count(": done") == done  # every write that landed was reported
    assert done == len(srv.committed())

    finish = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert finish.code == 0 and len(api.names("alpha")) == 16
