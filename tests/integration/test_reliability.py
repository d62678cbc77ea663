"""Nothing lost or done twice: applies under injected faults, interruptions and races."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
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
from tests.helpers import flat, hierarchical, run_cli, write

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
    srv = emulator(faults=Faults(rate_503=1.0, retry_after_seconds=0))
    root = fleet(tmp_path / "m", per_namespace=1)
    started = time.monotonic()
    result = run_cli("plan", str(root), "--retry-timeout", "2", env=env(srv))
    assert result.code == 1
    assert time.monotonic() - started < 10
    (first, *_) = result.err.splitlines()
    assert first.startswith("Error: GET /v1/namespaces/")
    assert "last: HTTP 503 InferenceServiceUnavailableError" in first


def test_unreachable_api_fails_fast(tmp_path: Path) -> None:
    root = fleet(tmp_path / "m", per_namespace=1)
    started = time.monotonic()
    result = run_cli(
        "plan", str(root), env={"MIXPEEK_API_URL": "http://127.0.0.1:9", "MIXPEEK_API_KEY": "sk_x"}
    )
    assert result.code == 1 and "cannot connect" in result.err
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 15


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


def test_server_422_names_the_manifest_line(tmp_path: Path, emulator: Any) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", "alpha"))
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(plan_file), env=env(srv)).code == 0
    # A hand-edited plan slips an invalid value past offline validation; the API refuses it.
    plan_file.write_text(plan_file.read_text().replace('"top_k": 1', '"top_k": 99'))
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 1
    assert f"{root / 'a.yaml'}:4: spec.config.top_k:" in result.output
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


def _wait_for_creates(srv: Any, at_least: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(live_names(srv, "alpha"))
        if count >= at_least:
            return count
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} creates after {timeout}s")


def _apply_under_way(tmp_path: Path, emulator: Any) -> tuple[Any, Path, subprocess.Popen[str]]:
    """An apply of 16 slow creates in a subprocess, caught after its first three landed."""
    srv = emulator(faults=Faults(latency_ms=60))
    root = tmp_path / "m"
    for i in range(16):
        write(root, f"{i}.yaml", flat(f"t-{i}", "alpha"))
    process = _spawn_apply(srv, root)
    _wait_for_creates(srv, 3)
    return srv, root, process


@pytest.mark.slow
def test_killed_apply_is_finished_by_the_next_one(tmp_path: Path, emulator: Any) -> None:
    srv, root, process = _apply_under_way(tmp_path, emulator)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    partial = len(live_names(srv, "alpha"))
    assert 3 <= partial < 16

    finish = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert finish.code == 0, finish.output
    assert f"Plan: {16 - partial} to create" in finish.out  # exactly the rest
    names = live_names(srv, "alpha")
    assert sorted(names) == sorted(f"t-{i}" for i in range(16))


@pytest.mark.slow
def test_ctrl_c_finishes_in_flight_writes_and_exits_130(tmp_path: Path, emulator: Any) -> None:
    srv, root, process = _apply_under_way(tmp_path, emulator)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130, out + err
    assert "not started" in out + err
    assert "Traceback" not in err
    done = len(live_names(srv, "alpha"))
    assert out.count(": done") == done  # every write that landed was reported

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
