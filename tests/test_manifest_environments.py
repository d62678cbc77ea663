"""One manifest, several namespaces, loaded: ``metadata.namespaces`` declares the taxonomy in
each, ``spec.overrides`` merges a partial spec over the shared one (RFC 7386), and every
value keeps the position it was written at."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxsync.errors import ManifestError
from taxsync.manifest import load_tree
from taxsync.manifest.environments import merge_patch
from tests.helpers import write

BOTH = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: products
  namespaces: [staging, production]
spec:
  description: Shared words
  metadata: {team: search, tier: gold}
  config:
    taxonomy_type: flat
    retriever_id: ret_clip_v1
    top_k: 5
    input_mappings:
      - {input_key: image_vector, path: features.clip, source_type: vector}
    source_collection:
      collection_id: col_products_v1
      enrichment_fields:
        - {field_path: label, merge_mode: replace}
        - {field_path: tags, merge_mode: append}
  overrides:
    production:
      description: null
      metadata: {tier: null, owner: ops}
      config:
        top_k: 3
        source_collection:
          enrichment_fields:
            - {field_path: label, merge_mode: replace}
"""


def loaded(tmp_path: Path, text: str = BOTH) -> dict[str, object]:
    write(tmp_path, "p.yaml", text)
    return {t.namespace: t for t in load_tree(tmp_path, {})}


def refused(tmp_path: Path, text: str) -> str:
    write(tmp_path, "p.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load_tree(tmp_path, {})
    return str(caught.value)


def test_each_namespace_gets_the_shared_spec_with_its_override_merged(tmp_path: Path) -> None:
    by_namespace = loaded(tmp_path)
    staging, production = by_namespace["staging"], by_namespace["production"]
    assert staging.config["top_k"] == 5 and production.config["top_k"] == 3  # type: ignore[attr-defined]
    assert staging.description == "Shared words"  # type: ignore[attr-defined]
    assert production.description is None  # type: ignore[attr-defined]  # null removes
    assert production.metadata == {"team": "search", "owner": "ops"}  # type: ignore[attr-defined]
    # A list replaces the shared one whole; a mapping merges key by key.
    fields = production.config["source_collection"]["enrichment_fields"]  # type: ignore[attr-defined]
    assert fields == [{"field_path": "label", "merge_mode": "replace"}]
    assert production.config["source_collection"]["collection_id"] == "col_products_v1"  # type: ignore[attr-defined]
    assert len(staging.config["source_collection"]["enrichment_fields"]) == 2  # type: ignore[attr-defined]


def test_a_value_an_override_set_points_at_the_override(tmp_path: Path) -> None:
    by_namespace = loaded(tmp_path)
    assert by_namespace["production"].position("config.top_k") == (25, 9)  # type: ignore[attr-defined]
    assert by_namespace["staging"].position("config.top_k") == (12, 5)  # type: ignore[attr-defined]
    # What the override did not touch keeps its shared place.
    assert by_namespace["production"].position("config.retriever_id") == (11, 5)  # type: ignore[attr-defined]
    replaced = "config.source_collection.enrichment_fields[0].field_path"
    assert by_namespace["production"].position(replaced) == (28, 16)  # type: ignore[attr-defined]


def test_an_error_in_an_override_is_reported_at_its_line(tmp_path: Path) -> None:
    message = refused(tmp_path, BOTH.replace("        top_k: 3", "        top_k: 0"))
    assert "p.yaml:25:9: spec.config.top_k: must be >= 1" in message
    assert "p.yaml:12" not in message


def test_an_error_in_the_shared_spec_is_reported_once(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", BOTH.replace("    retriever_id: ret_clip_v1", "    retriever_id: 7"))
    with pytest.raises(ManifestError) as caught:
        load_tree(tmp_path, {})
    assert [(p.line, p.path) for p in caught.value.problems] == [(11, "spec.config.retriever_id")]


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (
            ("  overrides:\n    production:", "  overrides:\n    prodution:"),
            "p.yaml:21:5: spec.overrides.prodution: 'prodution' is not a namespace of this manifest (staging, production)",
        ),
        (
            ("  namespaces: [staging, production]", "  namespaces: [staging, staging]"),
            "p.yaml:5:25: metadata.namespaces[1]: 'staging' is listed twice",
        ),
        (
            ("  namespaces: [staging, production]", "  namespaces: []"),
            "metadata.namespaces: must be a non-empty list of namespaces",
        ),
        (
            (
                "  namespaces: [staging, production]",
                "  namespace: staging\n  namespaces: [staging]",
            ),
            "use metadata.namespace or metadata.namespaces, not both",
        ),
        (
            (
                "    production:\n      description: null",
                "    production:\n      overrides: {}\n      description: null",
            ),
            "spec.overrides.production.overrides: overrides do not nest",
        ),
    ],
    ids=["unknown namespace", "twice", "empty", "both", "nested"],
)
def test_namespaces_and_overrides_are_checked(
    tmp_path: Path, edit: tuple[str, str], words: str
) -> None:
    assert words in refused(tmp_path, BOTH.replace(*edit))


def test_overrides_need_several_namespaces(tmp_path: Path) -> None:
    text = BOTH.replace("  namespaces: [staging, production]", "  namespace: staging")
    assert "spec.overrides: needs metadata.namespaces" in refused(tmp_path, text)


def test_a_taxonomy_declared_twice_in_a_namespace_names_both_places(tmp_path: Path) -> None:
    write(
        tmp_path,
        "other.yaml",
        BOTH.replace("  namespaces: [staging, production]", "  namespace: production").split(
            "  overrides:"
        )[0],
    )
    message = refused(tmp_path, BOTH)
    assert "production/products is already declared at" in message
    assert "other.yaml:4" in message and "p.yaml:4" in message


def test_merge_patch_follows_rfc_7386() -> None:
    # The examples of RFC 7386, section 3 (a selection).
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "c"}, {"a": ["b"]}) == {"a": ["b"]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({"a": "b"}, ["c"]) == ["c"]
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
