"""Id fields take ids only (issue 22): a collection or retriever *name* written where an id
goes is a plan error at its line, even when the name looks like an id, and even with
``--allow-missing-references``; ``{name: …}`` is how a manifest names one. Over HTTP against
the emulator, through the CLI."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EVERY_NAMESPACE_SEED, StartEmulator
from tests.helpers import Api, env, flat, hierarchical, run_cli, write

NS = "production"


def decoy_seed() -> dict[str, Any]:
    """The usual namespace, plus a collection and a retriever whose names look like ids
    that do not exist."""
    seed = copy.deepcopy(EVERY_NAMESPACE_SEED)
    namespace = seed["namespaces"]["*"]
    namespace["collections"].append({"collection_id": "col_real", "collection_name": "col_fake"})
    namespace["retrievers"].append({"retriever_id": "ret_real", "retriever_name": "ret_fake"})
    return seed


def source_collection() -> str:
    return flat("products", NS).replace("collection_id: col_products_v1", "collection_id: col_fake")


def retriever() -> str:
    return flat("products", NS).replace("retriever_id: ret_clip_v1", "retriever_id: ret_fake")


def node_collection() -> str:
    return (
        hierarchical("org", NS)
        .replace(
            "{collection_id: col_employees, label: Employees}",
            "{collection_id: col_fake, label: Employees}",
        )
        .replace("parent_collection_id: col_employees", "parent_collection_id: col_fake")
    )


def inference_collection() -> str:
    return hierarchical("org", NS).replace(
        "    hierarchical_nodes:",
        "    inference_strategy: llm\n    inference_collections: [col_a, col_fake]\n"
        "    hierarchical_nodes:",
    )


def target_collection() -> str:
    return flat("products", NS).replace(
        "spec:\n",
        "spec:\n  appliedTo: [{collection: products, target_collection_id: col_fake}]\n",
        1,
    )


CASES: dict[str, tuple[Callable[[], str], str, str]] = {
    "source_collection": (source_collection, "spec.config.source_collection.collection_id", "col"),
    "retriever_id": (retriever, "spec.config.retriever_id", "ret"),
    "node collection_id": (
        node_collection,
        "spec.config.hierarchical_nodes[0].collection_id",
        "col",
    ),
    "inference_collections": (inference_collection, "spec.config.inference_collections[1]", "col"),
    "target_collection_id": (target_collection, "spec.appliedTo[0].target_collection_id", "col"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("allow_missing", [False, True], ids=["checked", "allow-missing"])
def test_a_name_in_an_id_field_is_a_plan_error_at_its_line(
    tmp_path: Path, emulator: StartEmulator, case: str, allow_missing: bool
) -> None:
    srv = emulator(seed=decoy_seed())
    text, field, kind = CASES[case]
    root = tmp_path / "m"
    manifest = write(root, "t.yaml", text())
    extra = ("--allow-missing-references",) if allow_missing else ()

    result = run_cli("apply", str(root), "--auto-approve", *extra, env=env(srv))

    assert result.code == 1, result.output
    assert "internal error" not in result.output.lower()
    lines = [line for line in result.err.splitlines() if field in line]
    assert len(lines) == 1, result.err
    assert re.fullmatch(rf"(Error: )?{re.escape(str(manifest))}:\d+:\d+: .*", lines[0]), lines
    what = "collection" if kind == "col" else "retriever"
    assert f"'{kind}_fake' is the name of {what} {kind}_real, not an id" in lines[0]
    assert f"write {{name: {kind}_fake}}" in lines[0]
    assert srv.writes() == []


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_name_written_as_a_name_plans_the_id(
    tmp_path: Path, emulator: StartEmulator, case: str
) -> None:
    """The counterpart: ``{name: …}`` in the same field resolves to the real id."""
    srv = emulator(seed=decoy_seed())
    text, _, kind = CASES[case]
    root = tmp_path / "m"
    written = re.sub(rf"\b{kind}_fake\b", f"{{name: {kind}_fake}}", text())
    write(root, "t.yaml", written)

    result = run_cli("apply", str(root), "--auto-approve", env=env(srv))

    assert result.code == 0, result.output
    (created,) = Api(srv).listing(NS)
    if case == "target_collection_id":
        found = Api(srv).call("GET", "/v1/collections/col_products_v1", NS)
        (entry,) = found["taxonomy_applications"]
        assert entry["target_collection_id"] == "col_real"
    else:
        assert f"{kind}_real" in str(created["config"])
        assert f"{kind}_fake" not in str(created["config"])
