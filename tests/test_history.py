"""A taxonomy's history: its versions in order, each with the field diff since the one before."""

from __future__ import annotations

from typing import Any

from taxsync.history import history
from taxsync.wire import TaxonomyResponse
from tests.helpers import live_flat


def version(number: int, **config: Any) -> TaxonomyResponse:
    """Version ``number`` of ``live_flat()``, its config changed by ``config``."""
    base = live_flat().config
    return live_flat(
        version=number,
        created_at=f"2026-10-2{number}T09:00:00Z",
        config={**base, **config},
    )


def diffs(versions: list[TaxonomyResponse]) -> list[list[tuple[str, Any, Any]]]:
    return [
        [(d.path, d.before, d.after) for d in entry.diff]
        for entry in history("production", versions).versions
    ]


def test_versions_are_listed_oldest_first_whatever_the_input_order() -> None:
    result = history("production", [version(3), version(1), version(2)])
    assert [(v.version, v.created_at) for v in result.versions] == [
        (1, "2026-10-21T09:00:00Z"),
        (2, "2026-10-22T09:00:00Z"),
        (3, "2026-10-23T09:00:00Z"),
    ]


def test_each_version_shows_what_changed_since_the_one_before() -> None:
    versions = [
        version(1),
        version(2, top_k=3),
        live_flat(version=3, description="new words", config={**version(2, top_k=3).config}),
    ]
    assert diffs(versions) == [
        [],
        [("config.top_k", 1, 3)],
        [("description", "Product categories by image similarity", "new words")],
    ]


def test_defaults_nulls_and_order_are_not_changes() -> None:
    echoed = version(1).config
    declared = {k: v for k, v in echoed.items() if k not in ("top_k", "step_analytics")}
    reordered = {
        **declared,
        "source_collection": {
            **echoed["source_collection"],
            "enrichment_fields": list(reversed(echoed["source_collection"]["enrichment_fields"])),
        },
    }
    assert diffs([version(1), live_flat(version=2, config=reordered)]) == [[], []]


def test_keyed_items_are_named_by_their_key_in_the_diff() -> None:
    mappings = version(1).config["input_mappings"]
    moved = [{**mappings[0], "path": "features.siglip"}]
    (_, change) = diffs([version(1), version(2, input_mappings=moved)])
    assert change == [
        (
            "config.input_mappings[image_vector].path",
            "features.clip_vit_l_14",
            "features.siglip",
        )
    ]


def test_name_and_id_come_from_the_latest_version() -> None:
    old = live_flat(version=1, taxonomy_name="products")
    new = live_flat(version=2, taxonomy_name="catalogue", taxonomy_id="tax_products")
    result = history("production", [new, old])
    assert (result.namespace, result.name, result.taxonomy_id) == (
        "production",
        "catalogue",
        "tax_products",
    )


def test_no_versions_is_an_empty_history() -> None:
    result = history("production", [])
    assert result.versions == [] and result.taxonomy_id is None
