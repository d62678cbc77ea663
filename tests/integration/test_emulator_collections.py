"""Collections, retrievers, backfills and tasks on the emulator over loopback HTTP (raw httpx).

Every response is checked against the API contract's JSON Schema (collections.schema.json)
and against taxsync's wire models; the contract's request examples are sent as they are.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from taxsync.emulator import Faults, Seed, Store, TaskPolicy, local_transport
from taxsync.wire import (
    ApplyTaxonomyResponse,
    CollectionResponse,
    ErrorResponse,
    ListCollectionsResponse,
    ListRetrieversResponse,
    ListTasksResponse,
    RetrieverModelOutput,
    TaskResponse,
)
from tests.integration.contract_schema import assert_valid, example

NS = "production"
TASK_ID = re.compile(r"^task_[A-Za-z0-9]{20}$")
# The app's switches, set on a running emulator (they are plain attributes).
SWITCHES = ("lenient_taxonomy_refs", "applied_taxonomy_delete", "refuse_empty_backfill")

SEED: dict[str, Any] = {
    "namespaces": {
        NS: {
            "collections": [
                {
                    "collection_id": "col_products_v1",
                    "collection_name": "products",
                    "document_count": 1200,
                },
                {
                    "collection_id": "col_catalog_categories",
                    "collection_name": "catalog_categories",
                    "description": "One document per catalogue category",
                    "document_count": 214,
                },
                {"collection_id": "col_fresh", "collection_name": "fresh_uploads"},
            ],
            "retrievers": [
                {
                    "retriever_id": "ret_clip_v1",
                    "retriever_name": "catalog_clip",
                    "collection_ids": ["col_catalog_categories"],
                },
                {
                    "retriever_id": "ret_text_v1",
                    "collection_ids": ["col_products_v1", "col_catalog_categories"],
                    "tags": ["text"],
                },
            ],
        }
    }
}


def start(emulator: Any, seed: dict[str, Any] | None = SEED, **switches: Any) -> Any:
    """A served emulator with ``production`` declared, seeded, and these switches set
    (``task_policy`` goes to the store, the others to the app)."""
    store = Store(None)
    if seed is not None:
        store.seed(Seed.parse(seed))
    policy = switches.pop("task_policy", None)
    if policy is not None:
        store.task_policy = policy
    srv = emulator(store=store, namespaces=[NS], seed=None)
    for name, value in switches.items():
        assert name in SWITCHES, name
        setattr(srv.app, name, value)
    return srv


@pytest.fixture
def http(emulator: Any) -> Iterator[tuple[Any, httpx.Client]]:
    srv = start(emulator)
    with client(srv) as session:
        yield srv, session


def client(srv: Any, namespace: str | None = NS) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers=srv.headers(namespace), timeout=10)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    """Check the Mixpeek envelope and return its ``error`` object."""
    assert response.status_code == status, response.text
    body = response.json()
    ErrorResponse.model_validate(body)
    assert_valid(body, "ErrorResponse")
    assert body["success"] is False and body["status"] == status
    assert body["error"]["type"] == error_type
    error: dict[str, Any] = body["error"]
    return error


def create_taxonomy(http: httpx.Client, name: str = "product_categories") -> str:
    body = example("CreateTaxonomyRequest.flat")
    body["taxonomy_name"] = name
    taxonomy_id: str = ok(http.post("/v1/taxonomies", json=body))["taxonomy_id"]
    return taxonomy_id


def attach(http: httpx.Client, collection: str, *taxonomy_ids: str) -> dict[str, Any]:
    entries = [{"taxonomy_id": t} for t in taxonomy_ids]
    patched: dict[str, Any] = ok(
        http.patch(f"/v1/collections/{collection}", json={"taxonomy_applications": entries})
    )
    return patched


def names(page: dict[str, Any]) -> list[str]:
    return [c.get("collection_name") or c.get("retriever_name") for c in page["results"]]


def backfill(http: httpx.Client, collection: str, taxonomy_id: str, **extra: Any) -> httpx.Response:
    body = {"taxonomy_id": taxonomy_id, **extra}
    return http.post(f"/v1/collections/{collection}/apply-taxonomy", json=body)


def task_statuses(srv: Any, task_id: str, reads: int) -> list[str]:
    """``reads`` GETs of a task with Bearer auth only (no X-Namespace), each validated."""
    statuses = []
    with client(srv, namespace=None) as bare:
        for _ in range(reads):
            task = ok(bare.get(f"/v1/tasks/{task_id}"))
            assert_valid(task, "TaskResponse")
            TaskResponse.model_validate(task)
            statuses.append(task["status"])
    return statuses


# --- collections: list and get --------------------------------------------------------------


def test_list_and_get_collections_match_the_contract(http: tuple[Any, httpx.Client]) -> None:
    _, session = http
    page = ok(session.post("/v1/collections/list", json={}))
    assert_valid(page, "ListCollectionsResponse")
    ListCollectionsResponse.model_validate(page)
    assert names(page) == ["products", "catalog_categories", "fresh_uploads"]
    assert page["total_count"] == 3 and page["warnings"] == []
    assert page["pagination"]["page_size"] == 100 and page["pagination"]["next_cursor"] is None
    listed = {c["collection_id"]: c for c in page["results"]}
    assert listed["col_catalog_categories"]["retriever_count"] == 2  # both retrievers search it
    assert listed["col_products_v1"]["retriever_count"] == 1
    assert all(c["indexing_status"] is None for c in page["results"])  # null in lists
    assert page["stats"] == {
        "total_documents": 1414,
        "avg_documents_per_collection": 1414 / 3,
        "collections_with_taxonomies": 0,
        "total_feature_extractors": 1,
        "total_taxonomies": 0,
        "total_retrievers": 3,
    }
    by_name = ok(session.get("/v1/collections/catalog_categories"))
    by_id = ok(session.get("/v1/collections/col_catalog_categories"))
    assert by_name == by_id
    assert_valid(by_id, "CollectionResponse")
    CollectionResponse.model_validate(by_id)
    assert list(by_id) == list(CollectionResponse.model_fields)  # every field, in wire order
    assert by_id["indexing_status"] == "quiesced" and by_id["document_count"] == 214
    assert by_id["feature_extractor"]["feature_extractor_id"] == "text_extractor_v1"
    assert by_id["source"] == {"type": "bucket", "bucket_ids": ["bkt_catalog_categories"]}
    assert by_id["taxonomy_applications"] is None and by_id["taxonomy_count"] == 0
    missing = assert_error(session.get("/v1/collections/col_nope"), 404, "NotFoundError")
    assert missing["details"] == {"resource": "collection", "id": "col_nope"}


def test_get_alias_search_and_the_system_collection(http: tuple[Any, httpx.Client]) -> None:
    _, session = http
    posted = ok(session.post("/v1/collections/list"))
    assert ok(session.get("/v1/collections", params={"namespace_id": "ignored"})) == posted
    with_system = ok(session.get("/v1/collections", params={"include_system": "true"}))
    assert names(with_system) == ["_direct_upsert", *names(posted)]
    assert_valid(with_system, "ListCollectionsResponse")
    body_system = ok(session.post("/v1/collections/list", json={"include_system": True}))
    assert names(body_system)[0] == "_direct_upsert"
    system = ok(session.get("/v1/collections/_direct_upsert"))
    assert system["source"] == {"type": "direct_upsert"} and system["document_count"] == 0
    assert ok(session.get(f"/v1/collections/{system['collection_id']}")) == system
    refused = session.patch("/v1/collections/_direct_upsert", json={"description": "x"})
    assert_error(refused, 400, "BadRequestError")
    assert names(ok(session.get("/v1/collections", params={"search": "CATALOG"}))) == [
        "catalog_categories"
    ]
    assert names(ok(session.post("/v1/collections/list", json={"search": "*uploads"}))) == [
        "fresh_uploads"
    ]


def test_filters_reach_into_taxonomy_applications(http: tuple[Any, httpx.Client]) -> None:
    _, session = http
    first, second = create_taxonomy(session, "a"), create_taxonomy(session, "b")
    attach(session, "products", first, second)
    attach(session, "catalog_categories", second)
    by_taxonomy = example("ListCollectionsRequest.by-taxonomy")
    by_taxonomy["filters"]["AND"][0]["value"] = first
    assert names(ok(session.post("/v1/collections/list", json=by_taxonomy))) == ["products"]
    by_taxonomy["filters"]["AND"][0]["value"] = second
    assert names(ok(session.post("/v1/collections/list", json=by_taxonomy))) == [
        "products",
        "catalog_categories",
    ]

    def matching(*conditions: dict[str, Any], **extra: Any) -> list[str]:
        body = {"filters": {"AND": list(conditions)}, **extra}
        return names(ok(session.post("/v1/collections/list", json=body)))

    path = "taxonomy_applications.taxonomy_id"
    assert matching({"field": path, "operator": "ne", "value": first}) == [
        "catalog_categories",
        "fresh_uploads",
    ]
    assert matching({"field": path, "operator": "in", "value": [first, "tax_x"]}) == ["products"]
    assert matching({"field": path, "operator": "exists", "value": False}) == ["fresh_uploads"]
    by_name = example("ListCollectionsRequest.by-name")  # case_sensitive: true
    by_name["filters"]["AND"][0]["value"] = "PRODUCTS"
    assert names(ok(session.post("/v1/collections/list", json=by_name))) == []
    by_name["filters"]["AND"][0]["value"] = "products"
    assert names(ok(session.post("/v1/collections/list", json=by_name))) == ["products"]
    assert matching({"field": "collection_name", "operator": "eq", "value": "PRODUCTS"}) == [
        "products"
    ]


def test_pages_default_to_100_and_the_cap_applies(emulator: Any) -> None:
    many = [
        {"collection_id": f"col_c{i:03d}", "collection_name": f"collection_{i:03d}"}
        for i in range(130)
    ]
    srv = start(emulator, {"namespaces": {NS: {"collections": many}}})
    with client(srv) as session:
        first = ok(session.post("/v1/collections/list", params={"include_total": "true"}))
        assert len(first["results"]) == 100 and first["total_count"] == 130
        assert first["pagination"]["total"] == 130 and first["pagination"]["total_pages"] == 2
        rest = ok(
            session.post(
                "/v1/collections/list", params={"cursor": first["pagination"]["next_cursor"]}
            )
        )
        assert len(rest["results"]) == 30 and rest["pagination"]["next_cursor"] is None
        srv.app.max_page_size = 7
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = ok(
                session.post(
                    "/v1/collections/list",
                    params={"cursor": cursor} if cursor else {},
                    json={"limit": 50},
                )
            )
            assert len(page["results"]) <= 7
            seen += names(page)
            cursor = page["pagination"]["next_cursor"]
            if cursor is None:
                break
    assert seen == [c["collection_name"] for c in many]


# --- collections: PATCH -----------------------------------------------------------------------


def test_patch_replaces_taxonomy_applications(http: tuple[Any, httpx.Client]) -> None:
    _, session = http
    first, second = create_taxonomy(session, "a"), create_taxonomy(session, "b")
    before = ok(session.get("/v1/collections/products"))
    body = example("PatchCollectionRequest.attach-taxonomy")
    body["taxonomy_applications"][0]["taxonomy_id"] = first
    body["taxonomy_applications"][1]["taxonomy_id"] = second
    body["taxonomy_applications"][1]["taxonomy_version"] = 2  # an unknown key: kept, echoed
    del body["taxonomy_applications"][1]["execution_phase"]  # filled in by the server
    patched = ok(session.patch("/v1/collections/products", json=body))
    assert_valid(patched, "CollectionResponse")
    expected = [dict(e) for e in body["taxonomy_applications"]]
    expected[1]["execution_phase"] = 1
    assert patched["taxonomy_applications"] == expected
    assert patched["taxonomy_count"] == 2
    assert patched["updated_at"] > before["updated_at"]
    assert {
        k: v
        for k, v in patched.items()
        if k not in ("taxonomy_applications", "taxonomy_count", "updated_at")
    } == {
        k: v
        for k, v in before.items()
        if k not in ("taxonomy_applications", "taxonomy_count", "updated_at")
    }
    assert ok(session.get("/v1/collections/col_products_v1")) == patched

    replaced = ok(
        session.patch(
            "/v1/collections/products",
            json={"taxonomy_applications": [{"taxonomy_id": second, "priority": None}]},
        )
    )
    assert replaced["taxonomy_applications"] == [
        {"taxonomy_id": second, "priority": None, "execution_phase": 1}
    ]
    emptied = ok(session.patch("/v1/collections/products", json={"taxonomy_applications": []}))
    assert emptied["taxonomy_applications"] == [] and emptied["updated_at"] > replaced["updated_at"]
    nulled = ok(session.patch("/v1/collections/products", json={"taxonomy_applications": None}))
    assert nulled["taxonomy_applications"] is None
    described = ok(
        session.patch("/v1/collections/products", json={"description": "d", "enabled": False})
    )
    assert described["taxonomy_applications"] is None and described["description"] == "d"
    assert described["enabled"] is False


def test_patch_refusals(http: tuple[Any, httpx.Client]) -> None:
    srv, session = http
    tax = create_taxonomy(session)
    patch = session.patch
    assert_error(patch("/v1/collections/products", json={}), 400, "BadRequestError")
    assert_error(patch("/v1/collections/products"), 400, "BadRequestError")
    for field in (
        "source",
        "feature_extractor",
        "field_passthrough",
        "tiering_rules",
        "document_count",
    ):
        error = assert_error(
            patch("/v1/collections/products", json={field: {}, "description": "x"}),
            400,
            "BadRequestError",
        )
        assert error["details"] == {"read_only_fields": [field]} and field in error["message"]
    unknown = assert_error(
        patch("/v1/collections/products", json={"colour": "red"}), 422, "ValidationError"
    )
    (entry,) = unknown["details"]["validation_errors"]
    assert entry["type"] == "extra_forbidden" and entry["loc"] == ["body", "colour"]
    assert "taxonomy_applications" in entry["accepted_keys"]
    twice = [{"taxonomy_id": tax}, {"taxonomy_id": tax, "priority": 3}]
    duplicate = assert_error(
        patch("/v1/collections/products", json={"taxonomy_applications": twice}),
        422,
        "ValidationError",
    )
    (entry,) = duplicate["details"]["validation_errors"]
    assert entry["type"] == "duplicate_taxonomy_id" and tax in entry["msg"]
    for bad in (
        {"taxonomy_id": 5},
        {"taxonomy_id": tax, "execution_phase": 4},
        {"taxonomy_id": tax, "execution_mode": "live"},
        {"priority": 1},
    ):
        assert_error(
            patch("/v1/collections/products", json={"taxonomy_applications": [bad]}),
            422,
            "ValidationError",
        )
    ghost = assert_error(
        patch(
            "/v1/collections/products",
            json={"taxonomy_applications": [{"taxonomy_id": tax}, {"taxonomy_id": "tax_ghost"}]},
        ),
        404,
        "NotFoundError",
    )
    assert ghost["details"] == {"resource": "taxonomy", "id": "tax_ghost"}
    assert_error(patch("/v1/collections/nope", json={"description": "x"}), 404, "NotFoundError")
    assert_error(
        patch("/v1/collections/products", json={"collection_name": "fresh_uploads"}),
        409,
        "AlreadyExistsError",
    )
    # Nothing above changed the collection.
    assert srv.store.get_collection(NS, "products")["taxonomy_applications"] is None
    renamed = ok(patch("/v1/collections/products", json={"collection_name": "products_v1"}))
    assert renamed["collection_id"] == "col_products_v1"
    assert ok(session.get("/v1/collections/products_v1")) == renamed
    assert_error(session.get("/v1/collections/products"), 404, "NotFoundError")


def test_lenient_switch_stores_unknown_taxonomies(emulator: Any) -> None:
    srv = start(emulator, lenient_taxonomy_refs=True)
    with client(srv) as session:
        patched = attach(session, "products", "tax_not_created_yet")
    assert patched["taxonomy_applications"] == [
        {"taxonomy_id": "tax_not_created_yet", "execution_phase": 1, "priority": 0}
    ]


# --- backfills and tasks ----------------------------------------------------------------------


def test_backfill_starts_a_task_that_completes_over_polls(emulator: Any) -> None:
    srv = start(emulator, task_policy=TaskPolicy(polls=2))
    with client(srv) as session:
        tax = create_taxonomy(session)
        attach(session, "products", tax)
        body = example("ApplyTaxonomyRequest.backfill")
        body["taxonomy_id"] = tax
        accepted = ok(session.post("/v1/collections/products/apply-taxonomy", json=body))
        again = ok(backfill(session, "col_products_v1", tax))
    assert_valid(accepted, "ApplyTaxonomyResponse")
    ApplyTaxonomyResponse.model_validate(accepted)
    assert set(accepted) == set(example("ApplyTaxonomyResponse.accepted"))
    assert accepted["status"] == "PENDING" and TASK_ID.match(accepted["task_id"])
    assert accepted["collection_id"] == "col_products_v1"  # the resolved id, asked by name
    assert accepted["taxonomy_id"] == tax and accepted["estimated_documents"] == 1200
    assert again["task_id"] != accepted["task_id"]  # never deduplicated
    assert srv.store.count_tasks() == 2
    statuses = task_statuses(srv, accepted["task_id"], 6)
    assert statuses == [
        "PENDING",
        "PENDING",
        "IN_PROGRESS",
        "IN_PROGRESS",
        "COMPLETED",
        "COMPLETED",
    ]
    done = srv.store.get_task(accepted["task_id"], count_read=False)
    assert done["task_type"] == "api_taxonomies_materialize" and done["error"] is None
    assert done["outputs"] == [
        {"documents_processed": 1200, "documents_enriched": 1200, "errors": 0}
    ]
    assert done["inputs"] == [
        {
            "collection_id": "col_products_v1",
            "taxonomy_id": tax,
            "batch_size": 1000,
            "parallelism": 4,
        }
    ]
    assert done["additional_data"]["collection_id"] == "col_products_v1"
    assert task_statuses(srv, again["task_id"], 1) == ["PENDING"]  # each task counts its own


def test_backfill_refusals(emulator: Any) -> None:
    srv = start(emulator)
    with client(srv) as session:
        tax, other = create_taxonomy(session, "a"), create_taxonomy(session, "b")
        attach(session, "products", tax)
        attach(session, "fresh_uploads", tax)
        missing = assert_error(backfill(session, "col_nope", tax), 404, "NotFoundError")
        assert missing["details"]["resource"] == "collection"
        ghost = assert_error(backfill(session, "products", "tax_ghost"), 404, "NotFoundError")
        assert ghost["details"] == {"resource": "taxonomy", "id": "tax_ghost"}
        detached = assert_error(backfill(session, "products", other), 400, "BadRequestError")
        assert detached["details"] == {"collection_id": "col_products_v1", "taxonomy_id": other}
        credits = backfill(session, "products", tax, budget_limits={"max_credits": 10})
        assert "max_credits" in assert_error(credits, 400, "BadRequestError")["message"]
        empty = assert_error(backfill(session, "fresh_uploads", tax), 400, "BadRequestError")
        assert empty["details"] == {"collection_id": "col_fresh", "document_count": 0}
        for bad in (
            {"taxonomy_id": tax, "batch_size": 50},
            {"taxonomy_id": tax, "parallelism": 21},
            {"taxonomy_id": tax, "dry_run": True},
            {},
        ):
            assert_error(
                session.post("/v1/collections/products/apply-taxonomy", json=bad),
                422,
                "ValidationError",
            )
        assert_error(
            session.post("/v1/collections/products/apply-taxonomy"), 422, "ValidationError"
        )
        assert srv.store.count_tasks() == 0
        srv.app.refuse_empty_backfill = False
        accepted = ok(backfill(session, "fresh_uploads", tax))
    assert accepted["estimated_documents"] == 0 and srv.store.count_tasks() == 1


def test_tasks_end_failed_or_canceled_by_policy(emulator: Any) -> None:
    srv = start(
        emulator,
        task_policy=TaskPolicy(
            polls=0, outcome="failed", error="Retriever 'ret_clip_v1' not found in namespace"
        ),
    )
    with client(srv) as session:
        tax = create_taxonomy(session)
        attach(session, "products", tax)
        failed_id = ok(backfill(session, "products", tax))["task_id"]
        srv.store.task_policy = TaskPolicy(polls=1, outcome="canceled")
        canceled_id = ok(backfill(session, "products", tax, budget_limits={"max_time_ms": 60000}))[
            "task_id"
        ]
    assert task_statuses(srv, failed_id, 2) == ["FAILED", "FAILED"]
    failed = srv.store.get_task(failed_id)
    assert (
        failed["error"]
        == failed["additional_data"]["error"]
        == "Retriever 'ret_clip_v1' not found in namespace"
    )
    assert failed["outputs"] is None
    assert task_statuses(srv, canceled_id, 3) == ["PENDING", "IN_PROGRESS", "CANCELED"]
    stats = srv.store.get_task(canceled_id)["additional_data"]["stats"]
    assert stats["budget"] == {"max_time_ms": 60000} and stats["spent"] == {"time_ms": 60000}
    assert stats["stopped_at"]


def test_tasks_list_filters_and_kill(emulator: Any) -> None:
    srv = start(emulator, task_policy=TaskPolicy(polls=3))
    with client(srv) as session:
        tax = create_taxonomy(session)
        attach(session, "products", tax)
        attach(session, "catalog_categories", tax)
        ids = [
            ok(backfill(session, name, tax))["task_id"]
            for name in ("products", "catalog_categories", "products")
        ]
    bare = client(srv, namespace=None)  # tasks are Bearer only
    with bare:
        bare.get(f"/v1/tasks/{ids[0]}")
        for _ in range(4):
            bare.get(f"/v1/tasks/{ids[1]}")  # -> IN_PROGRESS

        def listed(body: dict[str, Any] | None = None, **params: Any) -> list[str]:
            page = ok(bare.post("/v1/tasks/list", json=body, params=params))
            assert_valid(page, "ListTasksResponse")
            ListTasksResponse.model_validate(page)
            assert set(page) == {"results", "pagination"}  # no count on this list
            return [t["task_id"] for t in page["results"]]

        assert listed() == ids
        active = example("ListTasksRequest.materialize-active")  # sorted by created_at, desc
        assert listed(active) == [ids[1]]
        assert listed(
            {"status": "PENDING", "sort": {"field": "created_at", "direction": "desc"}}
        ) == [ids[2], ids[0]]
        on_products = {
            "filters": {
                "AND": [
                    {
                        "field": "additional_data.collection_id",
                        "operator": "eq",
                        "value": "col_products_v1",
                    }
                ]
            }
        }
        assert listed(on_products) == [ids[0], ids[2]]
        assert listed({"search": ids[1][-8:]}) == [ids[1]]
        assert listed({"task_type": "api_taxonomies_execute"}) == []
        first = ok(bare.post("/v1/tasks/list", params={"limit": 2}))
        assert len(first["results"]) == 2
        assert listed(cursor=first["pagination"]["next_cursor"]) == [ids[2]]
        assert_error(bare.post("/v1/tasks/list", json={"limit": 2}), 422, "ValidationError")
        assert_error(bare.post("/v1/tasks/list", json={"status": "DONE"}), 422, "ValidationError")

        killed = ok(bare.delete(f"/v1/tasks/{ids[1]}"))
        assert killed == example("GenericDeleteResponse.kill-task")
        assert_valid(killed, "GenericDeleteResponse")
        assert ok(bare.get(f"/v1/tasks/{ids[1]}"))["status"] == "CANCELED"
        assert ok(bare.delete(f"/v1/tasks/{ids[1]}")) == killed  # idempotent
        assert ok(bare.delete("/v1/tasks/task_unknown")) == killed
        assert_error(bare.get("/v1/tasks/task_unknown"), 404, "NotFoundError")
    assert task_statuses(srv, ids[1], 8) == ["CANCELED"] * 8  # a killed task stays killed
    assert task_statuses(srv, ids[0], 6)[-1] == "COMPLETED"
    assert ok(httpx.delete(f"{srv.url}/v1/tasks/{ids[0]}", headers=srv.headers()))["success"]
    assert srv.store.get_task(ids[0])["status"] == "COMPLETED"  # a finished task stays finished


# --- retrievers --------------------------------------------------------------------------------


def test_retrievers_list_filters_and_get(http: tuple[Any, httpx.Client]) -> None:
    _, session = http
    page = ok(session.post("/v1/retrievers/list", json={}))
    assert_valid(page, "ListRetrieversResponse")
    ListRetrieversResponse.model_validate(page)
    assert names(page) == ["catalog_clip", "text_v1"] and page["total"] == 2
    assert "total_count" not in page and page["warnings"] == []
    assert ok(session.get("/v1/retrievers")) == page
    for retriever in page["results"]:
        assert retriever["collection_identifiers"] == retriever["collection_ids"]
        assert retriever["fusion"] is None and retriever["version"] == 1

    def matching(filters: dict[str, Any], **extra: Any) -> list[str]:
        return names(ok(session.post("/v1/retrievers/list", json={"filters": filters, **extra})))

    by_name = example("ListRetrieversRequest.by-name")
    assert names(ok(session.post("/v1/retrievers/list", json=by_name))) == ["catalog_clip"]
    assert matching({"retriever_name": "CATALOG_CLIP"}) == ["catalog_clip"]  # case-insensitive
    assert matching({"retriever_name": "CATALOG_CLIP"}, case_sensitive=True) == []
    assert matching({"collection_ids": {"$in": ["col_products_v1", "col_x"]}}) == ["text_v1"]
    assert matching({"collection_ids": "col_catalog_categories"}) == ["catalog_clip", "text_v1"]
    assert matching({"tags": {"$nin": ["text"]}}) == ["catalog_clip"]
    assert_error(
        session.post("/v1/retrievers/list", json={"filters": {"retriever_name": {"$regex": "c"}}}),
        400,
        "BadRequestError",
    )
    limit = assert_error(
        session.post("/v1/retrievers/list", json={"limit": 1}), 422, "ValidationError"
    )
    assert limit["details"]["validation_errors"][0]["type"] == "extra_forbidden"
    first = ok(session.post("/v1/retrievers/list", params={"limit": 1}))
    assert names(first) == ["catalog_clip"] and first["total"] == 2
    rest = ok(session.get("/v1/retrievers", params={"cursor": first["pagination"]["next_cursor"]}))
    assert names(rest) == ["text_v1"]
    got = ok(session.get("/v1/retrievers/catalog_clip"))
    assert got == ok(session.get("/v1/retrievers/ret_clip_v1")) == page["results"][0]
    assert_valid(got, "RetrieverModelOutput")
    RetrieverModelOutput.model_validate(got)
    missing = assert_error(session.get("/v1/retrievers/ret_nope"), 404, "NotFoundError")
    assert missing["details"] == {"resource": "retriever", "id": "ret_nope"}


# --- namespaces ------------------------------------------------------------------------------------


def test_unresolved_namespace_lists_are_empty_and_flagged(http: tuple[Any, httpx.Client]) -> None:
    srv, _ = http
    with client(srv, namespace="prodution") as typo:
        collections = typo.post("/v1/collections/list", json={"limit": 10})
        retrievers = typo.get("/v1/retrievers")
        for response in (collections, retrievers):
            assert response.status_code == 200
            assert response.headers["x-namespace-unresolved"] == "true"
        expected = example("ListCollectionsResponse.namespace-unresolved")
        expected["pagination"]["page_size"] = 10
        body = collections.json()
        assert body == {
            **expected,
            "stats": None,
            "warnings": [{**expected["warnings"][0], "stage": None}],
        }
        assert_valid(body, "ListCollectionsResponse")
        retriever_body = retrievers.json()
        assert_valid(retriever_body, "ListRetrieversResponse")
        assert retriever_body["results"] == [] and retriever_body["total"] == 0
        assert retriever_body["warnings"] == body["warnings"]
        # Only the lists degrade this way; single-resource routes stay 404.
        assert_error(typo.get("/v1/collections/products"), 404, "NotFoundError")
        assert_error(typo.get("/v1/retrievers/ret_clip_v1"), 404, "NotFoundError")
    with client(srv) as known:
        resolved = known.post("/v1/collections/list")
        assert "x-namespace-unresolved" not in resolved.headers
    with client(srv, namespace=None) as headless:
        assert_error(headless.get("/v1/collections"), 400, "BadRequestError")


def test_an_empty_declared_namespace_resolves_but_unknown_ids_do_not(emulator: Any) -> None:
    srv = emulator(namespaces=["fresh"], seed=None)
    with client(srv, namespace="fresh") as fresh:
        page = ok(fresh.post("/v1/collections/list"))
        assert page["results"] == [] and page["warnings"] == []
    with client(srv, namespace="ns_0123456789abcdef") as by_id:
        unresolved = by_id.get("/v1/retrievers")
    assert unresolved.headers["x-namespace-unresolved"] == "true"


# --- deleting an applied taxonomy -------------------------------------------------------------------


def test_deleting_an_applied_taxonomy_dangles_by_default(http: tuple[Any, httpx.Client]) -> None:
    _, session = http
    tax = create_taxonomy(session)
    attach(session, "products", tax)
    assert ok(session.delete(f"/v1/taxonomies/{tax}"))["taxonomy_id"] == tax
    dangling = ok(session.get("/v1/collections/products"))["taxonomy_applications"]
    assert dangling == [{"taxonomy_id": tax, "execution_phase": 1, "priority": 0}]
    gone = assert_error(backfill(session, "products", tax), 404, "NotFoundError")
    assert gone["details"] == {"resource": "taxonomy", "id": tax}


def test_strict_mode_refuses_to_delete_an_applied_taxonomy(emulator: Any) -> None:
    srv = start(emulator, applied_taxonomy_delete="strict")
    with client(srv) as session:
        tax, free = create_taxonomy(session, "a"), create_taxonomy(session, "b")
        attach(session, "catalog_categories", tax)
        attach(session, "products", tax, free)
        refused = assert_error(session.delete(f"/v1/taxonomies/{tax}"), 400, "BadRequestError")
        assert refused["details"] == {
            "taxonomy_id": tax,
            "collection_ids": ["col_products_v1", "col_catalog_categories"],
        }
        assert "col_products_v1" in refused["message"]
        assert ok(session.get(f"/v1/taxonomies/{tax}"))["taxonomy_id"] == tax
        attach(session, "products", free)
        ok(session.patch("/v1/collections/catalog_categories", json={"taxonomy_applications": []}))
        assert ok(session.delete(f"/v1/taxonomies/{tax}"))["taxonomy_id"] == tax


# --- faults ----------------------------------------------------------------------------------------


NEW_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/collections/list", {}),
    ("GET", "/v1/collections", None),
    ("GET", "/v1/collections/products", None),
    ("PATCH", "/v1/collections/products", {"description": "x"}),
    ("POST", "/v1/collections/products/apply-taxonomy", {"taxonomy_id": "tax_x"}),
    ("POST", "/v1/retrievers/list", {}),
    ("GET", "/v1/retrievers", None),
    ("GET", "/v1/retrievers/ret_clip_v1", None),
    ("POST", "/v1/tasks/list", {}),
    ("GET", "/v1/tasks/task_x", None),
    ("DELETE", "/v1/tasks/task_x", None),
]


def test_throttling_and_outages_cover_the_new_routes(emulator: Any) -> None:
    srv = start(emulator)
    srv.app.faults = Faults(rate_429=1, retry_after_seconds=2, seed=1)
    with client(srv) as session:
        for method, path, body in NEW_ROUTES:
            response = session.request(method, path, json=body)
            error = assert_error(response, 429, "TooManyRequestsError")
            assert response.headers["retry-after"] == "2"
            assert error["details"]["api_name"] == path.split("/")[2]
        srv.app.faults = Faults(rate_503=1, seed=1)
        for method, path, body in NEW_ROUTES:
            assert_error(
                session.request(method, path, json=body), 503, "InferenceServiceUnavailableError"
            )
        srv.app.faults = Faults(rate_500=1, seed=1)
        for method, path, body in NEW_ROUTES:
            response = session.request(method, path, json=body)
            if method == "GET" or path.endswith("/list"):
                assert_error(response, 500, "InternalServerError")
            else:
                assert response.status_code != 500  # 500s hit reads only
    assert srv.store.get_collection(NS, "products")["description"] == "x"


def test_lost_connections_on_the_new_writes(emulator: Any) -> None:
    srv = start(emulator)
    with client(srv) as session:
        tax = create_taxonomy(session)
        srv.app.faults = Faults(rate_reset=1, seed=3)
        with pytest.raises(httpx.TransportError):
            attach(session, "products", tax)
        assert srv.store.get_collection(NS, "products")["taxonomy_applications"] is None
        srv.app.faults = Faults(rate_drop_after_commit=1, seed=3)
        with pytest.raises(httpx.RemoteProtocolError):
            attach(session, "products", tax)  # committed, then the reply is lost
        assert srv.store.get_collection(NS, "products")["taxonomy_count"] == 1
        with pytest.raises(httpx.RemoteProtocolError):
            backfill(session, "products", tax)
        assert srv.store.count_tasks() == 1
        (task,) = srv.store.list_tasks().results
        with pytest.raises(httpx.RemoteProtocolError):
            session.delete(f"/v1/tasks/{task['task_id']}")
        assert srv.store.get_task(task["task_id"], count_read=False)["status"] == "CANCELED"
        # Reads and refused writes are answered normally.
        assert ok(session.get("/v1/collections/products"))["taxonomy_count"] == 1
        assert_error(backfill(session, "products", "tax_ghost"), 404, "NotFoundError")


# --- the contract's full examples, seeded and read back ----------------------------------------------


def test_contract_examples_round_trip_through_a_seed(emulator: Any) -> None:
    collection = example("CollectionResponse.with-taxonomy-applications")
    retriever = example("RetrieverModelOutput.feature-search")
    seeded_collection = {
        k: v for k, v in collection.items() if k not in ("taxonomy_count", "retriever_count")
    }
    seeded_retriever = {k: v for k, v in retriever.items() if k != "collection_identifiers"}
    seed = {
        "namespaces": {NS: {"collections": [seeded_collection], "retrievers": [seeded_retriever]}}
    }
    srv = start(emulator, seed)
    with client(srv) as session:
        got = ok(session.get(f"/v1/collections/{collection['collection_id']}"))
        assert {k: got[k] for k in collection if k not in ("retriever_count",)} == {
            k: v for k, v in collection.items() if k != "retriever_count"
        }
        assert got["retriever_count"] == 0  # the retriever searches another collection
        assert ok(session.get("/v1/retrievers/catalog_clip")) == {
            **{k: None for k in RetrieverModelOutput.model_fields},
            **retriever,
        }
        page = ok(session.post("/v1/collections/list", json={}))
        assert set(example("ListCollectionsResponse.page1")) == set(page)
        assert set(example("ListRetrieversResponse.page1")) == set(
            ok(session.get("/v1/retrievers"))
        )


# --- in process, with create_app's own defaults (the --local path) -------------------------------


def test_the_embedded_emulator_serves_collections_with_its_defaults(tmp_path: Any) -> None:
    many = [
        {
            "collection_id": f"col_c{i:03d}",
            "collection_name": f"collection_{i:03d}",
            "document_count": 1,
        }
        for i in range(101)
    ]
    state = tmp_path / "local-state.json"
    Store(state).seed(Seed.parse({"namespaces": {NS: {"collections": many}}}))
    headers = {"Authorization": "Bearer local", "X-Namespace": NS}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], int]:
        async with httpx.AsyncClient(
            transport=local_transport(state), base_url="http://emulator", headers=headers
        ) as http:
            page = (await http.post("/v1/collections/list")).json()
            tax = (
                await http.post("/v1/taxonomies", json=example("CreateTaxonomyRequest.flat"))
            ).json()
            entries = {"taxonomy_applications": [{"taxonomy_id": tax["taxonomy_id"]}]}
            await http.patch("/v1/collections/col_c000", json=entries)
            accepted = (
                await http.post(
                    "/v1/collections/col_c000/apply-taxonomy",
                    json={"taxonomy_id": tax["taxonomy_id"]},
                )
            ).json()
            reads = [
                (await http.get(f"/v1/tasks/{accepted['task_id']}")).json()["status"]
                for _ in range(3)
            ]
            assert reads == ["PENDING", "IN_PROGRESS", "COMPLETED"]  # one read per state by default
            deleted = await http.delete(f"/v1/taxonomies/{tax['taxonomy_id']}")
            return page, accepted, deleted.status_code

    page, accepted, deleted = asyncio.run(scenario())
    assert len(page["results"]) == 100 and page["pagination"]["page_size"] == 100
    assert page["pagination"]["next_cursor"] is not None
    assert TASK_ID.match(accepted["task_id"])
    assert deleted == 200  # dangling by default
    assert Store(state).get_collection(NS, "col_c000")["taxonomy_count"] == 1
