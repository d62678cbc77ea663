"""The pure planner: desired + live → Plan, with no I/O (desired taxonomies are built in
memory; the first test shows they are what the manifests load to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxsync.manifest import load_tree
from taxsync.model import DesiredTaxonomy
from taxsync.planner import PlanOptions, plan, shard_of
from tests.helpers import (
    desired_flat,
    desired_hierarchical,
    flat,
    hierarchical,
    live_flat,
    write,
)

LOADED_AS = {
    "flat": (flat(), desired_flat()),
    "flat, other name, namespace and top_k": (
        flat("a", "staging", 7),
        desired_flat("a", "staging", 7),
    ),
    "hierarchical": (hierarchical(), desired_hierarchical()),
    "hierarchical, other label": (
        hierarchical("o", "ns", "Leads"),
        desired_hierarchical("o", "ns", "Leads"),
    ),
}


@pytest.mark.parametrize(("text", "built"), LOADED_AS.values(), ids=LOADED_AS.keys())
def test_the_in_memory_builders_are_what_the_manifests_load_to(
    tmp_path: Path, text: str, built: DesiredTaxonomy
) -> None:
    (loaded,) = load_tree(write(tmp_path, "m.yaml", text), {})
    assert loaded.source.line == built.source.line == 4  # the metadata.name line
    assert loaded == DesiredTaxonomy(**{**vars(built), "source": loaded.source})


def test_server_echo_with_defaults_nulls_and_reordered_lists_is_unchanged() -> None:
    result = plan([desired_flat()], {"production": [live_flat()]})
    assert result.changes == []
    assert result.summary.unchanged == 1


def test_missing_taxonomy_is_created_with_the_managed_marker() -> None:
    result = plan([desired_flat()], {"production": []})
    (change,) = result.changes
    assert change.action == "create" and change.taxonomy_id is None
    assert change.create_body is not None
    assert change.create_body["metadata"] == {"team": "search", "managed_by": "taxsync"}
    assert change.create_body["config"]["taxonomy_type"] == "flat"
    assert change.source and change.source.endswith("products.yaml:4")  # the metadata.name line


def test_config_change_is_one_new_version_without_patch() -> None:
    result = plan([desired_flat(top_k=3)], {"production": [live_flat(version=2)]})
    (change,) = result.changes
    assert change.action == "new_version"
    assert change.base_version == 2
    assert change.patch_body is None
    assert change.version_body is not None
    assert change.version_body == {"config": change.version_body["config"]}
    assert [(d.path, d.before, d.after) for d in change.diff] == [("config.top_k", 1, 3)]


def test_description_change_is_a_patch_not_a_version() -> None:
    live = live_flat(description="old words")
    (change,) = plan([desired_flat()], {"production": [live]}).changes
    assert change.action == "update"
    assert change.patch_body == {"description": "Product categories by image similarity"}
    assert change.version_body is None


def test_metadata_change_sends_the_full_managed_metadata() -> None:
    live = live_flat(metadata={"team": "other", "extra": 1, "managed_by": "taxsync"})
    (change,) = plan([desired_flat()], {"production": [live]}).changes
    assert change.action == "update"
    assert change.patch_body == {"metadata": {"team": "search", "managed_by": "taxsync"}}
    paths = {d.path for d in change.diff}
    assert paths == {"metadata.team", "metadata.extra"}


def test_unmanaged_live_taxonomy_is_adopted_by_update() -> None:
    live = live_flat(metadata={"team": "search"})
    (change,) = plan([desired_flat()], {"production": [live]}).changes
    assert change.action == "update" and change.adopt
    assert change.patch_body == {"metadata": {"team": "search", "managed_by": "taxsync"}}


def test_type_change_is_a_replace() -> None:
    live = live_flat(taxonomy_name="org")
    (change,) = plan([desired_hierarchical()], {"production": [live]}).changes
    assert change.action == "replace"
    assert change.create_body and change.create_body["config"]["taxonomy_type"] == "hierarchical"


def test_keyed_list_change_is_reported_by_key() -> None:
    live_config = live_flat().config
    live_config["input_mappings"][0]["path"] = "features.old"
    (change,) = plan([desired_flat()], {"production": [live_flat(config=live_config)]}).changes
    assert [d.path for d in change.diff] == ["config.input_mappings[image_vector].path"]


def test_empty_enrichment_list_is_not_the_same_as_absent() -> None:
    live_config = live_flat().config
    live_config["source_collection"]["enrichment_fields"] = None
    (change,) = plan([desired_flat()], {"production": [live_flat(config=live_config)]}).changes
    assert change.action == "new_version"


def test_legacy_live_keys_are_reported_not_diffed() -> None:
    live_config = live_flat().config | {"build_mode": "legacy"}
    live = live_flat(config=live_config, description="changed")
    (change,) = plan([desired_flat()], {"production": [live]}).changes
    assert change.action == "update"
    assert any("build_mode" in note for note in change.notes)


def test_prune_deletes_only_managed_taxonomies() -> None:
    mine = live_flat(taxonomy_name="old-mine", taxonomy_id="tax_mine")
    handmade = live_flat(taxonomy_name="handmade", taxonomy_id="tax_hand", metadata={})
    live = {"production": [live_flat(), mine, handmade]}
    without = plan([desired_flat()], live)
    assert without.changes == []
    pruned = plan([desired_flat()], live, PlanOptions(prune=True))
    assert [(c.action, c.name) for c in pruned.changes] == [("delete", "old-mine")]


def test_namespace_selection_limits_the_plan() -> None:
    trees = [desired_flat("a", "production"), desired_flat("b", "staging")]
    result = plan(
        trees, {"staging": []}, PlanOptions(namespaces=frozenset({"staging"}), only_namespaces=True)
    )
    assert [c.name for c in result.changes] == ["b"]
    assert result.namespaces == ["staging"]


def test_rename_through_previous_names_keeps_the_id() -> None:
    renamed = desired_flat("new-name", previous_names=("products",))
    (change,) = plan([renamed], {"production": [live_flat()]}).changes
    assert change.action == "update" and change.rename_from == "products"
    assert change.taxonomy_id == "tax_products"
    assert change.patch_body == {"taxonomy_name": "new-name"}


def test_shards_partition_namespaces_stably() -> None:
    names = [f"ns-{i}" for i in range(200)]
    shards = [shard_of(n, 4) for n in names]
    assert set(shards) == {1, 2, 3, 4}
    assert shards == [shard_of(n, 4) for n in names]


def test_summary_counts_and_json_shape() -> None:
    trees = [desired_flat("a"), desired_flat("products", top_k=2)]
    result = plan(trees, {"production": [live_flat()]})
    data = result.model_dump()
    assert data["summary"] == {
        "create": 1,
        "new_version": 1,
        "update": 0,
        "delete": 0,
        "replace": 0,
        "attach": 0,
        "reconfigure": 0,
        "detach": 0,
        "backfill": 0,
        "unchanged": 0,
    }
    for change in data["changes"]:
        assert {
            "action",
            "namespace",
            "name",
            "taxonomy_id",
            "base_version",
            "diff",
            "source",
        } <= set(change)


def test_nested_server_defaults_do_not_count() -> None:
    step_analytics = {
        "timestamp_field": "created_at",
        "sequence_id_field": "thread_id",
        "covariates": [{"field_path": "domain", "covariate_type": "categorical", "name": "Domain"}],
    }
    desired = desired_flat(config={"step_analytics": step_analytics})
    config = live_flat().config
    config["step_analytics"] = {
        "timestamp_field": "created_at",
        "sequence_id_field": "thread_id",
        "step_key_source": None,
        "step_key_field_path": None,
        "covariates": [
            {
                "field_path": "domain",
                "covariate_type": "categorical",
                "name": "Domain",
                "binning_strategy": "quartiles",  # echoed defaults the manifest never wrote
                "clustering_method": "kmeans",
                "n_clusters": 10,
            }
        ],
        "max_sequence_duration_days": None,
    }
    result = plan([desired], {"production": [live_flat(config=config)]})
    assert result.changes == [], [c.diff for c in result.changes]


def test_a_renamed_taxonomys_old_name_can_be_taken_by_a_new_one() -> None:
    renamed = desired_flat("catalogue", previous_names=("products",))
    trees = [renamed, desired_flat("products", top_k=2)]
    result = plan(trees, {"production": [live_flat()]}, PlanOptions(prune=True))
    actions = sorted((c.action, c.name, c.rename_from) for c in result.changes)
    assert actions == [("create", "products", None), ("update", "catalogue", "products")]
