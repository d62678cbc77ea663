"""The comparison behind ``taxsync diff``, pure: two namespaces' live taxonomies, whose
references name different ids, compared by the names of what they point at."""

from __future__ import annotations

from typing import Any

from taxsync.live import LiveCollection, Neighbourhood
from taxsync.namespace_diff import NamespaceDiff, comparable, compare
from taxsync.render import Style, namespace_diff_json, namespace_diff_text
from taxsync.wire import TaxonomyResponse

A, B = "staging", "production"


def around(
    ns: str, *applying: tuple[str, str, dict[str, Any]], nameless: bool = False
) -> Neighbourhood:
    """Collections ``products``, ``employees``, ``managers`` and retriever ``clip`` with ids
    of the namespace; ``applying``: (collection id, name, entry) that apply taxonomies."""
    collections = [
        LiveCollection(f"col_{ns}_{name}", name) for name in ("products", "employees", "managers")
    ]
    collections += [LiveCollection(i, name, applications=(entry,)) for i, name, entry in applying]
    return Neighbourhood(tuple(collections), {f"ret_{ns}_clip": "" if nameless else "clip"})


def flat(ns: str, name: str = "products", **changes: Any) -> TaxonomyResponse:
    config = {
        "taxonomy_type": "flat",
        "retriever_id": f"ret_{ns}_clip",
        "input_mappings": [{"input_key": "v", "source_type": "vector", "path": "f.clip"}],
        "source_collection": {"collection_id": f"col_{ns}_products"},
    }
    fields: dict[str, Any] = {"taxonomy_id": f"tax_{ns}_{name}", "taxonomy_name": name}
    return TaxonomyResponse(**{**fields, "config": config, **changes})


def tree(ns: str, label: str = "Managers") -> TaxonomyResponse:
    config = {
        "taxonomy_type": "hierarchical",
        "retriever_id": f"ret_{ns}_clip",
        "input_mappings": [{"input_key": "v", "source_type": "vector", "path": "f.clip"}],
        "hierarchical_nodes": [
            {"collection_id": f"col_{ns}_employees", "label": "Employees"},
            {
                "collection_id": f"col_{ns}_managers",
                "parent_collection_id": f"col_{ns}_employees",
                "label": label,
            },
        ],
    }
    return TaxonomyResponse(taxonomy_id=f"tax_{ns}_org", taxonomy_name="org", config=config)


def diff(
    live_a: list[TaxonomyResponse],
    live_b: list[TaxonomyResponse],
    around_a: Neighbourhood | None = None,
    around_b: Neighbourhood | None = None,
) -> NamespaceDiff:
    return compare(A, live_a, around_a or around(A), B, live_b, around_b or around(B))


def paths(result: NamespaceDiff) -> dict[str, list[tuple[str, Any, Any]]]:
    return {d.name: [(f.path, f.before, f.after) for f in d.diff] for d in result.differing}


def test_taxonomies_that_name_the_same_things_by_other_ids_are_the_same() -> None:
    result = diff([flat(A), tree(A)], [flat(B), tree(B)])

    assert result == NamespaceDiff(A, B, (), (), (), same=2)
    assert result.equal


def test_nodes_are_told_apart_by_the_names_of_their_collections() -> None:
    result = diff([tree(A)], [tree(B, label="Leads")])

    assert paths(result) == {
        "org": [("config.hierarchical_nodes[managers].label", "Managers", "Leads")]
    }


def test_an_id_its_namespace_has_no_name_for_stays_an_id_and_differs() -> None:
    result = diff([flat(A)], [flat(B)], around_b=around(B, nameless=True))

    assert paths(result) == {
        "products": [("config.retriever_id", {"name": "clip"}, "ret_production_clip")]
    }


def test_taxsyncs_bookkeeping_and_the_servers_metadata_are_not_differences() -> None:
    marked = {"team": "search", "managed_by": "taxsync", "validation_warnings": ["x"]}
    result = diff([flat(A, metadata=marked)], [flat(B, metadata={"team": "search"})])

    assert result.equal
    assert not diff([flat(A, metadata={"managed_by": "taxsync"})], [flat(B)]).differing
    other = diff([flat(A, metadata={"team": "ads"})], [flat(B, metadata={"team": "search"})])
    assert paths(other) == {"products": [("metadata.team", "ads", "search")]}


def test_applications_compare_by_collection_name_with_their_settings() -> None:
    def applied(ns: str, **entry: Any) -> Neighbourhood:
        target = {"target_collection_id": f"col_{ns}_employees"}
        return around(
            ns,
            (
                f"col_{ns}_images",
                "images",
                {"taxonomy_id": f"tax_{ns}_products", **target, **entry},
            ),
            # A system collection (taxsync never attaches to it) applies staging's only.
            ("_direct_upsert", "_direct_upsert", {"taxonomy_id": f"tax_{A}_products"}),
        )

    explicit_default = applied(A, execution_phase=1, priority=0)
    assert diff([flat(A)], [flat(B)], explicit_default, applied(B)).equal
    result = diff([flat(A)], [flat(B)], applied(A, priority=3), applied(B))
    assert paths(result) == {"products": [("appliedTo.images.priority", 3, None)]}
    assert [(f.before_present, f.after_present) for f in result.differing[0].diff] == [
        (True, False)
    ]
    unapplied = diff([flat(A)], [flat(B)], applied(A), around(B))
    assert paths(unapplied) == {
        "products": [("appliedTo.images", {"target_collection_id": {"name": "employees"}}, None)]
    }


def test_collections_sharing_a_name_are_told_apart_by_id() -> None:
    entry = {"taxonomy_id": "tax_staging_products"}
    twins = around(A, ("col_x1", "images", entry), ("col_x2", "images", entry))
    one = around(B, ("col_y", "images", {"taxonomy_id": "tax_production_products"}))

    result = diff([flat(A)], [flat(B)], twins, one)

    assert paths(result) == {
        "products": [("appliedTo", {"col_x1": {}, "col_x2": {}}, {"images": {}})]
    }


def test_a_node_name_that_reads_like_another_nodes_id_keeps_the_keys_apart() -> None:
    live = tree(A)
    nodes = live.config["hierarchical_nodes"]
    nodes[1]["collection_id"] = "employees"  # no collection has this id: it stays an id

    compared = comparable(live, around(A))["config"]["hierarchical_nodes"]

    assert compared == {
        "{'name': 'employees'}": {"collection_id": {"name": "employees"}, "label": "Employees"},
        "employees": {
            "collection_id": "employees",
            "parent_collection_id": {"name": "employees"},
            "label": "Managers",
        },
    }


def test_taxonomies_in_one_namespace_only_and_the_count_of_the_same() -> None:
    result = diff([flat(A), flat(A, "brands"), tree(A)], [flat(B), flat(B, "topics")])

    assert (result.only_in_a, result.only_in_b, result.same) == (("brands", "org"), ("topics",), 1)
    assert not result.equal


def test_text_and_json_show_names_inert() -> None:
    hostile = "evil\x1b[2J\u202e::warning::x"
    result = diff([flat(A, hostile)], [flat(B, "ok##[group]")])

    text = namespace_diff_text(result, Style(False))
    as_json = namespace_diff_json(result)

    assert text == (
        "taxsync diff: staging (A) → production (B)\n\n"
        "  - evil\\u001b[2J\\u202e:\\u003awarning:\\u003ax: only in staging\n"
        "  + ok##\\u005bgroup]: only in production\n\n"
        "Diff: 1 only in staging, 1 only in production, 0 differ, 0 the same.\n"
    )
    assert "\x1b" not in as_json and "\u202e" not in as_json and "##[" not in as_json
    assert '"only_in_a": [\n    "evil\\u001b[2J\\u202e::warning::x"\n  ]' in as_json


def test_text_when_nothing_differs() -> None:
    text = namespace_diff_text(diff([flat(A)], [flat(B)]), Style(False))

    assert text == "No differences. 1 taxonomy(ies) are the same in staging and production.\n"
