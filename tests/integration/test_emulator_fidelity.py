"""Where the emulator once was kinder than the real API, over HTTP: an unknown X-Namespace is
unresolved and never created, a collection describes its features, the GET alias of the
collections list reads no body, and re-seeding keeps what apply attached."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest

from taxsync.emulator import Store
from tests.conftest import StartEmulator
from tests.helpers import env, run_cli, seed_local, write
from tests.integration.contract_schema import assert_valid, example
from tests.integration.test_attachments import manifest
from tests.integration.test_emulator_collections import (
    NS,
    SEED,
    assert_error,
    client,
    create_taxonomy,
    ok,
    start,
)

TYPO = "prodution"

# --- an unknown namespace ----------------------------------------------------------------------


def test_every_list_of_an_unknown_namespace_is_empty_and_flagged(emulator: StartEmulator) -> None:
    srv = start(emulator)
    with client(srv, namespace=TYPO) as typo:
        lists = {
            "GET taxonomies": typo.get("/v1/taxonomies"),
            "POST taxonomies": typo.post("/v1/taxonomies/list", json={"limit": 5}),
            "GET collections": typo.get("/v1/collections"),
            "POST collections": typo.post("/v1/collections/list", json={}),
            "GET retrievers": typo.get("/v1/retrievers"),
            "POST retrievers": typo.post("/v1/retrievers/list", json={}),
        }
        for what, response in lists.items():
            body = ok(response)
            assert response.headers["x-namespace-unresolved"] == "true", what
            assert body["results"] == [], what
            [warning] = body["warnings"]
            assert warning["resource"] == "namespace" and warning["reason"] == "unresolved"
            assert warning["id"] == TYPO
        assert lists["POST taxonomies"].json()["pagination"]["page_size"] == 5


def test_every_other_route_of_an_unknown_namespace_is_404_and_creates_nothing(
    emulator: StartEmulator,
) -> None:
    srv = start(emulator)
    with client(srv) as known:
        taxonomy = create_taxonomy(known)
    flat = example("CreateTaxonomyRequest.flat")
    with client(srv, namespace=TYPO) as typo:
        attempts = [
            typo.post("/v1/taxonomies", json=flat),
            typo.get(f"/v1/taxonomies/{taxonomy}"),
            typo.patch(f"/v1/taxonomies/{taxonomy}", json={"description": "x"}),
            typo.delete(f"/v1/taxonomies/{taxonomy}"),
            typo.get(f"/v1/taxonomies/{taxonomy}/versions"),
            typo.get("/v1/collections/products"),
            typo.get("/v1/collections/products/features"),
            typo.patch("/v1/collections/products", json={"taxonomy_applications": []}),
            typo.post("/v1/collections/products/apply-taxonomy", json={"taxonomy_id": taxonomy}),
            typo.get("/v1/retrievers/ret_clip_v1"),
            typo.get(f"/v1/namespaces/{TYPO}"),
        ]
        for response in attempts:
            error = assert_error(response, 404, "NotFoundError")
            assert error["details"] == {"resource": "namespace", "id": TYPO}, response.request.url
        names = [n["namespace_name"] for n in ok(typo.get("/v1/namespaces"))["results"]]
    assert names == [NS]
    assert srv.store.count_taxonomies() == 1


def test_a_plan_in_a_misspelt_namespace_fails_as_on_the_real_api(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", manifest().replace(f"namespace: {NS}", f"namespace: {TYPO}"))
    served = run_cli("plan", str(root), env=env(srv))
    state = seed_local(tmp_path / "state.json", NS)
    local = run_cli("plan", "--local", "--local-state", str(state), str(root))
    for run in (served, local):
        assert run.code == 1 and run.out == ""
        assert run.err == (
            f"Error: namespace '{TYPO}' does not exist in the Mixpeek organisation "
            f"(taxsync does not create namespaces); did you mean '{NS}'?\n"
        )
    for store in (srv.store, Store(state)):
        assert TYPO not in [n["namespace_name"] for n in store.list_namespaces().results]


# --- features ----------------------------------------------------------------------------------


def test_a_collection_describes_its_features_from_its_vector_indexes(
    emulator: StartEmulator,
) -> None:
    described = example("DescribeCollectionFeaturesResponse.image-collection")
    expected = described["features"][0]["vector_index"]
    collection = example("CollectionResponse.with-taxonomy-applications")
    seeded = {key: collection[key] for key in ("collection_id", "collection_name")}
    index = {**collection["vector_indexes"][0]}
    index.update(description=expected["description"], purpose=expected["purpose"])
    seeded.update(feature_extractor=collection["feature_extractor"], vector_indexes=[index])
    seed = copy.deepcopy(SEED)
    seed["namespaces"][NS]["collections"].append(seeded)
    srv = start(emulator, seed)
    with client(srv) as session:
        by_name = ok(session.get("/v1/collections/product_images/features"))
        by_id = ok(session.get(f"/v1/collections/{seeded['collection_id']}/features"))
        plain = ok(session.get("/v1/collections/products/features"))
        missing = session.get("/v1/collections/nope/features")
    assert by_name == by_id == described
    assert_valid(by_name, "DescribeCollectionFeaturesResponse")
    assert plain == {"features": []}  # no vector index: nothing to search by
    assert assert_error(missing, 404, "NotFoundError")["details"]["resource"] == "collection"


def test_features_without_a_description_say_which_index_they_are(emulator: StartEmulator) -> None:
    collection = example("CollectionResponse.with-taxonomy-applications")
    seed = copy.deepcopy(SEED)
    seed["namespaces"][NS]["collections"].append(
        {
            "collection_id": "col_images",
            "collection_name": "images",
            "feature_extractor": collection["feature_extractor"],
            "vector_indexes": [
                *collection["vector_indexes"],
                {**collection["vector_indexes"][0], "name": "second", "type": "multi"},
            ],
        }
    )
    srv = start(emulator, seed)
    with client(srv) as session:
        features = ok(session.get("/v1/collections/images/features"))["features"]
    assert_valid({"features": features}, "DescribeCollectionFeaturesResponse")
    assert [f["primary"] for f in features] == [True, False]
    assert [f["vector_index"]["type"] for f in features] == ["dense", "multi_dense"]
    first = features[0]["vector_index"]
    assert first["description"] == "Vector index clip_vit_l_14 of collection images"
    assert (first["dimensions"], first["distance"]) == (768, "cosine")


# --- the GET alias of the collections list ----------------------------------------------------


def test_the_get_alias_of_the_collections_list_reads_no_body(emulator: StartEmulator) -> None:
    srv = start(emulator)
    body = example("ListCollectionsRequest.by-name")
    body["filters"]["AND"][0]["value"] = "products"
    with client(srv) as session:
        posted = ok(session.post("/v1/collections/list", json=body))
        got = ok(session.request("GET", "/v1/collections", json=body))
        unknown_key = session.request("GET", "/v1/collections", json={"no_such_key": 1})
    assert [c["collection_name"] for c in posted["results"]] == ["products"]
    assert len(got["results"]) == 3 and got["total_count"] == 3
    assert ok(unknown_key)["total_count"] == 3  # not read, so not refused either


# --- re-seeding ---------------------------------------------------------------------------------


def _applications(srv: Any, collection: str) -> list[dict[str, Any]]:
    with client(srv) as session:
        found = ok(session.get(f"/v1/collections/{collection}"))
    return list(found.get("taxonomy_applications") or [])


def test_reseeding_after_apply_keeps_its_taxonomies_and_attachments(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    seed_file = tmp_path / "seed.json"
    seed = copy.deepcopy(SEED)
    seed_file.write_text(json.dumps(seed), encoding="utf-8")
    state = tmp_path / "state.json"
    assert run_cli("local", "seed", str(seed_file), "--local-state", str(state)).code == 0
    srv = emulator(state_path=state, namespaces=(), seed=None)
    root = tmp_path / "m"
    write(root, "p.yaml", manifest(applied_to="[{collection: products, priority: 3}]"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    [attached] = _applications(srv, "products")

    # The seed now declares an entry of its own on products, and a new description.
    products = seed["namespaces"][NS]["collections"][0]
    products.update(description="Re-seeded", taxonomy_applications=[])
    seed_file.write_text(json.dumps(seed), encoding="utf-8")
    again = run_cli("local", "seed", str(seed_file), "--local-state", str(state))
    assert again.code == 0, again.output

    assert _applications(srv, "products") == [attached]
    with client(srv) as session:
        assert ok(session.get("/v1/collections/products"))["description"] == "Re-seeded"
    replanned = run_cli("plan", "--detailed-exitcode", str(root), env=env(srv))
    assert replanned.code == 0, replanned.output


def test_a_seeded_entry_updates_its_taxonomys_and_keeps_the_others(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    state = tmp_path / "state.json"
    srv = emulator(state_path=state, store=None, namespaces=[NS], seed=SEED)
    with client(srv) as session:
        kept, updated = create_taxonomy(session, "kept"), create_taxonomy(session, "updated")
        entries = [{"taxonomy_id": kept}, {"taxonomy_id": updated, "priority": 1}]
        ok(session.patch("/v1/collections/products", json={"taxonomy_applications": entries}))
    seed = copy.deepcopy(SEED)
    seed["namespaces"][NS]["collections"][0]["taxonomy_applications"] = [
        {"taxonomy_id": updated, "priority": 7}
    ]
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed), encoding="utf-8")
    assert run_cli("local", "seed", str(seed_file), "--local-state", str(state)).code == 0
    assert [(e["taxonomy_id"], e["priority"]) for e in _applications(srv, "products")] == [
        (kept, 0),
        (updated, 7),
    ]
    # The same seed once more changes nothing, timestamps included.
    before = httpx.get(f"{srv.url}/v1/collections/products", headers=srv.headers(NS)).json()
    assert run_cli("local", "seed", str(seed_file), "--local-state", str(state)).code == 0
    assert httpx.get(f"{srv.url}/v1/collections/products", headers=srv.headers(NS)).json() == (
        before
    )


# --- the README's quickstart --------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_quickstart_runs_and_reseeding_after_apply_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its taxsync commands, in order, against a fresh state file: the seed holds every
    namespace the examples use (the emulator creates none), and seeding again after the
    apply leaves nothing to do."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quickstart.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [
        shlex.split(line.split("#")[0])[1:]
        for line in block.group(1).splitlines()
        if line.startswith("taxsync ")
    ]
    assert [c[:2] for c in commands] == [
        ["validate", "examples/taxonomies"],
        ["local", "seed"],
        ["plan", "--local"],
        ["apply", "--local"],
        ["plan", "--local"],
    ]
    monkeypatch.chdir(REPO_ROOT)
    state = {"TAXSYNC_LOCAL_STATE": str(tmp_path / "local-state.json")}
    for command in commands:
        done = run_cli(*command, env=state)
        assert done.code == 0, (command, done.output)
    seed, last_plan = commands[1], commands[-1]
    assert run_cli(*seed, env=state).code == 0
    again = run_cli(*last_plan, env=state)
    assert again.code == 0, again.output
