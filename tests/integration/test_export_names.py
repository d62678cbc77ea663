"""`taxsync export` writes references by name, over HTTP against the emulator: an export of
staging, retargeted to production (whose ids all differ), applies and plans empty there; a
name two collections share keeps the id, with a comment saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, run_cli, write

# The same names in both namespaces, each with ids of its own (as Mixpeek generates them).
COLLECTIONS = ("products", "catalog", "labelled", "employees", "managers", "executives")
RETRIEVERS = ("clip", "faces")
PREFIX = {"staging": "stg", "production": "prd"}


def ids(namespace: str) -> dict[str, str]:
    short = PREFIX[namespace]
    return {
        **{name: f"col_{short}_{name}" for name in COLLECTIONS},
        **{name: f"ret_{short}_{name}" for name in RETRIEVERS},
    }


def one_seed(namespace: str) -> dict[str, Any]:
    known = ids(namespace)
    return {
        "collections": [
            {"collection_id": known[name], "collection_name": name, "document_count": 10}
            for name in COLLECTIONS
        ],
        "retrievers": [
            {"retriever_id": known[name], "retriever_name": name} for name in RETRIEVERS
        ],
    }


def seed() -> dict[str, Any]:
    return {"namespaces": {ns: one_seed(ns) for ns in PREFIX}}


def name_twice(srv: EmulatorHandle, namespace: str, collection_id: str, name: str) -> None:
    """Give a collection the name another one has. Mixpeek keeps names unique per namespace,
    so this is what a listing shows when it crosses two renames; the emulator refuses it
    through its API, so the test reaches into its state."""
    state = srv.store._state
    record = state.collections.by_id(state.namespace_id(namespace), collection_id)
    assert record is not None
    record["data"]["collection_name"] = name


def tree(namespace: str) -> str:
    """Three taxonomies written with the namespace's ids, as someone would before names: a
    flat one applied to a collection, a hierarchy with a node retriever, and inference."""
    i = ids(namespace)
    return f"""\
apiVersion: taxsync/v1
kind: Taxonomy
metadata: {{name: product-categories, namespace: {namespace}}}
spec:
  description: Categories by image similarity
  appliedTo:
    - {{collection: products, target_collection_id: {i["labelled"]}, priority: 10}}
  config:
    taxonomy_type: flat
    retriever_id: {i["clip"]}
    top_k: 3
    input_mappings: [{{input_key: image_vector, source_type: vector, path: features.clip}}]
    source_collection:
      collection_id: {i["catalog"]}
      enrichment_fields: [{{field_path: label, merge_mode: replace}}]
---
apiVersion: taxsync/v1
kind: Taxonomy
metadata: {{name: org, namespace: {namespace}}}
spec:
  config:
    taxonomy_type: hierarchical
    retriever_id: {i["faces"]}
    input_mappings: [{{input_key: face, source_type: vector, path: features.face}}]
    hierarchical_nodes:
      - {{collection_id: {i["employees"]}, label: Employees}}
      - {{collection_id: {i["managers"]}, parent_collection_id: {i["employees"]}}}
      - collection_id: {i["executives"]}
        parent_collection_id: {i["managers"]}
        retriever_id: {i["faces"]}
---
apiVersion: taxsync/v1
kind: Taxonomy
metadata: {{name: topics, namespace: {namespace}}}
spec:
  config:
    taxonomy_type: hierarchical
    retriever_id: {i["clip"]}
    input_mappings: [{{input_key: image_vector, source_type: vector, path: features.clip}}]
    inference_strategy: llm
    inference_collections: [{i["catalog"]}, {i["products"]}]
    llm_provider: openai_chat_v1
    llm_model: gpt-4o-mini
"""


def apply(srv: EmulatorHandle, root: Path) -> None:
    done = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert done.code == 0, done.output


def plan_is_empty(srv: EmulatorHandle, root: Path) -> None:
    planned = run_cli("plan", "--detailed-exitcode", str(root), env=env(srv))
    assert planned.code == 0, planned.output  # 2 would mean changes


def export_staging(srv: EmulatorHandle, out: Path) -> dict[str, str]:
    """Export staging; the text of each file, by file name."""
    done = run_cli("export", "--namespace", "staging", "--out", str(out), env=env(srv))
    assert done.code == 0, done.output
    assert "warning" not in done.err, done.err
    return {path.name: path.read_text(encoding="utf-8") for path in (out / "staging").iterdir()}


def retarget(files: dict[str, str], root: Path) -> Path:
    """The exported files with their namespace changed to production, as a person would."""
    for name, text in files.items():
        assert text.count("  namespace: staging\n") == 1, text
        write(root, name, text.replace("  namespace: staging\n", "  namespace: production\n"))
    return root


def test_an_export_of_staging_retargeted_applies_to_production_with_its_own_ids(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(seed=seed())
    apply(srv, write(tmp_path / "staging", "tree.yaml", tree("staging")).parent)

    files = export_staging(srv, tmp_path / "out")

    assert sorted(files) == ["org.yaml", "product-categories.yaml", "topics.yaml"]
    for text in files.values():
        assert "_stg_" not in text, text  # every reference is a name: no staging id is left
    assert "retriever_id: {name: faces}\n" in files["org.yaml"]
    assert "parent_collection_id: {name: managers}\n" in files["org.yaml"]
    assert (
        "inference_collections:\n    - {name: catalog}\n    - {name: products}\n"
        in (files["topics.yaml"])
    )
    production = retarget(files, tmp_path / "retargeted")
    apply(srv, production)

    live = Api(srv).taxonomies("production")
    p = ids("production")
    assert live["product-categories"]["config"]["retriever_id"] == p["clip"]
    assert (
        live["product-categories"]["config"]["source_collection"]["collection_id"] == p["catalog"]
    )
    nodes = live["org"]["config"]["hierarchical_nodes"]
    assert [n["collection_id"] for n in nodes] == [p["employees"], p["managers"], p["executives"]]
    assert [n.get("parent_collection_id") for n in nodes] == [None, p["employees"], p["managers"]]
    assert nodes[2]["retriever_id"] == p["faces"]
    assert live["topics"]["config"]["inference_collections"] == [p["catalog"], p["products"]]
    products = Api(srv).call("GET", f"/v1/collections/{p['products']}", "production")
    (entry,) = products["taxonomy_applications"]
    assert entry["taxonomy_id"] == live["product-categories"]["taxonomy_id"]
    assert entry["target_collection_id"] == p["labelled"]
    plan_is_empty(srv, production)


def test_an_export_of_staging_retargeted_plans_empty_against_a_production_that_matches(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(seed=seed())
    apply(srv, write(tmp_path / "staging", "tree.yaml", tree("staging")).parent)
    apply(srv, write(tmp_path / "production", "tree.yaml", tree("production")).parent)

    files = export_staging(srv, tmp_path / "out")
    srv.forget()

    plan_is_empty(srv, retarget(files, tmp_path / "retargeted"))
    assert srv.writes() == []


def test_a_name_two_collections_share_keeps_the_id_with_a_comment(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(seed=seed())
    apply(srv, write(tmp_path / "staging", "tree.yaml", tree("staging")).parent)
    name_twice(srv, "staging", "col_stg_labelled", "catalog")

    files = export_staging(srv, tmp_path / "out")

    text = files["product-categories.yaml"]
    why = '# 2 collections are named "catalog": the id is kept'
    assert f"      collection_id: col_stg_catalog  {why}\n" in text
    assert "retriever_id: {name: clip}\n" in text  # the others are still names
    assert f"- col_stg_catalog  {why}\n" in files["topics.yaml"]
    assert "- {name: products}\n" in files["topics.yaml"]
    document = yaml.safe_load(text)
    assert document["spec"]["config"]["source_collection"]["collection_id"] == "col_stg_catalog"
    assert run_cli("validate", str(tmp_path / "out")).code == 0
    plan_is_empty(srv, tmp_path / "out")
