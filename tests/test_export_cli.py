"""`taxsync export` end to end against the embedded emulator: names that collide once made
safe, or are too long for a file name, each still get one file, and plan adopts them all."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from taxsync.emulator import Store
from taxsync.wire import CreateTaxonomyRequest
from tests.helpers import run_cli

CONFIG = {
    "taxonomy_type": "flat",
    "retriever_id": "ret_catalog",
    "input_mappings": [{"input_key": "q", "source_type": "payload", "path": "text"}],
    "source_collection": {"collection_id": "col_categories"},
}


def seed(state: Path, namespace: str, names: list[str]) -> None:
    store = Store(state)
    store.ensure_namespace(namespace)
    for name in names:
        request = {"taxonomy_name": name, "config": CONFIG}
        store.create_taxonomy(namespace, CreateTaxonomyRequest.model_validate(request))


def test_export_writes_every_taxonomy_once_and_plan_adopts_them_all(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    # "a?b" collides with "a/b"; "a/b-<its hash>" sorts before it and is made safe to the
    # very name a hash suffix gives "a?b".
    suffix = hashlib.sha256(b"a?b").hexdigest()[:8]
    names = ["a/b", f"a/b-{suffix}", "a?b", "l" * 250, "Zürich-" * 30 + "üa" * 20]
    seed(state, "design", names)
    out = tmp_path / "out"
    local = ("--local", "--local-state", str(state))

    exported = run_cli("export", "-n", "design", "--out", str(out), *local)
    assert exported.code == 0, exported.output
    assert "Exported 5 taxonomy(ies) from 1 namespace(s)." in exported.out
    files = sorted(out.rglob("*.yaml"))
    assert len(files) == 5
    assert all(len(f.name.encode()) <= 255 - len(".") - len(".12345678.tmp") for f in files)

    # The exported configs name collections and retrievers this test never seeded.
    planned = run_cli("plan", str(out), "--format", "json", "--allow-missing-references", *local)
    assert planned.code == 0, planned.output
    changes = json.loads(planned.out)["changes"]
    assert sorted((c["action"], c["name"], c["adopt"]) for c in changes) == sorted(
        ("update", name, True) for name in names
    )
