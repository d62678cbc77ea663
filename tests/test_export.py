"""Export: live taxonomies as the manifests a person would have written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from taxsync import normalize
from taxsync.errors import ConfigError
from taxsync.export import manifest_for, plan_files, problems_in, write_files
from taxsync.manifest import load_tree
from taxsync.wire import TaxonomyResponse
from tests.helpers import live_flat


def live_tree(**overrides: Any) -> TaxonomyResponse:
    """A hierarchical taxonomy as the server echoes it: every default filled, nulls explicit."""
    body: dict[str, Any] = {
        "taxonomy_id": "tax_places",
        "version": 3,
        "taxonomy_name": "places",
        "description": None,
        "retriever_id": None,
        "input_mappings": None,
        "config": {
            "taxonomy_type": "hierarchical",
            "retriever_id": None,
            "input_mappings": None,
            "inference_strategy": None,
            "llm_sample_size": 0,
            "cluster_overlap_threshold": 0.7,
            "path_separator": "/",
            "hierarchical_nodes": [
                {"collection_id": "col_world", "parent_collection_id": None, "label": None},
                {"collection_id": "col_europe", "parent_collection_id": "col_world"},
            ],
            "step_analytics": None,
        },
        "nodes": [{"node_id": "n1"}],
        "ready": True,
        "created_at": "2026-10-21T09:14:03Z",
        "metadata": {"validation_warnings": []},
    }
    body.update(overrides)
    return TaxonomyResponse.model_validate(body)


def spec(live: TaxonomyResponse) -> dict[str, Any]:
    return dict(manifest_for("design", live)["spec"])


def named(*names: str) -> list[TaxonomyResponse]:
    return [live_flat(taxonomy_name=name) for name in names]


# --- the manifest --------------------------------------------------------------------------


def test_manifest_holds_only_what_a_person_writes() -> None:
    assert manifest_for("production", live_flat()) == {
        "apiVersion": "taxsync/v1",
        "kind": "Taxonomy",
        "metadata": {"name": "products", "namespace": "production"},
        "spec": {
            "description": "Product categories by image similarity",
            "metadata": {"team": "search"},
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
                "source_collection": {
                    "collection_id": "col_products_v1",
                    "enrichment_fields": [
                        {
                            "field_path": "label",
                            "target_field": "category",
                            "merge_mode": "replace",
                        },
                        {"field_path": "metadata.tags", "merge_mode": "append"},
                    ],
                },
            },
        },
    }


def test_server_defaults_are_left_out() -> None:
    assert spec(live_tree())["config"] == {
        "taxonomy_type": "hierarchical",
        "hierarchical_nodes": [
            {"collection_id": "col_world"},
            {"collection_id": "col_europe", "parent_collection_id": "col_world"},
        ],
    }


def test_values_other_than_the_default_are_kept() -> None:
    config = {**live_tree().config, "cluster_overlap_threshold": 0.5, "llm_sample_size": 20}
    exported = spec(live_tree(config=config))["config"]
    assert (exported["cluster_overlap_threshold"], exported["llm_sample_size"]) == (0.5, 20)


def test_nested_covariate_defaults_are_left_out() -> None:
    covariate = {"field_path": "age", "covariate_type": "numeric", "name": "age"}
    echoed = {"binning_strategy": "quartiles", "clustering_method": "kmeans", "n_clusters": 10}
    analytics = {"timestamp_field": "ts", "sequence_id_field": "session"}
    config = {
        **live_flat().config,
        "step_analytics": {
            **analytics,
            "step_key_source": None,
            "covariates": [{**covariate, **echoed}, {**covariate, "name": "b", "n_clusters": 4}],
        },
    }
    exported = spec(live_flat(config=config))["config"]["step_analytics"]
    assert exported == {
        **analytics,
        "covariates": [covariate, {**covariate, "name": "b", "n_clusters": 4}],
    }


def test_legacy_config_keys_are_left_out() -> None:
    config = {**live_flat().config, "build_mode": "incremental"}
    assert "build_mode" not in spec(live_flat(config=config))["config"]


def test_an_empty_enrichment_list_is_kept() -> None:
    # [] copies nothing; absent copies the whole payload: the export must not merge them.
    config = {
        **live_flat().config,
        "source_collection": {"collection_id": "col_a", "enrichment_fields": []},
    }
    exported = spec(live_flat(config=config))["config"]["source_collection"]
    assert exported == {"collection_id": "col_a", "enrichment_fields": []}


def test_no_description_and_only_system_metadata_leave_no_keys() -> None:
    assert set(spec(live_tree())) == {"config"}


def test_the_marker_and_validation_warnings_are_not_exported() -> None:
    metadata = {"owner": "design", "managed_by": "taxsync", "validation_warnings": ["w"]}
    assert spec(live_flat(metadata=metadata))["metadata"] == {"owner": "design"}


def test_exported_manifest_plans_no_config_change(tmp_path: Path) -> None:
    lives = [live_flat(), live_tree()]
    write_files(plan_files(tmp_path, {"design": lives}), force=False)
    loaded = {d.name: d for d in load_tree(tmp_path, {})}
    for live in lives:
        want = normalize.comparable_desired(loaded[live.taxonomy_name])
        assert normalize.fingerprint(want) == normalize.fingerprint(normalize.comparable_live(live))


# --- file names --------------------------------------------------------------------------


def test_files_go_to_namespace_and_safe_name(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"team/design": named("places/regions", "colours")})
    assert [f.path.relative_to(tmp_path).as_posix() for f in files] == [
        "team_design/colours.yaml",
        "team_design/places_regions.yaml",
    ]
    assert [(f.namespace, f.name) for f in files] == [
        ("team/design", "colours"),
        ("team/design", "places/regions"),
    ]


@pytest.mark.parametrize(
    ("name", "stem"), [("../../etc/passwd", "_.._etc_passwd"), ("..", "_"), (".hidden", "hidden")]
)
def test_names_cannot_escape_or_hide(tmp_path: Path, name: str, stem: str) -> None:
    (exported,) = plan_files(tmp_path, {"design": named(name)})
    assert exported.path == tmp_path / "design" / f"{stem}.yaml"


def test_colliding_names_get_a_short_stable_hash(tmp_path: Path) -> None:
    lives = {"design": named("a/b", "a_b", "A_B")}
    stems = [f.path.stem for f in plan_files(tmp_path, lives)]
    assert len({s.lower() for s in stems}) == 3
    plain, *hashed = sorted(stems, key=len)
    assert plain.lower() == "a_b"
    assert all(s.startswith("a_b-") and len(s) == len("a_b-") + 8 for s in hashed)
    assert stems == [f.path.stem for f in plan_files(tmp_path, lives)]


# --- writing --------------------------------------------------------------------------------


def test_existing_files_are_not_overwritten_and_nothing_is_written(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours", "shapes")})
    files[1].path.parent.mkdir(parents=True)
    files[1].path.write_text("# mine\n")
    with pytest.raises(ConfigError, match="--force") as refused:
        write_files(files, force=False)
    assert refused.value.details == [str(files[1].path)]
    assert not files[0].path.exists()
    assert files[1].path.read_text() == "# mine\n"


def test_force_overwrites(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    files[0].path.parent.mkdir(parents=True)
    files[0].path.write_text("# mine\n")
    write_files(files, force=True)
    assert yaml.safe_load(files[0].path.read_text())["metadata"]["name"] == "colours"
    assert [p.name for p in files[0].path.parent.iterdir()] == ["colours.yaml"]  # no temp left


def test_read_only_folder_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    folder = files[0].path.parent
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _writable(folder):
            pytest.skip("this process writes into read-only folders (root)")
        with pytest.raises(ConfigError, match=f"{files[0].path}: cannot write: Permission denied"):
            write_files(files, force=False)
    finally:
        folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.touch()
    except PermissionError:
        return False
    probe.unlink()
    return True


def test_a_file_in_place_of_the_folder_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    files[0].path.parent.write_text("not a folder")
    with pytest.raises(ConfigError, match=f"{files[0].path}: cannot write: "):
        write_files(files, force=False)


def test_a_failed_replace_leaves_no_temporary_file(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    files[0].path.mkdir(parents=True)  # a folder where the file should go: the rename fails
    with pytest.raises(ConfigError, match=f"{files[0].path}: cannot write: "):
        write_files(files, force=True)
    assert [p.name for p in files[0].path.parent.iterdir()] == ["colours.yaml"]


# --- warnings ---------------------------------------------------------------------------------


def test_legacy_ids_are_warned_about_with_file_and_field(tmp_path: Path) -> None:
    legacy = live_flat(config={**live_flat().config, "retriever_id": "legacy-one"})
    files = plan_files(tmp_path, {"design": [legacy, live_tree()]})
    write_files(files, force=False)
    (problem,) = problems_in(files)
    assert problem.startswith(f"{tmp_path / 'design' / 'products.yaml'}:12:")
    assert "spec.config.retriever_id" in problem
