"""Bringing existing taxonomies under git: export, adoption, renames, history, waiting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, check_golden, env, flat, hierarchical, run_cli, write

HANDMADE_FLAT: dict[str, Any] = {
    "taxonomy_name": "colours",
    "description": "made in the UI",
    "config": {
        "taxonomy_type": "flat",
        "retriever_id": "ret_colour",
        "input_mappings": [{"input_key": "q", "source_type": "literal", "override": {"k": [1, 2]}}],
        "source_collection": {"collection_id": "col_colours", "enrichment_fields": []},
        "top_k": 2,
    },
    "metadata": {"owner": "design"},
}
HANDMADE_TREE: dict[str, Any] = {
    "taxonomy_name": "places/regions",  # a slash: the file name must be made safe
    "config": {
        "taxonomy_type": "hierarchical",
        "hierarchical_nodes": [
            {"collection_id": "col_world"},
            {"collection_id": "col_europe", "parent_collection_id": "col_world", "label": "Europe"},
        ],
        "cluster_overlap_threshold": 0.5,
    },
}


# What the hand-made taxonomies name: planning checks that it exists.
DESIGN_SEED = {
    "namespaces": {
        "design": {
            "collections": [
                {"collection_id": c, "collection_name": c.removeprefix("col_")}
                for c in ("col_colours", "col_world", "col_europe")
            ],
            "retrievers": [{"retriever_id": "ret_colour"}],
        }
    }
}


def test_export_then_plan_shows_only_adoption(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator(seed=DESIGN_SEED)
    api = Api(srv)
    api.create("design", HANDMADE_FLAT)
    api.create("design", HANDMADE_TREE)
    out = tmp_path / "exported"

    exported = run_cli("export", "-n", "design", "--out", str(out), env=env(srv))
    assert exported.code == 0, exported.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert files == ["design/colours.yaml", "design/places_regions.yaml"]
    assert "validation_warnings" not in (out / "design/colours.yaml").read_text()

    shown = run_cli("plan", str(out), "--format", "json", env=env(srv))
    changes = json.loads(shown.out)["changes"]
    assert {(c["action"], c["name"], c["adopt"]) for c in changes} == {
        ("update", "colours", True),
        ("update", "places/regions", True),
    }
    assert run_cli("apply", str(out), "--auto-approve", env=env(srv)).code == 0
    assert api.get("design", "colours")["metadata"]["managed_by"] == "taxsync"
    assert api.get("design", "colours")["version"] == 1  # adopted, not recreated
    assert run_cli("plan", str(out), "--detailed-exitcode", env=env(srv)).code == 0


def test_export_does_not_overwrite_without_force(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator(seed=DESIGN_SEED)
    api = Api(srv)
    api.create("design", HANDMADE_FLAT)
    out = tmp_path / "exported"
    write(out, "design/colours.yaml", "# mine\n")
    refused = run_cli("export", "-n", "design", "--out", str(out), env=env(srv))
    assert refused.code == 1 and "--force" in refused.err
    assert (out / "design/colours.yaml").read_text() == "# mine\n"
    assert run_cli("export", "-n", "design", "--out", str(out), "--force", env=env(srv)).code == 0
    assert "apiVersion: taxsync/v1" in (out / "design/colours.yaml").read_text()


def test_adoption_with_a_config_change_is_update_plus_new_version(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    created = api.create(
        "production",
        {
            "taxonomy_name": "products",
            "description": "Product categories by image similarity",
            "config": {
                "taxonomy_type": "flat",
                "retriever_id": "ret_clip_v1",
                "input_mappings": [
                    {
                        "input_key": "image_vector",
                        "source_type": "vector",
                        "path": "features.clip_vit_l_14",
                    }
                ],
                "source_collection": {"collection_id": "col_products_v1"},
            },
            "metadata": {"team": "search"},
        },
    )
    root = tmp_path / "m"
    write(root, "p.yaml", flat())
    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert result.code == 0, result.output
    assert "~ new version production/products v1 → v2" in result.out
    head = api.get("production", "products")
    assert head["taxonomy_id"] == created["taxonomy_id"] and head["version"] == 2
    assert head["metadata"]["managed_by"] == "taxsync"


def renamed_products(tmp_path: Path, emulator: StartEmulator) -> tuple[EmulatorHandle, Path, str]:
    """Live "products", and its manifest now named "catalogue" with previousNames [products]."""
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    old_id = str(Api(srv).get("production", "products")["taxonomy_id"])
    renamed = flat("catalogue").replace(
        "  namespace: production", "  namespace: production\n  previousNames: [products]"
    )
    write(root, "p.yaml", renamed)
    return srv, root, old_id


def test_rename_keeps_the_id_and_history(tmp_path: Path, emulator: StartEmulator) -> None:
    srv, root, old_id = renamed_products(tmp_path, emulator)
    api = Api(srv)

    shown = run_cli("plan", str(root), env=env(srv))
    assert "~ update production/catalogue (rename products → catalogue)" in shown.out
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    head = api.get("production", "catalogue")
    assert head["taxonomy_id"] == old_id and head["version"] == 1
    assert run_cli("plan", str(root), "--detailed-exitcode", env=env(srv)).code == 0


def test_history_shows_versions_and_diffs(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "o.yaml", hierarchical("org", label="Managers"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "o.yaml", hierarchical("org", label="Team leads"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(
        root,
        "o.yaml",
        hierarchical("org", label="Team leads").replace("label: Employees", "label: Staff"),
    )
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0

    text = run_cli("history", "org", "-n", "production", env=env(srv))
    as_json = run_cli("history", "org", "-n", "production", "--format", "json", env=env(srv))
    data = json.loads(as_json.out)
    assert [v["version"] for v in data["versions"]] == [1, 2, 3]
    # created_at is the record's, on every version (docs/api-contract.md#timestamps-across-versions): shown once.
    assert len({v["created_at"] for v in data["versions"]}) == 1
    assert text.out.count(data["versions"][0]["created_at"]) == 1
    check_golden("history.txt", _stable(text.out, data))
    missing = run_cli("history", "nope", "-n", "production", env=env(srv))
    assert missing.code == 1 and "not found" in missing.err


def _stable(text: str, data: dict[str, Any]) -> str:
    """Ids and timestamps vary per run; the golden file holds the rest."""
    text = text.replace(data["taxonomy_id"], "tax_ID")
    return text.replace(data["versions"][0]["created_at"], "CREATED_AT")


def test_wait_polls_until_inference_is_ready(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator(ready_after_reads=1)  # not ready at the first poll, ready at the second
    api = Api(srv)
    root = tmp_path / "m"
    text = hierarchical("topics").replace(
        "    hierarchical_nodes:",
        "    inference_strategy: llm\n    inference_collections: [col_a]\n    hierarchical_nodes:",
    )
    write(root, "t.yaml", text)
    result = run_cli("apply", str(root), "--auto-approve", "--wait", env=env(srv))
    assert result.code == 0, result.output
    # Through the listing: a GET would itself count as a read towards ready.
    assert api.taxonomies("production")["topics"]["ready"] is True


def test_export_warns_about_what_validate_would_refuse(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(seed=DESIGN_SEED)
    api = Api(srv)
    legacy = {**HANDMADE_FLAT, "config": {**HANDMADE_FLAT["config"], "retriever_id": "legacy-one"}}
    api.create("design", legacy)
    out = tmp_path / "exported"
    result = run_cli("export", "-n", "design", "--out", str(out), env=env(srv))
    assert result.code == 0, result.output
    assert f"warning: {out / 'design' / 'colours.yaml'}:" in result.err
    assert "spec.config.retriever_id" in result.err


def test_rename_and_a_create_of_the_old_name_in_one_apply(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root, old_id = renamed_products(tmp_path, emulator)
    api = Api(srv)
    write(root, "n.yaml", flat("products", top_k=2))  # a new taxonomy takes the freed name

    result = run_cli("apply", str(root), "--auto-approve", "--concurrency", "4", env=env(srv))
    assert result.code == 0, result.output
    assert api.get("production", "catalogue")["taxonomy_id"] == old_id
    assert api.get("production", "products")["taxonomy_id"] != old_id
