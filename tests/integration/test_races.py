"""Two writers on one taxonomy: what taxsync cannot prevent (no If-Match), it reports."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from taxsync import reconcile
from taxsync.plan import ApplyResult
from taxsync.wire import CreateTaxonomyVersionRequest
from tests.conftest import EmulatorHandle
from tests.helpers import flat, write

NS = "production"


def test_a_version_made_by_another_writer_during_ours_is_reported(
    tmp_path: Path, emulator: Any
) -> None:
    srv: EmulatorHandle = emulator()
    settings = reconcile.Settings(api_url=srv.url, api_key=srv.api_key)
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a", NS, top_k=1))
    assert reconcile.apply(reconcile.plan_tree(root, settings), settings).ok
    write(root, "a.yaml", flat("a", NS, top_k=2))
    plan = reconcile.plan_tree(root, settings)
    (change,) = plan.changes
    assert change.action == "new_version" and change.base_version == 1

    # Our POST …/versions is held after the head check; meanwhile another apply writes v2.
    held = srv.hold(lambda r: r.method == "POST" and r.path.endswith("/versions"))
    outcome: dict[str, ApplyResult] = {}
    ours = threading.Thread(target=lambda: outcome.update(result=reconcile.apply(plan, settings)))
    ours.start()
    held.wait()
    assert change.taxonomy_id is not None and change.version_body is not None
    srv.store.create_version(
        NS, change.taxonomy_id, CreateTaxonomyVersionRequest.model_validate(change.version_body)
    )
    held.release(forward=True)
    ours.join(timeout=30)

    (result,) = outcome["result"].results
    assert result.status == "failed", result
    assert "v2 was made by another writer at the same time as this apply's v3" in result.message
    assert not outcome["result"].ok
