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
from mixpeek.api.namespaces_api import NamespacesApi
from mixpeek.api.taxonomies_api import TaxonomiesApi
from mixpeek.exceptions import (
    ApiException,
    BadRequestException,
    ConflictException,
    NotFoundException,
    UnauthorizedException,
    UnprocessableEntityException,
)
from mixpeek.models.create_taxonomy_request import CreateTaxonomyRequest
from mixpeek.models.error_response import ErrorResponse
from mixpeek.models.flat_taxonomy_config_output import FlatTaxonomyConfigOutput
from mixpeek.models.hierarchical_taxonomy_config_output import HierarchicalTaxonomyConfigOutput
from mixpeek.models.list_namespaces_response import ListNamespacesResponse
from mixpeek.models.list_taxonomies_request import ListTaxonomiesRequest
from mixpeek.models.list_taxonomies_response import ListTaxonomiesResponse
from mixpeek.models.namespace_model import NamespaceModel
from mixpeek.models.patch_taxonomy_request import PatchTaxonomyRequest
from mixpeek.models.taxonomy_response import TaxonomyResponse

from taxsync.emulator import Faults

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
    server = emulator(max_page_size=2, ready_after_reads=1)
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
    create(sdk, FLAT)  # creates "production" on first use
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
    server = emulator(namespaces=[NS])
    with sdk_client(server.url, server.api_key, namespace="elsewhere") as api:
        with pytest.raises(NotFoundException) as excinfo:
            NamespacesApi(api).get_namespace("elsewhere")
        details = envelope(excinfo.value).error.details
        assert details == {"resource": "namespace", "id": "elsewhere"}
        with pytest.raises(NotFoundException):
            TaxonomiesApi(api).list_taxonomies()


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
    server = emulator(faults=Faults(rate_429=0.4, rate_503=0.2, retry_after_seconds=0, seed=4))
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
