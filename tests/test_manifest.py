"""The loader: what it accepts, and the file:line:col of everything it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxsync.errors import ManifestError
from taxsync.manifest import load_tree
from tests.helpers import flat, hierarchical, write


def problems(root: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_tree(root, environ or {})
    return [str(p) for p in caught.value.problems]


def test_loads_a_tree_recursively_skipping_hidden_files(tmp_path: Path) -> None:
    write(tmp_path, "prod/a.yaml", flat("a"))
    write(tmp_path, "prod/nested/b.yml", flat("b") + "---\n" + hierarchical("c"))
    write(tmp_path, ".hidden/x.yaml", "not: [valid")
    write(tmp_path, "prod/.skipped.yaml", "not: [valid")
    write(tmp_path, "README.md", "# not a manifest")
    desired = load_tree(tmp_path, {})
    assert sorted(d.name for d in desired) == ["a", "b", "c"]
    c = next(d for d in desired if d.name == "c")
    assert c.taxonomy_type == "hierarchical"
    assert c.source.file.endswith("prod/nested/b.yml") and c.source.line > 1


def test_config_keeps_only_declared_keys_and_the_type(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("a", top_k=3))
    (desired,) = load_tree(tmp_path, {})
    assert desired.config["taxonomy_type"] == "flat"
    assert desired.config["top_k"] == 3
    assert "step_analytics" not in desired.config  # never sent: the server fills defaults
    assert desired.metadata == {"team": "search"}


def test_range_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "prod/a.yaml", flat("a", top_k=51))
    assert problems(tmp_path) == [f"{path}:12:5: spec.config.top_k: must be <= 50, got 51"]


def test_all_errors_of_a_run_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("a", top_k=0))
    write(tmp_path, "b.yaml", flat("b").replace("ret_clip_v1", "clip"))
    found = problems(tmp_path)
    assert len(found) == 2
    assert "spec.config.top_k: must be >= 1" in found[0]
    assert "spec.config.retriever_id: 'clip' is not a retriever id" in found[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (flat().replace("kind: Taxonomy", "kind: Taxonomy\nextra: 1"), "3:1: extra: unknown key"),
        (
            flat().replace("  namespace: production\n", ""),
            "3:1: metadata.namespace: required key is missing",
        ),
        (
            flat().replace("merge_mode: append", "merge_mode: merge"),
            "enrichment_fields[0].merge_mode: Input should be 'replace' or 'append'",
        ),
        (
            flat().replace("    taxonomy_type: flat\n", ""),
            "spec.config: taxonomy_type is required in manifests",
        ),
        (flat().replace("taxonomy_type: flat", "taxonomy_type: tree"), "spec.config"),
        (
            flat().replace("apiVersion: taxsync/v1", "apiVersion: v2"),
            "1:1: apiVersion: must be 'taxsync/v1'",
        ),
        ("- a\n- b\n", "1:1: a manifest document must be a mapping"),
        ("a: 1\na: 2\n", "2:1: a: duplicate key"),
        ("a:\n\tb: 1\n", "invalid YAML"),
        ("a: !!python/object:os.system x\n", "unsupported YAML tag"),
        (
            flat().replace("  name: products", "  name: ''"),
            "metadata.name: String should have at least 1 character",
        ),
    ],
)
def test_invalid_documents(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "a.yaml", text)
    found = problems(tmp_path)
    assert any(expected in p for p in found), found


def test_hierarchy_parents_must_exist_and_not_cycle(tmp_path: Path) -> None:
    text = hierarchical().replace(
        "      - {collection_id: col_employees, label: Employees}",
        "      - {collection_id: col_employees, parent_collection_id: col_managers}\n"
        "      - {collection_id: col_interns, parent_collection_id: col_nobody}",
    )
    write(tmp_path, "h.yaml", text)
    found = problems(tmp_path)
    assert any("parent cycle" in p for p in found)
    assert any("parent 'col_nobody' is not a node of this taxonomy" in p for p in found)


def test_duplicate_namespace_and_name_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", flat("same"))
    write(tmp_path, "b.yaml", flat("same"))
    (found,) = problems(tmp_path)
    assert "production/same is already declared at" in found and str(first) in found


def test_environment_expansion(tmp_path: Path) -> None:
    text = flat().replace(
        "Product categories by image similarity",
        "${TAXSYNC_VAR_TEAM} ${TAXSYNC_VAR_MISSING:-fallback} $${LITERAL} $${HOME}",
    )
    write(tmp_path, "a.yaml", text)
    (desired,) = load_tree(tmp_path, {"TAXSYNC_VAR_TEAM": "search"})
    assert desired.description == "search fallback ${LITERAL} ${HOME}"


def test_unset_variable_is_an_error_at_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", flat().replace("ret_clip_v1", "${TAXSYNC_VAR_RETRIEVER}"))
    assert problems(tmp_path) == [
        f"{path}:11:19: spec.config.retriever_id: "
        "environment variable ${TAXSYNC_VAR_RETRIEVER} is not set"
    ]


def test_empty_files_and_documents_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "empty.yaml", "")
    write(tmp_path, "a.yaml", "---\n---\n" + flat("a") + "---\n")
    assert [d.name for d in load_tree(tmp_path, {})] == ["a"]


def test_a_tree_without_manifests_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "empty.yaml", "# nothing\n")
    assert problems(tmp_path) == [f"{tmp_path}: no taxonomy manifest found"]


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"a: 1\nb: caf\xe9\n")
    (found,) = problems(tmp_path)
    assert found.endswith("bad.yaml:2:7: not valid UTF-8 (byte 0xe9)")


def test_reserved_metadata_key(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat().replace("{team: search}", "{managed_by: me}"))
    (found,) = problems(tmp_path)
    assert "spec.metadata.managed_by: is reserved" in found


def test_published_schema_requires_the_taxonomy_type() -> None:
    from taxsync.manifest import json_schema

    schema = json_schema()
    assert schema["$defs"]["FlatConfig"]["required"][0] == "taxonomy_type"
    assert "taxonomy_type" in schema["$defs"]["HierarchicalConfig"]["required"]
    assert schema["additionalProperties"] is False
