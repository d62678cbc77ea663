"""Another writer at work at the same moment, pinned from the outside: a collection
rewritten right after taxsync's PATCH fails the change (taxsync reads its write back), and
``taxsync doctor`` reads back its restore and deletes nothing that lacks its marker.

Each test runs taxsync in a process of its own, holds one of its requests at the emulator,
plays the other writer through the test's own HTTP hands, then lets the request go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, Seen, StartEmulator
from tests.helpers import Api, env, flat, run_cli, spawn_cli, wait_held, write

NS = "production"
COLLECTION = "/v1/collections/col_products_v1"


def after_a_patch_of(srv: EmulatorHandle, path: str, patches: int = 1) -> Callable[[Seen], bool]:
    """Matches a GET of ``path`` once taxsync has sent ``patches`` PATCHes of it: the read
    that checks what the last one left."""

    def match(request: Seen) -> bool:
        sent = sum(1 for r in srv.recorder.seen if (r.method, r.path) == ("PATCH", path))
        return (request.method, request.path) == ("GET", path) and sent == patches

    return match


def test_a_collection_rewritten_right_after_the_attach_fails_the_change(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    api = Api(srv)
    root = tmp_path / "m"
    text = flat("products", NS).replace("spec:\n", "spec:\n  appliedTo: [{collection: products}]\n")
    write(root, "p.yaml", text)
    hold = srv.hold(after_a_patch_of(srv, COLLECTION))

    process = spawn_cli(srv, "apply", str(root), "--auto-approve")
    wait_held(hold, process)
    # Taxsync's attach landed; now someone else sends their whole list, without it.
    assert len(api.call("GET", COLLECTION, NS)["taxonomy_applications"]) == 1
    api.call("PATCH", COLLECTION, NS, {"taxonomy_applications": []})
    hold.release(forward=True)
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)

    assert process.returncode == 1, out + err
    assert "does not read back as written" in out + err
    assert "Apply: 1 applied, 1 failed." in out


# --- doctor ---------------------------------------------------------------------------------

COL_A = "/v1/collections/col_a"


def col_a_applies_kept(tmp_path: Path, srv: EmulatorHandle) -> list[dict[str, Any]]:
    """col_a applies a taxonomy of the user's: what doctor must leave as it found it."""
    root = tmp_path / "m"
    write(root, "k.yaml", flat("kept", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    api = Api(srv)
    entry = {"taxonomy_id": api.taxonomies(NS)["kept"]["taxonomy_id"], "execution_phase": 2}
    found: list[dict[str, Any]] = api.call("PATCH", COL_A, NS, {"taxonomy_applications": [entry]})[
        "taxonomy_applications"
    ]
    return found


def doctor_report(srv: EmulatorHandle, process: Any) -> tuple[int, dict[str, Any]]:
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    assert "Traceback" not in err, err
    report: dict[str, Any] = json.loads(out)
    return process.returncode, report


def test_doctor_reads_its_restore_back(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    col_a_applies_kept(tmp_path, srv)
    # Doctor's PATCHes of col_a: attach and detach the probe, attach the second probe, then
    # the restore; the GET after the fourth is the restore's read-back.
    hold = srv.hold(after_a_patch_of(srv, COL_A, patches=4))

    process = spawn_cli(
        srv, "doctor", "-n", NS, "--collections", "col_a", "--format", "json", "--yes"
    )
    wait_held(hold, process)
    Api(srv).call("PATCH", COL_A, NS, {"taxonomy_applications": []})  # someone else, meanwhile
    hold.release(forward=True)
    code, report = doctor_report(srv, process)

    assert code == 1, report
    (restore,) = [c for c in report["checks"] if c["check"] == "restore"]
    assert restore["status"] == "differs", restore
    assert any(item.startswith("collection col_a:") for item in report["left_behind"]), report


def test_doctor_cleans_up_no_taxonomy_without_its_marker(emulator: StartEmulator) -> None:
    srv = emulator()
    api = Api(srv)
    hold = srv.hold(lambda r: (r.method, r.path) == ("POST", "/v1/taxonomies"))

    process = spawn_cli(srv, "doctor", "-n", NS, "--format", "json")
    held = wait_held(hold, process)
    name = held.json()["taxonomy_name"]
    # Someone else's taxonomy takes the probe's name first: doctor never wrote it, and must
    # not delete it on the way out.
    body = {**held.json(), "metadata": {"owner": "someone else"}}
    theirs = api.create(NS, body)
    hold.release()  # the probe's create is answered 503, never handled
    code, report = doctor_report(srv, process)

    assert code == 1, report
    assert api.taxonomies(NS)[name]["taxonomy_id"] == theirs["taxonomy_id"]
    assert f"{name}: not deleted, it lacks the probe marker" in report["left_behind"], report
    deleted = [r for r in srv.requests if r.method == "DELETE"]
    assert all(theirs["taxonomy_id"] not in r.path for r in deleted), deleted
