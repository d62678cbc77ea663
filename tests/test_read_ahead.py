"""A plan of a tree reads live state while its manifests still load (``read_ahead.ReadAhead``,
which ``plan_tree`` creates and hands to ``plan_manifests``): the same requests, each once,
only for the namespaces the plan covers, and a tree that does not load still fails with its
own manifest error."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from taxsync import manifest, reconcile
from taxsync.client import MixpeekClient
from taxsync.errors import ManifestError, TaxsyncError
from taxsync.model import DesiredTaxonomy
from taxsync.planner import PlanOptions, shard_of
from taxsync.read_ahead import ReadAhead
from tests.conftest import StartEmulator
from tests.helpers import flat, settings_for, write

# --- the client -------------------------------------------------------------------------------


def answer(request: httpx.Request) -> httpx.Response:
    namespace = request.headers.get("X-Namespace", "")
    if request.url.path.startswith("/v1/namespaces/"):
        return httpx.Response(200, json={"namespace_name": request.url.path.rsplit("/", 1)[1]})
    if request.url.path == "/v1/taxonomies/list":
        live = {"taxonomy_id": "tax_1", "version": 1, "taxonomy_name": f"t-{namespace}"}
        live["config"] = {"taxonomy_type": "flat"}
        return httpx.Response(200, json={"results": [live], "total_count": 1})
    return httpx.Response(200, json={"results": []})  # collections, retrievers


def client_run(work: Any) -> tuple[Any, list[httpx.Request]]:
    """``work(ahead, client)`` on a ReadAhead over a client of a stand-in API."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    def connect(_: Any) -> MixpeekClient:
        return MixpeekClient("https://api.test", "sk", transport=httpx.MockTransport(handler))

    settings = reconcile.Settings(api_url="https://api.test", api_key="sk")
    with ReadAhead.open(settings, PlanOptions(), connect) as ahead:
        assert ahead is not None
        client, run = ahead.take()
        ahead.client = client  # still its to close: the work below does not close it
        found = run(work(ahead, client))
    return found, seen


def sent(seen: list[httpx.Request]) -> Counter[tuple[str, str | None]]:
    return Counter((r.url.path, r.headers.get("X-Namespace")) for r in seen)


def test_a_namespace_read_ahead_is_taken_by_the_read_not_asked_again() -> None:
    async def work(ahead: ReadAhead, client: MixpeekClient) -> Any:
        ahead.start("a")
        ahead.start("a")  # asked twice: read once
        return await ahead.read(client, ["a", "b"])

    (live, around), seen = client_run(work)
    assert [t.taxonomy_name for t in live["a"]] == ["t-a"]
    assert [t.taxonomy_name for t in live["b"]] == ["t-b"]
    assert set(around) == {"a", "b"}
    expected = ["/v1/namespaces/{}", "/v1/taxonomies/list"]
    expected += ["/v1/collections/list", "/v1/retrievers/list"]
    assert sent(seen) == Counter(
        {(path.format(ns), ns if "{}" not in path else None): 1 for ns in "ab" for path in expected}
    )


def test_a_read_ahead_nobody_takes_is_cancelled_when_the_plan_ends() -> None:
    started: list[asyncio.Task[Any]] = []

    async def work(ahead: ReadAhead, client: MixpeekClient) -> None:
        ahead.start("a")
        started.extend(asyncio.all_tasks() - {asyncio.current_task()})

    client_run(work)
    assert len(started) == 2 and all(task.cancelled() for task in started)


# --- the plan of a tree ------------------------------------------------------------------------


def two_namespaces(root: Path) -> Path:
    write(root, "a/one.yaml", flat("one", "alpha"))
    write(root, "a/two.yaml", flat("two", "alpha"))
    write(root, "b/one.yaml", flat("one", "beta"))
    write(root, "b/two.yaml", flat("two", "beta"))
    return root


def test_a_plan_reads_each_namespace_once_as_soon_as_a_manifest_names_it(
    tmp_path: Path, emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = emulator()
    root = two_namespaces(tmp_path / "m")
    files_loaded = [0]
    started: list[tuple[str, int]] = []
    stepwise = manifest.load_tree_stepwise
    start = ReadAhead.start

    def counting(
        root: Path, environ: Mapping[str, str] | None = None
    ) -> Generator[list[DesiredTaxonomy], None, list[DesiredTaxonomy]]:
        loading = stepwise(root, environ)
        while True:
            try:
                loaded = next(loading)
            except StopIteration as done:
                return done.value
            files_loaded[0] += 1
            yield loaded

    def recording(ahead: ReadAhead, namespace: str) -> None:
        started.append((namespace, files_loaded[0]))
        start(ahead, namespace)

    monkeypatch.setattr(manifest, "load_tree_stepwise", counting)
    monkeypatch.setattr(ReadAhead, "start", recording)

    plan = reconcile.plan_tree(root, settings_for(srv))

    assert plan.summary.create == 4
    # Read while loading: each namespace as soon as its first manifest is read.
    assert started == [("alpha", 1), ("beta", 3)] and files_loaded == [4]
    reads = Counter((r.method, r.path, r.namespace) for r in srv.requests)
    assert set(reads.values()) == {1}
    assert {namespace for _, _, namespace in reads} == {None, "alpha", "beta"}
    assert len(reads) == 2 * 4  # per namespace: look-up, taxonomies, collections, retrievers


def test_a_plan_of_chosen_namespaces_reads_no_other(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = two_namespaces(tmp_path / "m")
    settings = settings_for(srv)

    chosen = reconcile.plan_tree(root, settings, reconcile.PlanChoices(namespaces=("beta",)))
    assert chosen.namespaces == ["beta"]
    assert "alpha" not in str([(r.path, r.namespace) for r in srv.requests])

    srv.forget()
    shard = (shard_of("alpha", 2), 2)
    if shard_of("beta", 2) == shard[0]:
        pytest.fail("pick namespaces in different shards of 2")
    sharded = reconcile.plan_tree(root, settings, reconcile.PlanChoices(shard=shard))
    assert sharded.namespaces == ["alpha"]
    assert "beta" not in str([(r.path, r.namespace) for r in srv.requests])


class Heard(reconcile.Reporter):
    def __init__(self) -> None:
        self.errors: list[TaxsyncError] = []

    def failed(self, error: TaxsyncError) -> None:
        self.errors.append(error)


def test_a_tree_that_does_not_load_fails_with_its_manifest_error_whatever_the_reads_found(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(namespaces=["alpha"])  # any other namespace is unknown: a 404
    root = tmp_path / "m"
    write(root, "a/ghost.yaml", flat("ghost", "nowhere"))  # loads, but its namespace is missing
    write(root, "b/bad.yaml", flat("bad", "alpha", top_k=99))  # over the API's limit of 50
    heard = Heard()

    with pytest.raises(ManifestError) as caught:
        reconcile.plan_tree(root, settings_for(srv), reporter=heard)

    assert [p.path for p in caught.value.problems] == ["spec.config.top_k"]
    assert heard.errors == [caught.value]

    write(root, "b/bad.yaml", flat("bad", "alpha"))
    with pytest.raises(TaxsyncError, match="namespace 'nowhere' does not exist"):
        reconcile.plan_tree(root, settings_for(srv), reporter=heard)
