"""Nothing lost or done twice: applies under injected faults, interruptions and races."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from taxsync.applier import ApplyOptions, apply_plan
from taxsync.client import MixpeekClient
from taxsync.emulator import Faults
from taxsync.manifest import load_tree
from taxsync.planner import plan
from tests.conftest import WAIT_FAILSAFE_S, Rule
from tests.helpers import flat, hierarchical, refused_url, run_cli, write

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


def live_names(srv: Any, namespace: str) -> list[str]:
    return [t["taxonomy_name"] for t in _listing(srv, namespace)]


def heads(srv: Any, namespace: str) -> dict[str, dict[str, Any]]:
    return {t["taxonomy_name"]: t for t in _listing(srv, namespace)}


def _listing(srv: Any, namespace: str) -> list[dict[str, Any]]:
    """The test's own view of live state, with injected faults paused while it looks."""
    faults, srv.app.faults = srv.app.faults, Faults(latency_ms=srv.app.faults.latency_ms)
    try:
        response = httpx.post(
            f"{srv.url}/v1/taxonomies/list", json={"limit": 1000}, headers=srv.headers(namespace)
        )
        response.raise_for_status()
        return list(response.json()["results"])
    finally:
        srv.app.faults = faults


def env(srv: Any) -> dict[str, str]:
    return {"MIXPEEK_API_URL": srv.url, "MIXPEEK_API_KEY": srv.api_key}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_apply_under_a_quarter_of_requests_failing(
    tmp_path: Path, emulator: Any, seed: int
) -> None:
    faults = Faults(seed=seed, **QUARTER_FAULTS)
    srv = emulator(faults=faults)
    root = fleet(tmp_path / "m", per_namespace=12)

    created = run_cli("apply", str(root), "--auto-approve", "-v", env=env(srv))
    assert created.code == 0, created.output
    assert failed_calls(created.err) >= 10  # the faults really fired
    for ns in NAMESPACES:
        names = live_names(srv, ns)
        assert len(names) == 12 and Counter(names).most_common(1)[0][1] == 1  # exactly once

    fleet(root, per_namespace=12, top_k=2)
    versioned = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert versioned.code == 0, versioned.output
    for ns in NAMESPACES:
        assert {t["version"] for t in heads(srv, ns).values()} == {2}  # never a second new version

    again = run_cli("plan", str(root), "--detailed-exitcode", env=env(srv))
    assert again.code == 0, again.output  # planning under the same faults is still right


def failed_calls(verbose_log: str) -> int:
    """HTTP calls in a ``-v`` log that did not answer 200: injected faults seen by the client."""
    calls = [line.split() for line in verbose_log.splitlines() if line.startswith("http: ")]
    return sum(1 for call in calls if call[3] != "200")


def test_lost_response_to_a_new_version_is_not_repeated(tmp_path: Path, emulator: Any) -> None:
    srv = emulator()
    root = fleet(tmp_path / "m", per_namespace=3)
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    srv.app.faults = Faults(rate_drop_after_commit=1.0)  # every write commits, then the line drops
    fleet(root, per_namespace=3, top_k=5)
    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert result.code == 0, result.output
    for ns in NAMESPACES:
        assert {t["version"] for t in heads(srv, ns).values()} == {2}


def test_retries_give_up_with_a_clear_error_naming_the_request(
    tmp_path: Path, emulator: Any
) -> None:
    srv = emulator(faults=Faults(rate_503=1.0, retry_after_seconds=0.05))
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha"))
    result = run_cli("plan", str(root), "--retry-timeout", "1", env=env(srv))
    assert result.code == 1
    (first, *_) = result.err.splitlines()
    assert first.startswith("Error: GET /v1/namespaces/alpha")
    assert "last: HTTP 503 InferenceServiceUnavailableError" in first
    # It retried, waiting as told (0.05 s) between attempts within its 1 s budget, and
    # says how often it tried.
    sent = len(srv.requests)
    assert {(r.method, r.path, r.status) for r in srv.requests} == {
        ("GET", "/v1/namespaces/alpha", 503)
    }
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
    tmp_path: Path, emulator: Any
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha"))
    write(root, "b.yaml", flat("b", "alpha"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "a.yaml", flat("a", "alpha", top_k=2))
    write(root, "b.yaml", flat("b", "alpha", top_k=2))

    async def scenario() -> dict[str, str]:
        async with MixpeekClient(srv.url, srv.api_key) as client:
            live = await client.read_live(["alpha"])
            the_plan = plan(load_tree(root, {}), live)
            # Someone else re-versions "a" between our plan and our write.
            head = next(t for t in live["alpha"] if t.taxonomy_name == "a")
            assert head.taxonomy_id is not None
            await client.create_version(
                "alpha", head.taxonomy_id, {"config": {**head.config, "top_k": 9}}
            )
            result = await apply_plan(client, the_plan, ApplyOptions())
            return {r.change.name: r.status for r in result.results}

    assert asyncio.run(scenario()) == {"a": "stale", "b": "applied"}
    live = heads(srv, "alpha")
    assert live["a"]["config"]["top_k"] == 9 and live["a"]["version"] == 2


@pytest.mark.parametrize("saved", [False, True], ids=["from manifests", "saved plan"])
def test_server_422_names_the_manifest_line(tmp_path: Path, emulator: Any, saved: bool) -> None:
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


def _spawn_apply(srv: Any, root: Path, *extra: str) -> subprocess.Popen[str]:
    environ = {**os.environ, **env(srv), "NO_COLOR": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taxsync",
            "apply",
            str(root),
            "--auto-approve",
            "--concurrency",
            "2",
            *extra,
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _apply_under_way(
    tmp_path: Path, emulator: Any
) -> tuple[Any, Path, subprocess.Popen[str], Rule]:
    """An apply of 16 creates in a subprocess, caught with exactly three landed: every
    later write is held by the emulator until the test releases it."""
    srv = emulator()
    root = tmp_path / "m"
    for i in range(16):
        write(root, f"{i}.yaml", flat(f"t-{i}", "alpha"))
    hold = srv.hold(lambda r: r.is_write and (r.write_index or 0) > 3)
    process = _spawn_apply(srv, root)
    srv.wait_for_committed(3)
    if not hold.reached.wait(WAIT_FAILSAFE_S):
        process.kill()
        raise AssertionError("the fourth write never arrived:\n" + "".join(process.communicate()))
    return srv, root, process, hold


def test_killed_apply_is_finished_by_the_next_one(tmp_path: Path, emulator: Any) -> None:
    srv, root, process, hold = _apply_under_way(tmp_path, emulator)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT_FAILSAFE_S)
    hold.release()  # the held writes never reach the emulator
    assert len(live_names(srv, "alpha")) == 3

    finish = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert finish.code == 0, finish.output
    assert "Plan: 13 to create" in finish.out  # exactly the rest
    names = live_names(srv, "alpha")
    assert sorted(names) == sorted(f"t-{i}" for i in range(16))


def test_ctrl_c_finishes_in_flight_writes_and_exits_130(tmp_path: Path, emulator: Any) -> None:
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
    done = len(live_names(srv, "alpha"))
    assert 4 <= done < 16  # the three before, plus what was in flight; no new ones
    assert out.count(": done") == done  # every write that landed was reported
    assert done == len(srv.committed())

    finish = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert finish.code == 0 and len(live_names(srv, "alpha")) == 16


def test_create_raced_by_someone_else_is_stale_not_failed(tmp_path: Path, emulator: Any) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha"))

    async def scenario() -> str:
        async with MixpeekClient(srv.url, srv.api_key) as client:
            the_plan = plan(load_tree(root, {}), await client.read_live(["alpha"]))
            body = the_plan.changes[0].create_body
            assert body is not None
            await client.create_taxonomy("alpha", {**body, "description": "theirs"})
            (result,) = (await apply_plan(client, the_plan)).results
            return f"{result.status}: {result.message}"

    assert asyncio.run(scenario()) == "stale: alpha/a was created by someone else meanwhile"
