"""One taxonomy, many environments, over HTTP against the emulator: references by name
resolved per namespace, one manifest for several namespaces with overrides, and what a
saved plan recorded of each name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, run_cli, write

# The same names in both namespaces, each with ids of its own (as Mixpeek generates them).
IDS = {
    "staging": {"products": "col_stg_products", "catalog": "col_stg_catalog", "clip": "ret_stg"},
    "production": {"products": "col_prd_products", "catalog": "col_prd_catalog", "clip": "ret_prd"},
}


def seed() -> dict[str, Any]:
    def one(ids: dict[str, str]) -> dict[str, Any]:
        return {
            "collections": [
                {"collection_id": ids["products"], "collection_name": "products"},
                {"collection_id": ids["catalog"], "collection_name": "catalog"},
            ],
            "retrievers": [{"retriever_id": ids["clip"], "retriever_name": "clip"}],
        }

    return {"namespaces": {ns: one(ids) for ns, ids in IDS.items()}}


BOTH = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: product-categories
  namespaces: [staging, production]
spec:
  description: Categories by image similarity
  config:
    taxonomy_type: flat
    retriever_id: {name: clip}
    top_k: 5
    input_mappings:
      - {input_key: image_vector, path: features.clip, source_type: vector}
    source_collection:
      collection_id: {name: catalog}
      enrichment_fields:
        - {field_path: label, merge_mode: replace}
  appliedTo:
    - collection: products
  overrides:
    production:
      config:
        top_k: 3
"""


def one_namespace(collection: str = "{name: catalog}", retriever: str = "{name: clip}") -> str:
    return f"""\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: labels
  namespace: staging
spec:
  config:
    taxonomy_type: flat
    retriever_id: {retriever}
    input_mappings:
      - {{input_key: image_vector, path: features.clip, source_type: vector}}
    source_collection:
      collection_id: {collection}
"""


@pytest.fixture
def srv(emulator: StartEmulator) -> EmulatorHandle:
    return emulator(seed=seed())


def live(srv: EmulatorHandle, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = Api(srv).call("GET", f"/v1/taxonomies/{name}", namespace)
    return result


def applications(srv: EmulatorHandle, namespace: str, collection_id: str) -> list[Any]:
    found = Api(srv).call("GET", f"/v1/collections/{collection_id}", namespace)
    return list(found.get("taxonomy_applications") or [])


def rename_collection(srv: EmulatorHandle, namespace: str, collection_id: str, name: str) -> None:
    Api(srv).call("PATCH", f"/v1/collections/{collection_id}", namespace, {"collection_name": name})


def test_one_manifest_is_applied_into_each_namespace_with_its_own_ids(
    tmp_path: Path, srv: EmulatorHandle
) -> None:
    root = tmp_path / "m"
    write(root, "product-categories.yaml", BOTH)
    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert result.code == 0, result.output
    for namespace, ids in IDS.items():
        config = live(srv, namespace, "product-categories")["config"]
        assert config["retriever_id"] == ids["clip"]
        assert config["source_collection"]["collection_id"] == ids["catalog"]
        assert config["top_k"] == (3 if namespace == "production" else 5)  # the override
        taxonomy_id = live(srv, namespace, "product-categories")["taxonomy_id"]
        attached = applications(srv, namespace, ids["products"])
        assert [a["taxonomy_id"] for a in attached] == [taxonomy_id]
    again = run_cli("plan", str(root), "--detailed-exitcode", env=env(srv))
    assert again.code == 0, again.output


def test_the_plan_shows_each_name_with_the_id_it_resolved_to(
    tmp_path: Path, srv: EmulatorHandle
) -> None:
    root = tmp_path / "m"
    write(root, "product-categories.yaml", BOTH)
    out = tmp_path / "plan.json"
    result = run_cli("plan", str(root), "--out", str(out), env=env(srv))
    assert result.code == 0, result.output
    assert "+ config.retriever_id = clip (ret_stg)" in result.out
    assert "+ config.retriever_id = clip (ret_prd)" in result.out
    assert "+ config.source_collection.collection_id = catalog (col_prd_catalog)" in result.out
    saved = json.loads(out.read_text())
    names = {
        (c["namespace"], n["path"], n["name"], n["id"])
        for c in saved["changes"]
        for n in c["names"]
    }
    assert ("production", "config.retriever_id", "clip", "ret_prd") in names
    assert (
        "staging",
        "config.source_collection.collection_id",
        "catalog",
        "col_stg_catalog",
    ) in names
    markdown = run_cli("plan", str(root), "--format", "markdown", env=env(srv))
    assert "+ config.retriever_id = clip (ret_prd)" in markdown.out


def test_unknown_and_near_miss_names_are_plan_errors_at_their_lines(
    tmp_path: Path, srv: EmulatorHandle
) -> None:
    root = tmp_path / "m"
    path = write(root, "labels.yaml", one_namespace("{name: catalogue}", "{name: nothing-like}"))
    for command in ("plan", "apply"):
        args = ("--auto-approve",) if command == "apply" else ()
        result = run_cli(command, str(root), *args, env=env(srv))
        assert result.code == 1, result.output
        assert (
            f"{path}:9:5: spec.config.retriever_id: retriever 'nothing-like' does not exist in "
            "namespace staging" in result.err
        )
        assert (
            f"{path}:13:7: spec.config.source_collection.collection_id: collection 'catalogue' "
            "does not exist (did you mean 'catalog'?) in namespace staging" in result.err
        )
        assert "Traceback" not in result.err
    assert srv.writes() == []


def test_a_name_that_now_names_another_collection_is_a_new_version(
    tmp_path: Path, srv: EmulatorHandle
) -> None:
    root = tmp_path / "m"
    write(root, "labels.yaml", one_namespace())
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    # The collection is re-created under the same name (a new id): the name follows it.
    rename_collection(srv, "staging", "col_stg_catalog", "catalog-old")
    rename_collection(srv, "staging", "col_stg_products", "catalog")
    result = run_cli("plan", str(root), "--detailed-exitcode", env=env(srv))
    assert result.code == 2, result.output
    assert "~ new version staging/labels v1 → v2" in result.out
    assert (
        '~ config.source_collection.collection_id: "col_stg_catalog" → catalog (col_stg_products)'
        in result.out
    )


def test_a_saved_plan_whose_name_resolves_elsewhere_now_is_refused(
    tmp_path: Path, srv: EmulatorHandle
) -> None:
    root = tmp_path / "m"
    write(root, "labels.yaml", one_namespace())
    out = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(out), env=env(srv)).code == 0
    rename_collection(srv, "staging", "col_stg_catalog", "catalog-old")
    rename_collection(srv, "staging", "col_stg_products", "catalog")
    srv.forget()
    result = run_cli("apply", "--plan", str(out), "--auto-approve", env=env(srv))
    assert result.code == 1, result.output
    assert (
        "staging/labels: collection 'catalog' (config.source_collection.collection_id) now "
        "resolves to col_stg_products; the plan resolved it to col_stg_catalog" in result.err
    )
    assert [r for r in srv.writes() if "/taxonomies" in r.path] == []
