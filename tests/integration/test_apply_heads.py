"""Apply checks each change against its namespace's heads read in bulk: about one request
per applied change, and a taxonomy moved since the plan is still refused."""

from __future__ import annotations

from pathlib import Path

from taxsync import reconcile
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, run_cli, settings_for, write

NS = "production"
FLEET = 200
# The target: reads included, at most 1.05 requests per applied change.
MAX_REQUESTS_PER_CHANGE = 1.05


def fleet(root: Path, top_k: int, description: str | None = None) -> Path:
    for index in range(FLEET):
        text = flat(f"tax-{index:03d}", NS, top_k=top_k)
        if description is not None:
            text = text.replace("Product categories by image similarity", description)
        write(root, f"tax-{index:03d}.yaml", text)
    return root


def applied_requests(srv: EmulatorHandle, root: Path) -> int:
    """The requests one apply of ``root`` sent, its plan's reads left out."""
    settings = settings_for(srv)
    plan = reconcile.plan_manifests(reconcile.load_manifests(root), settings)
    srv.forget()
    result = reconcile.apply(plan, settings)
    assert result.ok and len(result.results) == FLEET, result.results[:3]
    return len(srv.requests)


def test_new_versions_cost_about_one_request_each(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    root = fleet(tmp_path / "m", top_k=1)
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    requests = applied_requests(srv, fleet(root, top_k=2))
    assert requests / FLEET <= MAX_REQUESTS_PER_CHANGE, requests
    assert {t["version"] for t in Api(srv).listing(NS)} == {2}


def test_updates_cost_about_one_request_each(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    root = fleet(tmp_path / "m", top_k=1)
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    requests = applied_requests(srv, fleet(root, top_k=1, description="Reworded"))
    assert requests / FLEET <= MAX_REQUESTS_PER_CHANGE, requests
    assert {t["description"] for t in Api(srv).listing(NS)} == {"Reworded"}


def test_a_taxonomy_re_versioned_between_plan_and_apply_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", NS))
    write(root, "b.yaml", flat("b", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "a.yaml", flat("a", NS, top_k=3))
    write(root, "b.yaml", flat("b", NS, top_k=3))
    settings = settings_for(srv)
    plan = reconcile.plan_manifests(reconcile.load_manifests(root), settings)

    head = api.taxonomies(NS)["a"]
    api.new_version(NS, head["taxonomy_id"], {**head["config"], "top_k": 7})

    result = reconcile.apply(plan, settings)
    by_name = {r.change.name: r for r in result.results}
    assert by_name["a"].status == "stale", by_name["a"]
    assert "moved to v2 since the plan (v1)" in by_name["a"].message
    assert by_name["b"].status == "applied"
    live = api.taxonomies(NS)
    assert (live["a"]["version"], live["a"]["config"]["top_k"]) == (2, 7)  # theirs, untouched
    assert (live["b"]["version"], live["b"]["config"]["top_k"]) == (2, 3)
