"""Plan errors the README promises, pinned through the CLI against the emulator: an id a
manifest names that its namespace lacks, wherever in the config it is named, and an
``appliedTo`` on a system collection. Each is one line naming the file and line, exit 1,
and nothing is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import env, flat, hierarchical, run_cli, write

NS = "production"


def node_retriever_missing() -> str:
    # hierarchical(): its second node is on line 13.
    return hierarchical("org", NS).replace(
        "label: Managers}", "label: Managers, retriever_id: ret_gone}"
    )


def inference_collection_missing() -> str:
    return hierarchical("org", NS).replace(
        "    hierarchical_nodes:",
        "    inference_strategy: llm\n"
        "    inference_collections: [col_a, col_gone]\n"  # line 12
        "    hierarchical_nodes:",
    )


def applied_to_the_system_collection() -> str:
    return flat("products", NS).replace(
        "spec:\n", "spec:\n  appliedTo: [{collection: _direct_upsert}]\n", 1
    )  # line 7


class ListingSystemCollections:
    """Between the recorder and the emulator: collection listings include the system
    collection, as a server whose ``include_system`` defaults on would answer (the emulator
    lists it only when asked). Then ``_direct_upsert`` is a collection taxsync can see, and
    only the system-collection check stands between it and an attach."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/collections/list":
            await self.app(scope, receive, send)
            return
        message = await receive()  # the recorder replays the whole body in one message
        body = json.loads(message.get("body") or b"{}") | {"include_system": True}

        async def replay() -> Message:
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

        await self.app(scope, replay, send)


def lists_system_collections(srv: EmulatorHandle) -> EmulatorHandle:
    srv.recorder.app = ListingSystemCollections(srv.recorder.app)
    return srv


CASES = {
    "a hierarchical node's retriever_id": (
        node_retriever_missing,
        13,
        "spec.config.hierarchical_nodes[1].retriever_id: "
        "retriever ret_gone does not exist in namespace production",
    ),
    "an inference_collections entry": (
        inference_collection_missing,
        12,
        "spec.config.inference_collections[1]: "
        "collection col_gone does not exist in namespace production",
    ),
    "appliedTo the system collection, unlisted": (
        applied_to_the_system_collection,
        7,
        "spec.appliedTo[0].collection: "
        "collection _direct_upsert does not exist in namespace production",
    ),
    "appliedTo the system collection, listed": (
        applied_to_the_system_collection,
        7,
        "spec.appliedTo[0].collection: _direct_upsert is a system collection: "
        "taxsync never attaches to it",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_is_a_plan_error_on_one_line_at_its_place(
    tmp_path: Path, emulator: StartEmulator, case: str, command: str
) -> None:
    srv = emulator()
    if case.endswith(", listed"):
        lists_system_collections(srv)
    text, line, message = CASES[case]
    root = tmp_path / "m"
    manifest = write(root, "t.yaml", text())
    extra = ("--auto-approve",) if command == "apply" else ()

    result = run_cli(command, str(root), *extra, env=env(srv))
    assert result.code == 1, result.output
    lines = [entry for entry in result.err.splitlines() if message in entry]
    assert len(lines) == 1, result.err
    assert re.fullmatch(rf"(Error: )?{re.escape(str(manifest))}:{line}:\d+: .*", lines[0]), lines

    assert srv.writes() == []


@pytest.mark.parametrize(
    "text",
    [
        lambda: hierarchical("org", NS).replace(
            "label: Managers}", "label: Managers, retriever_id: ret_clip_v1}"
        ),
        lambda: inference_collection_missing().replace("col_gone", "col_b"),
        lambda: flat("products", NS).replace(
            "spec:\n", "spec:\n  appliedTo: [{collection: products}]\n", 1
        ),
    ],
    ids=["node retriever_id", "inference_collections", "appliedTo"],
)
def test_the_same_manifest_naming_what_exists_plans(
    tmp_path: Path, emulator: StartEmulator, text: object
) -> None:
    """The counterpart: the shape of each manifest above is fine, only the name was wrong."""
    srv = emulator()
    root = tmp_path / "m"
    assert callable(text)
    write(root, "t.yaml", text())
    result = run_cli("plan", str(root), env=env(srv))
    assert result.code == 0, result.output
