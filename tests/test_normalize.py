"""Canonical forms: what counts as a difference between a manifest and a live taxonomy."""

from __future__ import annotations

from typing import Any

import pytest

from taxsync import normalize
from taxsync.model import DesiredTaxonomy, SourceLocation, is_managed
from tests.helpers import live_flat


def flat_config(**overrides: Any) -> dict[str, Any]:
    """A minimal flat config, as a manifest would declare it."""
    config: dict[str, Any] = {
        "taxonomy_type": "flat",
        "retriever_id": "ret_clip_v1",
        "input_mappings": [{"input_key": "image_vector", "source_type": "vector"}],
        "source_collection": {"collection_id": "col_products_v1"},
    }
    config.update(overrides)
    return config


def tree_config(**overrides: Any) -> dict[str, Any]:
    """A minimal hierarchical config."""
    config: dict[str, Any] = {
        "taxonomy_type": "hierarchical",
        "hierarchical_nodes": [{"collection_id": "col_world"}],
    }
    config.update(overrides)
    return config


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as the planner decides it: by canonical fingerprint."""
    return normalize.fingerprint(normalize.canonical_config(a)) == normalize.fingerprint(
        normalize.canonical_config(b)
    )


def desired(**overrides: Any) -> DesiredTaxonomy:
    """The manifest side of ``live_flat()``: what a person writes, no server additions."""
    fields: dict[str, Any] = {
        "namespace": "production",
        "name": "products",
        "description": "Product categories by image similarity",
        "metadata": {"team": "search"},
        "config": flat_config(
            input_mappings=[
                {
                    "input_key": "image_vector",
                    "source_type": "vector",
                    "path": "features.clip_vit_l_14",
                }
            ],
            source_collection={
                "collection_id": "col_products_v1",
                "enrichment_fields": [
                    {"field_path": "metadata.tags", "merge_mode": "append"},
                    {"field_path": "label", "target_field": "category", "merge_mode": "replace"},
                ],
            },
        ),
        "source": SourceLocation("m.yaml", 4, 9),
    }
    fields.update(overrides)
    return DesiredTaxonomy(**fields)


# --- server defaults and nulls ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key", "default"),
    [
        (flat_config(), "top_k", 1),
        (tree_config(), "llm_sample_size", 0),
        (tree_config(), "cluster_overlap_threshold", 0.7),
        (tree_config(), "path_separator", "/"),
    ],
)
def test_server_default_equals_absent(config: dict[str, Any], key: str, default: Any) -> None:
    assert same(config, {**config, key: default})


def test_a_value_other_than_the_default_counts() -> None:
    assert not same(flat_config(), flat_config(top_k=2))


def test_nested_covariate_defaults_equal_absent() -> None:
    covariate = {"field_path": "age", "covariate_type": "numeric", "name": "age"}
    echoed = {**covariate, "binning_strategy": "quartiles", "clustering_method": "kmeans"}
    echoed["n_clusters"] = 10
    analytics = {"timestamp_field": "ts", "sequence_id_field": "session"}
    assert same(
        flat_config(step_analytics={**analytics, "covariates": [covariate]}),
        flat_config(step_analytics={**analytics, "covariates": [echoed]}),
    )


def test_explicit_nulls_equal_absent_at_every_level() -> None:
    echoed = flat_config(
        input_mappings=[
            {"input_key": "image_vector", "source_type": "vector", "path": None, "override": None}
        ],
        source_collection={"collection_id": "col_products_v1", "enrichment_fields": None},
        step_analytics=None,
        top_k=None,  # a null does not hide the server's default either
    )
    assert same(flat_config(), echoed)


def test_integral_float_is_the_same_number() -> None:
    assert same(
        tree_config(cluster_overlap_threshold=1), tree_config(cluster_overlap_threshold=1.0)
    )


# --- keyed lists -----------------------------------------------------------------------------


def test_input_mappings_compare_by_input_key_not_position() -> None:
    a = {"input_key": "a", "source_type": "payload", "path": "x"}
    b = {"input_key": "b", "source_type": "literal", "override": "y"}
    assert same(flat_config(input_mappings=[a, b]), flat_config(input_mappings=[b, a]))


def test_enrichment_fields_compare_by_field_path_and_target_field() -> None:
    # Same field_path twice, told apart by target_field: keyed by both, so order is free.
    one = {"field_path": "label", "target_field": "category", "merge_mode": "replace"}
    two = {"field_path": "label", "target_field": "tag", "merge_mode": "append"}

    def config(fields: list[dict[str, Any]]) -> dict[str, Any]:
        return flat_config(
            source_collection={"collection_id": "col_products_v1", "enrichment_fields": fields}
        )

    assert same(config([one, two]), config([two, one]))


def test_hierarchical_nodes_compare_by_collection_id() -> None:
    world = {"collection_id": "col_world", "label": "World"}
    europe = {"collection_id": "col_europe", "parent_collection_id": "col_world"}
    assert same(
        tree_config(hierarchical_nodes=[world, europe]),
        tree_config(hierarchical_nodes=[europe, world]),
    )


def test_a_changed_keyed_item_counts() -> None:
    a = {"input_key": "a", "source_type": "payload", "path": "x"}
    b = {"input_key": "b", "source_type": "payload", "path": "y"}
    moved = {**b, "path": "z"}
    assert not same(flat_config(input_mappings=[a, b]), flat_config(input_mappings=[moved, a]))


def test_duplicate_keys_are_not_collapsed() -> None:
    first = {"input_key": "a", "path": "x"}
    second = {"input_key": "a", "path": "y"}
    assert not same(
        flat_config(input_mappings=[first, second]), flat_config(input_mappings=[second])
    )


def test_absent_enrichment_fields_differ_from_an_empty_list() -> None:
    absent = flat_config(source_collection={"collection_id": "col_products_v1"})
    empty = flat_config(
        source_collection={"collection_id": "col_products_v1", "enrichment_fields": []}
    )
    assert not same(absent, empty)


# --- types and legacy keys -------------------------------------------------------------------


def test_config_type_is_declared_or_inferred_from_source_collection() -> None:
    assert normalize.config_type({"taxonomy_type": "hierarchical", "source_collection": {}}) == (
        "hierarchical"
    )
    assert normalize.config_type({"source_collection": {"collection_id": "col_a"}}) == "flat"
    assert normalize.config_type({"hierarchical_nodes": []}) == "hierarchical"


def test_legacy_config_keys_are_reported_not_compared() -> None:
    legacy = flat_config(build_mode="incremental")
    assert normalize.unmanaged_keys(legacy) == ["build_mode"]
    assert same(flat_config(), legacy)


# --- server-owned fields and metadata --------------------------------------------------------


def test_server_owned_fields_are_ignored() -> None:
    moved = live_flat(
        taxonomy_id="tax_other",
        version=7,
        created_at="2030-01-01T00:00:00Z",
        ready=False,
        nodes=[{"node_id": "n1"}],
        retriever_id="ret_legacy",
        input_mappings=[{"input_key": "legacy"}],
    )
    assert normalize.comparable_live(moved) == normalize.comparable_live(live_flat())


def test_live_echo_compares_equal_to_the_manifest() -> None:
    want = normalize.comparable_desired(desired())
    have = normalize.comparable_live(live_flat())
    assert normalize.fingerprint(want) == normalize.fingerprint(have)


def test_validation_warnings_and_the_marker_are_not_user_metadata() -> None:
    metadata = {"team": "search", "managed_by": "taxsync", "validation_warnings": ["w"]}
    assert normalize.user_metadata(metadata) == {"team": "search"}
    assert normalize.user_metadata(None) == {}


def test_a_changed_user_metadata_value_counts() -> None:
    other = live_flat(metadata={"team": "other", "managed_by": "taxsync"})
    assert normalize.comparable_live(other) != normalize.comparable_live(live_flat())


def test_managed_only_when_the_marker_says_taxsync() -> None:
    assert is_managed({"managed_by": "taxsync"})
    assert not is_managed({"managed_by": "terraform"})
    assert not is_managed({"team": "search"})
    assert not is_managed(None)


def test_fingerprint_ignores_key_order() -> None:
    assert normalize.fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == normalize.fingerprint(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
