"""The pure planner and ``spec.appliedTo``: which attach, reconfigure and detach changes a
manifest's attachments make against a namespace's collections (no I/O), and how they load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taxsync.errors import ManifestError
from taxsync.live import Neighbourhood, neighbourhood
from taxsync.manifest import load_tree
from taxsync.model import DesiredTaxonomy
from taxsync.plan import AttachmentChange, Change, Plan
from taxsync.planner import PlanOptions, plan
from tests.helpers import desired_flat, desired_hierarchical, flat, live_flat, write

NS = "production"
PRODUCTS = "tax_products"  # live_flat()'s id


def collections(**applications: list[dict[str, Any]]) -> Neighbourhood:
    """Collections ``col_<key>`` named ``<key>``, with these taxonomy_applications."""
    return neighbourhood(
        [
            {"collection_id": f"col_{key}", "collection_name": key, "taxonomy_applications": apps}
            for key, apps in applications.items()
        ],
        [],
    )


def applied(desired: DesiredTaxonomy, *entries: dict[str, Any]) -> DesiredTaxonomy:
    return replace(desired, applied_to=entries)


def planned(
    desired: list[DesiredTaxonomy],
    around: Neighbourhood,
    live: list[Any] | None = None,
    **options: Any,
) -> Plan:
    live_state = {NS: [live_flat()] if live is None else live}
    return plan(desired, live_state, PlanOptions(**options), {NS: around})


def attachments(the_plan: Plan) -> list[Change]:
    return [c for c in the_plan.changes if isinstance(c, AttachmentChange)]


def test_attach_writes_what_the_manifest_declares() -> None:
    desired = applied(desired_flat(), {"collection": "a", "execution_phase": 2})
    (change,) = planned([desired], collections(a=[])).changes
    assert change.action == "attach"
    assert (change.collection_id, change.collection_name) == ("col_a", "a")
    assert change.taxonomy_id == PRODUCTS
    assert change.application == {"execution_phase": 2}
    assert change.live_application is None
    assert [(d.path, d.after, d.before_present) for d in change.diff] == [
        ("execution_phase", 2, False)
    ]
    assert change.backfills == []


@pytest.mark.parametrize(
    "live_entry",
    [
        {"execution_phase": 1, "priority": 0},
        {"execution_phase": None, "priority": None, "execution_mode": None},
        {"execution_mode": "materialize", "hierarchical_enrichment_style": "combined"},
        {"scroll_filters": None, "target_collection_id": None},
    ],
)
def test_server_defaults_read_as_the_manifest_leaving_them_out(live_entry: dict[str, Any]) -> None:
    desired = applied(desired_flat(), {"collection": "a"})
    around = collections(a=[{"taxonomy_id": PRODUCTS, **live_entry}])
    assert planned([desired], around).changes == []


def test_a_setting_change_is_a_reconfigure_with_its_field_diff() -> None:
    desired = applied(desired_flat(), {"collection": "col_a", "priority": 9})
    live_entry = {"taxonomy_id": PRODUCTS, "execution_phase": 2, "priority": 0}
    (change,) = planned([desired], collections(a=[live_entry])).changes
    assert change.action == "reconfigure"
    assert change.application == {"priority": 9}
    assert change.live_application == live_entry
    assert [(d.path, d.before, d.after) for d in change.diff] == [
        ("execution_phase", 2, 1),
        ("priority", 0, 9),
    ]


def test_collections_not_listed_are_detached_and_others_entries_ignored() -> None:
    desired = applied(desired_flat(), {"collection": "a"})
    around = collections(
        a=[{"taxonomy_id": PRODUCTS}],
        b=[{"taxonomy_id": "tax_theirs"}, {"taxonomy_id": PRODUCTS, "priority": 4}],
        c=[{"taxonomy_id": "tax_theirs", "priority": 1}],
    )
    (change,) = attachments(planned([desired], around))
    assert (change.action, change.collection_id) == ("detach", "col_b")
    assert change.live_application == {"taxonomy_id": PRODUCTS, "priority": 4}
    assert [(d.path, d.before, d.after_present) for d in change.diff] == [("priority", 4, False)]


def test_without_applied_to_attachments_are_left_alone() -> None:
    around = collections(a=[{"taxonomy_id": PRODUCTS, "priority": 4}])
    assert planned([desired_flat()], around).changes == []


def test_a_created_taxonomy_attaches_with_the_id_its_create_gives() -> None:
    desired = applied(desired_flat("new"), {"collection": "a"})
    changes = planned([desired], collections(a=[]), live=[]).changes
    assert [(c.action, c.taxonomy_id) for c in changes] == [("create", None), ("attach", None)]


def test_a_replaced_taxonomy_compares_the_entries_it_will_re_point() -> None:
    desired = applied(desired_hierarchical("products"), {"collection": "a", "priority": 2})
    around = collections(a=[{"taxonomy_id": PRODUCTS, "priority": 1}])
    changes = planned([desired], around).changes
    assert [(c.action, c.taxonomy_id) for c in changes] == [
        ("replace", PRODUCTS),
        ("reconfigure", None),
    ]


def test_an_attach_backfills_only_when_asked() -> None:
    desired = applied(desired_flat(), {"collection": "a"})
    assert attachments(planned([desired], collections(a=[]), backfill=True))[0].backfills == [
        "col_a"
    ]
    asked = replace(desired, backfill=True)
    assert attachments(planned([asked], collections(a=[])))[0].backfills == ["col_a"]


def test_a_config_change_does_not_backfill_where_it_is_detached() -> None:
    desired = applied(desired_flat(top_k=5), {"collection": "a"})
    around = collections(a=[{"taxonomy_id": PRODUCTS}], b=[{"taxonomy_id": PRODUCTS}])
    version, detach = planned([desired], around, backfill=True).changes
    assert (version.action, detach.action) == ("new_version", "detach")
    assert version.backfills == ["col_a"]


def test_detach_deleted_unblocks_a_delete_after_detaching() -> None:
    live = [live_flat(metadata={"managed_by": "taxsync"})]
    around = collections(a=[{"taxonomy_id": PRODUCTS}], b=[{"taxonomy_id": "tax_theirs"}])
    covered = frozenset({NS})
    (blocked,) = planned([], around, live=live, prune=True, namespaces=covered).changes
    assert blocked.blocked and "a" in blocked.blocked
    changes = planned(
        [], around, live=live, prune=True, namespaces=covered, detach_deleted=True
    ).changes
    assert [
        (c.action, getattr(c, "collection_id", None), getattr(c, "blocked", None)) for c in changes
    ] == [
        ("detach", "col_a", None),
        ("delete", None, None),
    ]


# --- loading ------------------------------------------------------------------------------------


def with_applied_to(entries: str) -> str:
    return flat().replace("spec:\n", f"spec:\n  appliedTo: {entries}\n", 1)


def test_applied_to_loads_as_declared(tmp_path: Path) -> None:
    text = with_applied_to(
        "[{collection: a, priority: 3, target_collection_id: null}, {collection: b}]"
    )
    (loaded,) = load_tree(write(tmp_path, "m.yaml", text), {})
    assert loaded.applied_to == ({"collection": "a", "priority": 3}, {"collection": "b"})
    (absent,) = load_tree(write(tmp_path, "m.yaml", flat()), {})
    assert absent.applied_to is None
    (empty,) = load_tree(write(tmp_path, "m.yaml", with_applied_to("[]")), {})
    assert empty.applied_to == ()


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            "[{collection: a}, {collection: a}]",
            ":7:33: spec.appliedTo[1].collection: 'a' is already listed at appliedTo[0]",
        ),
        (
            "[{collection: a, hierarchical_enrichment_style: best_match}]",
            "spec.appliedTo[0].hierarchical_enrichment_style: is for hierarchical taxonomies only",
        ),
        (
            "[{collection: a, execution_phase: 4}]",
            "spec.appliedTo[0].execution_phase: must be <= 3",
        ),
        (
            "[{collection: a, priority: '3'}]",
            "spec.appliedTo[0].priority: Input should be a valid integer",
        ),
        ("[{collection: a, phase: 2}]", "spec.appliedTo[0].phase: unknown key"),
        ("[{priority: 2}]", "spec.appliedTo[0].collection: required key is missing"),
        (
            '[{collection: "a\\u202eb"}]',
            "spec.appliedTo[0].collection: contains an invisible bidirectional-text control U+202E",
        ),
    ],
)
def test_bad_applied_to_entries_are_errors_at_their_lines(
    tmp_path: Path, entries: str, expected: str
) -> None:
    path = write(tmp_path, "m.yaml", with_applied_to(entries))
    with pytest.raises(ManifestError) as caught:
        load_tree(path, {})
    assert expected in str(caught.value)


def test_a_filter_reads_the_same_with_or_without_the_sdks_case_sensitive_false(
    tmp_path: Path,
) -> None:
    text = with_applied_to(
        "[{collection: a, scroll_filters: {AND: [{field: brand, operator: exists, value: true}]}}]"
    )
    (loaded,) = load_tree(write(tmp_path, "m.yaml", text), {})
    written = {"AND": [{"field": "brand", "operator": "exists", "value": True}]}
    assert loaded.applied_to == ({"collection": "a", "scroll_filters": written},)
    as_the_sdk_writes_it = {
        "AND": [{"field": "brand", "operator": "exists", "value": True, "case_sensitive": False}],
        "case_sensitive": False,
    }
    around = collections(a=[{"taxonomy_id": PRODUCTS, "scroll_filters": as_the_sdk_writes_it}])
    assert planned([loaded], around, live=[live_flat()]).changes == []
    sensitive = {**as_the_sdk_writes_it, "case_sensitive": True}
    around = collections(a=[{"taxonomy_id": PRODUCTS, "scroll_filters": sensitive}])
    (change,) = planned([loaded], around).changes
    assert change.action == "reconfigure"


def test_system_collections_are_never_attached_to_nor_detached_from() -> None:
    desired = applied(desired_flat(), {"collection": "a"})
    around = neighbourhood(
        [
            {"collection_id": "col_a", "collection_name": "a"},
            {
                "collection_id": "col_sys",
                "collection_name": "_direct_upsert",
                "taxonomy_applications": [{"taxonomy_id": PRODUCTS}],
            },
        ],
        [],
    )
    changes = planned([desired], around).changes
    assert [(c.action, c.collection_id) for c in changes] == [("attach", "col_a")]
