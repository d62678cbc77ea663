"""``taxsync doctor`` over real HTTP: every assumption checked, nothing left behind (also on
Ctrl-C), and each broken assumption reported as ``differs`` with exit 1."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from taxsync.emulator.query import ListQuery
from taxsync.emulator.store import Store
from taxsync.wire import PatchCollectionRequest
from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, Seen, StartEmulator
from tests.helpers import (
    Api,
    env,
    flat,
    run_cli,
    seed_local,
    spawn_cli,
    wait_held,
    write,
)
from tests.helpers import _flat_config as flat_config

NS = "production"


def _with_an_application(srv: EmulatorHandle) -> Any:
    """col_a applies a taxonomy of its own (phase 2), so restoring must be exact."""
    api = Api(srv)
    kept = api.create(NS, {"taxonomy_name": "kept", "config": flat_config(1)})
    entry = {"taxonomy_id": kept["taxonomy_id"], "execution_phase": 2}
    api.call("PATCH", "/v1/collections/col_a", NS, {"taxonomy_applications": [entry]})
    return _applications(srv)


def _applications(srv: EmulatorHandle) -> Any:
    return Api(srv).call("GET", "/v1/collections/col_a", NS)["taxonomy_applications"]


def _nothing_left(srv: EmulatorHandle, before: Any) -> None:
    names = Api(srv).names(NS)
    assert not [n for n in names if n.startswith("taxsync-doctor-")], names
    assert _applications(srv) == before


def _doctor(srv: EmulatorHandle, json_first: bool = False) -> tuple[int, str, dict[str, Any]]:
    """A text run and a JSON run (or, with ``json_first``, only the JSON run's report and a
    rendering of it: a server that merges leaves entries no second run can patch around)."""
    args = ("doctor", "-n", NS, "--collections", "col_a")
    as_json = run_cli(*args, "--format", "json", env=env(srv))
    report = json.loads(as_json.out)
    if json_first:
        return as_json.code, _text_of(report), report
    text = run_cli(*args, env=env(srv))
    assert as_json.code == text.code, as_json.output
    return text.code, text.out, report


def _text_of(report: dict[str, Any]) -> str:
    from taxsync import render
    from taxsync.doctor import Check, DoctorReport

    checks = [Check(**c) for c in report["checks"]]
    fields = {
        k: report[k]
        for k in ("namespace", "probe", "cleaned", "left_behind", "interrupted", "error")
    }
    return render.doctor_text(DoctorReport(checks=checks, **fields))


def _status(report: dict[str, Any], check: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["check"] == check)


def test_every_assumption_holds_and_nothing_is_left(emulator: StartEmulator) -> None:
    srv = emulator()
    before = _with_an_application(srv)
    code, out, report = _doctor(srv)
    assert code == 0, out
    assert report["ok"] and {c["status"] for c in report["checks"]} == {"ok"}
    assert len(report["checks"]) == 14 and report["left_behind"] == []
    assert "14 ok, 0 differ(s), 0 skipped; every checked assumption holds" in out
    assert out.count("cleaned up: deleted taxsync-doctor-") == 2
    _nothing_left(srv, before)


def test_local_passes_every_check(tmp_path: Path) -> None:
    state = seed_local(tmp_path / "state.json", NS)
    args = ("doctor", "--local", "--local-state", str(state), "-n", NS, "--collections", "col-a")
    run = run_cli(*args)
    assert run.code == 0, run.output
    assert "differs" not in run.out and "14 ok" in run.out
    assert Store(state).list_taxonomies(NS, ListQuery(limit=1000)).results == []


def _versions(request: Seen) -> bool:
    return request.method == "POST" and request.path.endswith("/versions")


@pytest.mark.parametrize(
    ("status", "details"),
    [
        (
            422,
            {
                "validation_errors": [
                    {
                        "loc": ["body", "config"],
                        "msg": "Extra inputs are not permitted",
                        "type": "extra_forbidden",
                    }
                ]
            },
        ),
        (404, None),
        (405, None),
    ],
)
def test_a_versions_endpoint_that_wants_another_body_is_said_plainly(
    emulator: StartEmulator, status: int, details: dict[str, Any] | None
) -> None:
    srv = emulator()
    before = _with_an_application(srv)
    srv.answer(_versions, status, "Request validation failed", details)
    code, out, report = _doctor(srv)
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("differs  new version"))
    assert f"HTTP {status}" in line and "THE VERSIONS CONTRACT DIFFERS" in line
    assert _status(report, "new version")["status"] == "differs"
    for check in ("read version", "list versions", "created_at"):
        assert _status(report, check)["status"] == "skipped"
    _nothing_left(srv, before)


def test_a_collection_patch_that_merges_is_reported(emulator: StartEmulator) -> None:
    srv = emulator()
    _with_an_application(srv)
    store = srv.store
    replace = store.patch_collection

    def merging(ns: str, ident: str, request: PatchCollectionRequest, **kw: Any) -> Any:
        sent = request.taxonomy_applications or []
        now = store.get_collection(ns, ident).get("taxonomy_applications") or []
        known = {e["taxonomy_id"] for e in now}
        extra = [e for e in sent if e.taxonomy_id not in known]
        merged = PatchCollectionRequest(taxonomy_applications=[*now, *extra])
        return replace(ns, ident, merged, **kw)

    store.patch_collection = merging  # type: ignore[method-assign]
    code, out, report = _doctor(srv, json_first=True)
    assert code == 1
    assert _status(report, "collection patch")["status"] == "differs"
    assert "merged, not replaced" in _status(report, "collection patch")["observed"]
    assert _status(report, "restore")["status"] == "differs"
    assert any("col_a" in item for item in report["left_behind"]) and "LEFT BEHIND: " in out
    names = Api(srv).names(NS)
    assert not [n for n in names if n.startswith("taxsync-doctor-")], names


def test_a_delete_refused_while_applied_is_reported(emulator: StartEmulator) -> None:
    srv = emulator()
    srv.app.applied_taxonomy_delete = "strict"
    before = _with_an_application(srv)
    code, out, report = _doctor(srv)
    assert code == 1
    check = _status(report, "delete applied")
    assert check["status"] == "differs" and "HTTP 400" in check["observed"]
    assert "--applied-taxonomy-delete strict" in check["consequence"]
    assert [c["check"] for c in report["checks"] if c["status"] != "ok"] == ["delete applied"]
    _nothing_left(srv, before)


def test_ctrl_c_midway_cleans_up_and_exits_130(emulator: StartEmulator) -> None:
    srv = emulator()
    before = _with_an_application(srv)
    hold = srv.hold(lambda r: r.method == "PATCH" and r.path == "/v1/collections/col_a")
    process = spawn_cli(srv, "doctor", "-n", NS, "--collections", "col_a")
    wait_held(hold, process)
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    failsafe = threading.Timer(WAIT_FAILSAFE_S, process.kill)
    failsafe.start()
    try:
        line = process.stderr.readline()
    finally:
        failsafe.cancel()
    assert line.startswith("Interrupt: finishing the request in flight"), line
    hold.release(forward=True)  # the attach lands: clean-up must undo it
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    assert process.returncode == 130, out + err
    assert "restored collection col_a's taxonomy_applications" in out
    assert out.count("cleaned up: deleted taxsync-doctor-") == 2
    assert "Traceback" not in err
    _nothing_left(srv, before)


def test_apply_names_the_versions_contract_and_doctor(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat(top_k=1))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "p.yaml", flat(top_k=2))
    details = {
        "validation_errors": [{"loc": ["body", "spec"], "msg": "Field required", "type": "missing"}]
    }
    srv.answer(_versions, 422, "Request validation failed", details)
    run = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert run.code == 1
    assert "versions contract differs" in run.output and "taxsync doctor" in run.output


def test_a_config_field_error_still_points_at_the_manifest(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", flat(top_k=1))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "p.yaml", flat(top_k=2))
    problem = {"loc": ["body", "config", "top_k"], "msg": "too big", "type": "less_than_equal"}
    srv.answer(_versions, 422, "Request validation failed", {"validation_errors": [problem]})
    run = run_cli("apply", str(root), "--auto-approve", env=env(srv))
    assert run.code == 1 and "spec.config.top_k: too big" in run.output
    assert "versions contract" not in run.output
