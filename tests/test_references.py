"""References and impact, pure: which ids a manifest names that its namespace lacks, and which
collections a change affects."""

from __future__ import annotations

from pathlib import Path

from taxsync import references
from taxsync.live import LiveCollection, Neighbourhood, neighbourhood
from taxsync.manifest import load_tree
from taxsync.planner import PlanOptions, plan
from tests.helpers import flat, hierarchical, live_flat, write

NS = "production"


def around(*collections: LiveCollection, retrievers: tuple[str, ...] = ()) -> Neighbourhood:
    return Neighbourhood(collections=collections, retrievers=dict.fromkeys(retrievers, ""))


def col(ident: str, name: str, *applies: str, docs: int | None = 100) -> LiveCollection:
    entries = tuple({"taxonomy_id": t, "execution_phase": 2} for t in applies)
    return LiveCollection(ident, name, docs, entries)


def test_every_named_id_is_checked_at_its_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("a", NS))
    write(tmp_path, "org.yaml", hierarchical("org", NS))
    desired = load_tree(tmp_path, {})
    found = references.missing(desired, {NS: around()})
    flat_problems = [str(p) for p in found[(NS, "a")]]
    assert flat_problems == [
        f"{tmp_path / 'a.yaml'}:11:5: spec.config.retriever_id: "
        "retriever ret_clip_v1 does not exist in namespace production",
        f"{tmp_path / 'a.yaml'}:16:7: spec.config.source_collection.collection_id: "
        "collection col_products_v1 does not exist in namespace production",
    ]
    tree = {p.path for p in found[(NS, "org")]}
    assert tree == {
        "spec.config.retriever_id",
        "spec.config.hierarchical_nodes[0].collection_id",
        "spec.config.hierarchical_nodes[1].collection_id",
    }


def test_existing_ids_resolve_and_a_name_in_an_id_field_is_its_own_problem(
    tmp_path: Path,
) -> None:
    write(tmp_path, "a.yaml", flat("a", NS))
    desired = load_tree(tmp_path, {})
    by_id = around(col("col_products_v1", "products"), retrievers=("ret_clip_v1",))
    assert references.missing(desired, {NS: by_id}) == {}
    assert references.names_as_ids(desired, {NS: by_id}) == []
    by_name = neighbourhood(
        [{"collection_id": "col_products_v1", "collection_name": "products"}],
        [{"retriever_id": "ret_other", "retriever_name": "ret_clip_v1"}],
    )
    assert references.missing(desired, {NS: by_name}) == {}  # not missing: misnamed
    (problem,) = references.names_as_ids(desired, {NS: by_name})
    assert problem.path == "spec.config.retriever_id"
    assert "'ret_clip_v1' is the name of retriever ret_other, not an id" in problem.message
    assert "write {name: ret_clip_v1}" in problem.message


def test_a_namespace_not_read_is_not_checked(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("a", NS))
    assert references.missing(load_tree(tmp_path, {}), {"elsewhere": around()}) == {}


def test_a_new_version_lists_the_collections_that_apply_it(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("products", NS, top_k=3))
    live = {NS: [live_flat()]}
    near = around(
        col("col_b", "shoes", "tax_products", docs=1200),
        col("col_a", "hats", "tax_products", docs=None),
        col("col_c", "unrelated", "tax_other"),
    )
    (change,) = plan(load_tree(tmp_path, {}), live, PlanOptions(), {NS: near}).changes
    assert change.action == "new_version"
    assert [
        (a.collection_name, a.execution_phase, a.document_count) for a in change.applied_by
    ] == [
        ("hats", 2, None),
        ("shoes", 2, 1200),
    ]
    assert change.blocked is None


def test_a_delete_of_an_applied_taxonomy_is_blocked(tmp_path: Path) -> None:
    live = {NS: [live_flat()]}
    near = around(col("col_b", "shoes", "tax_products"))
    (change,) = plan(
        [], live, PlanOptions(prune=True, namespaces=frozenset({NS})), {NS: near}
    ).changes
    assert change.action == "delete"
    assert change.blocked == "still applied by 1 collection(s): shoes; detach it first"
    (free,) = plan(
        [], live, PlanOptions(prune=True, namespaces=frozenset({NS})), {NS: around()}
    ).changes
    assert free.blocked is None and free.applied_by == []


def test_creates_and_updates_carry_no_impact(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("fresh", NS))
    near = around(col("col_b", "shoes", "tax_products"))
    (change,) = plan(load_tree(tmp_path, {}), {NS: []}, PlanOptions(), {NS: near}).changes
    assert change.action == "create" and change.applied_by == []
