"""`taxsync diff NS_A NS_B` over HTTP against the emulator: two namespaces whose
collections and retrievers have the same names but ids of their own compare equal, and what
does differ is listed field by field, by name."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, run_cli

A, B = "staging", "production"
# The same collections and retrievers by name in both namespaces, each with its own ids.
NAMES = {
    "collections": ("products", "product_images", "employees", "managers"),
    "retrievers": ("clip", "face"),
}


def ident(namespace: str, kind: str, name: str) -> str:
    """``col_staging_products``, ``ret_production_clip``: every id names its namespace."""
    return f"{'col' if kind == 'collections' else 'ret'}_{namespace}_{name}"


def seed(namespace: str, extra: dict[str, str]) -> dict[str, Any]:
    """The namespace's collections and retrievers; ``extra``: more collections, by the
    last part of their id."""
    named = {n: n for n in NAMES["collections"]} | extra
    collections = [
        {"collection_id": ident(namespace, "collections", part), "collection_name": name}
        for part, name in named.items()
    ]
    retrievers = [
        {"retriever_id": ident(namespace, "retrievers", n), "retriever_name": n}
        for n in NAMES["retrievers"]
    ]
    return {"collections": collections, "retrievers": retrievers}


def start(emulator: StartEmulator, extra: dict[str, str] | None = None) -> EmulatorHandle:
    extra = extra or {}
    return emulator(namespaces=[A, B], seed={"namespaces": {A: seed(A, extra), B: seed(B, extra)}})


def flat(namespace: str, top_k: int = 3) -> dict[str, Any]:
    return {
        "taxonomy_type": "flat",
        "retriever_id": ident(namespace, "retrievers", "clip"),
        "top_k": top_k,
        "input_mappings": [{"input_key": "v", "source_type": "vector", "path": "features.clip"}],
        "source_collection": {
            "collection_id": ident(namespace, "collections", "products"),
            "enrichment_fields": [{"field_path": "label", "merge_mode": "replace"}],
        },
    }


def tree(namespace: str, label: str = "Managers") -> dict[str, Any]:
    col = lambda name: ident(namespace, "collections", name)  # noqa: E731
    return {
        "taxonomy_type": "hierarchical",
        "retriever_id": ident(namespace, "retrievers", "face"),
        "input_mappings": [{"input_key": "f", "source_type": "vector", "path": "features.face"}],
        "hierarchical_nodes": [
            {"collection_id": col("employees"), "label": "Employees"},
            {
                "collection_id": col("managers"),
                "parent_collection_id": col("employees"),
                "retriever_id": ident(namespace, "retrievers", "clip"),
                "label": label,
            },
        ],
        "inference_collections": [col("product_images")],
    }


def create(
    srv: EmulatorHandle,
    namespace: str,
    name: str,
    config: dict[str, Any],
    *,
    description: str | None = "What the catalogue shows",
    metadata: dict[str, Any] | None = None,
) -> str:
    body = {"taxonomy_name": name, "description": description, "config": config}
    body["metadata"] = {"team": "search"} if metadata is None else metadata
    taxonomy_id: str = Api(srv).create(namespace, body)["taxonomy_id"]
    return taxonomy_id


def apply_to(srv: EmulatorHandle, namespace: str, collection: str, *entries: Any) -> None:
    path = f"/v1/collections/{ident(namespace, 'collections', collection)}"
    Api(srv).call("PATCH", path, namespace, {"taxonomy_applications": list(entries)})


def alike(srv: EmulatorHandle) -> None:
    """The same two taxonomies in both namespaces, applied alike, each with its own ids; only
    staging's carry taxsync's marker, and only staging spells out a default setting."""
    for namespace in (A, B):
        marker = {"managed_by": "taxsync"} if namespace == A else {}
        products = create(
            srv, namespace, "products", flat(namespace), metadata={"team": "search", **marker}
        )
        create(srv, namespace, "org", tree(namespace))
        target = ident(namespace, "collections", "employees")
        defaults = {"execution_phase": 1} if namespace == A else {}
        apply_to(
            srv,
            namespace,
            "product_images",
            {"taxonomy_id": products, "priority": 5, "target_collection_id": target, **defaults},
        )


def diff(srv: EmulatorHandle, *args: str) -> Any:
    return run_cli("diff", A, B, *args, env=env(srv))


def test_namespaces_alike_but_for_their_ids_are_the_same(emulator: StartEmulator) -> None:
    srv = start(emulator)
    alike(srv)

    result = diff(srv)

    assert result.code == 0, result.output
    assert result.out == "No differences. 2 taxonomy(ies) are the same in staging and production.\n"
    assert srv.writes() == []


def differences(srv: EmulatorHandle) -> None:
    """``alike``, then: production's ``products`` gets a new version (top_k 5), ``brands``
    reads differently, ``org`` is applied by another collection, and each namespace has a
    taxonomy of its own."""
    alike(srv)
    products = Api(srv).taxonomies(B)["products"]["taxonomy_id"]
    Api(srv).new_version(B, products, flat(B, top_k=5))
    create(srv, A, "brands", flat(A), description="Brands, by logo")
    create(srv, B, "brands", flat(B), description="Brands, by logo and name")
    for namespace, collection in ((A, "products"), (B, "employees")):
        org = Api(srv).taxonomies(namespace)["org"]["taxonomy_id"]
        apply_to(srv, namespace, collection, {"taxonomy_id": org, "execution_phase": 2})
    create(srv, A, "legacy", flat(A))
    create(srv, B, "seasonal", tree(B))


def test_what_differs_is_listed_by_name_field_by_field(emulator: StartEmulator) -> None:
    srv = start(emulator)
    differences(srv)

    result = diff(srv)

    assert result.code == 2, result.output
    assert result.out == (
        "taxsync diff: staging (A) → production (B)\n"
        "\n"
        "  - legacy: only in staging\n"
        "  + seasonal: only in production\n"
        "  ~ brands: differs\n"
        '      ~ description: "Brands, by logo" → "Brands, by logo and name"\n'
        "  ~ org: differs\n"
        "      ~ appliedTo: "
        '{"products": {"execution_phase": 2}} → {"employees": {"execution_phase": 2}}\n'
        "  ~ products: differs\n"
        "      ~ config.top_k: 3 → 5\n"
        "\n"
        "Diff: 1 only in staging, 1 only in production, 3 differ, 0 the same.\n"
    )


def test_json_names_both_namespaces_and_each_difference(emulator: StartEmulator) -> None:
    srv = start(emulator)
    differences(srv)

    result = diff(srv, "--format", "json")

    assert result.code == 2, result.output
    assert json.loads(result.out) == {
        "namespaces": {"a": A, "b": B},
        "only_in_a": ["legacy"],
        "only_in_b": ["seasonal"],
        "differing": [
            {
                "name": "brands",
                "diff": [
                    {
                        "path": "description",
                        "before": "Brands, by logo",
                        "after": "Brands, by logo and name",
                        "before_present": True,
                        "after_present": True,
                    }
                ],
            },
            {
                "name": "org",
                "diff": [
                    {
                        "path": "appliedTo",
                        "before": {"products": {"execution_phase": 2}},
                        "after": {"employees": {"execution_phase": 2}},
                        "before_present": True,
                        "after_present": True,
                    }
                ],
            },
            {
                "name": "products",
                "diff": [
                    {
                        "path": "config.top_k",
                        "before": 3,
                        "after": 5,
                        "before_present": True,
                        "after_present": True,
                    }
                ],
            },
        ],
        "same": 0,
    }


def test_references_differ_by_what_they_name(emulator: StartEmulator) -> None:
    """A reference to another retriever by name differs; so does an id the namespace has
    no name for (it stays an id); a node whose parent names another collection, too."""
    srv = start(emulator)
    config = flat(B)
    config["retriever_id"] = ident(B, "retrievers", "face")
    config["source_collection"]["collection_id"] = "col_nameless"
    create(srv, A, "products", flat(A))
    create(srv, B, "products", config)
    nodes = tree(B)
    nodes["hierarchical_nodes"][1]["parent_collection_id"] = ident(B, "collections", "products")
    create(srv, A, "org", tree(A))
    create(srv, B, "org", nodes)

    result = diff(srv)

    assert result.code == 2, result.output
    assert result.out.splitlines()[2:-2] == [
        "  ~ org: differs",
        '      ~ config.hierarchical_nodes[managers].parent_collection_id.name: "employees"'
        ' → "products"',
        "  ~ products: differs",
        '      ~ config.retriever_id.name: "clip" → "face"',
        '      ~ config.source_collection.collection_id: {"name": "products"} → "col_nameless"',
    ]


def test_an_unknown_namespace_is_a_one_line_error(emulator: StartEmulator) -> None:
    srv = start(emulator)

    result = run_cli("diff", A, "nowhere", env=env(srv))

    assert result.code == 1, result.output
    assert result.out == ""
    assert result.err == (
        "Error: namespace 'nowhere' does not exist in the Mixpeek organisation "
        "(taxsync does not create namespaces)\n"
    )


def test_an_api_error_is_a_one_line_error(emulator: StartEmulator) -> None:
    srv = start(emulator)
    srv.answer(lambda seen: seen.path == "/v1/collections/list", 403, "no access to collections")

    result = diff(srv)

    assert result.code == 1, result.output
    assert result.out == ""
    assert result.err.startswith("Error: ") and "no access to collections" in result.err
    assert len(result.err.splitlines()) == 1, result.err


# Reaches the terminal as colour, reverses the line, and is a workflow command in a step log.
HOSTILE = "evil\x1b[31m\u202e::error::x ##[group]"


def test_strings_from_the_api_are_shown_inert(emulator: StartEmulator) -> None:
    srv = start(emulator, extra={"hostile": HOSTILE})
    for namespace, description, priority in ((A, HOSTILE, 1), (B, "Brands", 2)):
        brands = create(srv, namespace, "brands", flat(namespace), description=description)
        apply_to(srv, namespace, "hostile", {"taxonomy_id": brands, "priority": priority})

    text, as_json = diff(srv), diff(srv, "--format", "json")

    assert (text.code, as_json.code) == (2, 2), text.output + as_json.output
    for out in (text.out, as_json.out):
        assert "##[" not in out and "\x1b" not in out and "\u202e" not in out, out
        assert not any(line.lstrip().startswith("::") for line in out.splitlines()), out
    # In the path, the name is plain text (no "::" at all); in a value, JSON.
    assert (
        "appliedTo.evil\\u001b[31m\\u202e:\\u003aerror:\\u003ax ##\\u005bgroup].priority: 1 → 2"
        in text.out
    )
    assert (
        '~ description: "evil\\u001b[31m\\u202e::error::x ##\\u005bgroup]" → "Brands"' in text.out
    )
    assert json.loads(as_json.out)["differing"][0]["diff"] == [
        {
            "path": f"appliedTo.{HOSTILE}.priority",
            "before": 1,
            "after": 2,
            "before_present": True,
            "after_present": True,
        },
        {
            "path": "description",
            "before": HOSTILE,
            "after": "Brands",
            "before_present": True,
            "after_present": True,
        },
    ]
