"""``taxsync doctor`` is a guest in the namespace it probes: it asks before writing beside
taxonomies taxsync manages, cleans up on SIGTERM and through a quick second Ctrl-C, lets a
third abort the clean-up only by listing what is left, re-reads a write whose answer was
lost before calling it left behind, and speaks only of what it touched."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import WAIT_FAILSAFE_S, EmulatorHandle, Seen, StartEmulator
from tests.helpers import Api, env, flat, run_cli, spawn_cli, wait_held, write

NS = "production"
COL_A = "/v1/collections/col_a"
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def _manage_one(tmp_path: Path, srv: EmulatorHandle) -> None:
    """The namespace holds a taxonomy taxsync applied: somebody's real one."""
    write(tmp_path / "m", "k.yaml", flat("kept", NS))
    assert run_cli("apply", str(tmp_path / "m"), "--auto-approve", env=env(srv)).code == 0
    srv.forget()


def _probes(srv: EmulatorHandle) -> list[str]:
    return [n for n in Api(srv).names(NS) if n.startswith("taxsync-doctor-")]


def _writes(srv: EmulatorHandle) -> list[Seen]:
    return [r for r in srv.requests if r.method in WRITES and not r.path.endswith("/list")]


def _report(process: Any) -> tuple[int, dict[str, Any], str]:
    out, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    assert "Traceback" not in err, err
    return process.returncode, json.loads(out), err


# --- the guard ------------------------------------------------------------------------------


def test_doctor_refuses_a_managed_namespace_off_a_terminal(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    _manage_one(tmp_path, srv)

    run = run_cli("doctor", "-n", NS, "--collections", "col_a", env=env(srv))

    assert run.code == 1, run.output
    (line,) = run.err.splitlines()
    assert line.startswith("Error: namespace 'production' holds 1 taxonomy taxsync manages (kept)")
    assert "--yes" in line and "nothing was written" in line
    assert _writes(srv) == []


def test_doctor_asks_on_a_terminal_and_a_no_writes_nothing(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    _manage_one(tmp_path, srv)

    run = run_cli("doctor", "-n", NS, env=env(srv), typed="n\n")

    assert run.code == 1, run.output
    assert "holds taxonomies taxsync manages: kept." in run.err
    assert _writes(srv) == []


def test_doctor_probes_a_managed_namespace_on_yes(tmp_path: Path, emulator: StartEmulator) -> None:
    srv = emulator()
    _manage_one(tmp_path, srv)

    typed = run_cli("doctor", "-n", NS, env=env(srv), typed="y\n")
    flagged = run_cli("doctor", "-n", NS, "--yes", env=env(srv))

    assert (typed.code, flagged.code) == (0, 0), typed.output + flagged.output
    assert _probes(srv) == []
    assert "kept" in Api(srv).names(NS)


def test_doctor_needs_no_consent_in_a_namespace_taxsync_does_not_manage(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    Api(srv).create(NS, {"taxonomy_name": "hand-made", "config": _config(srv)})

    assert run_cli("doctor", "-n", NS, env=env(srv)).code == 0


def _config(srv: EmulatorHandle) -> dict[str, Any]:
    from tests.helpers import _flat_config

    return _flat_config(1)


# --- signals --------------------------------------------------------------------------------


def _the_restore(srv: EmulatorHandle) -> Any:
    """Matches the clean-up's PATCH of col_a: the third, after the probe's attach and detach
    (a probe stopped during its attach still finishes that check)."""

    def match(request: Seen) -> bool:
        patches = [r for r in srv.recorder.seen if (r.method, r.path) == ("PATCH", COL_A)]
        return (request.method, request.path) == ("PATCH", COL_A) and len(patches) == 3

    return match


def _held_at_the_attach(srv: EmulatorHandle, *extra: str) -> tuple[Any, Any]:
    hold = srv.hold(lambda r: r.method == "PATCH" and r.path == COL_A)
    process = spawn_cli(srv, "doctor", "-n", NS, "--collections", "col_a", "--format", "json")
    wait_held(hold, process)
    return hold, process


def test_sigterm_cleans_up_like_ctrl_c(emulator: StartEmulator) -> None:
    srv = emulator()
    before = Api(srv).call("GET", COL_A, NS)["taxonomy_applications"]
    hold, process = _held_at_the_attach(srv)

    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the signal is heard before the held attach is answered
    hold.release(forward=True)  # the attach lands: the clean-up must undo it
    code, report, _ = _report(process)

    assert code == 130, report
    assert report["interrupted"] is True
    assert report["left_behind"] == []
    assert _probes(srv) == []
    assert Api(srv).call("GET", COL_A, NS)["taxonomy_applications"] == before


def test_a_quick_second_ctrl_c_does_not_cut_the_clean_up_short(emulator: StartEmulator) -> None:
    srv = emulator()
    hold, process = _held_at_the_attach(srv)

    process.send_signal(signal.SIGINT)
    time.sleep(0.03)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    hold.release(forward=True)
    code, report, err = _report(process)

    assert code == 130, report
    assert "interrupt once more to abort it" in err
    assert report["left_behind"] == []
    assert _probes(srv) == []


def test_a_third_interrupt_aborts_the_clean_up_and_lists_what_is_left(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    attach, process = _held_at_the_attach(srv)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    restore = srv.hold(_the_restore(srv))
    attach.release(forward=True)
    wait_held(restore, process)  # the clean-up's restore of col_a is in flight

    process.send_signal(signal.SIGINT)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    code, report, _ = _report(process)
    restore.release()

    assert code == 130, report
    left = report["left_behind"]
    assert any(item.startswith("collection col_a: the clean-up was aborted") for item in left)
    probes = _probes(srv)
    assert len(probes) == 2, probes
    for name in probes:
        assert f"{name}: the clean-up was aborted (interrupted three times)" in left, left


# --- lost answers, and only what was touched ------------------------------------------------


def test_a_lost_delete_answer_is_re_read_before_it_is_called_left_behind(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    srv.lose(lambda r: r.method == "DELETE", committed=True, limit=1)

    run = run_cli("doctor", "-n", NS, "--format", "json", env=env(srv))
    report = json.loads(run.out)

    assert report["left_behind"] == [], report
    assert _probes(srv) == []
    assert run.code == 0, run.output


def test_a_lost_restore_answer_is_re_read_before_it_is_called_left_behind(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    hold, process = _held_at_the_attach(srv)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    srv.lose(_the_restore(srv), committed=True, limit=1)
    hold.release(forward=True)
    code, report, _ = _report(process)

    assert report["left_behind"] == [], report
    assert "restored collection col_a's taxonomy_applications" in report["cleaned"]
    assert code == 130, json.dumps(report)


def test_a_collection_never_written_is_neither_restored_nor_listed(
    emulator: StartEmulator,
) -> None:
    srv = emulator()
    hold = srv.hold(lambda r: (r.method, r.path) == ("POST", "/v1/taxonomies"))
    process = spawn_cli(srv, "doctor", "-n", NS, "--collections", "col_a", "--format", "json")
    wait_held(hold, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    hold.release(forward=True)
    code, report, _ = _report(process)

    assert code == 130, report
    assert not [r for r in srv.requests if r.method == "PATCH" and r.path == COL_A]
    mentions = [i for i in report["cleaned"] + report["left_behind"] if "col_a" in i]
    assert mentions == [], report
    assert _probes(srv) == []
