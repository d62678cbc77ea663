"""References by name, pure: where they may stand, how a manifest writes them, how they
resolve in a namespace (and the other way, for export and diff)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taxsync import names
from taxsync.errors import ManifestError
from taxsync.live import LiveCollection, Neighbourhood
from taxsync.manifest import load_tree
from tests.helpers import write

AROUND = Neighbourhood(
    collections=(
        LiveCollection("col_1", "catalog"),
        LiveCollection("col_2", "products"),
        LiveCollection("col_3", "shared-name"),
        LiveCollection("col_4", "shared-name"),
    ),
    retrievers={"ret_1": "clip", "ret_2": ""},
)

MANIFEST = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: org
  namespace: staging
spec:
  config:
    taxonomy_type: hierarchical
    retriever_id: {name: clip}
    input_mappings: [{input_key: v, source_type: vector, path: features.v}]
    inference_collections: [{name: products}, col_9]
    hierarchical_nodes:
      - {collection_id: {name: catalog}, label: Root}
      - collection_id: {name: products}
        parent_collection_id: {name: catalog}
        retriever_id: {name: clip}
  appliedTo:
    - collection: products
      target_collection_id: {name: catalog}
"""


def loaded(tmp_path: Path, text: str = MANIFEST) -> Any:
    write(tmp_path, "m.yaml", text)
    [taxonomy] = load_tree(tmp_path, {})
    return taxonomy


def test_a_manifest_keeps_its_names_until_plan_time(tmp_path: Path) -> None:
    taxonomy = loaded(tmp_path)
    config = taxonomy.config
    assert config["retriever_id"] == {"name": "clip"}
    assert config["inference_collections"] == [{"name": "products"}, "col_9"]
    assert config["hierarchical_nodes"][1] == {
        "collection_id": {"name": "products"},
        "parent_collection_id": {"name": "catalog"},
        "retriever_id": {"name": "clip"},
    }
    assert taxonomy.applied_to[0]["target_collection_id"] == {"name": "catalog"}


def test_every_name_resolves_to_the_id_of_its_kind(tmp_path: Path) -> None:
    resolution = names.resolve(loaded(tmp_path), AROUND)
    assert resolution.problems == ()
    config = resolution.desired.config
    assert config["retriever_id"] == "ret_1"
    assert config["inference_collections"] == ["col_2", "col_9"]
    assert config["hierarchical_nodes"] == [
        {"collection_id": "col_1", "label": "Root"},
        {"collection_id": "col_2", "parent_collection_id": "col_1", "retriever_id": "ret_1"},
    ]
    assert resolution.desired.applied_to[0]["target_collection_id"] == "col_1"
    assert ("appliedTo[0].target_collection_id", "collection", "catalog", "col_1") in (
        resolution.names
    )
    assert len(resolution.names) == 7


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("{name: catalogue}", "collection 'catalogue' does not exist (did you mean 'catalog'?)"),
        ("{name: zzz}", "collection 'zzz' does not exist in namespace staging"),
        ("{name: shared-name}", "names 2 collections (col_3, col_4): use an id"),
    ],
    ids=["near miss", "unknown", "ambiguous"],
)
def test_a_name_that_does_not_resolve_is_a_problem_at_its_line(
    tmp_path: Path, written: str, words: str
) -> None:
    text = MANIFEST.replace(
        "target_collection_id: {name: catalog}", f"target_collection_id: {written}"
    )
    resolution = names.resolve(loaded(tmp_path, text), AROUND)
    [problem] = resolution.problems
    assert (problem.line, problem.col) == (19, 7)
    assert problem.path == "spec.appliedTo[0].target_collection_id"
    assert words in problem.message


@pytest.mark.parametrize(
    ("written", "where"),
    [
        ("retriever_id: {label: clip}", "spec.config.retriever_id: must be a retriever id"),
        ("retriever_id: {name: clip, x: 1}", "spec.config.retriever_id: must be a retriever id"),
        ("retriever_id: {name: ''}", "spec.config.retriever_id: must be a retriever id"),
    ],
)
def test_a_reference_is_an_id_or_a_name(tmp_path: Path, written: str, where: str) -> None:
    write(tmp_path, "m.yaml", MANIFEST.replace("retriever_id: {name: clip}", written, 1))
    with pytest.raises(ManifestError) as caught:
        load_tree(tmp_path, {})
    assert f"m.yaml:9:5: {where}" in str(caught.value)


def test_a_parent_named_unlike_any_node_is_refused_with_its_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m.yaml",
        MANIFEST.replace(
            "parent_collection_id: {name: catalog}", "parent_collection_id: {name: nowhere}"
        ),
    )
    with pytest.raises(ManifestError) as caught:
        load_tree(tmp_path, {})
    assert "parent '{name: nowhere}' is not a node of this taxonomy" in str(caught.value)


def test_ids_become_names_where_the_name_is_unique() -> None:
    config = {
        "retriever_id": "ret_1",
        "source_collection": {"collection_id": "col_3"},
        "inference_collections": ["col_2", "col_unknown"],
    }
    named, entries, kept = names.to_names(config, [{"target_collection_id": "col_1"}], AROUND)
    assert named["retriever_id"] == {"name": "clip"}
    assert named["source_collection"] == {"collection_id": "col_3"}  # shared-name: not unique
    assert named["inference_collections"] == [{"name": "products"}, "col_unknown"]
    assert entries == [{"target_collection_id": {"name": "catalog"}}]
    assert [slot.spec_path for slot in kept] == ["config.source_collection.collection_id"]
    assert config["retriever_id"] == "ret_1"  # the input is not changed
    loose, _, _ = names.to_names(config, [], AROUND, unique_only=False)
    assert loose["source_collection"] == {"collection_id": {"name": "shared-name"}}


def test_a_retriever_without_a_name_stays_an_id() -> None:
    named, _, _ = names.to_names({"retriever_id": "ret_2"}, [], AROUND)
    assert named["retriever_id"] == "ret_2"


def test_a_name_does_not_make_the_manifest_own_its_attachments(tmp_path: Path) -> None:
    """Without ``appliedTo`` a manifest leaves attachments alone, names or not."""
    taxonomy = loaded(tmp_path, MANIFEST.split("  appliedTo:")[0])
    assert taxonomy.config["retriever_id"] == {"name": "clip"}
    assert taxonomy.applied_to is None
