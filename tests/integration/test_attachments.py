"""Attachments in git (``spec.appliedTo``), over HTTP against the emulator: attach, reconfigure
and detach as their own changes, round trips that re-plan empty, other taxonomies' entries
untouched, a create and its attach in one apply, detach-then-delete, and backfills after an
attach."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from taxsync import reconcile
from taxsync.applier import apply_plan
from taxsync.client import MixpeekClient
from taxsync.plan import ApplyResult, Plan
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import (
    WAIT_FAILSAFE_S,
    Api,
    env,
    flat,
    hierarchical,
    run_cli,
    settings_for,
    spawn_cli,
    wait_held,
    write,
)

NS = "production"


def manifest(name: str = "products", applied_to: str | None = None, top_k: int = 1) -> str:
    """A flat manifest, with ``applied_to`` (YAML flow text) as its ``spec.appliedTo``."""
    text = flat(name, NS, top_k=top_k)
    if applied_to is None:
        return text
    return text.replace("spec:\n", f"spec:\n  appliedTo: {applied_to}\n", 1)


def started(tmp_path: Path, emulator: StartEmulator, text: str) -> tuple[EmulatorHandle, Path]:
    """An emulator, and a manifest tree holding ``text`` as p.yaml."""
    root = tmp_path / "m"
    write(root, "p.yaml", text)
    return emulator(), root


def entries(srv: EmulatorHandle, collection: str = "col_products_v1") -> list[dict[str, Any]]:
    found = Api(srv).call("GET", f"/v1/collections/{collection}", NS)
    return list(found.get("taxonomy_applications") or [])


def set_entries(srv: EmulatorHandle, collection: str, applications: list[dict[str, Any]]) -> None:
    body = {"taxonomy_applications": applications}
    Api(srv).call("PATCH", f"/v1/collections/{collection}", NS, body)


def taxonomy_id(srv: EmulatorHandle, name: str = "products") -> str:
    return str(Api(srv).taxonomies(NS)[name]["taxonomy_id"])


def apply(root: Path, srv: EmulatorHandle, *flags: str) -> str:
    result = run_cli("apply", str(root), "--auto-approve", *flags, env=env(srv))
    assert result.code == 0, result.output
    return result.out


def apply_directly(srv: EmulatorHandle, plan: Plan) -> ApplyResult:
    """The applier alone, over HTTP, with no saved-plan checks in front of it."""

    async def run() -> ApplyResult:
        async with MixpeekClient(srv.url, srv.api_key) as client:
            return await apply_plan(client, plan)

    return asyncio.run(run())


def assert_plans_empty(root: Path, srv: EmulatorHandle, *flags: str) -> None:
    result = run_cli("plan", str(root), "--detailed-exitcode", *flags, env=env(srv))
    assert result.code == 0, result.output


def collection_writes(srv: EmulatorHandle) -> list[str]:
    return [r.path for r in srv.committed() if r.path.startswith("/v1/collections/")]


# --- round trips -----------------------------------------------------------------------------


def test_attach_reconfigure_detach_round_trips_re_plan_empty(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(
        tmp_path, emulator, manifest(applied_to="[{collection: products, execution_phase: 2}]")
    )

    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "+ attach production/products to collection products (col_products_v1)" in planned
    assert "+ execution_phase = 2" in planned
    assert "1 to create" in planned and "1 to attach" in planned
    apply(root, srv)
    (entry,) = entries(srv)
    assert entry["taxonomy_id"] == taxonomy_id(srv)  # the create's new id
    assert entry["execution_phase"] == 2
    assert_plans_empty(root, srv)

    write(root, "p.yaml", manifest(applied_to="[{collection: col_products_v1, priority: 7}]"))
    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "~ reconfigure production/products on collection products" in planned
    assert "~ execution_phase: 2 → 1" in planned
    assert "~ priority: 0 → 7" in planned
    # A key of its own entry that taxsync does not know survives the reconfigure.
    set_entries(srv, "col_products_v1", [{**entries(srv)[0], "x_note": "keep"}])
    apply(root, srv)
    (entry,) = entries(srv)
    assert (entry.get("execution_phase"), entry["priority"]) in ((1, 7), (None, 7))
    assert entry["x_note"] == "keep"
    assert_plans_empty(root, srv)

    write(root, "p.yaml", manifest(applied_to="[]"))
    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "- detach production/products from collection products" in planned
    assert "- priority (was 7)" in planned
    apply(root, srv)
    assert entries(srv) == []
    assert_plans_empty(root, srv)


def test_server_defaults_and_explicit_defaults_plan_the_same(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Phase 1, priority 0, materialize, and nulls read the same whichever way they come."""
    srv = emulator()
    root = tmp_path / "m"
    write(
        root,
        "p.yaml",
        manifest(applied_to="[products]".replace("products", "{collection: products}")),
    )
    apply(root, srv)
    explicit = (
        "[{collection: products, execution_phase: 1, priority: 0, execution_mode: materialize,"
        " target_collection_id: null}]"
    )
    write(root, "p.yaml", manifest(applied_to=explicit))
    assert_plans_empty(root, srv)
    # As another client may have written it: explicit nulls for every setting.
    nulls = dict.fromkeys(
        ("execution_mode", "target_collection_id", "scroll_filters", "execution_phase"), None
    )
    set_entries(srv, "col_products_v1", [{"taxonomy_id": taxonomy_id(srv), **nulls}])
    assert_plans_empty(root, srv)


def test_the_json_plan_carries_the_attachment_and_its_field_diff(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to="[{collection: products}]"))
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to="[{collection: products, execution_phase: 3}]"))
    plan = json.loads(run_cli("plan", str(root), "--format", "json", env=env(srv)).out)
    assert plan["summary"]["reconfigure"] == 1
    (change,) = plan["changes"]
    assert change["action"] == "reconfigure"
    assert change["collection_id"] == "col_products_v1"
    assert change["collection_name"] == "products"
    assert change["taxonomy_id"] == taxonomy_id(srv)
    assert change["application"] == {"execution_phase": 3}
    assert change["live_application"]["execution_phase"] == 1
    assert [(d["path"], d["before"], d["after"]) for d in change["diff"]] == [
        ("execution_phase", 1, 3)
    ]
    markdown = run_cli("plan", str(root), "--format", "markdown", env=env(srv)).out
    assert (
        "| `~` | reconfigure production/products on collection products (col_products_v1) |"
        in markdown
    )
    assert "- execution_phase: 1\n+ execution_phase: 3" in markdown


# --- ownership ------------------------------------------------------------------------------


def test_other_taxonomies_entries_are_never_touched(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest())
    apply(root, srv)
    # A hand-attached taxonomy taxsync does not manage, with a key taxsync does not know.
    theirs = Api(srv).create(
        NS,
        {
            "taxonomy_name": "theirs",
            "config": json.loads(json.dumps(Api(srv).taxonomies(NS)["products"]["config"])),
        },
    )
    other = {"taxonomy_id": theirs["taxonomy_id"], "execution_phase": 3, "x_note": "keep"}
    set_entries(srv, "col_products_v1", [other])
    set_entries(srv, "col_a", [other])

    write(root, "p.yaml", manifest(applied_to="[{collection: products}, {collection: col-a}]"))
    apply(root, srv)
    assert [e["taxonomy_id"] for e in entries(srv)] == [theirs["taxonomy_id"], taxonomy_id(srv)]
    assert entries(srv)[0] == entries(srv, "col_a")[0]
    assert entries(srv)[0]["x_note"] == "keep" and entries(srv)[0]["execution_phase"] == 3

    write(root, "p.yaml", manifest(applied_to="[]"))
    apply(root, srv)
    assert [e["taxonomy_id"] for e in entries(srv)] == [theirs["taxonomy_id"]]
    assert entries(srv)[0]["x_note"] == "keep"
    assert [e["taxonomy_id"] for e in entries(srv, "col_a")] == [theirs["taxonomy_id"]]


def test_without_applied_to_attachments_are_left_alone(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest())
    apply(root, srv)
    set_entries(srv, "col_products_v1", [{"taxonomy_id": taxonomy_id(srv), "priority": 4}])
    srv.forget()
    assert_plans_empty(root, srv)
    write(root, "p.yaml", manifest(top_k=3))
    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "applied by products (col_products_v1" in planned
    assert "detach" not in planned and "reconfigure" not in planned
    apply(root, srv)
    assert entries(srv)[0]["priority"] == 4
    assert collection_writes(srv) == []


def test_many_taxonomies_attach_to_one_collection_in_one_apply(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Each attach rewrites the collection's whole list: they must not overwrite each other."""
    srv = emulator()
    root = tmp_path / "m"
    names = [f"t{i}" for i in range(6)]
    for name in names:
        write(root, f"{name}.yaml", manifest(name, applied_to="[{collection: products}]"))
    apply(root, srv)
    ids = {taxonomy_id(srv, name) for name in names}
    assert {e["taxonomy_id"] for e in entries(srv)} == ids
    assert_plans_empty(root, srv)


# --- detach, then delete ----------------------------------------------------------------------


def test_detach_deleted_detaches_then_deletes(tmp_path: Path, emulator: StartEmulator) -> None:
    srv, root = started(
        tmp_path, emulator, manifest(applied_to="[{collection: products}, {collection: col-b}]")
    )
    write(root, "keep.yaml", manifest("keep", applied_to="[{collection: products}]"))
    apply(root, srv)
    (root / "p.yaml").unlink()

    blocked = run_cli("plan", str(root), "--prune", env=env(srv)).out
    assert "BLOCKED: still applied by 2 collection(s)" in blocked
    planned = run_cli("plan", str(root), "--prune", "--detach-deleted", env=env(srv)).out
    assert "BLOCKED" not in planned
    assert "- detach production/products from collection col-b (col_b)" in planned
    assert "- detach production/products from collection products" in planned
    assert "2 to detach" in planned and "1 to delete" in planned

    srv.forget()
    apply(root, srv, "--prune", "--detach-deleted")
    assert "products" not in Api(srv).taxonomies(NS)
    assert [e["taxonomy_id"] for e in entries(srv)] == [taxonomy_id(srv, "keep")]
    assert entries(srv, "col_b") == []
    methods = [(r.method, r.path.split("/")[2]) for r in srv.committed()]
    assert methods[-1] == ("DELETE", "taxonomies")  # the delete came after both detaches
    assert_plans_empty(root, srv, "--prune")


def test_applied_to_empty_list_detaches_so_a_later_prune_is_not_blocked(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to="[{collection: products}]"))
    write(root, "keep.yaml", manifest("keep"))
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to="[]"))
    apply(root, srv)
    (root / "p.yaml").unlink()
    planned = run_cli("plan", str(root), "--prune", env=env(srv)).out
    assert "BLOCKED" not in planned
    apply(root, srv, "--prune")
    assert "products" not in Api(srv).taxonomies(NS)


# --- staleness and faults -------------------------------------------------------------------


def test_a_hand_edit_of_the_entry_after_the_plan_makes_the_change_stale(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to="[{collection: products}]"))
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to="[{collection: products, priority: 5}]"))
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(plan_file), env=env(srv)).code == 0
    set_entries(srv, "col_products_v1", [{"taxonomy_id": taxonomy_id(srv), "priority": 9}])
    srv.forget()

    applied = run_cli("apply", "--plan", str(plan_file), env=env(srv))
    assert applied.code == 1
    assert entries(srv)[0]["priority"] == 9
    assert collection_writes(srv) == []


@pytest.mark.parametrize(
    ("before", "after", "edit"),
    [
        ("[{collection: products}]", "[{collection: products, priority: 5}]", {"priority": 9}),
        ("[{collection: products}]", "[]", {"priority": 9}),
        ("[]", "[{collection: products}]", {"priority": 9}),
    ],
    ids=["reconfigure", "detach", "attach"],
)
def test_an_entry_edited_right_before_the_write_is_left_alone(
    tmp_path: Path, emulator: StartEmulator, before: str, after: str, edit: dict[str, Any]
) -> None:
    """The collection is read right before its PATCH: a hand edit made after the plan (here,
    while apply is under way) makes the change stale instead of being overwritten."""
    srv, root = started(tmp_path, emulator, manifest(applied_to=before))
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to=after))
    hold = srv.hold(lambda r: r.method == "GET" and r.path == "/v1/collections/col_products_v1")
    process = spawn_cli(srv, "apply", str(root), "--auto-approve")
    wait_held(hold, process)
    set_entries(srv, "col_products_v1", [{"taxonomy_id": taxonomy_id(srv), **edit}])
    srv.forget()
    hold.release(forward=True)  # the read right before the write sees the edit
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert "STALE" in out
    assert collection_writes(srv) == []
    assert entries(srv)[0]["priority"] == 9


def test_a_lost_answer_to_the_collection_patch_is_not_written_twice(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest())
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to="[{collection: products, priority: 2}]"))
    srv.lose(lambda r: r.method == "PATCH" and "/collections/" in r.path, committed=True, limit=1)
    srv.forget()

    apply(root, srv)
    assert len([p for p in collection_writes(srv)]) == 1
    (entry,) = entries(srv)
    assert entry["priority"] == 2
    assert_plans_empty(root, srv)


# --- create, replace and backfills ------------------------------------------------------------


def test_an_attach_backfills_its_collection_once_when_asked(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    srv.app.refuse_empty_backfill = False  # col_a has no documents
    root = tmp_path / "m"
    write(root, "p.yaml", manifest())
    apply(root, srv)
    set_entries(srv, "col_a", [{"taxonomy_id": taxonomy_id(srv)}])
    # A config change (backfills col_a, which applies it) and an attach to products.
    text = manifest(applied_to="[{collection: col-a}, {collection: products}]", top_k=4)
    write(root, "p.yaml", text.replace("spec:\n", "spec:\n  backfill: onChange\n", 1))
    planned = run_cli("plan", str(root), env=env(srv)).out
    assert planned.count("backfill after apply:") == 2
    srv.forget()

    out = apply(root, srv, "--wait")
    started = sorted(r.path for r in srv.committed() if r.path.endswith("/apply-taxonomy"))
    assert started == [
        "/v1/collections/col_a/apply-taxonomy",
        "/v1/collections/col_products_v1/apply-taxonomy",
    ]
    # The backfills run last: after the attach, with the new version in place.
    writes = [r.path for r in srv.committed()]
    assert writes.index("/v1/collections/col_products_v1") < min(writes.index(p) for p in started)
    assert out.count("backfill task(s): task_") == 2


def test_the_applier_starts_one_backfill_per_collection_and_taxonomy(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Whatever a plan lists (verify refuses a saved plan that repeats a collection; this is
    the applier's own guard behind it), one apply starts one backfill per pair."""
    srv, root = started(tmp_path, emulator, manifest())
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to="[{collection: products}]"))
    plan = reconcile.plan_tree(root, settings_for(srv), reconcile.PlanChoices(backfill=True))
    (attach,) = plan.changes
    attach.backfills = ["col_products_v1", "col_products_v1"]
    srv.forget()

    result = apply_directly(srv, plan)
    assert result.ok, result.results
    assert len([r for r in srv.committed() if r.path.endswith("/apply-taxonomy")]) == 1


def test_a_create_without_backfill_says_the_attach_is_not_backfilled(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to="[{collection: products}]"))
    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "uses the new taxonomy's id (its create or replace runs first)" in planned
    assert "backfill: not planned" in planned
    srv.forget()
    apply(root, srv)
    assert not [r for r in srv.committed() if r.path.endswith("/apply-taxonomy")]


def test_a_replace_with_new_settings_re_points_then_reconfigures(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(
        tmp_path, emulator, manifest("org", applied_to="[{collection: products, priority: 1}]")
    )
    apply(root, srv)
    old = taxonomy_id(srv, "org")
    text = hierarchical("org", NS).replace(
        "spec:\n", "spec:\n  appliedTo: [{collection: products, priority: 2}]\n", 1
    )
    write(root, "p.yaml", text)
    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "± replace production/org" in planned
    assert "~ reconfigure production/org on collection products" in planned

    apply(root, srv, "--allow-replace")
    (entry,) = entries(srv)
    assert entry["taxonomy_id"] == taxonomy_id(srv, "org") != old
    assert entry["priority"] == 2
    assert_plans_empty(root, srv)


# --- references -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applied_to", "message"),
    [
        (
            "[{collection: nowhere}]",
            "spec.appliedTo[0].collection: collection nowhere does not exist in namespace production",
        ),
        (
            "[{collection: products, target_collection_id: col_gone}]",
            "spec.appliedTo[0].target_collection_id: collection col_gone does not exist",
        ),
        (
            "[{collection: products}, {collection: col_products_v1}]",
            "spec.appliedTo[1].collection: col_products_v1 is collection col_products_v1, "
            "already listed at appliedTo[0]",
        ),
    ],
)
def test_applied_to_names_are_checked_at_their_lines(
    tmp_path: Path, emulator: StartEmulator, applied_to: str, message: str
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to=applied_to))
    result = run_cli("plan", str(root), env=env(srv))
    assert result.code == 1
    assert f"{root / 'p.yaml'}:" in result.err and message in result.err
    assert srv.writes() == []


def test_the_applier_refuses_an_attach_whose_id_its_taxonomy_change_contradicts(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Behind verify: an attachment change naming another taxonomy's id than the one its
    taxonomy's change (in the same plan) gave is not written."""
    srv, root = started(tmp_path, emulator, manifest())
    write(root, "q.yaml", manifest("other"))
    apply(root, srv)
    write(root, "p.yaml", manifest(applied_to="[{collection: products}]", top_k=2))
    plan = reconcile.plan_tree(root, settings_for(srv))
    version, attach = plan.changes
    assert (version.action, attach.action) == ("new_version", "attach")
    attach.taxonomy_id = taxonomy_id(srv, "other")
    srv.forget()

    assert [r.status for r in apply_directly(srv, plan).results] == ["applied", "failed"]
    assert entries(srv) == []


# --- killed mid-apply -----------------------------------------------------------------------


def kill_when_held(srv: EmulatorHandle, root: Path, match: Any, *flags: str) -> None:
    """Run apply, SIGKILL it while the request ``match`` picks is held (never sent on)."""
    hold = srv.hold(match)
    process = spawn_cli(srv, "apply", str(root), "--auto-approve", *flags)
    wait_held(hold, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT_FAILSAFE_S)
    hold.release()


def test_a_create_killed_before_its_attach_is_finished_by_the_next_apply(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to="[{collection: products}]"))
    kill_when_held(srv, root, lambda r: r.method == "PATCH" and "/collections/" in r.path)
    assert "products" in Api(srv).taxonomies(NS) and entries(srv) == []

    planned = run_cli("plan", str(root), env=env(srv)).out
    assert "0 to create" in planned and "1 to attach" in planned  # exactly the rest
    apply(root, srv)
    (entry,) = entries(srv)
    assert entry["taxonomy_id"] == taxonomy_id(srv)
    assert_plans_empty(root, srv)


def test_a_delete_killed_after_its_detach_is_finished_by_the_next_apply(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator, manifest(applied_to="[{collection: products}]"))
    write(root, "keep.yaml", manifest("keep"))
    apply(root, srv)
    (root / "p.yaml").unlink()
    flags = ("--prune", "--detach-deleted")
    kill_when_held(srv, root, lambda r: r.method == "DELETE", *flags)
    assert "products" in Api(srv).taxonomies(NS) and entries(srv) == []  # detached, not deleted

    planned = run_cli("plan", str(root), *flags, env=env(srv)).out
    assert "BLOCKED" not in planned and "detach" not in planned and "1 to delete" in planned
    apply(root, srv, *flags)
    assert "products" not in Api(srv).taxonomies(NS)
    assert_plans_empty(root, srv, "--prune")
