"""User-visible behaviour of plan/apply, pinned through the CLI against the emulator on loopback.

Counts of writes come from the requests the emulator actually received (the ``emulator``
fixture records them), never from taxsync's own account of what it did.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taxsync.emulator import Faults
from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, StartEmulator
from tests.helpers import (
    Api,
    creating,
    env,
    flat,
    hierarchical,
    run_cli,
    spawn_cli,
    wait_held,
    write,
    writes_of,
)

NS = "production"


# --- 1. exit codes -------------------------------------------------------------------------


def test_apply_exits_1_when_one_change_fails_and_the_others_are_applied(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    for name in ("a", "b", "c"):
        write(root, f"{name}.yaml", flat(name, NS))
    srv.answer(creating("b"), 400, "collection col_products_v1 is being deleted")

    # One at a time, in plan order: "c" comes after the failure and must still be applied.
    result = run_cli("apply", str(root), "--auto-approve", "--concurrency", "1", env=env(srv))
    assert result.code == 1, result.output
    assert "Apply: 2 applied, 1 failed." in result.out
    assert f"{NS}/b" in result.err and "is being deleted" in result.err
    assert set(api.taxonomies(NS)) == {"a", "c"}
    assert writes_of(srv.committed()) == {("POST", "/v1/taxonomies"): 2}


USAGE_ERRORS = {
    "unknown option": ["plan", "--no-such-option", "m"],
    "unknown command": ["frobnicate"],
    "missing argument": ["plan"],
    "missing option value": ["apply", "--plan"],
    "bad choice": ["plan", "m", "--format", "yaml"],
    "bad number": ["apply", "m", "--concurrency", "0"],
    "path and --plan": ["apply", "m", "--plan", "p.json"],
}


@pytest.mark.parametrize("argv", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_exit_1_never_2(argv: list[str], tmp_path: Path) -> None:
    # 2 means "the plan has changes" to scripts using --detailed-exitcode.
    result = run_cli(*argv)
    assert result.code == 1, result.output
    assert "Error" in result.err and "Traceback" not in result.output


def test_usage_error_exit_code_of_the_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taxsync", "plan", "--detailed-exitcode", "--no-such-option", "m"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no such option" in done.stderr.lower()


# --- 2. exactly the writes each action needs, with and without faults ----------------------

FAULTS = {
    "no faults": {},
    "every response lost after commit": {"rate_drop_after_commit": 1.0},
    # Lost responses on every write (so they surely happen), errors drawn at random.
    "a bit of everything": {
        "rate_429": 0.15,
        "rate_503": 0.15,
        "rate_500": 0.15,
        "rate_reset": 0.1,
        "rate_drop_after_commit": 1.0,
        "retry_after_seconds": 0.01,  # Retry-After: 0 would fall back to backoff
        "seed": 11,
    },
}
NAMES = ("t-1", "t-2", "t-3")


def _changed(name: str, action: str) -> str:
    if action == "new_version":
        return flat(name, NS, top_k=5)  # config only
    if action == "update":
        return flat(name, NS).replace("by image similarity", "by picture")  # description only
    return flat(name, NS)


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("action", ["create", "new_version", "update"])
def test_each_action_makes_exactly_its_writes(
    tmp_path: Path, emulator: StartEmulator, action: str, faults: dict[str, Any]
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    if action != "create":
        for name in NAMES:
            write(root, f"{name}.yaml", flat(name, NS))
        assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    before = api.taxonomies(NS)
    for name in NAMES:
        write(root, f"{name}.yaml", _changed(name, action))
    srv.forget()
    srv.app.faults = Faults(**faults)

    # One change at a time, so a seeded run draws the same faults for the same requests.
    result = run_cli("apply", str(root), "--auto-approve", "--concurrency", "1", env=env(srv))
    assert result.code == 0, result.output

    after = api.taxonomies(NS)
    assert sorted(after) == sorted(NAMES)  # each exactly once
    ids = {name: after[name]["taxonomy_id"] for name in NAMES}
    expected = {
        "create": {("POST", "/v1/taxonomies"): 3},
        "new_version": {("POST", f"/v1/taxonomies/{ids[n]}/versions"): 1 for n in NAMES},
        "update": {("PATCH", f"/v1/taxonomies/{ids[n]}"): 1 for n in NAMES},
    }[action]
    assert writes_of(srv.committed()) == expected
    for name in NAMES:
        want = [1, 2] if action == "new_version" else [1]
        assert api.versions(NS, ids[name]) == want
        if action != "create":
            assert ids[name] == before[name]["taxonomy_id"]
    if faults:  # the faults really fired
        assert any(r.committed and not r.complete for r in srv.requests), "no response was lost"
    if len(faults) > 1:
        assert any(r.status not in (200, None) for r in srv.requests), "no error was injected"


# --- 4. a saved plan is stale when a create's or a delete's target moved ----------------------

SOMEONE_ELSES_CONFIG = {
    "taxonomy_type": "flat",
    "retriever_id": "ret_theirs",
    "input_mappings": [{"input_key": "q", "source_type": "vector", "path": "features.x"}],
    "source_collection": {"collection_id": "col_theirs"},
}


def test_saved_plan_is_stale_when_a_planned_create_now_exists(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "b.yaml", flat("b", NS))
    write(root, "c.yaml", flat("c", NS))
    plan_file = tmp_path / "plan.json"
    planned = run_cli("plan", str(root), "--out", str(plan_file), env=env(srv))
    assert planned.code == 0 and "Plan: 2 to create" in planned.out, planned.output

    api.create(NS, {"taxonomy_name": "b", "config": SOMEONE_ELSES_CONFIG})
    srv.forget()
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 1, result.output
    assert srv.writes() == []  # not one write reached the API
    assert "stale" in result.err.lower() and f"{NS}/b" in result.err
    assert set(api.taxonomies(NS)) == {"b"}


def test_saved_prune_plan_is_stale_when_a_planned_delete_is_already_gone(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", NS))
    write(root, "b.yaml", flat("b", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    (root / "b.yaml").unlink()
    write(root, "c.yaml", flat("c", NS))
    plan_file = tmp_path / "plan.json"
    planned = run_cli("plan", str(root), "--prune", "--out", str(plan_file), env=env(srv))
    assert "1 to create" in planned.out and "1 to delete" in planned.out, planned.output

    api.delete(NS, "b")
    srv.forget()
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 1, result.output
    assert srv.writes() == []  # not one write reached the API
    assert "stale" in result.err.lower() and f"{NS}/b" in result.err
    assert set(api.taxonomies(NS)) == {"a"}


# --- 5. shards -----------------------------------------------------------------------------

GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


def expected_shard(namespace: str, count: int) -> int:
    """The documented rule: sha256 of the name, first 8 bytes big-endian, mod N, plus one."""
    return int.from_bytes(hashlib.sha256(namespace.encode("utf-8")).digest()[:8], "big") % count + 1


# 3 as a CI matrix might use; 4 because 256 = 1 (mod 3) makes byte order invisible mod 3.
@pytest.mark.parametrize("count", [3, 4])
def test_shards_select_exactly_their_namespaces(
    tmp_path: Path, emulator: StartEmulator, count: int
) -> None:
    srv = emulator(namespaces=GREEK)
    root = tmp_path / "m"
    for ns in GREEK:
        write(root, f"{ns}.yaml", flat("products", ns))
    shards = range(1, count + 1)
    expected = {i: {ns for ns in GREEK if expected_shard(ns, count) == i} for i in shards}
    assert sum(1 for names in expected.values() if names) >= 3, "these names split across shards"

    seen: dict[int, set[str]] = {}
    for index in shards:
        srv.forget()
        result = run_cli(
            "plan", str(root), "--shard", f"{index}/{count}", "--format", "json", env=env(srv)
        )
        assert result.code == 0, result.output
        the_plan = json.loads(result.out)
        seen[index] = set(the_plan["namespaces"])
        assert seen[index] == expected[index], f"shard {index}/{count}"
        assert {c["namespace"] for c in the_plan["changes"]} == expected[index]
        read = {r.namespace or r.path.rsplit("/", 1)[-1] for r in srv.requests}
        assert read == expected[index], "a shard reads only its own namespaces"
    assert sum(len(s) for s in seen.values()) == len(GREEK)  # disjoint
    assert set().union(*seen.values()) == set(GREEK)  # and complete


# --- 6. an omitted description clears the live one ----------------------------------------


def test_omitted_description_clears_the_live_one(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    head = api.taxonomies(NS)["products"]
    assert head["description"] == "Product categories by image similarity"
    without = flat("products", NS).replace(
        "  description: Product categories by image similarity\n", ""
    )
    assert "description" not in without
    write(root, "p.yaml", without)

    shown = run_cli("plan", str(root), "--format", "json", env=env(srv))
    (change,) = json.loads(shown.out)["changes"]
    assert change["action"] == "update"
    assert [(d["path"], d["before"], d["after"]) for d in change["diff"]] == [
        ("description", "Product categories by image similarity", None)
    ]
    text = run_cli("plan", str(root), env=env(srv))
    assert f"~ update {NS}/products" in text.out
    assert '~ description: "Product categories by image similarity" → null' in text.out

    srv.forget()
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    (patch,) = srv.committed()
    assert (patch.method, patch.path) == ("PATCH", f"/v1/taxonomies/{head['taxonomy_id']}")
    assert patch.json() == {"description": None}
    after = api.taxonomies(NS)["products"]
    assert after["description"] is None and after["version"] == 1
    again = run_cli("plan", str(root), "--detailed-exitcode", env=env(srv))
    assert again.code == 0, again.output


# --- 7. SIGKILL between the two writes of one change -----------------------------------------


def spawn_apply(srv: EmulatorHandle, root: Path, *extra: str) -> subprocess.Popen[str]:
    return spawn_cli(srv, "apply", str(root), "--auto-approve", *extra)


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT_FAILSAFE_S)
    assert process.returncode == -signal.SIGKILL


# The writes of a replace, in order, while a collection applies the old taxonomy.
REPLACE_STEPS = {
    1: ("POST", "/v1/taxonomies"),  # the new taxonomy, under a temporary name
    2: ("PATCH", "/v1/collections/col_products_v1"),  # the collection re-pointed to it
    3: ("DELETE", "/v1/taxonomies/{old}"),  # the old taxonomy, applied by nobody now
    4: ("PATCH", "/v1/taxonomies/{new}"),  # the new one takes the final name
}


@pytest.mark.parametrize("step", list(REPLACE_STEPS))
def test_a_replace_killed_at_any_step_never_leaves_a_collection_dangling_and_is_finished(
    tmp_path: Path, emulator: StartEmulator, step: int
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "s.yaml", flat("shape", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    old_id = api.taxonomies(NS)["shape"]["taxonomy_id"]
    entry = {"taxonomy_id": old_id, "execution_phase": 2, "priority": 7}
    path = "/v1/collections/col_products_v1"
    api.call("PATCH", path, NS, {"taxonomy_applications": [entry]})
    write(root, "s.yaml", hierarchical("shape", NS))
    base = len(srv.writes())
    hold = srv.hold(lambda r: r.write_index == base + step)

    process = spawn_apply(srv, root, "--allow-replace")
    held = wait_held(hold, process)
    kill(process)
    hold.release()  # the held write never reaches the emulator
    live = api.taxonomies(NS)
    replacement = live.get("shape.taxsync-replacement") or live.get("shape")
    new_id = replacement["taxonomy_id"] if replacement and step > 1 else None
    method, template = REPLACE_STEPS[step]
    assert (held.method, held.path) == (method, template.format(old=old_id, new=new_id))
    # Killed at any point, every collection still applies a taxonomy that exists.
    ids = {t["taxonomy_id"] for t in live.values()}
    applied = api.call("GET", path, NS)["taxonomy_applications"]
    assert [a["taxonomy_id"] in ids for a in applied] == [True]

    finish = run_cli("apply", str(root), "--auto-approve", "--allow-replace", env=env(srv))
    assert finish.code == 0, finish.output
    now = api.taxonomies(NS)
    assert list(now) == ["shape"]  # no replacement left under its temporary name
    assert now["shape"]["taxonomy_id"] != old_id
    assert now["shape"]["config"]["taxonomy_type"] == "hierarchical"
    (entry_now,) = api.call("GET", path, NS)["taxonomy_applications"]
    assert entry_now == {**entry, "taxonomy_id": now["shape"]["taxonomy_id"]} | {
        k: v for k, v in entry_now.items() if k not in entry
    }  # re-pointed, its settings kept
    assert run_cli("plan", str(root), "--detailed-exitcode", env=env(srv)).code == 0


def test_apply_killed_between_a_new_version_and_its_patch_is_finished(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    tax_id = api.taxonomies(NS)["products"]["taxonomy_id"]
    write(root, "p.yaml", flat("products", NS, top_k=4).replace("by image similarity", "by pixel"))
    base = len(srv.writes())
    hold = srv.hold(lambda r: r.write_index == base + 2)  # the PATCH after the new version

    process = spawn_apply(srv, root)
    held = wait_held(hold, process)
    assert (held.method, held.path) == ("PATCH", f"/v1/taxonomies/{tax_id}")
    kill(process)
    hold.release()  # the PATCH never reaches the emulator
    half = api.taxonomies(NS)["products"]
    assert half["version"] == 2 and half["config"]["top_k"] == 4
    assert half["description"] == "Product categories by image similarity"

    srv.forget()
    finish = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert finish.code == 0, finish.output
    assert writes_of(srv.committed()) == {("PATCH", f"/v1/taxonomies/{tax_id}"): 1}
    done = api.taxonomies(NS)
    assert list(done) == ["products"] and done["products"]["taxonomy_id"] == tax_id
    assert done["products"]["config"]["top_k"] == 4
    assert done["products"]["description"] == "Product categories by pixel"
    assert api.versions(NS, tax_id) == [1, 2]  # exactly one new version
    assert run_cli("plan", str(root), "--detailed-exitcode", env=env(srv)).code == 0
