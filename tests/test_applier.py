"""The applier (``taxsync.applier``) over real HTTP against the emulator.

Each test plans with the planner (``reconcile.plan_manifests``, desired taxonomies built in
memory) against live state, then runs ``apply_plan`` through a client of its own, so it can
act between the plan and the writes: someone else changing live state, a response lost on
the way back, a write held at the emulator, Ctrl-C. What was written comes from the requests
the emulator received, never from the applier's own account.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from taxsync import reconcile
from taxsync.applier import ApplyOptions, apply_plan
from taxsync.client import MixpeekClient
from taxsync.emulator import Faults
from taxsync.model import DesiredTaxonomy, SourceLocation
from taxsync.plan import ApplyResult, Change, Plan
from tests.conftest import EmulatorHandle, Seen, StartEmulator
from tests.helpers import INFERRED, Api, desired_flat, desired_hierarchical, settings_for

NS = "production"
T = TypeVar("T")


# --- running the applier -------------------------------------------------------------------


def plan_for(srv: EmulatorHandle, *desired: DesiredTaxonomy) -> Plan:
    """What the planner makes of ``desired`` against ``srv``'s live state (with prune).

    The request log starts afresh after it: it holds what the apply then sends.
    """
    plan = reconcile.plan_manifests(
        list(desired), settings_for(srv), reconcile.PlanChoices(prune=True)
    )
    srv.forget()
    return plan


def given(srv: EmulatorHandle, *desired: DesiredTaxonomy) -> None:
    """Live state is ``desired``, managed by taxsync."""
    settings = settings_for(srv)
    assert reconcile.apply(plan_for(srv, *desired), settings, allow_replace=True).ok


def run(
    srv: EmulatorHandle,
    scenario: Callable[[MixpeekClient], Awaitable[T]],
    transport: httpx.AsyncBaseTransport | None = None,
) -> T:
    """``scenario(client)`` in an event loop of its own, with a client reaching ``srv``."""

    async def main() -> T:
        async with MixpeekClient(srv.url, srv.api_key, transport=transport) as client:
            return await scenario(client)

    return asyncio.run(main())


def apply(srv: EmulatorHandle, plan: Plan, **options: Any) -> ApplyResult:
    """``apply_plan`` with these ``ApplyOptions``, to its end."""
    return run(srv, lambda client: apply_plan(client, plan, ApplyOptions(**options)))


class Traffic(httpx.AsyncBaseTransport):
    """The client's side of the wire: requests in flight, and when each started and ended.

    Counted where the client hands a request to the network, so a request the applier
    started is counted at once, before any byte reaches the emulator.
    """

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.in_flight = 0
        self.most = 0
        self.events: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        label = f"{request.method} {request.url.path}"
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.events.append(f"start {label}")
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1
            self.events.append(f"end {label}")

    async def aclose(self) -> None:
        await self.inner.aclose()


def sent(requests: list[Seen]) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json()) for r in requests]


# --- 1. each action's writes, and a lost response recovered by re-reading -------------------

CREATE = "/v1/taxonomies"
TAXONOMY = "/v1/taxonomies/{id}"
VERSIONS = "/v1/taxonomies/{id}/versions"

# action: (live before, desired, the writes in order: method, path, which planned body)
ACTIONS: dict[str, tuple[list[DesiredTaxonomy], list[DesiredTaxonomy], list[tuple[str, ...]]]] = {
    "create": ([], [desired_flat()], [("POST", CREATE, "create_body")]),
    "new_version": (
        [desired_flat()],
        [desired_flat(top_k=4)],
        [("POST", VERSIONS, "version_body")],
    ),
    "new_version and PATCH": (
        [desired_flat()],
        [desired_flat(top_k=4, description="by pixel")],
        [("POST", VERSIONS, "version_body"), ("PATCH", TAXONOMY, "patch_body")],
    ),
    "update": (
        [desired_flat()],
        [desired_flat(description="by pixel", metadata={"team": "ads"})],
        [("PATCH", TAXONOMY, "patch_body")],
    ),
    "delete": (
        [desired_flat(), desired_flat("retired")],
        [desired_flat()],
        [("DELETE", TAXONOMY, "")],
    ),
}


@pytest.mark.parametrize("lost", [False, True], ids=["answered", "every response lost"])
@pytest.mark.parametrize("case", ACTIONS.values(), ids=ACTIONS.keys())
def test_each_action_sends_exactly_its_planned_writes(
    emulator: StartEmulator,
    case: tuple[list[DesiredTaxonomy], list[DesiredTaxonomy], list[tuple[str, ...]]],
    lost: bool,
) -> None:
    before, desired, writes = case
    srv = emulator()
    given(srv, *before)
    plan = plan_for(srv, *desired)
    (change,) = plan.changes
    if lost:  # every write is carried out, then its connection drops before the answer
        srv.app.faults = Faults(rate_drop_after_commit=1.0)

    (result,) = apply(srv, plan, allow_replace=True).results

    assert result.status == "applied", result.message
    expected = [
        (method, path.format(id=change.taxonomy_id), getattr(change, body) if body else None)
        for method, path, body in writes
    ]
    assert sent(srv.writes()) == expected  # in order; none repeated, lost or not
    assert sent(srv.committed()) == expected
    if lost:
        assert all(not r.complete for r in srv.writes()), "every answer was lost"
    srv.app.faults = Faults()
    head = Api(srv).taxonomies(NS).get(change.name)
    if change.action == "delete":
        assert head is None and result.taxonomy_id == change.taxonomy_id
    else:
        assert head is not None
        assert (result.taxonomy_id, result.version) == (head["taxonomy_id"], head["version"])
    assert not plan_for(srv, *desired).has_changes  # exactly what was planned is live


@pytest.mark.parametrize("lost", [False, True], ids=["answered", "every response lost"])
def test_a_replace_creates_aside_then_deletes_then_renames(
    emulator: StartEmulator, lost: bool
) -> None:
    """The new taxonomy is made under a temporary name first, so the old one is deleted only
    once its replacement exists; then the replacement takes the name."""
    srv = emulator()
    given(srv, desired_flat("shape"))
    plan = plan_for(srv, desired_hierarchical("shape"))
    (change,) = plan.changes
    assert change.action == "replace" and change.create_body is not None
    if lost:
        srv.app.faults = Faults(rate_drop_after_commit=1.0)

    (result,) = apply(srv, plan, allow_replace=True).results

    assert result.status == "applied", result.message
    srv.app.faults = Faults()
    head = Api(srv).taxonomies(NS)["shape"]
    assert result.taxonomy_id == head["taxonomy_id"] != change.taxonomy_id
    temp = {**change.create_body, "taxonomy_name": "shape.taxsync-replacement"}
    assert sent(srv.committed()) == [
        ("POST", CREATE, temp),
        ("DELETE", TAXONOMY.format(id=change.taxonomy_id), None),
        ("PATCH", TAXONOMY.format(id=head["taxonomy_id"]), {"taxonomy_name": "shape"}),
    ]
    assert len(srv.writes()) == 3  # none repeated, lost or not
    assert not plan_for(srv, desired_hierarchical("shape")).has_changes


def test_a_replace_is_refused_without_allow_replace(emulator: StartEmulator) -> None:
    srv = emulator()
    given(srv, desired_flat("shape"))
    plan = plan_for(srv, desired_hierarchical("shape"))
    (result,) = apply(srv, plan).results
    assert result.status == "failed" and "--allow-replace" in result.message
    assert srv.writes() == []


# --- 2. stale: the head moved between the plan and the write ----------------------------------


@pytest.mark.parametrize("meanwhile", ["re-versioned", "deleted"])
@pytest.mark.parametrize("action", ["new_version", "update"])
def test_a_change_whose_head_moved_since_the_plan_is_stale_and_not_written(
    emulator: StartEmulator, action: str, meanwhile: str
) -> None:
    srv = emulator()
    given(srv, desired_flat())
    wanted = desired_flat(top_k=4) if action == "new_version" else desired_flat(description="new")
    plan = plan_for(srv, wanted)
    (change,) = plan.changes
    assert change.action == action and change.taxonomy_id is not None

    api = Api(srv)  # someone else, between our plan and our write
    if meanwhile == "deleted":
        api.delete(NS, change.taxonomy_id)
    else:
        config = api.get(NS, change.taxonomy_id)["config"]
        api.new_version(NS, change.taxonomy_id, {**config, "top_k": 9})
    (result,) = apply(srv, plan).results

    assert result.status == "stale"
    assert (
        result.message
        == {
            "deleted": "production/products no longer exists",
            "re-versioned": "production/products moved to v2 since the plan (v1)",
        }[meanwhile]
    )
    assert srv.writes() == []  # taxsync wrote nothing


def test_create_raced_by_someone_else_is_stale_not_failed(emulator: StartEmulator) -> None:
    srv = emulator()
    the_plan = plan_for(srv, desired_flat("a", "alpha"))
    body = the_plan.changes[0].create_body
    assert body is not None
    Api(srv).create("alpha", {**body, "description": "theirs"})
    (result,) = apply(srv, the_plan).results
    assert f"{result.status}: {result.message}" == (
        "stale: alpha/a was created by someone else meanwhile"
    )


def test_a_lost_create_that_finds_someone_elses_taxonomy_is_stale(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    plan = plan_for(srv, desired_flat())
    # Our create is lost before the emulator sees it; while the applier re-reads the name
    # to learn whether it landed, someone else creates that name with a config of theirs.
    srv.lose(lambda r: r.is_write, committed=False)
    reread = srv.hold(lambda r: (r.method, r.path) == ("POST", "/v1/taxonomies/list"))

    async def scenario(client: MixpeekClient) -> ApplyResult:
        applying = asyncio.create_task(apply_plan(client, plan))
        await asyncio.to_thread(reread.wait)
        theirs = {**desired_flat(top_k=9).config}
        Api(srv).create(NS, {"taxonomy_name": "products", "config": theirs})
        reread.release(forward=True)
        return await applying

    (result,) = run(srv, scenario).results
    assert result.status == "stale"
    assert result.message == "production/products was created by someone else meanwhile"
    assert srv.committed() == []
    assert Api(srv).taxonomies(NS)["products"]["config"]["top_k"] == 9  # theirs, untouched


# --- 3. a write that did not land is repeated, a bounded number of times ---------------------


@pytest.mark.parametrize("action", ["create", "new_version"])
def test_a_write_that_did_not_land_is_sent_again(emulator: StartEmulator, action: str) -> None:
    srv = emulator()
    if action == "new_version":
        given(srv, desired_flat())
    plan = plan_for(srv, desired_flat(top_k=4))
    srv.lose(lambda r: r.is_write, committed=False, limit=1)  # the first attempt never arrives

    (result,) = apply(srv, plan).results

    assert result.status == "applied", result.message
    first, second = srv.writes()
    assert (first.method, first.path) == (second.method, second.path)
    assert srv.committed() == [second]
    head = Api(srv).taxonomies(NS)["products"]
    assert head["config"]["top_k"] == 4
    assert Api(srv).versions(NS, head["taxonomy_id"]) == (
        [1, 2] if action == "new_version" else [1]
    )


def test_a_write_that_never_lands_is_given_up_after_three_attempts(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    plan = plan_for(srv, desired_flat())
    # Lost ten times running: an applier that kept trying would get through on the 11th.
    srv.lose(lambda r: r.is_write, committed=False, limit=10)

    (result,) = apply(srv, plan).results

    assert result.status == "failed"
    assert "may or may not have taken effect" in result.message
    assert [(r.method, r.path) for r in srv.writes()] == [("POST", CREATE)] * 3
    assert srv.committed() == [] and Api(srv).taxonomies(NS) == {}


# --- 4. waiting for asynchronous inference -----------------------------------------------------


def test_wait_polls_until_the_taxonomy_is_ready(emulator: StartEmulator) -> None:
    srv = emulator(ready_after_reads=1)  # not ready when created, nor at the first read
    plan = plan_for(srv, desired_hierarchical("topics", config=INFERRED))

    (result,) = apply(srv, plan, wait=True).results

    assert result.status == "applied", result.message
    polls = [r.path for r in srv.requests if r.method == "GET"]
    assert polls == [f"/v1/taxonomies/{result.taxonomy_id}"] * 2  # not ready, then ready
    assert Api(srv).listing(NS)[0]["ready"] is True


def test_without_wait_a_not_ready_taxonomy_is_not_polled(emulator: StartEmulator) -> None:
    srv = emulator(ready_after_reads=1)
    plan = plan_for(srv, desired_hierarchical("topics", config=INFERRED))
    (result,) = apply(srv, plan).results
    assert result.status == "applied", result.message
    assert [r.method for r in srv.requests] == ["POST"]
    assert Api(srv).listing(NS)[0]["ready"] is False


@pytest.mark.parametrize("asked_by", ["the apply", "the manifest"])
def test_wait_gives_up_with_not_ready_after_the_timeout(
    emulator: StartEmulator, asked_by: str
) -> None:
    # Ready only after three reads, which polling within one second never reaches.
    srv = emulator(ready_after_reads=3)
    topics = desired_hierarchical("topics", config=INFERRED, wait=asked_by == "the manifest")
    plan = plan_for(srv, topics)

    (result,) = apply(srv, plan, wait=asked_by == "the apply", wait_timeout=1.0).results

    assert result.status == "failed"
    assert result.message == "production/topics: not ready after 1s (inference still running)"
    assert len(srv.committed()) == 1  # it was created; only the wait failed
    assert 1 <= sum(1 for r in srv.requests if r.method == "GET") < 3  # polled, not ready


def test_a_short_wait_timeout_still_looks_once(emulator: StartEmulator) -> None:
    srv = emulator(ready_after_reads=0)  # ready at the first read
    plan = plan_for(srv, desired_hierarchical("topics", config=INFERRED))
    (result,) = apply(srv, plan, wait=True, wait_timeout=0.4).results
    assert result.status == "applied", result.message


# --- 5. concurrency and Ctrl-C ---------------------------------------------------------------


def six_creates(srv: EmulatorHandle) -> Plan:
    return plan_for(srv, *(desired_flat(f"t-{i}") for i in range(6)))


def test_no_more_changes_in_flight_than_the_concurrency(emulator: StartEmulator) -> None:
    srv = emulator()
    plan = six_creates(srv)
    hold = srv.hold(lambda r: r.is_write)  # the first writes wait at the emulator
    traffic = Traffic()

    async def scenario(client: MixpeekClient) -> tuple[int, ApplyResult]:
        applying = asyncio.create_task(apply_plan(client, plan, ApplyOptions(concurrency=2)))
        await asyncio.to_thread(srv.recorder.wait_for, lambda: len(hold.held) >= 2, "2 held")
        # Every change the applier started is in flight now: none can have finished.
        in_flight = traffic.in_flight
        hold.release(forward=True)
        return in_flight, await applying

    in_flight, result = run(srv, scenario, traffic)

    assert in_flight == 2 and traffic.most == 2
    assert result.count("applied") == 6 and len(Api(srv).names(NS)) == 6


def test_stop_lets_in_flight_changes_finish_and_starts_no_other(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    plan = six_creates(srv)
    hold = srv.hold(lambda r: r.is_write)

    async def scenario(client: MixpeekClient) -> ApplyResult:
        stop = asyncio.Event()
        options = ApplyOptions(concurrency=2)
        applying = asyncio.create_task(apply_plan(client, plan, options, stop=stop))
        await asyncio.to_thread(srv.recorder.wait_for, lambda: len(hold.held) >= 2, "2 held")
        stop.set()  # Ctrl-C, with two writes in flight
        hold.release(forward=True)
        return await applying

    result = run(srv, scenario)

    assert result.interrupted and not result.ok
    assert result.count("applied") == 2 and result.count("not_started") == 4
    assert {r.message for r in result.results if r.status == "not_started"} == {
        "interrupted before it started"
    }
    applied = {r.change.name for r in result.results if r.status == "applied"}
    assert set(Api(srv).names(NS)) == applied
    assert len(srv.writes()) == 2


def test_renames_are_applied_before_the_other_changes(emulator: StartEmulator) -> None:
    srv = emulator()
    given(srv, desired_flat("products"))
    old_id = Api(srv).taxonomies(NS)["products"]["taxonomy_id"]
    plan = plan_for(
        srv,
        desired_flat("catalogue", previous_names=("products",)),
        desired_flat("products", top_k=2),  # takes the name the rename frees
        desired_flat("other"),
    )
    traffic = Traffic()

    result = run(srv, lambda client: apply_plan(client, plan, ApplyOptions()), traffic)

    assert result.ok, [r.message for r in result.results]
    renamed = traffic.events.index(f"end PATCH /v1/taxonomies/{old_id}")
    creates = [i for i, e in enumerate(traffic.events) if e == f"start POST {CREATE}"]
    assert len(creates) == 2 and min(creates) > renamed
    live = Api(srv).taxonomies(NS)
    assert live["catalogue"]["taxonomy_id"] == old_id
    assert live["products"]["taxonomy_id"] != old_id


# --- 6. a 422's field errors point at the manifest ---------------------------------------------

PROBLEMS = [
    # The API names the union member ("flat"); the manifest has no such level.
    {"loc": ["body", "config", "flat", "top_k"], "msg": "must be <= 5 on this plan"},
    {"loc": ["body", "taxonomy_name"], "msg": "is reserved"},
]


@pytest.mark.parametrize("located", [True, False], ids=["with the manifests", "plan only"])
def test_a_422_names_the_manifest_line_of_each_field(
    emulator: StartEmulator, located: bool
) -> None:
    srv = emulator()
    desired = desired_flat(
        "a",
        top_k=7,
        source=SourceLocation("m/a.yaml", 4, 3),
        positions={"config": (9, 3), "config.top_k": (12, 5)},
    )
    plan = plan_for(srv, desired)
    srv.answer(
        lambda r: r.is_write, 422, "Request validation failed", {"validation_errors": PROBLEMS}
    )
    asked: list[tuple[str, str]] = []

    def locate(change: Change, field: str) -> str:
        asked.append((change.name, field))
        return desired.locate(field)

    (result,) = apply(srv, plan, locate=locate if located else None).results

    assert result.status == "failed"
    if located:
        assert asked == [("a", "config.top_k"), ("a", "taxonomy_name")]
        top_k, name = "m/a.yaml:12:5", "m/a.yaml:4:3"
    else:
        top_k = name = "m/a.yaml:4"  # the change's source
    assert result.message == (
        f"{top_k}: spec.config.top_k: must be <= 5 on this plan; "
        f"{name}: metadata.name: is reserved (HTTP 422 from POST /v1/taxonomies [production])"
    )
