"""The official mixpeek SDK (1.3.783) as a real client of the served emulator.

Every call goes through the SDK's generated ``*Api`` classes over loopback HTTP, so each
response must deserialise into the SDK's own models. The versions endpoint is typed as an
untyped dict body in the SDK, which is exactly what the emulator expects, so its generated
method is used as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mixpeek
import pytest
import urllib3
from mixpeek import Mixpeek
from mixpeek.api.collection_taxonomies_api import CollectionTaxonomiesApi
from mixpeek.api.collections_api import CollectionsApi
from mixpeek.api.namespaces_api import NamespacesApi
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.api.tasks_api import TasksApi
from mixpeek.api.taxonomies_api import TaxonomiesApi
from mixpeek.exceptions import (
    ApiException,
    BadRequestException,
    ConflictException,
    NotFoundException,
    UnauthorizedException,
    UnprocessableEntityException,
)
from mixpeek.models.apply_taxonomy_request import ApplyTaxonomyRequest
from mixpeek.models.apply_taxonomy_response import ApplyTaxonomyResponse
from mixpeek.models.collection_response import CollectionResponse
from mixpeek.models.create_taxonomy_request import CreateTaxonomyRequest
from mixpeek.models.error_response import ErrorResponse
from mixpeek.models.flat_taxonomy_config_output import FlatTaxonomyConfigOutput
from mixpeek.models.generic_delete_response import GenericDeleteResponse
from mixpeek.models.hierarchical_taxonomy_config_output import HierarchicalTaxonomyConfigOutput
from mixpeek.models.list_collections_request import ListCollectionsRequest
from mixpeek.models.list_collections_response import ListCollectionsResponse
from mixpeek.models.list_namespaces_response import ListNamespacesResponse
from mixpeek.models.list_retrievers_request import ListRetrieversRequest
from mixpeek.models.list_retrievers_response import ListRetrieversResponse
from mixpeek.models.list_tasks_request import ListTasksRequest
from mixpeek.models.list_tasks_response import ListTasksResponse
from mixpeek.models.list_taxonomies_request import ListTaxonomiesRequest
from mixpeek.models.list_taxonomies_response import ListTaxonomiesResponse
from mixpeek.models.namespace_model import NamespaceModel
from mixpeek.models.patch_taxonomy_request import PatchTaxonomyRequest
from mixpeek.models.retriever_model_output import RetrieverModelOutput
from mixpeek.models.task_response import TaskResponse as SdkTaskResponse
from mixpeek.models.task_status_enum import TaskStatusEnum
from mixpeek.models.task_type import TaskType
from mixpeek.models.taxonomy_response import TaxonomyResponse

from taxsync.emulator import Faults, Seed, TaskPolicy

NS = "production"

FLAT: dict[str, Any] = {
    "taxonomy_name": "product_categories",
    "description": "Label product images with the nearest catalogue category",
    "config": {
        "taxonomy_type": "flat",
        "retriever_id": "ret_catalog_clip",
        "input_mappings": [
            {"input_key": "query_vector", "source_type": "vector", "path": "features.clip"}
        ],
        "source_collection": {
            "collection_id": "col_catalog_categories",
            "enrichment_fields": [
                {"field_path": "label", "target_field": "category", "merge_mode": "replace"}
            ],
        },
    },
    "metadata": {"owner": "search-team"},
}

HIERARCHICAL: dict[str, Any] = {
    "taxonomy_name": "org_hierarchy",
    "config": {
        "taxonomy_type": "hierarchical",
        "retriever_id": "ret_face_matcher",
        "hierarchical_nodes": [
            {"collection_id": "col_employees", "label": "Employees"},
            {
                "collection_id": "col_managers",
                "parent_collection_id": "col_employees",
                "label": "Managers",
            },
        ],
    },
}


@dataclass
class Sdk:
    server: Any
    taxonomies: TaxonomiesApi
    namespaces: NamespacesApi


def sdk_client(url: str, api_key: str, namespace: str = NS) -> mixpeek.ApiClient:
    """An SDK client sending ``Authorization: Bearer`` and ``X-Namespace``."""
    configuration = mixpeek.Configuration(
        host=url, access_token=api_key, api_key={"NamespaceHeader": namespace}
    )
    return mixpeek.ApiClient(configuration)


@pytest.fixture
def sdk(emulator: Any) -> Iterator[Sdk]:
    server = emulator(namespaces=[NS], max_page_size=2, ready_after_reads=1)
    with sdk_client(server.url, server.api_key) as api:
        yield Sdk(server, TaxonomiesApi(api), NamespacesApi(api))


def flat_top_k(taxonomy: TaxonomyResponse) -> int | None:
    config = taxonomy.config.actual_instance
    assert isinstance(config, FlatTaxonomyConfigOutput)
    return config.top_k


def envelope(exc: ApiException) -> ErrorResponse:
    """The error envelope the SDK deserialised (only for statuses in its response map)."""
    assert isinstance(exc.data, ErrorResponse), exc.body
    return exc.data


def create(sdk: Sdk, body: dict[str, Any]) -> TaxonomyResponse:
    request = CreateTaxonomyRequest.from_dict(body)
    assert request is not None
    response = sdk.taxonomies.create_taxonomy_taxonomies(request)
    assert isinstance(response, TaxonomyResponse)
    return response


def test_create_and_get_flat_and_hierarchical(sdk: Sdk) -> None:
    flat = create(sdk, FLAT)
    assert flat.taxonomy_id is not None and flat.taxonomy_id.startswith("tax_")
    assert flat.version == 1 and flat.ready is True and flat.created_at is not None
    assert isinstance(flat.config.actual_instance, FlatTaxonomyConfigOutput)
    assert flat_top_k(flat) == 1
    assert flat.metadata == {"owner": "search-team", "validation_warnings": []}

    tree = create(sdk, HIERARCHICAL)
    config = tree.config.actual_instance
    assert isinstance(config, HierarchicalTaxonomyConfigOutput)
    assert config.cluster_overlap_threshold == 0.7 and config.path_separator == "/"
    assert config.hierarchical_nodes is not None and len(config.hierarchical_nodes) == 2

    by_name = sdk.taxonomies.get_taxonomy_taxonomies("product_categories")
    by_id = sdk.taxonomies.get_taxonomy_taxonomies(flat.taxonomy_id)
    assert by_name == by_id == flat


def test_inferred_hierarchy_reports_ready_after_polling(sdk: Sdk) -> None:
    body = {
        "taxonomy_name": "topics",
        "config": {"taxonomy_type": "hierarchical", "inference_strategy": "llm"},
    }
    assert create(sdk, body).ready is False
    assert sdk.taxonomies.get_taxonomy_taxonomies("topics").ready is False
    assert sdk.taxonomies.get_taxonomy_taxonomies("topics").ready is True


def test_cursor_pagination_over_several_pages(sdk: Sdk) -> None:
    for i in range(5):
        create(sdk, {**FLAT, "taxonomy_name": f"t{i}"})
    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = sdk.taxonomies.list_taxonomies_0(
            cursor=cursor,
            include_total=True,
            list_taxonomies_request=ListTaxonomiesRequest.from_dict({"limit": 50}),
        )
        assert isinstance(page, ListTaxonomiesResponse)
        assert page.total_count == 5 and len(page.results) <= 2  # max_page_size=2
        assert page.stats is not None and page.stats.flat_taxonomies == 5
        names += [t.taxonomy_name for t in page.results]
        pages += 1
        cursor = page.pagination["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and names == [f"t{i}" for i in range(5)]

    filtered = sdk.taxonomies.list_taxonomies_0(
        list_taxonomies_request=ListTaxonomiesRequest.from_dict(
            {"filters": {"AND": [{"field": "taxonomy_name", "operator": "eq", "value": "t3"}]}}
        )
    )
    assert [t.taxonomy_name for t in filtered.results] == ["t3"]
    via_get = sdk.taxonomies.list_taxonomies(limit=1)
    assert [t.taxonomy_name for t in via_get.results] == ["t0"]


def test_patch_versions_and_delete(sdk: Sdk) -> None:
    created = create(sdk, FLAT)
    tax_id = created.taxonomy_id
    assert tax_id is not None
    patch = PatchTaxonomyRequest.from_dict({"description": "now three", "metadata": {"team": "x"}})
    assert patch is not None
    patched = sdk.taxonomies.patch_taxonomy_taxonomies("product_categories", patch)
    assert patched.version == 1 and patched.description == "now three"
    assert patched.metadata == {"team": "x", "validation_warnings": []}

    new_config = {**FLAT["config"], "top_k": 3}
    v2 = sdk.taxonomies.create_taxonomy_version_taxonomies(tax_id, {"config": new_config})
    assert isinstance(v2, TaxonomyResponse) and v2.version == 2
    head = sdk.taxonomies.get_taxonomy_taxonomies(tax_id)
    assert head.version == 2 and flat_top_k(head) == 3
    old = sdk.taxonomies.get_taxonomy_taxonomies(tax_id, version=1)
    assert old.version == 1 and flat_top_k(old) == 1

    versions = sdk.taxonomies.list_taxonomy_versions_taxonomies(tax_id)
    assert isinstance(versions, ListTaxonomiesResponse)
    assert [v.version for v in versions.results] == [1, 2] and versions.total_count == 2

    deleted = sdk.taxonomies.delete_taxonomy_taxonomies("product_categories")
    assert deleted == {"success": True, "taxonomy_id": tax_id}
    with pytest.raises(NotFoundException) as excinfo:
        sdk.taxonomies.get_taxonomy_taxonomies(tax_id, version=1)
    assert envelope(excinfo.value).error.type == "NotFoundError"


def test_namespaces_deserialise(sdk: Sdk) -> None:
    create(sdk, FLAT)
    listed = sdk.namespaces.list_namespaces(include_total=True)
    assert isinstance(listed, ListNamespacesResponse)
    assert [n.namespace_name for n in listed.results] == [NS]
    assert listed.pagination.total == 1 and listed.pagination.next_cursor is None
    via_get = sdk.namespaces.list_namespaces_get()
    assert via_get.results == listed.results
    by_name = sdk.namespaces.get_namespace(NS)
    assert isinstance(by_name, NamespaceModel) and by_name.namespace_ready is True
    assert by_name.namespace_id is not None
    assert sdk.namespaces.get_namespace(by_name.namespace_id) == by_name
    with pytest.raises(NotFoundException):  # an unknown id is never auto-created
        sdk.namespaces.get_namespace("ns_0000000000000000")


def test_declared_namespaces_make_unknown_ones_404(emulator: Any) -> None:
    server = emulator(namespaces=[NS], seed=None)
    with sdk_client(server.url, server.api_key, namespace="elsewhere") as api:
        with pytest.raises(NotFoundException) as excinfo:
            NamespacesApi(api).get_namespace("elsewhere")
        details = envelope(excinfo.value).error.details
        assert details == {"resource": "namespace", "id": "elsewhere"}
        with pytest.raises(NotFoundException):
            TaxonomiesApi(api).get_taxonomy_taxonomies("product_categories")
        assert TaxonomiesApi(api).list_taxonomies().results == []  # unresolved: flagged, empty


def test_conflict_is_409_already_exists(sdk: Sdk) -> None:
    create(sdk, FLAT)
    with pytest.raises(ConflictException) as excinfo:
        create(sdk, FLAT)
    # 409 is not in the SDK's response map, so the envelope is only in the raw body.
    error = ErrorResponse.from_json(excinfo.value.body or "")
    assert error is not None and error.status == 409
    assert error.error.type == "AlreadyExistsError"
    assert error.error.details == {"resource": "taxonomy", "taxonomy_name": FLAT["taxonomy_name"]}


def test_wrong_or_missing_key_is_401(sdk: Sdk) -> None:
    server = sdk.server
    with (
        sdk_client(server.url, "sk_not_the_key") as api,
        pytest.raises(UnauthorizedException) as excinfo,
    ):
        NamespacesApi(api).list_namespaces()
    assert envelope(excinfo.value).error.type == "UnauthorizedError"
    assert "sk_not_the_key" not in (excinfo.value.body or "")
    configuration = mixpeek.Configuration(host=server.url)  # no bearer token at all
    with mixpeek.ApiClient(configuration) as api, pytest.raises(UnauthorizedException):
        TaxonomiesApi(api).list_taxonomies()


def test_validation_errors_are_422_with_details(sdk: Sdk) -> None:
    tax_id = create(sdk, FLAT).taxonomy_id
    assert tax_id is not None
    # The SDK validates its typed models client-side, so the untyped versions body is the
    # way to get unknown keys and an ambiguous config to the server.
    with pytest.raises(UnprocessableEntityException) as excinfo:
        sdk.taxonomies.create_taxonomy_version_taxonomies(
            tax_id, {"config": FLAT["config"], "notes": "not a field"}
        )
    error = envelope(excinfo.value).error
    assert error.type == "ValidationError" and error.details is not None
    (entry,) = error.details["validation_errors"]
    assert entry["type"] == "extra_forbidden" and entry["loc"] == ["body", "notes"]
    assert entry["accepted_keys"] == ["config", "description", "metadata"]

    untyped = {k: v for k, v in FLAT["config"].items() if k != "taxonomy_type"}
    with pytest.raises(UnprocessableEntityException) as excinfo:
        sdk.taxonomies.create_taxonomy_version_taxonomies(tax_id, {"config": untyped})
    details = envelope(excinfo.value).error.details
    assert details is not None
    (entry,) = details["validation_errors"]
    assert entry["type"] == "ambiguous_taxonomy_type"

    with pytest.raises(BadRequestException) as bad:
        sdk.taxonomies.create_taxonomy_version_taxonomies(
            tax_id, {"config": {"taxonomy_type": "hierarchical"}}
        )
    assert envelope(bad.value).error.type == "BadRequestError"


def test_hand_written_client_retries_injected_throttling(emulator: Any) -> None:
    """``Mixpeek._request`` honours the emulator's 429/503 Retry-After and gets through."""
    server = emulator(
        namespaces=[NS], faults=Faults(rate_429=0.4, rate_503=0.2, retry_after_seconds=0, seed=4)
    )
    client = Mixpeek(server.api_key, namespace=NS, base_url=f"{server.url}/v1")
    for i in range(5):
        created = client._request("POST", "/taxonomies", body={**FLAT, "taxonomy_name": f"t{i}"})
        assert created["taxonomy_name"] == f"t{i}"
    assert server.store.count_taxonomies() == 5
    listed: Any = client.namespaces.list()  # typed as a list, but the API sends the page
    assert [n["namespace_name"] for n in listed["results"]] == [NS]


def test_dropped_reply_reaches_the_sdk_as_a_broken_connection(emulator: Any) -> None:
    server = emulator(faults=Faults(rate_drop_after_commit=1))
    request = CreateTaxonomyRequest.from_dict(FLAT)
    assert request is not None
    with (
        sdk_client(server.url, server.api_key) as api,
        pytest.raises(urllib3.exceptions.ProtocolError),
    ):
        TaxonomiesApi(api).create_taxonomy_taxonomies(request)
    assert server.store.count_taxonomies() == 1  # committed before the connection dropped


# --- collections, backfills, tasks and retrievers -------------------------------------------------

SEED = {
    "namespaces": {
        NS: {
            "collections": [
                {
                    "collection_id": "col_products_v1",
                    "collection_name": "products",
                    "document_count": 900,
                },
                {
                    "collection_id": "col_catalog_categories",
                    "collection_name": "catalog_categories",
                    "document_count": 12,
                },
                {"collection_id": "col_archive", "collection_name": "archive"},
            ],
            "retrievers": [
                {
                    "retriever_id": "ret_catalog_clip",
                    "retriever_name": "catalog_clip",
                    "collection_ids": ["col_catalog_categories"],
                    "input_schema": {"query_vector": {"type": "array", "required": True}},
                    "fusion": "rrf",
                },
                {"retriever_id": "ret_face_matcher", "collection_ids": ["col_products_v1"]},
            ],
        }
    }
}


@dataclass
class Apis:
    server: Any
    collections: CollectionsApi
    backfills: CollectionTaxonomiesApi
    tasks: TasksApi
    retrievers: RetrieversApi
    taxonomies: TaxonomiesApi


@pytest.fixture
def apis(emulator: Any) -> Iterator[Apis]:
    server = emulator(max_page_size=2, namespaces=[NS], seed=None)
    server.store.seed(Seed.parse(SEED))
    server.store.task_policy = TaskPolicy(polls=1)
    with sdk_client(server.url, server.api_key) as api:
        yield Apis(
            server,
            CollectionsApi(api),
            CollectionTaxonomiesApi(api),
            TasksApi(api),
            RetrieversApi(api),
            TaxonomiesApi(api),
        )


def attach_flat(apis: Apis, collection: str) -> str:
    request = CreateTaxonomyRequest.from_dict(FLAT)
    assert request is not None
    tax_id = apis.taxonomies.create_taxonomy_taxonomies(request).taxonomy_id
    assert tax_id is not None
    # The PATCH body is untyped in the SDK: raw JSON, as docs/api-contract.md#patch-a-collection says.
    body = {"taxonomy_applications": [{"taxonomy_id": tax_id, "priority": 5}]}
    patched = apis.collections.update_collection(collection, body)
    assert isinstance(patched, CollectionResponse)
    assert patched.taxonomy_applications is not None
    (entry,) = patched.taxonomy_applications
    assert (entry.taxonomy_id, entry.priority, entry.execution_phase) == (tax_id, 5, 1)
    return tax_id


def test_sdk_lists_gets_and_patches_collections(apis: Apis) -> None:
    tax_id = attach_flat(apis, "products")
    names: list[str] = []
    cursor: str | None = None
    while True:  # pages of 2 (max_page_size), walked by the cursor
        page = apis.collections.list_collections(cursor=cursor, include_total=True)
        assert isinstance(page, ListCollectionsResponse)
        assert page.total_count == 3 and page.warnings == []
        names += [c.collection_name for c in page.results]
        cursor = page.pagination.next_cursor
        if cursor is None:
            break
    assert names == ["products", "catalog_categories", "archive"]
    by_taxonomy = ListCollectionsRequest.from_dict(
        {
            "filters": {
                "AND": [
                    {
                        "field": "taxonomy_applications.taxonomy_id",
                        "operator": "eq",
                        "value": tax_id,
                    }
                ]
            }
        }
    )
    filtered = apis.collections.list_collections(list_collections_request=by_taxonomy)
    assert [c.collection_id for c in filtered.results] == ["col_products_v1"]
    assert filtered.stats is not None and filtered.stats.collections_with_taxonomies == 1
    system = apis.collections.list_collections_get(include_system=True, search="direct")
    assert [c.collection_name for c in system.results] == ["_direct_upsert"]
    got = apis.collections.get_collection("col_products_v1")
    assert got == apis.collections.get_collection("products")
    assert got.feature_extractor.feature_extractor_id == "text_extractor_v1"
    assert got.source.type == "bucket" and got.document_count == 900
    assert got.taxonomy_count == 1 and got.retriever_count == 1
    with pytest.raises(NotFoundException) as missing:
        apis.collections.get_collection("nope")
    assert envelope(missing.value).error.details == {"resource": "collection", "id": "nope"}
    with pytest.raises(BadRequestException):
        apis.collections.update_collection("products", {})
    with pytest.raises(UnprocessableEntityException):
        apis.collections.update_collection("products", {"colour": "red"})


def test_sdk_backfills_and_follows_the_task(apis: Apis) -> None:
    tax_id = attach_flat(apis, "products")
    request = ApplyTaxonomyRequest.from_dict(
        {"taxonomy_id": tax_id, "budget_limits": {"max_time_ms": 600000}}
    )
    assert request is not None
    accepted = apis.backfills.apply_taxonomy_to_collection("products", request)
    assert isinstance(accepted, ApplyTaxonomyResponse)
    assert accepted.status == "PENDING" and accepted.collection_id == "col_products_v1"
    assert accepted.estimated_documents == 900
    # Tasks are Bearer only: a client without X-Namespace follows them.
    configuration = mixpeek.Configuration(host=apis.server.url, access_token=apis.server.api_key)
    with mixpeek.ApiClient(configuration) as bare:
        tasks = TasksApi(bare)
        statuses = [tasks.get_task(accepted.task_id).status for _ in range(3)]
        assert statuses == [
            TaskStatusEnum.PENDING,
            TaskStatusEnum.IN_PROGRESS,
            TaskStatusEnum.COMPLETED,
        ]
        done = tasks.get_task(accepted.task_id)
        assert (
            isinstance(done, SdkTaskResponse)
            and done.task_type == TaskType.API_TAXONOMIES_MATERIALIZE
        )
        assert done.outputs is not None and done.error is None
        second = apis.backfills.apply_taxonomy_to_collection("products", request)
        listed = tasks.list_tasks(
            list_tasks_request=ListTasksRequest.from_dict({"status": "PENDING"})
        )
        assert isinstance(listed, ListTasksResponse)
        assert [t.task_id for t in listed.results] == [second.task_id]
        killed = tasks.kill_task(second.task_id)
        assert isinstance(killed, GenericDeleteResponse) and killed.success is True
        assert tasks.get_task(second.task_id).status == TaskStatusEnum.CANCELED
        assert tasks.kill_task("task_unknown") == killed
        with pytest.raises(NotFoundException):
            tasks.get_task("task_unknown")
    apis.server.store.task_policy = TaskPolicy(polls=0, outcome="failed")
    failed_id = apis.backfills.apply_taxonomy_to_collection("products", request).task_id
    failed = apis.tasks.get_task(failed_id)
    assert failed.status == TaskStatusEnum.FAILED and failed.error
    assert failed.additional_data is not None and failed.additional_data["error"] == failed.error
    with pytest.raises(BadRequestException) as refused:
        credits = ApplyTaxonomyRequest.from_dict(
            {"taxonomy_id": tax_id, "budget_limits": {"max_credits": 5}}
        )
        assert credits is not None
        apis.backfills.apply_taxonomy_to_collection("products", credits)
    assert "max_credits" in envelope(refused.value).error.message


def test_sdk_lists_and_gets_retrievers(apis: Apis) -> None:
    listed = apis.retrievers.list_retrievers()
    assert isinstance(listed, ListRetrieversResponse)
    assert listed.total == 2 and listed.results is not None
    assert [r.retriever_name for r in listed.results] == ["catalog_clip", "face_matcher"]
    assert listed.results[0].collection_identifiers == ["col_catalog_categories"]
    by_collection = ListRetrieversRequest.from_dict(
        {"filters": {"collection_ids": {"$in": ["col_products_v1"]}}}
    )
    filtered = apis.retrievers.list_retrievers(list_retrievers_request=by_collection)
    assert filtered.results is not None
    assert [r.retriever_id for r in filtered.results] == ["ret_face_matcher"]
    first = apis.retrievers.list_retrievers_get(limit=1)
    assert first.results is not None and len(first.results) == 1 and first.total == 2
    got = apis.retrievers.get_retriever("catalog_clip")
    assert isinstance(got, RetrieverModelOutput)
    assert got == apis.retrievers.get_retriever("ret_catalog_clip")
    assert got.fusion == "rrf" and got.input_schema is not None and got.stages[0].stage_name
    with pytest.raises(NotFoundException):
        apis.retrievers.get_retriever("ret_nope")


def test_sdk_sees_the_unresolved_namespace_warning(apis: Apis) -> None:
    server = apis.server
    with sdk_client(server.url, server.api_key, namespace="prodution") as api:
        collections = CollectionsApi(api).list_collections_with_http_info()
        retrievers = RetrieversApi(api).list_retrievers()
    assert collections.headers is not None
    headers = {name.lower(): value for name, value in collections.headers.items()}
    assert headers["x-namespace-unresolved"] == "true"
    page = collections.data
    assert page.results == [] and page.total_count == 0
    assert page.warnings is not None
    assert [(w.resource, w.id, w.reason) for w in page.warnings] == [
        ("namespace", "prodution", "unresolved")
    ]
    assert retrievers.results == [] and retrievers.warnings == page.warnings
