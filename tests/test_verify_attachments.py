"""A saved plan's attachment changes (attach, reconfigure, detach) checked by verify: on
their own (static), against what moved since the plan (stale), and planned again from their
own fields against live state (live). Plans are made by the real planner in memory, then
edited as a hostile or careless author would."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from taxsync import verify
from taxsync.live import LiveCollection, Neighbourhood
from taxsync.model import DesiredTaxonomy
from taxsync.plan import Change, Plan, Summary
from taxsync.planner import PlanOptions, plan
from taxsync.wire import TaxonomyResponse
from tests.helpers import desired_flat, desired_hierarchical, live_flat

NS = "production"
URL = "http://api.test"
UNMANAGED = {"team": "other"}

# Live: products (managed) applied by col_a (priority 5) and col_b; other (made by hand,
# not managed) applied by col_a too; col_c applies nothing.
PRODUCTS = live_flat(taxonomy_id="tax_products")
OTHER = live_flat(taxonomy_id="tax_other", taxonomy_name="other", metadata=UNMANAGED)


def collections(**extra: tuple[dict[str, Any], ...]) -> tuple[LiveCollection, ...]:
    entries: dict[str, tuple[dict[str, Any], ...]] = {
        "col_a": (
            {"taxonomy_id": "tax_products", "priority": 5, "execution_phase": 1},
            {"taxonomy_id": "tax_other", "priority": 1, "execution_phase": 1},
        ),
        "col_b": ({"taxonomy_id": "tax_products", "priority": 0, "execution_phase": 1},),
        "col_c": (),
    }
    entries.update(extra)
    return tuple(
        LiveCollection(collection_id=cid, name=cid.replace("_", "-"), applications=apps)
        for cid, apps in entries.items()
    )


def around(*cols: LiveCollection) -> dict[str, Neighbourhood]:
    return {NS: Neighbourhood(collections=cols or collections())}


def live(*heads: TaxonomyResponse) -> dict[str, list[TaxonomyResponse]]:
    return {NS: list(heads or (PRODUCTS, OTHER))}


def applied(desired: DesiredTaxonomy, *entries: dict[str, Any]) -> DesiredTaxonomy:
    return dataclasses.replace(desired, applied_to=entries)


def planned(
    *desired: DesiredTaxonomy,
    heads: tuple[TaxonomyResponse, ...] = (PRODUCTS, OTHER),
    options: PlanOptions | None = None,
) -> Plan:
    """What taxsync plans (as ``plan --out`` saves it) against the live state above."""
    made = plan(
        list(desired),
        live(*heads),
        options or PlanOptions(api_url=URL, namespaces=frozenset({NS})),
        around(),
    )
    return seal(made)


def seal(made: Plan) -> Plan:
    """A plan as a forger leaves it: summary recounted, digest recomputed."""
    made = made.model_copy(update={"summary": Summary.of(made.changes, made.summary.unchanged)})
    return made.model_copy(update={"digest": made.content_digest()})


def edited(made: Plan, edit: Callable[[list[Change]], list[Change]]) -> Plan:
    changes = [c.model_copy(deep=True) for c in made.changes]
    return seal(made.model_copy(update={"changes": edit(changes)}))


def of(made: Plan, action: str, collection_id: str | None = None) -> Change:
    return next(
        c
        for c in made.changes
        if c.action == action and (collection_id is None or c.collection_id == collection_id)
    )


def static(made: Plan) -> list[str]:
    return verify.static_problems(made, URL)


def stale(
    made: Plan,
    heads: tuple[TaxonomyResponse, ...] = (PRODUCTS, OTHER),
    cols: tuple[LiveCollection, ...] | None = None,
) -> list[str]:
    return verify.stale_reasons(made, live(*heads), around(*(cols or collections())))


def problems(
    made: Plan,
    heads: tuple[TaxonomyResponse, ...] = (PRODUCTS, OTHER),
    cols: tuple[LiveCollection, ...] | None = None,
) -> list[str]:
    return verify.live_problems(made, live(*heads), around(*(cols or collections())))


def all_checks(made: Plan) -> list[str]:
    return static(made) + stale(made) + problems(made)


# The manifest of every honest plan below: products keeps col_a (priority 7: a reconfigure),
# drops col_b (a detach), and is attached to col_c (an attach, with a backfill).
def products(**settings: Any) -> DesiredTaxonomy:
    return applied(
        desired_flat("products"),
        {"collection": "col_a", "priority": 7},
        {"collection": "col-c", "execution_phase": 2, **settings},
    )


@pytest.fixture
def honest() -> Plan:
    made = planned(
        products(),
        options=PlanOptions(api_url=URL, namespaces=frozenset({NS}), backfill=True),
    )
    assert [c.action for c in made.changes] == ["reconfigure", "detach", "attach"]
    return made


# --- honest plans pass every check ------------------------------------------------------------


def test_an_honest_plan_of_attach_reconfigure_and_detach_passes(honest: Plan) -> None:
    assert of(honest, "attach").backfills == ["col_c"]
    assert all_checks(honest) == []


def test_an_honest_attach_to_a_taxonomy_the_plan_creates_passes() -> None:
    made = planned(applied(desired_flat("fresh"), {"collection": "col_c", "priority": 3}))
    assert [c.action for c in made.changes] == ["create", "attach"]
    assert of(made, "attach").taxonomy_id is None
    assert all_checks(made) == []


def test_an_honest_attach_with_scroll_filters_passes() -> None:
    filters = {"AND": [{"field": "x", "operator": "eq", "value": 1}], "case_sensitive": False}
    made = planned(products(scroll_filters=filters))
    assert of(made, "attach").application == {"execution_phase": 2, "scroll_filters": filters}
    assert all_checks(made) == []


def test_an_honest_adoption_may_change_the_adopted_taxonomys_entries() -> None:
    made = planned(applied(desired_flat("other"), {"collection": "col_c"}))
    assert [c.action for c in made.changes] == ["update", "detach", "attach"]
    assert of(made, "update").adopt
    assert all_checks(made) == []


def test_an_honest_detach_deleted_plan_passes() -> None:
    options = PlanOptions(api_url=URL, namespaces=frozenset({NS}), prune=True, detach_deleted=True)
    made = planned(options=options)  # no manifest: products is pruned (other is not managed)
    assert [(c.action, getattr(c, "collection_id", None)) for c in made.changes] == [
        ("detach", "col_a"),
        ("detach", "col_b"),
        ("delete", None),
    ]
    assert all_checks(made) == []


# --- static: the file on its own ---------------------------------------------------------------


def test_two_changes_to_one_entry_are_refused(honest: Plan) -> None:
    made = edited(honest, lambda cs: [*cs, of(honest, "attach")])
    assert "'tax_products' on 'col_c' is changed twice" in static(made)
    assert "'production/products on col-c' is changed twice" in static(made)


def test_two_changes_to_one_entry_of_a_new_taxonomy_are_refused() -> None:
    """No id yet: the namespace, name and collection say which entry it is."""
    made = planned(applied(desired_flat("fresh"), {"collection": "col_c"}))
    made = edited(made, lambda cs: [*cs, of(made, "attach")])
    assert static(made) == ["'production/fresh on col-c' is changed twice"]


def test_two_names_for_one_entry_are_refused(honest: Plan) -> None:
    """Two entries under different names but one taxonomy id and collection."""
    twin = of(honest, "detach").model_copy(update={"name": "alias"})
    made = edited(honest, lambda cs: [*cs, twin])
    assert "'tax_products' on 'col_b' is changed twice" in static(made)


def test_a_taxonomy_change_and_its_attachments_are_not_duplicates() -> None:
    made = planned(applied(desired_flat("fresh"), {"collection": "col_c"}))
    assert static(made) == []


def saved_again(made: Plan, update: dict[str, Any], action: str) -> str:
    """The plan's JSON, with ``update`` written into each change of ``action``."""
    data = json.loads(made.to_json())
    for change in data["changes"]:
        if change["action"] == action:
            change.update(update)
            for key in [k for k, v in update.items() if v is ...]:
                del change[key]
    return json.dumps(data)


@pytest.mark.parametrize(
    ("action", "update", "words"),
    [
        ("attach", {"collection_id": ...}, "collection_id"),
        ("attach", {"application": None}, "carries the application it writes"),
        ("reconfigure", {"live_application": None}, "carries the live_application it saw"),
        ("detach", {"live_application": None}, "carries the live_application it saw"),
        ("detach", {"blocked": "no"}, "blocked"),
    ],
    ids=["no collection", "attach without settings", "reconfigure blind", "detach blind", "extra"],
)
def test_an_attachment_change_of_the_wrong_shape_is_not_a_plan(
    honest: Plan, action: str, update: dict[str, Any], words: str
) -> None:
    """The change types themselves refuse what an attach, reconfigure or detach must
    carry, and what only a taxonomy change may carry."""
    with pytest.raises(ValidationError, match=words):
        Plan.model_validate_json(saved_again(honest, update, action))


@pytest.mark.parametrize(
    ("application", "words"),
    [
        ({"taxonomy_id": "tax_other"}, "'taxonomy_id', not a setting"),
        ({"collection": "col_b"}, "'collection', not a setting"),
        ({"priority": 5000}, "not valid: priority"),
        ({"execution_phase": "2"}, "not valid: execution_phase"),
        ({"execution_mode": "stream"}, "not valid: execution_mode"),
        ({"scroll_filters": ["not", "a", "filter"]}, "not valid: scroll_filters"),
    ],
    ids=["taxonomy_id", "unknown key", "priority", "phase as text", "mode", "filters"],
)
def test_settings_taxsync_does_not_know_or_the_api_refuses_are_refused(
    honest: Plan, application: dict[str, Any], words: str
) -> None:
    for action in ("attach", "reconfigure"):
        made = edited(
            honest, lambda cs, a=action: [_with(c, a, application=application) for c in cs]
        )
        assert any(words in p for p in static(made)), (action, static(made))


def test_an_attachment_without_a_taxonomy_id_needs_its_taxonomys_create(honest: Plan) -> None:
    made = edited(honest, lambda cs: [_with(c, "attach", taxonomy_id=None) for c in cs])
    assert any("names no taxonomy id, and the plan neither creates" in p for p in static(made))


def test_an_attachment_without_a_taxonomy_id_and_its_create_gone_is_refused() -> None:
    made = planned(applied(desired_flat("fresh"), {"collection": "col_c"}))
    made = edited(made, lambda cs: [c for c in cs if c.action != "create"])
    assert any("names no taxonomy id" in p for p in static(made))


def test_a_detach_for_a_delete_needs_that_delete() -> None:
    options = PlanOptions(api_url=URL, namespaces=frozenset({NS}), prune=True, detach_deleted=True)
    made = edited(planned(options=options), lambda cs: [c for c in cs if c.action != "delete"])
    assert sum("does not delete production/products" in p for p in static(made)) == 2


def test_a_detach_for_a_delete_of_another_taxonomy_is_refused() -> None:
    options = PlanOptions(api_url=URL, namespaces=frozenset({NS}), prune=True, detach_deleted=True)
    made = edited(
        planned(options=options), lambda cs: [_with(c, "delete", taxonomy_id="tax_x") for c in cs]
    )
    assert sum("does not delete production/products" in p for p in static(made)) == 2


# --- stale: what moved since the plan ----------------------------------------------------------


def test_a_collection_deleted_since_the_plan_makes_it_stale(honest: Plan) -> None:
    cols = tuple(c for c in collections() if c.collection_id != "col_c")
    assert stale(honest, cols=cols) == [
        "production/products on col-c: collection col_c no longer exists"
    ]


def test_a_collection_named_like_the_id_is_not_the_collection(honest: Plan) -> None:
    cols = (*[c for c in collections() if c.collection_id != "col_c"], _col("col_x", "col_c"))
    assert "collection col_c no longer exists" in " ".join(stale(honest, cols=cols))


def test_an_entry_changed_since_the_plan_makes_it_stale(honest: Plan) -> None:
    cols = collections(col_a=({"taxonomy_id": "tax_products", "priority": 6},))
    assert stale(honest, cols=cols) == [
        "production/products on col-a: its settings changed since the plan"
    ]


def test_an_entry_detached_since_the_plan_makes_it_stale(honest: Plan) -> None:
    assert stale(honest, cols=collections(col_b=())) == [
        "production/products on col-b: detached since the plan"
    ]


@pytest.mark.parametrize(
    ("entry", "words"),
    [({"execution_phase": 2}, "same settings"), ({"priority": 9}, "other settings")],
    ids=["as planned", "otherwise"],
)
def test_an_attach_attached_since_the_plan_makes_it_stale(
    honest: Plan, entry: dict[str, Any], words: str
) -> None:
    cols = collections(col_c=({"taxonomy_id": "tax_products", **entry},))
    assert stale(honest, cols=cols) == [
        f"production/products on col-c: attached since the plan ({words}), the plan attaches it"
    ]


def test_an_entry_of_a_taxonomy_the_plan_replaces_is_compared_under_its_old_id() -> None:
    made = planned(
        applied(desired_hierarchical("products"), {"collection": "col_a", "priority": 7})
    )
    assert [(c.action, c.taxonomy_id) for c in made.changes] == [
        ("replace", "tax_products"),
        ("reconfigure", None),
        ("detach", None),
    ]
    assert all_checks(made) == []
    cols = collections(col_a=({"taxonomy_id": "tax_products", "priority": 6},))
    assert stale(made, cols=cols) == [
        "production/products on col-a: its settings changed since the plan"
    ]


def test_a_taxonomy_deleted_since_the_plan_makes_it_stale(honest: Plan) -> None:
    reasons = stale(honest, heads=(OTHER,))
    assert "production/products on col-c: its taxonomy (tax_products) no longer exists" in reasons


# --- live: each planned again from its own fields ---------------------------------------------


def test_an_attach_edited_to_another_collection_is_refused(honest: Plan) -> None:
    """The reviewer read "attach to col-c"; the file now writes col_b... or col_a."""
    made = edited(
        honest,
        lambda cs: [_with(c, "attach", collection_id="col_d", backfills=["col_d"]) for c in cs],
    )
    cols = (*collections(), _col("col_d", "col-d"))
    assert problems(made, cols=cols) == [
        "'production/products on col-c' (attach) is not what taxsync plans from its own "
        "settings and the live collection"
    ]


def test_settings_that_differ_from_the_diff_are_refused(honest: Plan) -> None:
    """The reviewer read "execution_phase = 2"; the file writes phase 3 and priority 1000."""
    evil = {"execution_phase": 3, "priority": 1000}
    for action in ("attach", "reconfigure"):
        made = edited(honest, lambda cs, a=action: [_with(c, a, application=evil) for c in cs])
        assert static(made) == []
        assert len(problems(made)) == 1, action


def test_a_settings_null_the_diff_does_not_show_is_refused(honest: Plan) -> None:
    null = {"execution_phase": 2, "priority": None}
    made = edited(honest, lambda cs: [_with(c, "attach", application=null) for c in cs])
    assert "(attach) is not what taxsync plans" in " ".join(problems(made))


def test_a_detach_of_a_taxonomy_taxsync_does_not_manage_is_refused() -> None:
    """A consistent detach (what taxsync would plan if it managed "other"), added alone."""
    adopting = planned(applied(desired_flat("other")))
    detach = of(adopting, "detach")
    made = edited(planned(products()), lambda cs: [*cs, detach])
    assert static(made) == [] and stale(made) == []
    assert problems(made) == [
        "'production/other on col-a' (detach) is of a taxonomy taxsync does not manage (and "
        "the plan does not adopt it)"
    ]


def test_an_attach_of_a_taxonomy_taxsync_does_not_manage_is_refused() -> None:
    adopting = planned(applied(desired_flat("other"), {"collection": "col_c"}))
    made = edited(planned(products()), lambda cs: [*cs, of(adopting, "attach")])
    assert "taxonomy taxsync does not manage" in " ".join(problems(made))


def test_an_entry_under_another_taxonomys_name_is_refused(honest: Plan) -> None:
    """The label says products, the id is other's: apply would edit other's entry."""
    made = edited(
        honest,
        lambda cs: [_with(c, "reconfigure", taxonomy_id="tax_other") for c in cs],
    )
    assert "'tax_other' is not the live production/products" in " ".join(problems(made))


def test_an_id_of_a_taxonomy_the_plan_changes_under_another_name_is_refused() -> None:
    made = planned(dataclasses.replace(products(), config=desired_flat(top_k=2).config))
    assert [c.action for c in made.changes][0] == "new_version"
    made = edited(made, lambda cs: [_with(c, "attach", name="other") for c in cs])
    # Its id is products' and the plan changes products: its entry goes by one name.
    assert any("its taxonomy id is that of 'production/products'" in p for p in problems(made))


@pytest.mark.parametrize(
    ("action", "backfills"),
    [("attach", ["col_a"]), ("attach", ["col_c", "col_c"]), ("reconfigure", ["col_a"])],
    ids=["another collection", "twice", "a reconfigure"],
)
def test_backfills_other_than_the_attachs_own_collection_are_refused(
    honest: Plan, action: str, backfills: list[str]
) -> None:
    made = edited(honest, lambda cs: [_with(c, action, backfills=backfills) for c in cs])
    (problem,) = problems(made)
    if action == "attach":
        assert "an attach backfills its own collection or none" in problem
    else:  # col_a is its own: planned again, a reconfigure backfills nothing
        assert "(reconfigure) is not what taxsync plans" in problem


def test_an_attach_that_drops_its_backfill_is_refused(honest: Plan) -> None:
    """Backfills are compared exactly, with the backfill intent the plan records."""
    assert honest.backfill_on_change  # the honest plan was made with backfills on
    made = edited(honest, lambda cs: [_with(c, "attach", backfills=[]) for c in cs])
    assert len(problems(made)) == 1


@pytest.mark.parametrize(
    "update",
    [
        {"action": "reconfigure", "live_application": {"priority": 5}},
        {"collection_name": "harmless"},
        {"taxonomy_type": "hierarchical"},
        {"notes": ["nothing to see"]},
        {"diff": []},
        {"live_application": {"priority": 1}},
    ],
    ids=["action", "collection name", "type", "notes", "diff", "live_application"],
)
def test_any_field_that_is_not_what_the_planner_makes_is_refused(
    honest: Plan, update: dict[str, Any]
) -> None:
    made = edited(honest, lambda cs: [_with(c, "attach", **update) for c in cs])
    assert len(problems(made)) == 1


def test_a_reconfigure_of_a_taxonomy_the_plan_creates_is_refused() -> None:
    made = planned(applied(desired_flat("fresh"), {"collection": "col_c"}))
    lie = {"action": "reconfigure", "live_application": {"priority": 0}}
    made = edited(made, lambda cs: [_with(c, "attach", **lie) for c in cs])
    assert "(reconfigure) is not what taxsync plans" in " ".join(problems(made))


def test_an_attach_alongside_a_delete_is_refused() -> None:
    options = PlanOptions(api_url=URL, namespaces=frozenset({NS}), prune=True, detach_deleted=True)
    made = planned(options=options)
    attach = {"action": "attach", "application": {"priority": 1}, "live_application": None}
    made = edited(made, lambda cs: [_with(c, "detach", **attach) for c in cs])
    assert len(problems(made)) == 2


def test_a_detach_deleted_without_its_note_is_refused() -> None:
    """Not a detach for a delete, but a manifest's: no manifest declares the taxonomy."""
    options = PlanOptions(api_url=URL, namespaces=frozenset({NS}), prune=True, detach_deleted=True)
    made = edited(planned(options=options), lambda cs: [_with(c, "detach", notes=[]) for c in cs])
    assert len(problems(made)) == 2


def test_without_the_collections_an_attachment_is_not_let_through(honest: Plan) -> None:
    assert len(verify.live_problems(honest, live(), None)) == 3


# --- helpers -----------------------------------------------------------------------------------


def _with(change: Change, action: str, /, **update: Any) -> Change:
    """``change`` with ``update`` if it is an ``action`` change."""
    return change.model_copy(update=update) if change.action == action else change


def _col(collection_id: str, name: str) -> LiveCollection:
    return LiveCollection(collection_id=collection_id, name=name)
