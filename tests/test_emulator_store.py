"""The emulator's Store: semantics, pagination, readiness and the shared state file."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from taxsync import files as files_module
from taxsync.emulator import (
    EmulatorOptions,
    Seed,
    SeedError,
    StateFileError,
    Store,
    TaskPolicy,
    create_app,
)
from taxsync.emulator.errors import AlreadyExists, BadRequest, NotFound
from taxsync.emulator.query import ListQuery
from taxsync.emulator.store import ReadyPolicy, persistence, state
from taxsync.wire import (
    ApplyTaxonomyRequest,
    CollectionResponse,
    CreateTaxonomyRequest,
    CreateTaxonomyVersionRequest,
    PatchCollectionRequest,
    PatchTaxonomyRequest,
    RetrieverModelOutput,
    TaxonomyResponse,
)

NS = "production"


def flat_config(top_k: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "taxonomy_type": "flat",
        "retriever_id": "ret_catalog",
        "input_mappings": [{"input_key": "q", "source_type": "payload", "path": "text"}],
        "source_collection": {"collection_id": "col_categories"},
    }
    if top_k is not None:
        config["top_k"] = top_k
    return config


def create_request(name: str, **extra: Any) -> CreateTaxonomyRequest:
    return CreateTaxonomyRequest.model_validate(
        {"taxonomy_name": name, "config": flat_config(), **extra}
    )


def llm_request(name: str) -> CreateTaxonomyRequest:
    config = {"taxonomy_type": "hierarchical", "inference_strategy": "llm"}
    return CreateTaxonomyRequest.model_validate({"taxonomy_name": name, "config": config})


def memory_store() -> Store:
    store = Store(None)
    store.ensure_namespace(NS)
    return store


# --- semantics -------------------------------------------------------------------------


def test_create_fills_server_fields_and_defaults() -> None:
    store = memory_store()
    created = store.create_taxonomy(NS, create_request("cats", metadata={"owner": "search"}))
    assert created["taxonomy_id"].startswith("tax_")
    assert created["version"] == 1
    assert created["config"]["top_k"] == 1
    assert created["config"]["step_analytics"] is None
    assert created["config"]["source_collection"]["enrichment_fields"] is None
    assert created["metadata"] == {"owner": "search", "validation_warnings": []}
    assert created["retriever_id"] is None and created["nodes"] is None
    assert created["created_at"].endswith("Z")
    TaxonomyResponse.model_validate(created)
    assert store.get_taxonomy(NS, "cats") == created
    assert store.get_taxonomy(NS, created["taxonomy_id"]) == created


def test_returned_dicts_are_copies() -> None:
    store = memory_store()
    created = store.create_taxonomy(NS, create_request("cats"))
    created["config"]["top_k"] = 99
    assert store.get_taxonomy(NS, "cats")["config"]["top_k"] == 1


def test_duplicate_name_is_already_exists_but_other_namespace_is_fine() -> None:
    store = memory_store()
    store.ensure_namespace("staging")
    store.create_taxonomy(NS, create_request("cats"))
    with pytest.raises(AlreadyExists) as excinfo:
        store.create_taxonomy(NS, create_request("cats"))
    assert excinfo.value.details == {"resource": "taxonomy", "taxonomy_name": "cats"}
    store.create_taxonomy("staging", create_request("cats"))


def test_patch_never_bumps_version_and_keeps_system_metadata() -> None:
    store = memory_store()
    store.create_taxonomy(NS, create_request("cats", metadata={"a": 1, "b": 2}))
    patched = store.patch_taxonomy(
        NS, "cats", PatchTaxonomyRequest(description="new", metadata={"c": 3})
    )
    assert patched["version"] == 1
    assert patched["description"] == "new"
    assert patched["metadata"] == {"c": 3, "validation_warnings": []}


def test_patch_empty_and_rename_conflict() -> None:
    store = memory_store()
    store.create_taxonomy(NS, create_request("cats"))
    store.create_taxonomy(NS, create_request("dogs"))
    with pytest.raises(BadRequest):
        store.patch_taxonomy(NS, "cats", PatchTaxonomyRequest())
    with pytest.raises(AlreadyExists):
        store.patch_taxonomy(NS, "cats", PatchTaxonomyRequest(taxonomy_name="dogs"))
    renamed = store.patch_taxonomy(NS, "cats", PatchTaxonomyRequest(taxonomy_name="felines"))
    assert store.get_taxonomy(NS, "felines")["taxonomy_id"] == renamed["taxonomy_id"]
    with pytest.raises(NotFound):
        store.get_taxonomy(NS, "cats")


def test_versions_snapshot_config_and_refuse_type_change() -> None:
    store = memory_store()
    created = store.create_taxonomy(NS, create_request("cats", description="v1 text"))
    tax_id = created["taxonomy_id"]
    v2 = store.create_version(
        NS, tax_id, CreateTaxonomyVersionRequest.model_validate({"config": flat_config(top_k=3)})
    )
    assert v2["version"] == 2 and v2["config"]["top_k"] == 3
    assert v2["description"] == "v1 text"  # carried over from the head
    assert store.get_taxonomy(NS, "cats")["version"] == 2
    assert store.get_taxonomy(NS, "cats", version=1)["config"]["top_k"] == 1
    assert [v["version"] for v in store.list_versions(NS, tax_id)] == [1, 2]
    with pytest.raises(NotFound):
        store.get_taxonomy(NS, "cats", version=3)
    with pytest.raises(NotFound):  # the versions routes take ids only
        store.list_versions(NS, "cats")
    hierarchical = CreateTaxonomyVersionRequest.model_validate(
        {"config": {"taxonomy_type": "hierarchical"}}
    )
    with pytest.raises(BadRequest):
        store.create_version(NS, tax_id, hierarchical)


def test_delete_removes_every_version() -> None:
    store = memory_store()
    tax_id = store.create_taxonomy(NS, create_request("cats"))["taxonomy_id"]
    store.create_version(
        NS, tax_id, CreateTaxonomyVersionRequest.model_validate({"config": flat_config(2)})
    )
    assert store.delete_taxonomy(NS, "cats") == tax_id
    with pytest.raises(NotFound):
        store.get_taxonomy(NS, tax_id, version=1)
    store.create_taxonomy(NS, create_request("cats"))  # the name is free again


def test_namespaces_by_name_or_id_and_only_ensure_creates_one() -> None:
    store = Store(None)
    with pytest.raises(NotFound):
        store.get_namespace("prod")
    created = store.ensure_namespace("prod")
    assert created["namespace_id"].startswith("ns_")
    assert store.get_namespace(created["namespace_id"]) == created
    assert store.get_namespace("prod") == created
    with pytest.raises(NotFound):
        store.get_namespace("ns_doesnotexist")
    with pytest.raises(BadRequest):
        store.ensure_namespace("x" * 65)


# --- listing ------------------------------------------------------------------------------


def test_cursor_pagination_visits_each_taxonomy_once() -> None:
    store = memory_store()
    for i in range(25):
        store.create_taxonomy(NS, create_request(f"t{i:02d}"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_taxonomies(NS, ListQuery(limit=10, cursor=cursor))
        pages += 1
        assert page.total_count == 25
        seen += [t["taxonomy_name"] for t in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"t{i:02d}" for i in range(25)]


def test_cursor_survives_deletes_between_pages() -> None:
    store = memory_store()
    for i in range(6):
        store.create_taxonomy(NS, create_request(f"t{i}"))
    first = store.list_taxonomies(NS, ListQuery(limit=3))
    store.delete_taxonomy(NS, "t1")
    store.delete_taxonomy(NS, "t3")
    second = store.list_taxonomies(NS, ListQuery(limit=3, cursor=first.next_cursor))
    assert [t["taxonomy_name"] for t in second.results] == ["t4", "t5"]
    assert second.page == 2 and second.next_cursor is None


def test_sort_filters_and_search() -> None:
    store = memory_store()
    for name in ("Beta", "alpha", "gamma", "delta"):
        store.create_taxonomy(NS, create_request(name, description=f"about {name}"))
    by_name = store.list_taxonomies(
        NS, ListQuery(limit=2, sorts=[{"field": "taxonomy_name", "direction": "desc"}])
    )
    assert [t["taxonomy_name"] for t in by_name.results] == ["gamma", "delta"]
    rest = store.list_taxonomies(
        NS,
        ListQuery(
            limit=2,
            cursor=by_name.next_cursor,
            sorts=[{"field": "taxonomy_name", "direction": "desc"}],
        ),
    )
    assert [t["taxonomy_name"] for t in rest.results] == ["alpha", "Beta"]

    def names(**query: Any) -> list[str]:
        page = store.list_taxonomies(NS, ListQuery(**query))
        return [t["taxonomy_name"] for t in page.results]

    assert names(filters={"taxonomy_name": "beta"}) == ["Beta"]  # case-insensitive default
    assert names(filters={"taxonomy_name": "beta"}, case_sensitive=True) == []
    condition = {"field": "taxonomy_name", "operator": "in", "value": ["alpha", "delta"]}
    assert names(filters={"AND": [condition]}) == ["alpha", "delta"]
    assert names(filters={"NOT": [condition]}) == ["Beta", "gamma"]
    assert names(search="GAM") == ["gamma"]
    assert names(search="about *ta") == ["Beta", "delta"]
    with pytest.raises(BadRequest):
        names(filters={"AND": [{"field": "taxonomy_name", "operator": "geo_radius"}]})
    with pytest.raises(BadRequest):
        names(cursor="not-a-cursor")


def test_stats_count_matching_taxonomies() -> None:
    store = memory_store()
    store.create_taxonomy(NS, create_request("a"))
    store.create_taxonomy(NS, llm_request("b"))
    page = store.list_taxonomies(NS, ListQuery(limit=1))
    assert page.stats == {
        "total_taxonomies": 2,
        "flat_taxonomies": 1,
        "hierarchical_taxonomies": 1,
        "taxonomies_with_retrievers": 1,
    }


# --- readiness ----------------------------------------------------------------------------


def test_ready_flips_after_reads_and_only_gets_count() -> None:
    store = memory_store()
    created = store.create_taxonomy(NS, llm_request("topics"), ReadyPolicy(after_reads=2))
    assert created["ready"] is False
    store.list_taxonomies(NS)
    store.list_versions(NS, created["taxonomy_id"])
    readings = [store.get_taxonomy(NS, "topics")["ready"] for _ in range(4)]
    assert readings == [False, False, True, True]
    assert store.create_taxonomy(NS, create_request("flat"))["ready"] is True


def test_ready_flips_after_seconds() -> None:
    now = [1000.0]
    store = Store(None, clock=lambda: now[0])
    store.ensure_namespace(NS)
    policy = ReadyPolicy(after_reads=None, after_seconds=30)
    store.create_taxonomy(NS, llm_request("topics"), policy)
    assert store.get_taxonomy(NS, "topics")["ready"] is False
    now[0] += 31
    assert store.list_taxonomies(NS).results[0]["ready"] is True


# --- the state file --------------------------------------------------------------------


def test_round_trip_through_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.json"  # parents created on demand
    first = Store(path)
    first.ensure_namespace(NS)
    created = first.create_taxonomy(NS, create_request("cats", metadata={"k": "v"}))
    first.create_version(
        NS,
        created["taxonomy_id"],
        CreateTaxonomyVersionRequest.model_validate({"config": flat_config(4)}),
    )
    second = Store(path)
    assert second.list_versions(NS, created["taxonomy_id"]) == first.list_versions(
        NS, created["taxonomy_id"]
    )
    assert second.get_namespace(NS) == first.get_namespace(NS)
    assert json.loads(path.read_text())["generation"] >= 3


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    a, b = Store(path), Store(path)
    a.ensure_namespace(NS)
    a.create_taxonomy(NS, create_request("from-a"))
    b.create_taxonomy(NS, create_request("from-b"))
    a.patch_taxonomy(NS, "from-b", PatchTaxonomyRequest(description="seen by a"))
    assert b.get_taxonomy(NS, "from-b")["description"] == "seen by a"
    assert a.count_taxonomies() == b.count_taxonomies() == 2


def test_failed_write_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    store = Store(path)
    store.ensure_namespace(NS)
    store.create_taxonomy(NS, create_request("kept"))
    before = path.read_bytes()

    def crash(*args: Any) -> None:
        raise OSError("simulated crash between write and rename")

    # The temp file is fully written and fsynced; the crash hits before the rename.
    monkeypatch.setattr(persistence.os, "replace", crash)
    with pytest.raises(StateFileError, match=f"cannot write .*{path}: simulated crash"):
        store.create_taxonomy(NS, create_request("lost"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]
    # The in-memory state was rolled back to the file's.
    assert store.count_taxonomies() == 1
    with pytest.raises(NotFound):
        store.get_taxonomy(NS, "lost")


# Failures the file system really produces (as root too, where chmod refuses nothing).


def test_a_state_file_name_too_long_for_its_temporary_file_is_a_state_file_error(
    tmp_path: Path,
) -> None:
    # 245 characters: the file and its lock file fit in 255 bytes, the temporary sibling
    # ".<name>.<8 hex>.tmp" (259) does not, so every save fails with ENAMETOOLONG.
    path = tmp_path / ("s" * 240 + ".json")
    store = Store(path)
    with pytest.raises(StateFileError) as failed:
        store.ensure_namespace(NS)
    assert failed.value.message == (
        f"cannot write emulator state file {path}: {os.strerror(errno.ENAMETOOLONG)}"
    )
    assert not path.exists()
    assert store.count_taxonomies() == 0 and store.list_namespaces().results == []


def test_a_folder_where_the_temporary_file_must_go_is_a_state_file_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    store = Store(path)
    store.ensure_namespace(NS)
    before = path.read_bytes()
    monkeypatch.setattr(files_module.secrets, "token_hex", lambda n: "0" * 2 * n)
    (tmp_path / ".state.json.00000000.tmp").mkdir()  # the next save's temporary sibling
    with pytest.raises(StateFileError, match=f"^cannot write emulator state file {path}: "):
        store.create_taxonomy(NS, create_request("lost"))
    assert path.read_bytes() == before
    with pytest.raises(NotFound):
        store.get_taxonomy(NS, "lost")


def test_the_emulator_answers_a_failed_save_with_the_file_it_could_not_write(
    tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    srv = emulator(state_path=path)  # its namespaces are saved: the disk fills up afterwards

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_module, "replace_file", disk_full)
    response = httpx.post(
        f"{srv.url}/v1/taxonomies",
        json={"taxonomy_name": "cats", "config": flat_config()},
        headers=srv.headers(NS),
    )
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert message.startswith(f"cannot write emulator state file {path}: ")


def test_failed_encoding_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    store = Store(path)
    store.ensure_namespace(NS)
    store.create_taxonomy(NS, create_request("kept"))
    before = path.read_bytes()

    def broken_encode(self: Any) -> bytes:
        raise RuntimeError("json dump failed")

    monkeypatch.setattr(state.State, "encode", broken_encode)
    with pytest.raises(RuntimeError):
        store.patch_taxonomy(NS, "kept", PatchTaxonomyRequest(description="changed"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert store.get_taxonomy(NS, "kept")["description"] is None


def _write_until_killed(path: str, started: Any) -> None:
    store = Store(path)
    store.ensure_namespace(NS)
    for i in range(100_000):
        store.create_taxonomy(NS, create_request(f"t{i}", description="x" * 500))
        if i == 20:
            started.set()


def test_killed_writer_never_leaves_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    writer = ctx.Process(target=_write_until_killed, args=(str(path), started))
    writer.start()
    try:
        assert started.wait(timeout=30)
        time.sleep(0.3)
    finally:
        writer.kill()
        writer.join(timeout=10)
    survivor = Store(path)  # loads without error, and removes the killed writer's temp file
    count = survivor.count_taxonomies()
    assert count > 20
    assert len(json.loads(path.read_text())["taxonomies"]) == count
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _create_many(path: str, prefix: str, count: int, barrier: Any) -> None:
    store = Store(path)
    store.ensure_namespace(NS)
    barrier.wait()
    for i in range(count):
        store.create_taxonomy(NS, create_request(f"{prefix}-{i}"))


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_create_many, args=(str(path), prefix, 50, barrier))
        for prefix in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = Store(path)
    names = {t["taxonomy_name"] for t in store.list_taxonomies(NS, ListQuery(limit=1000)).results}
    assert names == {f"{p}-{i}" for p in ("a", "b") for i in range(50)}
    assert len(store.list_namespaces().results) == 1


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"generation": 1, "format": "taxsync-emul')
    with pytest.raises(StateFileError, match=str(path)):
        Store(path)
    path.write_text("[]")
    with pytest.raises(StateFileError, match="not a taxsync state file"):
        create_app(EmulatorOptions(state_path=path))


def test_unreadable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateFileError, match="lock file"):
        Store(blocker / "state.json")


def test_reads_do_not_rewrite_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = Store(path)
    store.ensure_namespace(NS)
    store.create_taxonomy(NS, create_request("cats"))
    stamp = os.stat(path).st_ino, os.stat(path).st_mtime_ns
    for _ in range(5):
        store.get_taxonomy(NS, "cats")
        store.list_taxonomies(NS)
        store.list_namespaces()
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == stamp


def test_five_thousand_taxonomies_in_twenty_namespaces_list_page_by_page() -> None:
    """Each taxonomy is listed once, in its own namespace, by following cursors; and found by
    name. (How fast the store is, is the benchmarks' business: a time bound here would fail on
    a loaded machine and pass a slow store on a fast one.)"""
    store = Store(None)
    namespaces = [f"ns{i}" for i in range(20)]
    for ns in namespaces:
        store.ensure_namespace(ns)
    for i in range(5000):
        store.create_taxonomy(namespaces[i % 20], create_request(f"t{i}"))
    for n, ns in enumerate(namespaces):
        listed: list[str] = []
        pages = 0
        cursor = None
        while True:
            page = store.list_taxonomies(ns, ListQuery(limit=100, cursor=cursor))
            pages += 1
            listed.extend(t["taxonomy_name"] for t in page.results)
            for taxonomy in page.results[:5]:
                name = taxonomy["taxonomy_name"]
                assert store.get_taxonomy(ns, name)["taxonomy_id"] == taxonomy["taxonomy_id"]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3  # 250 a namespace: 100, 100, 50
        assert sorted(listed) == sorted(f"t{i}" for i in range(n, 5000, 20))


# --- collections, retrievers, tasks and seeds --------------------------------------------------

SEED: dict[str, Any] = {
    "namespaces": {
        NS: {
            "collections": [
                {
                    "collection_id": "col_products_v1",
                    "collection_name": "products",
                    "document_count": 40,
                },
                {"collection_id": "col_empty", "collection_name": "empty_one"},
            ],
            "retrievers": [{"retriever_id": "ret_clip_v1", "collection_ids": ["col_products_v1"]}],
        },
        "staging": {
            "collections": [{"collection_id": "col_products_v1", "collection_name": "products"}]
        },
    }
}


def seeded(path: Path | None = None, seed: dict[str, Any] = SEED) -> Store:
    store = Store(path)
    store.ensure_namespace(NS)
    store.seed(Seed.parse(seed))
    return store


def patch_request(**fields: Any) -> PatchCollectionRequest:
    return PatchCollectionRequest.model_validate(fields)


def test_seed_fills_defaults_and_is_per_namespace() -> None:
    store = seeded()
    products = store.get_collection(NS, "products")
    CollectionResponse.model_validate(products)
    assert products["feature_extractor"]["feature_extractor_name"] == "text_extractor"
    assert products["source"] == {"type": "bucket", "bucket_ids": ["bkt_products"]}
    assert products["document_count"] == 40 and products["retriever_count"] == 1
    assert products["created_at"] == products["updated_at"]
    assert store.get_collection(NS, "empty_one")["document_count"] == 0
    assert store.get_collection("staging", "col_products_v1")["retriever_count"] == 0
    retriever = store.get_retriever(NS, "clip_v1")  # the name defaults to the id without ret_
    RetrieverModelOutput.model_validate(retriever)
    assert retriever["stages"][0]["parameters"] == retriever["stages"][0]["config"]["parameters"]
    assert retriever["collection_identifiers"] == ["col_products_v1"]
    assert store.count_collections(NS) == 2 and store.count_collections("staging") == 1


def test_reseeding_replaces_by_id_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = seeded(path)
    store.create_taxonomy(NS, create_request("cats"))
    generation = json.loads(path.read_text())["generation"]
    before = store.get_collection(NS, "products")
    assert store.seed(Seed.parse(SEED)) == (3, 1)
    assert json.loads(path.read_text())["generation"] == generation  # nothing changed
    assert store.get_collection(NS, "products") == before
    changed = json.loads(json.dumps(SEED))
    changed["namespaces"][NS]["collections"][0].update(
        collection_name="products_v1", document_count=41
    )
    Store(path).seed(Seed.parse(changed))
    after = store.get_collection(NS, "col_products_v1")
    assert after["collection_name"] == "products_v1" and after["document_count"] == 41
    assert after["created_at"] == before["created_at"]
    assert [c["collection_id"] for c in store.list_collections(NS).results] == [
        "col_products_v1",
        "col_empty",
    ]
    assert store.count_taxonomies(NS) == 1
    with pytest.raises(NotFound):
        store.get_collection(NS, "products")


def test_seed_refuses_conflicts_and_bad_entries() -> None:
    store = seeded()
    taken = {
        "namespaces": {
            NS: {"collections": [{"collection_id": "col_other", "collection_name": "products"}]}
        }
    }
    with pytest.raises(AlreadyExists, match="col_products_v1"):
        store.seed(Seed.parse(taken))
    system = {
        "namespaces": {
            NS: {"collections": [{"collection_id": "col_s", "collection_name": "_direct_upsert"}]}
        }
    }
    with pytest.raises(BadRequest, match="system collection"):
        store.seed(Seed.parse(system))
    for bad, message in [
        (
            {
                "namespaces": {
                    NS: {
                        "collections": [
                            {"collection_id": "products", "collection_name": "products"}
                        ]
                    }
                }
            },
            "collection_id",
        ),
        (
            {
                "namespaces": {
                    NS: {"collections": [{"collection_id": "col_a", "collection_name": "ab"}]}
                }
            },
            "collection_name",
        ),
        (
            {
                "namespaces": {
                    NS: {
                        "collections": [
                            {
                                "collection_id": "col_a",
                                "collection_name": "abc",
                                "taxonomy_count": 2,
                            }
                        ]
                    }
                }
            },
            "taxonomy_count",
        ),
        (
            {
                "namespaces": {
                    NS: {
                        "collections": [
                            {"collection_id": "col_a", "collection_name": "abc", "colour": "red"}
                        ]
                    }
                }
            },
            "colour",
        ),
        (
            {
                "namespaces": {
                    NS: {
                        "collections": [
                            {
                                "collection_id": "col_a",
                                "collection_name": "abc",
                                "source": {"type": "ftp"},
                            }
                        ]
                    }
                }
            },
            "source",
        ),
        ({"namespaces": {NS: {"retrievers": [{"retriever_id": "ret_a", "stages": []}]}}}, "stages"),
        (
            {
                "namespaces": {
                    NS: {"retrievers": [{"retriever_id": "ret_a"}, {"retriever_id": "ret_a"}]}
                }
            },
            "more than once",
        ),
        ({"namespaces": {NS: {"tables": []}}}, "tables"),
        ({"collections": []}, "namespaces"),
    ]:
        with pytest.raises(SeedError, match=message):
            Seed.parse(bad)


def test_patch_collection_replaces_lists_and_keeps_null_apart_from_empty() -> None:
    now = [1_800_000_000.0]
    store = Store(None, clock=lambda: now[0])
    store.ensure_namespace(NS)
    store.seed(Seed.parse(SEED))
    tax_id = store.create_taxonomy(NS, create_request("cats"))["taxonomy_id"]
    before = store.get_collection(NS, "products")
    entries = [{"taxonomy_id": tax_id, "priority": 7, "execution_phase": None}]
    patched = store.patch_collection(NS, "products", patch_request(taxonomy_applications=entries))
    assert patched["taxonomy_applications"] == [
        {"taxonomy_id": tax_id, "priority": 7, "execution_phase": None}
    ]
    assert patched["updated_at"] > before["updated_at"]  # even though the clock stood still
    emptied = store.patch_collection(NS, "products", patch_request(taxonomy_applications=[]))
    assert emptied["taxonomy_applications"] == [] and emptied["updated_at"] > patched["updated_at"]
    nulled = store.patch_collection(NS, "products", patch_request(taxonomy_applications=None))
    assert nulled["taxonomy_applications"] is None
    with pytest.raises(BadRequest, match="Empty update"):
        store.patch_collection(NS, "products", patch_request(collection_name=None))
    with pytest.raises(NotFound):
        store.patch_collection(
            NS, "products", patch_request(taxonomy_applications=[{"taxonomy_id": "tax_x"}])
        )
    lenient = store.patch_collection(
        NS,
        "products",
        patch_request(taxonomy_applications=[{"taxonomy_id": "tax_x"}]),
        check_taxonomies=False,
    )
    assert lenient["taxonomy_applications"] == [
        {"taxonomy_id": "tax_x", "execution_phase": 1, "priority": 0}
    ]


def test_list_collections_filters_search_and_paging() -> None:
    store = seeded()
    tax_id = store.create_taxonomy(NS, create_request("cats"))["taxonomy_id"]
    store.patch_collection(
        NS, "empty_one", patch_request(taxonomy_applications=[{"taxonomy_id": tax_id}])
    )
    by_taxonomy = {
        "AND": [{"field": "taxonomy_applications.taxonomy_id", "operator": "eq", "value": tax_id}]
    }
    page = store.list_collections(NS, ListQuery(filters=by_taxonomy))
    assert [c["collection_id"] for c in page.results] == ["col_empty"]
    assert page.stats is not None and page.stats["collections_with_taxonomies"] == 1
    with_system = store.list_collections(NS, ListQuery(limit=2), include_system=True)
    assert [c["collection_name"] for c in with_system.results] == ["_direct_upsert", "products"]
    rest = store.list_collections(
        NS, ListQuery(limit=2, cursor=with_system.next_cursor), include_system=True
    )
    assert [c["collection_name"] for c in rest.results] == ["empty_one"]


def test_backfill_task_lifecycle_and_kill() -> None:
    store = seeded()
    store.task_policy = TaskPolicy(polls=1)
    tax_id = store.create_taxonomy(NS, create_request("cats"))["taxonomy_id"]
    store.patch_collection(
        NS, "products", patch_request(taxonomy_applications=[{"taxonomy_id": tax_id}])
    )
    request = ApplyTaxonomyRequest(taxonomy_id=tax_id)
    first = store.apply_taxonomy(NS, "products", request)["task_id"]
    second = store.apply_taxonomy(NS, "col_products_v1", request)["task_id"]
    assert first != second and store.count_tasks() == 2
    assert [store.get_task(first)["status"] for _ in range(4)] == [
        "PENDING",
        "IN_PROGRESS",
        "COMPLETED",
        "COMPLETED",
    ]
    assert store.get_task(second, count_read=False)["status"] == "PENDING"
    store.kill_task(second)
    store.kill_task(first)  # finished: unchanged
    store.kill_task("task_unknown")  # unknown: nothing to do
    assert store.get_task(second)["status"] == "CANCELED"
    assert store.get_task(first)["status"] == "COMPLETED"
    with pytest.raises(NotFound):
        store.get_task("task_unknown")
    with pytest.raises(BadRequest, match="not in the taxonomy_applications"):
        store.apply_taxonomy(NS, "empty_one", request)
    store.patch_collection(
        NS, "empty_one", patch_request(taxonomy_applications=[{"taxonomy_id": tax_id}])
    )
    with pytest.raises(BadRequest, match="no documents"):
        store.apply_taxonomy(NS, "empty_one", request)
    assert (
        store.apply_taxonomy(NS, "empty_one", request, refuse_empty=False)["estimated_documents"]
        == 0
    )


def test_task_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="polls"):
        TaskPolicy(polls=-1)
    with pytest.raises(ValueError, match="outcome"):
        TaskPolicy(outcome="exploded")  # type: ignore[arg-type]


def test_delete_refuses_an_applied_taxonomy_only_when_asked() -> None:
    store = seeded()
    tax_id = store.create_taxonomy(NS, create_request("cats"))["taxonomy_id"]
    store.patch_collection(
        NS, "products", patch_request(taxonomy_applications=[{"taxonomy_id": tax_id}])
    )
    with pytest.raises(BadRequest) as refused:
        store.delete_taxonomy(NS, "cats", refuse_if_applied=True)
    assert refused.value.details == {"taxonomy_id": tax_id, "collection_ids": ["col_products_v1"]}
    assert store.delete_taxonomy(NS, "cats") == tax_id
    assert store.get_collection(NS, "products")["taxonomy_applications"][0]["taxonomy_id"] == tax_id


def test_collections_retrievers_and_tasks_persist_in_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = seeded(path)
    tax_id = store.create_taxonomy(NS, create_request("cats"))["taxonomy_id"]
    store.patch_collection(
        NS, "products", patch_request(taxonomy_applications=[{"taxonomy_id": tax_id}])
    )
    task_id = store.apply_taxonomy(NS, "products", ApplyTaxonomyRequest(taxonomy_id=tax_id))[
        "task_id"
    ]
    store.get_task(task_id)
    other = Store(path)  # another process
    assert other.get_collection(NS, "products") == store.get_collection(NS, "products")
    assert other.get_retriever(NS, "ret_clip_v1") == store.get_retriever(NS, "ret_clip_v1")
    assert other.get_task(task_id, count_read=False)["status"] == "PENDING"
    assert other.get_task(task_id)["status"] == "IN_PROGRESS"  # the read count persisted too
    assert store.get_task(task_id, count_read=False)["status"] == "IN_PROGRESS"
    saved = json.loads(path.read_text())
    assert [len(saved[k]) for k in ("collections", "retrievers", "tasks")] == [3, 1, 1]


def test_state_files_from_before_collections_still_load(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    Store(path).ensure_namespace(NS)
    Store(path).create_taxonomy(NS, create_request("cats"))
    old = json.loads(path.read_text())
    for key in ("collections", "retrievers", "tasks"):
        del old[key]  # what taxsync wrote before they existed
    path.write_text(json.dumps(old))
    store = Store(path)
    assert store.count_taxonomies(NS) == 1 and store.count_collections(NS) == 0
    assert store.list_tasks().results == []
    store.seed(Seed.parse(SEED))
    assert Store(path).count_collections(NS) == 2 and Store(path).count_taxonomies(NS) == 1
