"""Recovery checks identity, not just a name (issue 22), over HTTP against the emulator.

- A create whose answer is lost looks for its taxonomy by listing with a name filter (a GET
  by name resolves ids first) and takes it as its own only with taxsync's marker and the
  config it sent; anything else is someone else's (stale), never attached or backfilled.
- A taxonomy under a replace's working name (``X.taxsync-replacement``) without taxsync's
  marker is never taken over: neither planned as the end of a replace nor adopted by one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taxsync.model import MANAGED_KEY
from taxsync.wire import CreateTaxonomyRequest
from tests.conftest import EmulatorHandle, Seen, StartEmulator
from tests.helpers import Api, creating, env, flat, hierarchical, run_cli, write

NS = "production"
LEFTOVER = "products.taxsync-replacement"


def attached_to(srv: EmulatorHandle, name: str) -> str:
    """A flat manifest named ``name`` that attaches to products."""
    return flat(name, NS).replace("spec:\n", "spec:\n  appliedTo: [{collection: products}]\n", 1)


def entries(srv: EmulatorHandle) -> list[dict[str, Any]]:
    found = Api(srv).call("GET", "/v1/collections/col_products_v1", NS)
    return list(found.get("taxonomy_applications") or [])


def unmanaged(body: dict[str, Any]) -> dict[str, Any]:
    """A create body as someone else would send it: without taxsync's marker."""
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != MANAGED_KEY}
    return {**body, "metadata": metadata}


# --- a lost create answer ---------------------------------------------------------------------


def test_a_lost_create_answer_attaches_the_taxonomy_it_created_not_one_whose_id_is_its_name(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    decoy = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]  # taxsync's, same config
    write(root, "b.yaml", attached_to(srv, decoy))  # a taxonomy named like the decoy's id
    srv.lose(creating(decoy), committed=True, limit=1)

    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))

    assert result.code == 0, result.output
    created = Api(srv).taxonomies(NS)[decoy]["taxonomy_id"]
    assert created != decoy
    assert [e["taxonomy_id"] for e in entries(srv)] == [created]
    assert len([r for r in srv.committed() if creating(decoy)(r)]) == 1


def test_a_lost_create_answer_never_adopts_a_taxonomy_someone_else_created_meanwhile(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """The create is lost before it is handled, and someone else creates the same name,
    with the same config but without taxsync's marker, before taxsync looks."""
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", attached_to(srv, "products"))
    theirs: list[dict[str, Any]] = []

    def someone_else_first(request: Seen) -> bool:
        if not creating("products")(request):
            return False
        if not theirs:
            body = CreateTaxonomyRequest.model_validate(unmanaged(request.json()))
            theirs.append(srv.store.create_taxonomy(NS, body))
        return True

    srv.lose(someone_else_first, committed=False, limit=1)

    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))

    assert result.code == 1, result.output
    assert "created by someone else meanwhile" in result.out
    assert "STALE" in result.out
    (live,) = Api(srv).listing(NS)
    assert live["taxonomy_id"] == theirs[0]["taxonomy_id"]
    assert MANAGED_KEY not in (live.get("metadata") or {})  # not taken over
    assert entries(srv) == []  # nor attached


# --- leftovers of a replace -------------------------------------------------------------------


def test_an_unmanaged_taxonomy_under_a_replace_name_is_not_taken_over_as_a_leftover(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("products", NS))
    body = json.loads(run_cli("plan", str(root), "--format", "json", env=env(srv)).out)
    create_body = body["changes"][0]["create_body"]
    Api(srv).create(NS, unmanaged({**create_body, "taxonomy_name": LEFTOVER}))

    planned = run_cli("plan", str(root), env=env(srv))
    applied = run_cli("apply", str(root), "--auto-approve", env=env(srv))

    assert planned.code == 0, planned.output
    message = f"{LEFTOVER} exists but is not taxsync's; rename or delete it"
    assert message in planned.out
    assert "1 to create, 0 new version, 0 to update" in planned.out
    assert "taxonomy_name" not in planned.out  # no rename
    assert applied.code == 1, applied.output
    assert message in applied.out
    (live,) = Api(srv).listing(NS)
    assert live["taxonomy_name"] == LEFTOVER
    assert MANAGED_KEY not in (live.get("metadata") or {})
    assert srv.committed() == []


def test_a_replace_refuses_an_unmanaged_taxonomy_under_its_working_name(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """It appears between the plan and the apply: the replace stops before any write."""
    srv = emulator()
    root = tmp_path / "m"
    write(root, "a.yaml", flat("products", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "a.yaml", hierarchical("products", NS))
    saved = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(saved), env=env(srv)).code == 0
    (change,) = json.loads(saved.read_text())["changes"]
    assert change["action"] == "replace"
    Api(srv).create(NS, unmanaged({**change["create_body"], "taxonomy_name": LEFTOVER}))
    srv.forget()

    result = run_cli(
        "apply", "--plan", str(saved), "--allow-replace", "--auto-approve", env=env(srv)
    )

    assert result.code == 1, result.output
    assert f"{LEFTOVER} exists but is not taxsync's" in result.out
    assert srv.committed() == []
    assert sorted(Api(srv).names(NS)) == ["products", LEFTOVER]
