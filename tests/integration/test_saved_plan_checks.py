"""A saved plan is untrusted: apply --plan refuses any that is not what taxsync planned.

Each test plans for real, edits the saved file as a hostile or careless author would (and,
where the edit should get past the digest, recomputes it), then checks that apply refuses it
with a clear message and that not a single write reached the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taxsync.plan import Plan
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, run_cli, write

NS = "production"
Edit = Callable[[dict[str, Any], EmulatorHandle], None]


def create_by_hand(srv: EmulatorHandle, name: str, managed: bool = False) -> str:
    body = {
        "taxonomy_name": name,
        "config": {
            "taxonomy_type": "flat",
            "retriever_id": "ret_clip_v1",
            "input_mappings": [{"input_key": "v", "source_type": "vector", "path": "features.v"}],
            "source_collection": {"collection_id": "col_products_v1"},
        },
        "metadata": {"managed_by": "taxsync"} if managed else {},
    }
    return str(Api(srv).create(NS, body)["taxonomy_id"])


def saved_plan(tmp_path: Path, srv: EmulatorHandle, *extra: str) -> Path:
    """Live: products v1 (managed), then the manifests ask for a new version and a create."""
    root = tmp_path / "m"
    write(root, "products.yaml", flat("products", NS, top_k=1))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "products.yaml", flat("products", NS, top_k=4))
    write(root, "fresh.yaml", flat("fresh", NS))
    plan_file = tmp_path / "plan.json"
    made = run_cli("plan", str(root), "--out", str(plan_file), *extra, env=env(srv))
    assert made.code == 0, made.output
    srv.forget()
    return plan_file


def tamper(plan_file: Path, edit: Callable[[dict[str, Any]], None], reseal: bool = True) -> None:
    data = json.loads(plan_file.read_text(encoding="utf-8"))
    edit(data)
    if reseal:  # a forger recomputes the digest; only the other checks can catch them
        data["digest"] = Plan.model_validate({**data, "digest": None}).content_digest()
    plan_file.write_text(json.dumps(data), encoding="utf-8")


def change(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["changes"] if c["name"] == name)
    return found


def refused(srv: EmulatorHandle, plan_file: Path, *words: str) -> None:
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 1, result.output
    assert "nothing was written" in result.err, result.err
    for word in words:
        assert word in result.err, result.err
    assert srv.writes() == [], "a refused plan must not write anything"


def test_an_untouched_saved_plan_applies(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 0, result.output
    assert len(srv.writes()) == 2  # one new version, one create


def test_an_edit_without_a_new_digest_is_caught(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    tamper(plan_file, lambda d: change(d, "fresh").update(name="other"), reseal=False)
    refused(srv, plan_file, "digest")


def test_a_summary_that_hides_changes_is_refused(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    tamper(plan_file, lambda d: d["summary"].update(create=0))
    refused(srv, plan_file, "summary")


def test_a_change_outside_the_plans_namespaces_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    tamper(plan_file, lambda d: change(d, "fresh").update(namespace="elsewhere"))
    refused(srv, plan_file, "outside the plan's namespaces")


def test_a_plan_without_its_api_url_is_refused(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    tamper(plan_file, lambda d: d.update(api_url=None))
    refused(srv, plan_file, "names no API URL")


def test_a_body_that_does_not_match_its_diff_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    # The reviewer read "top_k: 1 → 4"; the body would send 50.
    tamper(plan_file, lambda d: change(d, "products")["version_body"]["config"].update(top_k=50))
    refused(srv, plan_file, "production/products", "not what taxsync plans")


def test_a_write_without_the_managed_marker_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    tamper(plan_file, lambda d: change(d, "fresh")["create_body"].update(metadata={}))
    refused(srv, plan_file, "production/fresh")


def test_a_body_the_api_model_refuses_is_refused(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    plan_file = saved_plan(tmp_path, srv)
    tamper(
        plan_file, lambda d: change(d, "fresh")["create_body"].update(config=["not", "a", "config"])
    )
    refused(srv, plan_file, "not valid")


@pytest.mark.parametrize("managed", [False, True], ids=["hand-made", "managed"])
def test_an_added_delete_is_refused(tmp_path: Path, emulator: StartEmulator, managed: bool) -> None:
    """A delete the planner did not plan: of a hand-made taxonomy, or in a plan without prune."""
    srv = emulator()
    victim = create_by_hand(srv, "victim", managed=managed)
    plan_file = saved_plan(tmp_path, srv, "--prune") if not managed else saved_plan(tmp_path, srv)
    delete = {
        "action": "delete",
        "namespace": NS,
        "name": "victim",
        "taxonomy_id": victim,
        "base_version": 1,
        "taxonomy_type": "flat",
        "notes": ["not declared in any manifest; managed by taxsync"],
    }

    def add_delete(data: dict[str, Any]) -> None:
        data["changes"].append(delete)
        data["summary"]["delete"] += 1

    tamper(plan_file, add_delete)
    # A managed one is planned only with --prune; a hand-made one is never deleted.
    refused(srv, plan_file, "production/victim")


def test_a_legitimate_prune_still_applies(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    create_by_hand(srv, "retired", managed=True)
    plan_file = saved_plan(tmp_path, srv, "--prune")
    assert '"action": "delete"' in plan_file.read_text(encoding="utf-8")
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 0, result.output


# --- attachment changes (spec.appliedTo) -------------------------------------------------------


def applied_to(*entries: str) -> str:
    return "  appliedTo:\n" + "".join(f"    - {{{e}}}\n" for e in entries)


def attaching_plan(tmp_path: Path, srv: EmulatorHandle, *extra: str) -> Path:
    """Live: products applied by col-a (priority 5) and col-b, and "victim", made by hand
    (not managed), applied by col-a too. The manifest then asks for col-a at priority 7 (a
    reconfigure), no col-b (a detach), and the products collection (an attach)."""
    root = tmp_path / "m"
    write(
        root,
        "products.yaml",
        flat("products", NS) + applied_to("collection: col-a, priority: 5", "collection: col_b"),
    )
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    victim = create_by_hand(srv, "victim")
    entries = Api(srv).call("GET", "/v1/collections/col_a", NS)["taxonomy_applications"]
    entries.append({"taxonomy_id": victim, "priority": 1})
    Api(srv).call("PATCH", "/v1/collections/col_a", NS, {"taxonomy_applications": entries})
    write(
        root,
        "products.yaml",
        flat("products", NS)
        + applied_to("collection: col-a, priority: 7", "collection: products, execution_phase: 2"),
    )
    plan_file = tmp_path / "plan.json"
    made = run_cli("plan", str(root), "--out", str(plan_file), *extra, env=env(srv))
    assert made.code == 0, made.output
    srv.forget()
    return plan_file


def entries_of(srv: EmulatorHandle, collection_id: str) -> dict[str, dict[str, Any]]:
    """A collection's taxonomy_applications by taxonomy name."""
    names = {t["taxonomy_id"]: name for name, t in Api(srv).taxonomies(NS).items()}
    found = Api(srv).call("GET", f"/v1/collections/{collection_id}", NS)
    return {names[e["taxonomy_id"]]: e for e in found["taxonomy_applications"] or []}


def attachment(data: dict[str, Any], action: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["changes"] if c["action"] == action)
    return found


def test_an_untouched_saved_plan_of_attachments_applies(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    plan_file = attaching_plan(tmp_path, srv, "--backfill")
    actions = [c["action"] for c in json.loads(plan_file.read_text(encoding="utf-8"))["changes"]]
    assert sorted(actions) == ["attach", "detach", "reconfigure"]
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 0, result.output
    assert entries_of(srv, "col_a")["products"]["priority"] == 7
    assert entries_of(srv, "col_a")["victim"]["priority"] == 1  # another taxonomy's: untouched
    assert "products" not in entries_of(srv, "col_b")
    assert entries_of(srv, "col_products_v1")["products"]["execution_phase"] == 2
    backfills = [r.path for r in srv.committed() if r.path.endswith("/apply-taxonomy")]
    assert backfills == ["/v1/collections/col_products_v1/apply-taxonomy"]


def test_a_saved_attach_to_a_taxonomy_it_creates_applies(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "fresh.yaml", flat("fresh", NS) + applied_to("collection: col-b, priority: 3"))
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(plan_file), env=env(srv)).code == 0
    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert result.code == 0, result.output
    assert entries_of(srv, "col_b")["fresh"]["priority"] == 3


def test_an_attach_edited_to_another_collection_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """The reviewer read "attach to products"; the file now writes col_employees."""
    srv = emulator()
    plan_file = attaching_plan(tmp_path, srv)
    tamper(plan_file, lambda d: attachment(d, "attach").update(collection_id="col_employees"))
    refused(srv, plan_file, "production/products on products", "not what taxsync plans")
    assert "products" not in entries_of(srv, "col_employees")


def test_an_attach_edited_to_other_settings_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """The reviewer read "execution_phase = 2"; the file writes priority 1000 as well."""
    srv = emulator()
    plan_file = attaching_plan(tmp_path, srv)
    tamper(plan_file, lambda d: attachment(d, "attach")["application"].update(priority=1000))
    refused(srv, plan_file, "production/products on products", "not what taxsync plans")


def test_an_added_detach_of_an_unmanaged_taxonomy_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Consistent in itself (diff, live entry, name and id): what taxsync would plan if it
    managed "victim". It does not."""
    srv = emulator()
    plan_file = attaching_plan(tmp_path, srv)
    entry = entries_of(srv, "col_a")["victim"]

    def add_detach(data: dict[str, Any]) -> None:
        detach = {
            **attachment(data, "detach"),
            "name": "victim",
            "taxonomy_id": entry["taxonomy_id"],
            "collection_id": "col_a",
            "collection_name": "col-a",
            "live_application": entry,
            "diff": [
                {"path": k, "before": v, "after": None, "after_present": False}
                for k, v in sorted(entry.items())
                if k != "taxonomy_id"
            ],
        }
        data["changes"].append(detach)
        data["summary"]["detach"] += 1

    tamper(plan_file, add_detach)
    refused(srv, plan_file, "production/victim on col-a", "taxsync does not manage")
    assert "victim" in entries_of(srv, "col_a")


def test_a_saved_plan_whose_entry_was_edited_by_hand_is_stale(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    plan_file = attaching_plan(tmp_path, srv)
    entries = Api(srv).call("GET", "/v1/collections/col_a", NS)["taxonomy_applications"]
    Api(srv).call(
        "PATCH",
        "/v1/collections/col_a",
        NS,
        {
            "taxonomy_applications": [
                {**e, "priority": 6} if e["priority"] == 5 else e for e in entries
            ]
        },
    )
    refused(srv, plan_file, "stale", "production/products on col-a: its settings changed")
