"""plan/apply round trips over loopback HTTP against the emulator, as a user runs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, CliRun, env, flat, hierarchical, run_cli, seed_local, write


@pytest.fixture
def server(emulator: StartEmulator) -> EmulatorHandle:
    return emulator()


@pytest.fixture
def api(server: EmulatorHandle) -> Api:
    """Direct HTTP access to the emulator, playing "someone else" changing live state."""
    return Api(server)


def taxsync(server: EmulatorHandle, *args: str) -> CliRun:
    return run_cli(*args, env=env(server))


def tree(root: Path) -> Path:
    write(root, "prod/products.yaml", flat("products", "production"))
    write(root, "prod/org.yaml", hierarchical("org", "production"))
    write(root, "staging/products.yaml", flat("products", "staging", top_k=2))
    return root


def test_round_trip_across_namespaces(tmp_path: Path, server: EmulatorHandle, api: Api) -> None:
    root = tree(tmp_path / "m")
    first = taxsync(server, "plan", str(root), "--detailed-exitcode")
    assert first.code == 2, first.output
    assert "+ create production/org (hierarchical)" in first.out
    assert "Plan: 3 to create, 0 new version" in first.out

    applied = taxsync(server, "apply", str(root), "--auto-approve")
    assert applied.code == 0, applied.output
    assert "Apply: 3 applied, 0 failed." in applied.out

    again = taxsync(server, "plan", str(root), "--detailed-exitcode")
    assert again.code == 0, again.output
    assert again.out.startswith("No changes.")
    live = api.taxonomies("production")
    assert set(live) == {"products", "org"}
    assert live["org"]["metadata"]["managed_by"] == "taxsync"
    assert api.taxonomies("staging")["products"]["config"]["top_k"] == 2


def test_config_change_makes_exactly_one_new_version(
    tmp_path: Path, server: EmulatorHandle, api: Api
) -> None:
    root = tree(tmp_path / "m")
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    write(root, "prod/products.yaml", flat("products", "production", top_k=4))

    shown = taxsync(server, "plan", str(root))
    assert "~ new version production/products v1 → v2" in shown.out
    assert "~ config.top_k: 1 → 4" in shown.out
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0

    head = api.taxonomies("production")["products"]
    assert head["version"] == 2 and head["config"]["top_k"] == 4
    assert api.versions("production", head["taxonomy_id"]) == [1, 2]
    old = api.get("production", head["taxonomy_id"], version=1)
    assert old["config"]["top_k"] == 1
    assert taxsync(server, "plan", str(root), "--detailed-exitcode").code == 0


def test_description_change_patches_without_a_new_version(
    tmp_path: Path, server: EmulatorHandle, api: Api
) -> None:
    root = tree(tmp_path / "m")
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    write(root, "prod/products.yaml", flat().replace("by image similarity", "by picture"))
    result = taxsync(server, "apply", str(root), "--auto-approve")
    assert "~ update production/products" in result.out
    head = api.taxonomies("production")["products"]
    assert head["description"] == "Product categories by picture"
    assert head["version"] == 1


def test_pagination_with_pages_smaller_than_asked(tmp_path: Path, emulator: StartEmulator) -> None:
    server = emulator(max_page_size=2)
    root = tmp_path / "m"
    for i in range(7):
        write(root, f"t{i}.yaml", flat(f"tax-{i}"))
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    result = taxsync(server, "plan", str(root), "--detailed-exitcode")
    assert result.code == 0, result.output
    assert "7 taxonomy(ies) match" in result.out


def test_saved_plan_applies_exactly(tmp_path: Path, server: EmulatorHandle, api: Api) -> None:
    root = tree(tmp_path / "m")
    plan_file = tmp_path / "plan.json"
    assert taxsync(server, "plan", str(root), "--out", str(plan_file)).code == 0
    write(root, "prod/products.yaml", flat(top_k=9))  # edited after review: must not leak in
    result = taxsync(server, "apply", "--plan", str(plan_file))
    assert result.code == 0, result.output
    assert api.taxonomies("production")["products"]["config"]["top_k"] == 1


def test_stale_saved_plan_is_refused_without_any_write(
    tmp_path: Path, server: EmulatorHandle, api: Api
) -> None:
    root = tree(tmp_path / "m")
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    write(root, "prod/products.yaml", flat(top_k=3))
    write(root, "prod/extra.yaml", flat("extra"))
    plan_file = tmp_path / "plan.json"
    assert taxsync(server, "plan", str(root), "--out", str(plan_file)).code == 0

    # Someone re-versions the taxonomy between review and apply.
    head = api.taxonomies("production")["products"]
    api.new_version("production", head["taxonomy_id"], {**head["config"], "top_k": 7})

    result = taxsync(server, "apply", "--plan", str(plan_file))
    assert result.code == 1
    assert "stale" in result.err
    live = api.taxonomies("production")
    assert "extra" not in live  # nothing at all was written
    assert live["products"]["version"] == 2 and live["products"]["config"]["top_k"] == 7


def test_prune_deletes_only_what_taxsync_manages(
    tmp_path: Path, server: EmulatorHandle, api: Api
) -> None:
    root = tree(tmp_path / "m")
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    handmade = json.loads((Path(__file__).parent.parent / "data" / "handmade.json").read_text())
    api.create("production", handmade)
    (root / "prod" / "org.yaml").unlink()

    plan = taxsync(server, "plan", str(root), "--prune", "--format", "json")
    changes = json.loads(plan.out)["changes"]
    assert [(c["action"], c["name"]) for c in changes] == [("delete", "org")]

    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    assert "org" in api.taxonomies("production")  # no --prune: nothing deleted
    assert taxsync(server, "apply", str(root), "--auto-approve", "--prune").code == 0
    assert set(api.taxonomies("production")) == {"products", "handmade"}
    assert set(api.taxonomies("staging")) == {"products"}


def test_replace_needs_allow_replace(tmp_path: Path, server: EmulatorHandle, api: Api) -> None:
    root = tmp_path / "m"
    write(root, "a.yaml", flat("shape"))
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0
    old_id = api.taxonomies("production")["shape"]["taxonomy_id"]
    write(root, "a.yaml", hierarchical("shape"))

    refused = taxsync(server, "apply", str(root), "--auto-approve")
    assert refused.code == 1 and "--allow-replace" in refused.err
    assert api.taxonomies("production")["shape"]["taxonomy_id"] == old_id

    assert taxsync(server, "apply", str(root), "--auto-approve", "--allow-replace").code == 0
    new = api.taxonomies("production")["shape"]
    assert new["taxonomy_id"] != old_id and new["config"]["taxonomy_type"] == "hierarchical"


def test_apply_without_terminal_needs_auto_approve(
    tmp_path: Path, server: EmulatorHandle, api: Api
) -> None:
    root = tree(tmp_path / "m")
    result = taxsync(server, "apply", str(root))
    assert result.code == 1 and "--auto-approve" in result.err
    assert api.taxonomies("production") == {}


def test_missing_api_key_and_wrong_key(tmp_path: Path, emulator: StartEmulator) -> None:
    server = emulator(api_key="sk_right_key")
    root = tree(tmp_path / "m")
    missing = run_cli("plan", str(root), env={"MIXPEEK_API_URL": server.url})
    assert missing.code == 1 and "MIXPEEK_API_KEY is not set" in missing.err
    wrong = run_cli(
        "plan",
        str(root),
        "-v",
        env={"MIXPEEK_API_URL": server.url, "MIXPEEK_API_KEY": "sk_wrong_secret"},
    )
    assert wrong.code == 1 and "401" in wrong.err
    assert "sk_wrong_secret" not in wrong.output


def test_the_api_key_never_appears_in_output_or_plan(
    tmp_path: Path, server: EmulatorHandle
) -> None:
    root = tree(tmp_path / "m")
    plan_file = tmp_path / "plan.json"
    outputs = [
        taxsync(server, "plan", str(root), "-v", "--out", str(plan_file), "--format", "json"),
        taxsync(server, "apply", str(root), "-v", "--auto-approve"),
        taxsync(server, "plan", str(root), "-v", "--format", "markdown"),
    ]
    for run in outputs:
        assert run.code == 0, run.output
        assert server.api_key not in run.output
    assert "http: POST /v1/taxonomies 200" in outputs[1].err
    assert server.api_key not in plan_file.read_text()


def test_unknown_namespace_is_a_clear_error(tmp_path: Path, emulator: StartEmulator) -> None:
    server = emulator(namespaces=["production"])
    root = tree(tmp_path / "m")
    result = taxsync(server, "plan", str(root))
    assert result.code == 1
    assert "namespace 'staging' does not exist" in result.err


def test_local_mode_runs_in_process(tmp_path: Path) -> None:
    root = tree(tmp_path / "m")
    state = seed_local(tmp_path / "state.json", "production", "staging")
    local = ("--local", "--local-state", str(state))
    assert run_cli("apply", str(root), "--auto-approve", *local).code == 0
    assert state.exists()
    again = run_cli("plan", str(root), "--detailed-exitcode", *local)
    assert again.code == 0, again.output


def test_client_reads_each_namespace_in_few_requests(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    from taxsync.client import MixpeekClient

    server = emulator(max_page_size=10)
    root = tmp_path / "m"
    for i in range(25):
        write(root, f"t{i}.yaml", flat(f"tax-{i}"))
    assert taxsync(server, "apply", str(root), "--auto-approve").code == 0

    async def count() -> int:
        async with MixpeekClient(server.url, server.api_key) as client:
            live = await client.read_live(["production"])
            assert len(live["production"]) == 25
            return client.requests_sent

    assert asyncio.run(count()) == 1 + 3  # one namespace look-up, three pages


def test_apply_on_a_terminal_asks_first(tmp_path: Path, server: EmulatorHandle, api: Api) -> None:
    root = tree(tmp_path / "m")
    declined = run_cli("apply", str(root), env=env(server), typed="n\n")
    assert declined.code == 1 and "Apply these changes?" in declined.out
    assert "nothing was written" in declined.err
    assert api.taxonomies("production") == {}

    accepted = run_cli("apply", str(root), env=env(server), typed="y\n")
    assert accepted.code == 0, accepted.output
    assert set(api.taxonomies("production")) == {"products", "org"}
