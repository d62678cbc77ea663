"""The emulator over loopback HTTP with raw httpx: wire shapes, errors, paging and faults."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from taxsync.emulator import EmulatorOptions, Faults, Store, local_transport
from taxsync.emulator import server as server_module
from taxsync.emulator.faults import FaultAction
from taxsync.wire import ErrorResponse, ListTaxonomiesResponse, NamespaceModel, TaxonomyResponse

# The API contract's sample payloads, copied in (tests/contract/README.md).
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "tests" / "contract" / "examples"
NS = "production"


def example(name: str) -> dict[str, Any]:
    """A sample payload from the API contract; a missing contract fails the test."""
    path = EXAMPLES / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"API contract example {path} is missing (see tests/contract/README.md)")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def flat(name: str = "product_categories", **config: Any) -> dict[str, Any]:
    body = example("CreateTaxonomyRequest.flat")
    body["taxonomy_name"] = name
    body["config"].update(config)
    return body


def llm(name: str = "topics") -> dict[str, Any]:
    config = {"taxonomy_type": "hierarchical", "inference_strategy": "cluster"}
    return {"taxonomy_name": name, "config": config}


def client(srv: Any, namespace: str | None = NS) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers=srv.headers(namespace), timeout=10)


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    """Check the Mixpeek envelope and return its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    ErrorResponse.model_validate(body)
    assert body["success"] is False and body["status"] == status
    assert set(body["error"]) == {"message", "type", "code", "details"}
    assert body["error"]["type"] == error_type
    error: dict[str, Any] = body["error"]
    return error


# --- shapes echoed like the real server -------------------------------------------------


def test_create_echoes_defaults_nulls_and_server_fields(emulator: Any) -> None:
    srv = emulator()
    with client(srv) as http:
        created = http.post("/v1/taxonomies", json=flat())
        assert created.status_code == 200  # not 201: the API maps create to 200
        body = created.json()
        hierarchical = http.post(
            "/v1/taxonomies", json=example("CreateTaxonomyRequest.hierarchical")
        ).json()
    TaxonomyResponse.model_validate(body)
    assert list(body) == [
        "taxonomy_id",
        "version",
        "taxonomy_name",
        "description",
        "retriever_id",
        "input_mappings",
        "config",
        "nodes",
        "ready",
        "created_at",
        "metadata",
    ]
    assert body["taxonomy_id"].startswith("tax_") and body["version"] == 1
    assert body["retriever_id"] is None and body["input_mappings"] is None
    assert body["nodes"] is None and body["ready"] is True
    assert body["metadata"]["validation_warnings"] == []
    config = body["config"]
    assert config["top_k"] == 1 and config["step_analytics"] is None
    assert all(m["override"] is None for m in config["input_mappings"])
    for field in config["source_collection"]["enrichment_fields"]:
        assert set(field) == {"field_path", "target_field", "merge_mode"}
    h_config = hierarchical["config"]
    assert h_config["llm_sample_size"] == 0
    assert h_config["cluster_overlap_threshold"] == 0.7
    assert h_config["path_separator"] == "/"
    assert h_config["inference_strategy"] is None and h_config["path_field"] is None
    node = h_config["hierarchical_nodes"][0]
    assert node["parent_collection_id"] is None and node["keywords"] is None


def test_get_list_patch_version_delete_round_trip(emulator: Any) -> None:
    srv = emulator()
    with client(srv) as http:
        created = http.post("/v1/taxonomies", json=flat("cats")).json()
        tax_id = created["taxonomy_id"]
        assert http.get("/v1/taxonomies/cats").json() == created
        patched = http.patch("/v1/taxonomies/cats", json={"description": "d"}).json()
        assert patched["version"] == 1 and patched["description"] == "d"
        v2 = http.post(f"/v1/taxonomies/{tax_id}/versions", json={"config": flat()["config"]})
        assert v2.status_code == 200 and v2.json()["version"] == 2
        old = http.get(f"/v1/taxonomies/{tax_id}", params={"version": 1}).json()
        assert old["version"] == 1 and old["config"] == created["config"]
        versions = http.get(f"/v1/taxonomies/{tax_id}/versions").json()
        ListTaxonomiesResponse.model_validate(versions)
        assert [v["version"] for v in versions["results"]] == [1, 2]
        assert versions["total_count"] == 2 and versions["pagination"]["next_cursor"] is None
        deleted = http.delete("/v1/taxonomies/cats")
        assert deleted.json() == {"success": True, "taxonomy_id": tax_id}
        gone = assert_error(http.get(f"/v1/taxonomies/{tax_id}"), 404, "NotFoundError")
        assert gone["details"] == {"resource": "taxonomy", "id": tax_id}


def test_versions_need_an_id_and_keep_the_type(emulator: Any) -> None:
    srv = emulator()
    with client(srv) as http:
        tax_id = http.post("/v1/taxonomies", json=flat("cats")).json()["taxonomy_id"]
        by_name = http.post("/v1/taxonomies/cats/versions", json={"config": flat()["config"]})
        assert_error(by_name, 404, "NotFoundError")
        assert_error(http.get("/v1/taxonomies/cats/versions"), 404, "NotFoundError")
        type_change = http.post(
            f"/v1/taxonomies/{tax_id}/versions", json={"config": {"taxonomy_type": "hierarchical"}}
        )
        assert_error(type_change, 400, "BadRequestError")
        no_config = assert_error(
            http.post(f"/v1/taxonomies/{tax_id}/versions", json={}), 422, "ValidationError"
        )
        assert no_config["details"]["validation_errors"][0]["loc"] == ["body", "config"]
        assert http.get(f"/v1/taxonomies/{tax_id}").json()["version"] == 1


def test_served_state_file_is_shared_with_other_processes(emulator: Any, tmp_path: Path) -> None:
    state = tmp_path / "served.json"
    srv = emulator(state_path=state)
    with client(srv) as http:
        created = http.post("/v1/taxonomies", json=flat()).json()
        outsider = Store(state)  # e.g. a CLI run with --local on the same file
        assert outsider.get_taxonomy(NS, created["taxonomy_id"]) == created
        outsider.delete_taxonomy(NS, created["taxonomy_id"])
        assert_error(http.get("/v1/taxonomies/product_categories"), 404, "NotFoundError")


# --- errors ------------------------------------------------------------------------------


def test_unknown_keys_are_extra_forbidden_with_accepted_keys(emulator: Any) -> None:
    srv = emulator()
    body = flat()
    body["namespace"] = NS
    body["config"]["similarity_threshold"] = 0.5
    with client(srv) as http:
        error = assert_error(http.post("/v1/taxonomies", json=body), 422, "ValidationError")
        patch = assert_error(
            http.patch("/v1/taxonomies/x", json={"config": {}}), 422, "ValidationError"
        )
    by_loc = {tuple(e["loc"]): e for e in error["details"]["validation_errors"]}
    top = by_loc[("body", "namespace")]
    assert top["type"] == "extra_forbidden"
    assert top["accepted_keys"] == ["taxonomy_name", "description", "config", "metadata"]
    nested = by_loc[("body", "config", "flat", "similarity_threshold")]
    assert "top_k" in nested["accepted_keys"] and "top_k" in nested["msg"]
    assert "taxonomy_name, description, config, metadata" in error["message"]
    assert patch["details"]["validation_errors"][0]["accepted_keys"] == [
        "taxonomy_name",
        "description",
        "metadata",
    ]


def test_flat_config_without_type_is_ambiguous(emulator: Any) -> None:
    srv = emulator()
    body = flat()
    del body["config"]["taxonomy_type"]
    with client(srv) as http:
        error = assert_error(http.post("/v1/taxonomies", json=body), 422, "ValidationError")
    (entry,) = error["details"]["validation_errors"]
    assert entry["type"] == "ambiguous_taxonomy_type"
    assert entry["loc"] == ["body", "config"]


def test_pattern_errors_use_pydantic_shape(emulator: Any) -> None:
    srv = emulator()
    body = {
        "taxonomy_name": "h",
        "config": {"taxonomy_type": "hierarchical", "hierarchical_nodes": [{"collection_id": "x"}]},
    }
    with client(srv) as http:
        error = assert_error(http.post("/v1/taxonomies", json=body), 422, "ValidationError")
    (entry,) = error["details"]["validation_errors"]
    assert entry["loc"] == [
        "body",
        "config",
        "hierarchical",
        "hierarchical_nodes",
        0,
        "collection_id",
    ]
    assert entry["type"] == "string_pattern_mismatch"


def test_malformed_bodies_and_queries_get_envelopes(emulator: Any) -> None:
    srv = emulator()
    with client(srv) as http:
        bad_json = http.post("/v1/taxonomies", content=b'{"taxonomy_name": ')
        error = assert_error(bad_json, 422, "ValidationError")
        assert error["details"]["validation_errors"][0]["type"] == "json_invalid"
        assert_error(http.post("/v1/taxonomies", content=b"NaN"), 422, "ValidationError")
        assert_error(http.post("/v1/taxonomies"), 422, "ValidationError")
        assert_error(http.post("/v1/taxonomies", json=[1]), 422, "ValidationError")
        limit = assert_error(http.get("/v1/taxonomies?limit=0"), 422, "ValidationError")
        assert limit["details"]["validation_errors"][0]["loc"] == ["query", "limit"]
        assert_error(http.get("/v1/taxonomies/x?version=abc"), 422, "ValidationError")
        assert_error(http.get("/v1/taxonomies?cursor=garbage"), 400, "BadRequestError")
        http.post("/v1/taxonomies", json=flat("x"))
        assert_error(http.patch("/v1/taxonomies/x", json={}), 400, "BadRequestError")
        assert_error(http.patch("/v1/taxonomies/x"), 400, "BadRequestError")


def test_routes_methods_and_conflicts(emulator: Any) -> None:
    srv = emulator()
    with client(srv) as http:
        assert_error(http.get("/v1/nothing-here"), 404, "NotFoundError")
        not_allowed = http.put("/v1/taxonomies/x")
        assert_error(not_allowed, 405, "MethodNotAllowedError")
        assert set(not_allowed.headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}
        http.post("/v1/taxonomies", json=flat("a"))
        http.post("/v1/taxonomies", json=flat("b"))
        duplicate = assert_error(
            http.post("/v1/taxonomies", json=flat("a")), 409, "AlreadyExistsError"
        )
        assert duplicate["details"]["taxonomy_name"] == "a"
        rename = http.patch("/v1/taxonomies/a", json={"taxonomy_name": "b"})
        assert_error(rename, 409, "AlreadyExistsError")


def test_auth_is_required_and_the_key_never_echoed(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = emulator(api_key="sk_the_right_one")
    caplog.set_level(logging.DEBUG, logger="taxsync.emulator")
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    with httpx.Client(base_url=srv.url, timeout=10) as http:
        missing = http.get("/v1/namespaces")
        assert_error(missing, 401, "UnauthorizedError")
        empty = http.get("/v1/namespaces", headers={"Authorization": "Bearer"})
        assert_error(empty, 401, "UnauthorizedError")
        basic = http.get("/v1/namespaces", headers={"Authorization": "Basic abc"})
        assert_error(basic, 401, "UnauthorizedError")
        wrong = http.get(
            "/v1/taxonomies/x", headers={"Authorization": "Bearer sk_wrong_key", "X-Namespace": NS}
        )
        assert_error(wrong, 401, "UnauthorizedError")
        assert "sk_wrong_key" not in wrong.text
        right = http.get("/v1/namespaces", headers={"Authorization": "Bearer sk_the_right_one"})
        assert right.status_code == 200
    assert "GET /v1/namespaces -> 401" in caplog.text  # requests are logged...
    assert "sk_wrong_key" not in caplog.text and "sk_the_right_one" not in caplog.text
    assert "sk_the_right_one" not in repr(srv.app)


# --- namespaces ---------------------------------------------------------------------------


def test_missing_namespace_header_is_400(emulator: Any) -> None:
    srv = emulator()
    with client(srv, namespace=None) as http:
        assert_error(http.get("/v1/taxonomies"), 400, "BadRequestError")
        assert_error(http.post("/v1/taxonomies", json=flat()), 400, "BadRequestError")
        assert http.get("/v1/namespaces").status_code == 200  # Bearer-only route


def test_declared_namespaces_make_unknown_ones_404(emulator: Any) -> None:
    srv = emulator(namespaces=["production", "staging"])
    with client(srv, namespace="nope") as http:
        error = assert_error(http.get("/v1/taxonomies/product_categories"), 404, "NotFoundError")
        assert error["details"] == {"resource": "namespace", "id": "nope"}
        listed = http.get("/v1/namespaces").json()
        assert [n["namespace_name"] for n in listed["results"]] == ["production", "staging"]
        assert listed["total_count"] == 2 and listed["pagination"]["next_cursor"] is None
        prod = http.get("/v1/namespaces/production").json()
        NamespaceModel.model_validate(prod)
        assert http.get(f"/v1/namespaces/{prod['namespace_id']}").json() == prod
        assert_error(http.get("/v1/namespaces/nope"), 404, "NotFoundError")
        by_id = http.post(
            "/v1/taxonomies", json=flat(), headers={"X-Namespace": prod["namespace_id"]}
        )
        assert by_id.status_code == 200
        by_name = http.get("/v1/taxonomies/product_categories", headers={"X-Namespace": NS})
        assert by_name.json()["taxonomy_id"] == by_id.json()["taxonomy_id"]
        page = http.post("/v1/namespaces/list", json={"limit": 1}).json()
        assert len(page["results"]) == 1 and page["pagination"]["next_cursor"]


def test_no_request_creates_a_namespace(emulator: Any) -> None:
    """Not a look-up, a list, a read nor a write: the namespaces are those declared."""
    srv = emulator(namespaces=["production"], seed=None)
    with client(srv, namespace="fresh") as http:
        listed = http.get("/v1/taxonomies")
        assert listed.status_code == 200 and listed.json()["total_count"] == 0
        assert listed.headers["x-namespace-unresolved"] == "true"
        assert_error(http.post("/v1/taxonomies", json=flat()), 404, "NotFoundError")
        assert_error(http.get("/v1/namespaces/looked-up"), 404, "NotFoundError")
        assert_error(http.get("/v1/namespaces/ns_0123456789abcdef"), 404, "NotFoundError")
        names = [n["namespace_name"] for n in http.get("/v1/namespaces").json()["results"]]
    assert names == ["production"]


# --- readiness and paging -------------------------------------------------------------------


def test_inferred_hierarchy_turns_ready_after_reads(emulator: Any) -> None:
    srv = emulator(ready_after_reads=2)
    with client(srv) as http:
        assert http.post("/v1/taxonomies", json=llm()).json()["ready"] is False
        readings = [http.get("/v1/taxonomies/topics").json()["ready"] for _ in range(3)]
        listed = http.post("/v1/taxonomies/list", json={}).json()["results"][0]
    assert readings == [False, False, True]
    assert listed["ready"] is True


def test_max_page_size_caps_limit_and_cursor_walks_all_pages(emulator: Any) -> None:
    srv = emulator(max_page_size=2)
    with client(srv) as http:
        for i in range(5):
            http.post("/v1/taxonomies", json=flat(f"t{i}"))
        names: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"cursor": cursor} if cursor else {}
            page = http.post("/v1/taxonomies/list", params=params, json={"limit": 100}).json()
            ListTaxonomiesResponse.model_validate(page)
            assert len(page["results"]) <= 2 and page["total_count"] == 5
            assert page["pagination"]["page_size"] == 2
            names += [t["taxonomy_name"] for t in page["results"]]
            pages += 1
            cursor = page["pagination"]["next_cursor"]
            if cursor is None:
                break
    assert pages == 3 and names == [f"t{i}" for i in range(5)]


def test_list_parameters_precedence_filters_and_aliases(emulator: Any) -> None:
    srv = emulator()
    with client(srv) as http:
        for i in range(5):
            http.post("/v1/taxonomies", json=flat(f"t{i}"))

        def names(path: str = "/v1/taxonomies/list", **kwargs: Any) -> list[str]:
            response = http.request("POST" if path.endswith("list") else "GET", path, **kwargs)
            assert response.status_code == 200, response.text
            return [t["taxonomy_name"] for t in response.json()["results"]]

        assert names(params={"limit": 1}, json={"limit": 3}) == ["t0", "t1", "t2"]
        assert names(json={"page_size": 2}) == ["t0", "t1"]
        assert names("/v1/taxonomies", params={"page_size": 2, "page": 2}) == ["t2", "t3"]
        assert names(json={"limit": 2, "offset": 3}) == ["t3", "t4"]
        first = http.get("/v1/taxonomies", params={"limit": 2}).json()["pagination"]
        for alias in ("next_cursor", "after"):
            assert names(params={alias: first["next_cursor"], "limit": 2}) == ["t2", "t3"]
        by_name = {
            "filters": {"AND": [{"field": "taxonomy_name", "operator": "eq", "value": "t3"}]}
        }
        assert names(json=by_name) == ["t3"]
        assert names(json={"filters": {"taxonomy_name": "t4"}}) == ["t4"]
        assert names("/v1/taxonomies", json={"filters": {"taxonomy_name": "t1"}}) == ["t1"]
        counted = http.get("/v1/taxonomies", params={"limit": 2, "include_total": "true"}).json()
    assert counted["pagination"]["total"] == 5 and counted["pagination"]["total_pages"] == 3
    assert counted["stats"]["flat_taxonomies"] == 5


# --- faults ---------------------------------------------------------------------------------


def test_rate_429_answers_every_request_with_retry_after(emulator: Any) -> None:
    srv = emulator(faults=Faults(rate_429=1, retry_after_seconds=2, seed=1))
    with client(srv) as http:
        for response in (
            http.post("/v1/taxonomies", json=flat()),
            http.get("/v1/taxonomies"),
            http.get("/v1/namespaces"),
        ):
            error = assert_error(response, 429, "TooManyRequestsError")
            assert response.headers["retry-after"] == "2"
            assert error["details"]["retryable"] is True
            assert error["details"]["retry_after_seconds"] == 2
    assert srv.store.count_taxonomies() == 0


def test_rate_503_stores_nothing_and_500_hits_reads_only(emulator: Any) -> None:
    unavailable = emulator(faults=Faults(rate_503=1, seed=1))
    with client(unavailable) as http:
        response = http.post("/v1/taxonomies", json=flat())
        error = assert_error(response, 503, "InferenceServiceUnavailableError")
        assert error["details"]["retryable"] is True and "retry-after" in response.headers
    assert unavailable.store.count_taxonomies() == 0
    broken_reads = emulator(faults=Faults(rate_500=1, seed=1))
    with client(broken_reads) as http:
        assert http.post("/v1/taxonomies", json=flat()).status_code == 200
        assert_error(http.get("/v1/taxonomies/product_categories"), 500, "InternalServerError")
        assert_error(http.post("/v1/taxonomies/list", json={}), 500, "InternalServerError")
        assert http.patch("/v1/taxonomies/product_categories", json={"description": "x"}).is_success


def test_reset_drops_the_connection_and_stores_nothing(emulator: Any) -> None:
    srv = emulator(faults=Faults(rate_reset=1, seed=3))
    with client(srv) as http, pytest.raises(httpx.TransportError):
        http.post("/v1/taxonomies", json=flat())
    assert srv.store.count_taxonomies() == 0


def test_drop_after_commit_stores_the_write_but_loses_the_reply(emulator: Any) -> None:
    srv = emulator(faults=Faults(rate_drop_after_commit=1, seed=3))
    with client(srv) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v1/taxonomies", json=flat())
        assert srv.store.count_taxonomies() == 1
        # Reads are never dropped; a write that fails is answered normally.
        assert http.get("/v1/taxonomies/product_categories").status_code == 200
        assert_error(http.post("/v1/taxonomies", json=flat()), 409, "AlreadyExistsError")
        with pytest.raises(httpx.TransportError):
            http.patch("/v1/taxonomies/product_categories", json={"description": "new"})
    assert srv.store.get_taxonomy(NS, "product_categories")["description"] == "new"


def test_latency_delays_each_request(emulator: Any) -> None:
    srv = emulator(faults=Faults(latency_ms=60))
    with client(srv) as http:
        http.get("/v1/namespaces")  # warm the connection
        started = time.perf_counter()
        http.get("/v1/namespaces")
        assert time.perf_counter() - started >= 0.06


def test_seeded_faults_repeat_and_rates_are_honoured() -> None:
    def outcomes(seed: int) -> list[FaultAction]:
        faults = Faults(rate_429=0.3, rate_503=0.2, seed=seed)
        return [faults.plan(is_read=True, is_write=False).before for _ in range(400)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert first != outcomes(8)
    share_429 = first.count(FaultAction.TOO_MANY_REQUESTS) / len(first)
    assert 0.2 < share_429 < 0.4
    assert FaultAction.INTERNAL_ERROR not in first


def test_fault_spec_parsing() -> None:
    faults = Faults.parse(
        "latency=20ms,429=0.1,503=0.05,500=0.02,reset=0.05,drop=0.05,retry_after=1,seed=7"
    )
    assert faults == Faults(
        latency_ms=20,
        rate_429=0.1,
        rate_503=0.05,
        rate_500=0.02,
        rate_reset=0.05,
        rate_drop_after_commit=0.05,
        retry_after_seconds=1,
        seed=7,
    )
    assert Faults.parse("latency=0.5s").latency_ms == 500
    assert Faults.parse("") == Faults() and not Faults().enabled
    assert Faults.parse(faults.describe()) == faults
    for bad, message in [
        ("429=1.5", "between 0 and 1"),
        ("bogus=1", "unknown fault 'bogus'"),
        ("latency", "key=value"),
        ("503=lots", "invalid value"),
        ("seed=1,seed=2", "given twice"),
        ("latency=-3ms", "latency"),
    ]:
        with pytest.raises(ValueError, match=message):
            Faults.parse(bad)


# --- in process -----------------------------------------------------------------------------


def test_local_transport_serves_and_persists_in_process(tmp_path: Path) -> None:
    state = tmp_path / ".taxsync" / "local-state.json"
    headers = {"Authorization": "Bearer local", "X-Namespace": NS}

    Store(state).ensure_namespace(NS)  # as `taxsync local seed` would

    async def scenario() -> tuple[dict[str, Any], int]:
        transport = local_transport(state)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator", headers=headers
        ) as http:
            created = (await http.post("/v1/taxonomies", json=flat())).json()
            unauthorised = await http.get("/v1/namespaces", headers={"Authorization": ""})
        return created, unauthorised.status_code

    created, unauthorised = asyncio.run(scenario())
    assert unauthorised == 401
    TaxonomyResponse.model_validate(created)

    async def reread() -> dict[str, Any]:
        async with httpx.AsyncClient(
            transport=local_transport(state), base_url="http://emulator", headers=headers
        ) as http:
            response = await http.get("/v1/taxonomies/product_categories")
            loaded: dict[str, Any] = response.json()
            return loaded

    assert asyncio.run(reread()) == created
    assert state.exists()


def test_local_transport_turns_dropped_connections_into_transport_errors() -> None:
    headers = {"Authorization": "Bearer local", "X-Namespace": NS}

    async def scenario(faults: Faults) -> int:
        transport = local_transport(EmulatorOptions(namespaces=[NS], faults=faults))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator", headers=headers
        ) as http:
            with pytest.raises(httpx.TransportError):
                await http.post("/v1/taxonomies", json=flat())
            return transport.emulator.store.count_taxonomies()

    assert asyncio.run(scenario(Faults(rate_drop_after_commit=1))) == 1
    assert asyncio.run(scenario(Faults(rate_reset=1))) == 0


# --- serve() ---------------------------------------------------------------------------------


class _FakeServer:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.ran = False

    def run(self) -> None:
        self.ran = True


def test_serve_warns_off_loopback_and_declares_namespaces(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[_FakeServer] = []

    def fake_make_server(app: Any, host: str, port: int, log_level: str) -> _FakeServer:
        made.append(_FakeServer(app))
        return made[-1]

    monkeypatch.setattr(server_module, "make_server", fake_make_server)
    monkeypatch.setattr(server_module, "_log_to_stderr", lambda level: None)
    server_module.serve(
        EmulatorOptions(namespaces=("prod",), api_key="sk_secret"), host="127.0.0.1", port=0
    )
    assert capsys.readouterr().err == ""
    server_module.serve(host="0.0.0.0", port=0)
    warning = capsys.readouterr().err
    assert "0.0.0.0" in warning and "warning" in warning
    declared, open_mode = (server.app for server in made)
    assert all(server.ran for server in made)
    assert [n["namespace_name"] for n in declared.store.list_namespaces().results] == ["prod"]
    assert open_mode.store.list_namespaces().results == []  # none declared, none made
