"""Seed files for the emulator: YAML and JSON, clear errors, and examples/local-seed.yaml
covering every collection and retriever the example manifests name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from taxsync import names
from taxsync.emulator import SeedError, Store, load_seed
from taxsync.live import neighbourhood
from taxsync.manifest import load_tree
from taxsync.wire import CollectionResponse, RetrieverModelOutput

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SEED = REPO_ROOT / "examples" / "local-seed.yaml"
EXAMPLE_MANIFESTS = REPO_ROOT / "examples" / "taxonomies"


def test_yaml_and_json_seeds_load_alike(tmp_path: Path) -> None:
    data = {
        "namespaces": {
            "production": {
                "collections": [
                    {"collection_id": "col_products_v1", "collection_name": "products"}
                ],
                "retrievers": [{"retriever_id": "ret_clip_v1"}],
            },
            "empty": None,
        }
    }
    as_yaml, as_json = tmp_path / "seed.yaml", tmp_path / "seed.json"
    as_yaml.write_text(yaml.safe_dump(data), encoding="utf-8")
    as_json.write_text(json.dumps(data), encoding="utf-8")
    assert load_seed(as_yaml) == load_seed(as_json)
    assert load_seed(as_yaml).counts() == (1, 1)
    assert list(load_seed(as_json).namespaces) == ["production", "empty"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.yaml", "namespaces: [", "not valid YAML"),
        ("broken.json", "{", "not valid JSON"),
        ("list.yaml", "- a\n- b\n", "invalid seed"),
        (
            "bad.yaml",
            "namespaces: {p: {collections: [{collection_id: nope, collection_name: abc}]}}",
            "namespaces.p.collections.0.collection_id",
        ),
    ],
)
def test_bad_seed_files_name_the_file_and_the_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SeedError, match=message) as excinfo:
        load_seed(path)
    assert str(excinfo.value).startswith(str(path))


def test_a_missing_seed_file_is_a_seed_error(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="absent.yaml: cannot read: No such file"):
        load_seed(tmp_path / "absent.yaml")


def _references(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, id) of every collection and retriever a taxonomy config names."""
    if config.get("retriever_id"):
        yield "retriever", config["retriever_id"]
    if config.get("source_collection"):
        yield "collection", config["source_collection"]["collection_id"]
    for node in config.get("hierarchical_nodes") or []:
        yield "collection", node["collection_id"]
        if node.get("parent_collection_id"):
            yield "collection", node["parent_collection_id"]
        if node.get("retriever_id"):
            yield "retriever", node["retriever_id"]
    for collection_id in config.get("inference_collections") or []:
        yield "collection", collection_id


def test_the_example_seed_covers_every_reference_of_the_example_manifests(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json")
    store.seed(load_seed(EXAMPLE_SEED))
    wanted: set[tuple[str, str, str]] = set()
    resolved: dict[tuple[str, str], set[str]] = {}  # (kind, name) -> the ids it has
    for desired in load_tree(EXAMPLE_MANIFESTS, {}):
        namespace = desired.namespace
        around = neighbourhood(
            store.list_collections(namespace).results, store.list_retrievers(namespace).results
        )
        resolution = names.resolve(desired, around)
        assert resolution.problems == (), resolution.problems
        for _, kind, name, ident in resolution.names:
            resolved.setdefault((kind, name), set()).add(ident)
        config = resolution.desired.config
        wanted |= {(namespace, kind, ident) for kind, ident in _references(config)}
        if config.get("retriever_id"):
            # The retriever's inputs are the ones the taxonomy maps (docs/api-contract.md#retrievers).
            schema = store.get_retriever(namespace, config["retriever_id"])["input_schema"]
            mapped = {m["input_key"] for m in config.get("input_mappings") or []}
            required = {key for key, field in schema.items() if field.get("required")}
            assert required <= mapped <= set(schema), (desired.source, schema, mapped)
    # product-categories names the same retriever and collection in both namespaces, and
    # each namespace has ids of its own for them, as Mixpeek gives.
    assert resolved[("retriever", "catalog_clip_v1")] == {"ret_clip_v1", "ret_stg_clip_v1"}
    assert resolved[("collection", "catalog_categories")] == {
        "col_catalog_categories",
        "col_stg_catalog_categories",
    }
    assert len(wanted) >= 12  # the examples name this many; a broken walk finds fewer
    for namespace, kind, ident in sorted(wanted):
        if kind == "collection":
            collection = store.get_collection(namespace, ident)
            CollectionResponse.model_validate(collection)
            assert collection["document_count"] > 0, (namespace, ident)
        else:
            retriever = store.get_retriever(namespace, ident)
            RetrieverModelOutput.model_validate(retriever)
            assert retriever["collection_ids"], (namespace, ident)
            assert retriever["input_schema"], (namespace, ident)
