"""`taxsync export` over HTTP against the emulator: the collections that apply a taxonomy
become its ``appliedTo``, so planning the exported tree right after changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taxsync.manifest import load_tree
from tests.conftest import EVERY_NAMESPACE_SEED, EmulatorHandle, StartEmulator
from tests.helpers import Api, env, run_cli

NS = "production"
MANAGED = {"managed_by": "taxsync"}
FLAT = {
    "taxonomy_type": "flat",
    "retriever_id": "ret_clip_v1",
    "input_mappings": [{"input_key": "v", "source_type": "vector", "path": "features.clip"}],
    "source_collection": {"collection_id": "col_products_v1"},
}
TREE = {
    "taxonomy_type": "hierarchical",
    "retriever_id": "ret_face_matcher",
    "input_mappings": [{"input_key": "f", "source_type": "vector", "path": "features.face"}],
    "hierarchical_nodes": [
        {"collection_id": "col_employees", "label": "Employees"},
        {"collection_id": "col_managers", "parent_collection_id": "col_employees"},
    ],
}
# The shared seed, plus a collection named like another one's id: "col_a" finds col_a.
SEED = {
    "namespaces": {
        "*": {
            **EVERY_NAMESPACE_SEED["namespaces"]["*"],
            "collections": [
                *EVERY_NAMESPACE_SEED["namespaces"]["*"]["collections"],
                {"collection_id": "col_c", "collection_name": "col_a"},
            ],
        }
    }
}


def create(srv: EmulatorHandle, name: str, config: dict[str, Any]) -> str:
    body = {"taxonomy_name": name, "config": config, "metadata": MANAGED}
    taxonomy_id: str = Api(srv).create(NS, body)["taxonomy_id"]
    return taxonomy_id


def set_applications(srv: EmulatorHandle, collection: str, *entries: dict[str, Any]) -> None:
    body = {"taxonomy_applications": list(entries)}
    Api(srv).call("PATCH", f"/v1/collections/{collection}", NS, body)


def export(srv: EmulatorHandle, out: Path) -> None:
    result = run_cli("export", "-n", NS, "--out", str(out), env=env(srv))
    assert result.code == 0, result.output
    assert "warning" not in result.err, result.err


def test_planning_an_export_of_attached_taxonomies_changes_nothing(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(seed=SEED)
    products = create(srv, "products", FLAT)
    org = create(srv, "org", TREE)
    create(srv, "spare", FLAT)  # no collection applies it
    filters = {"AND": [{"field": "lang", "operator": "eq", "value": "en"}], "case_sensitive": True}
    set_applications(
        srv,
        "col_products_v1",
        {"taxonomy_id": products},
        {"taxonomy_id": org, "hierarchical_enrichment_style": "full_chain", "priority": 10},
    )
    explicit_defaults = {"execution_mode": "materialize", "execution_phase": 1, "priority": 0}
    set_applications(srv, "col_a", {"taxonomy_id": products, **explicit_defaults})
    set_applications(
        srv,
        "col_b",
        {
            "taxonomy_id": products,
            "execution_phase": 3,
            "target_collection_id": "col_employees",
            "scroll_filters": filters,
        },
    )
    set_applications(srv, "col_c", {"taxonomy_id": org, "execution_phase": None})
    out = tmp_path / "out"

    export(srv, out)

    assert {d.name: d.applied_to for d in load_tree(out, {})} == {
        "org": (
            {"collection": "col_c"},  # its name finds col_a
            {
                "collection": "products",
                "priority": 10,
                "hierarchical_enrichment_style": "full_chain",
            },
        ),
        "products": (
            {"collection": "col-a"},
            {
                "collection": "col-b",
                "target_collection_id": {"name": "employees"},  # unique: by name
                "scroll_filters": filters,
                "execution_phase": 3,
            },
            {"collection": "products"},
        ),
        "spare": None,
    }
    planned = run_cli("plan", str(out), "--format", "json", env=env(srv))
    assert planned.code == 0, planned.output
    assert json.loads(planned.out)["changes"] == []
    assert run_cli("validate", str(out)).code == 0
    done = run_cli("apply", str(out), "--auto-approve", env=env(srv))
    assert done.code == 0, done.output
    assert srv.writes() == []


def test_the_exported_yaml_lists_each_collection_with_its_non_default_settings(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(seed=SEED)
    products = create(srv, "products", FLAT)
    set_applications(srv, "col_b", {"taxonomy_id": products, "execution_phase": 2})
    set_applications(srv, "col_a", {"taxonomy_id": products, "priority": 0})
    set_applications(srv, "col_c", {"taxonomy_id": products})
    out = tmp_path / "out"

    export(srv, out)

    assert (out / NS / "products.yaml").read_text() == (
        "apiVersion: taxsync/v1\n"
        "kind: Taxonomy\n"
        "metadata:\n"
        "  name: products\n"
        "  namespace: production\n"
        "spec:\n"
        "  config:\n"
        "    taxonomy_type: flat\n"
        "    retriever_id: {name: clip_v1}\n"
        "    input_mappings:\n"
        "    - input_key: v\n"
        "      source_type: vector\n"
        "      path: features.clip\n"
        "    source_collection:\n"
        "      collection_id: {name: products}\n"
        "  appliedTo:\n"
        "  - collection: col-a\n"
        "  - collection: col-b\n"
        "    execution_phase: 2\n"
        "  - collection: col_c\n"
    )
