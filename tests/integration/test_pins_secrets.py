"""The API key is kept out of every message by construction, not only masked on the way out.

Every ``run_cli`` of the suite scans its output for secrets, but through the masking layer
(``taxsync.redact``), which would hide a key that some message carries. Here the masking is
switched off, so a key that reaches any message shows; and a Python API caller, who has no
masking layer at all, gets no key in the ``taxsync.http`` logger's DEBUG records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from taxsync import reconcile
from taxsync.errors import TaxsyncError
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import env, flat, run_cli, settings_for, write

NS = "production"
# Long and unlike anything else in the output, so any trace of it is found.
KEY = "sk_live_pins_9f3c2a7e51d04b8c"


class _HoldsNothing(set[str]):
    """A secret registry that never holds a secret: nothing is masked."""

    def add(self, value: str) -> None:
        pass


@pytest.fixture
def redaction_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The one internal this file reaches: where known secrets are kept for masking.
    from taxsync import redact

    monkeypatch.setattr(redact, "_secrets", _HoldsNothing())
    assert redact.redact(f"x {KEY} y") == f"x {KEY} y", "masking is still on"
    yield


def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "m"
    write(root, "p.yaml", flat("products", NS))
    write(root, "q.yaml", flat("queries", NS))
    return root


def assert_no_key(text: str, where: str) -> None:
    assert KEY not in text, f"the API key is in {where}"
    assert KEY[8:] not in text, f"part of the API key is in {where}"


@pytest.mark.usefixtures("redaction_off")
def test_no_cli_output_carries_the_key_even_unmasked(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator(api_key=KEY)
    root = manifests(tmp_path)
    plan_file = tmp_path / "plan.json"
    runs = [
        run_cli("plan", str(root), "-v", "--out", str(plan_file), env=env(srv)),
        run_cli("apply", "--plan", str(plan_file), "-v", env=env(srv)),
        run_cli("plan", str(root), "-v", "--format", "json", env=env(srv)),
        run_cli("doctor", "-n", NS, "--yes", env=env(srv)),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 0], [r.output for r in runs]
    assert "http: " in runs[0].err  # the HTTP log was on
    for run in runs:
        assert_no_key(run.output, "the output")
    assert_no_key(plan_file.read_text(encoding="utf-8"), "the saved plan")

    # A key the server refuses: the error says so without repeating it.
    wrong = {**env(srv), "MIXPEEK_API_KEY": KEY[::-1]}
    refused = run_cli("plan", str(root), "-v", env=wrong)
    assert refused.code != 0
    assert KEY[::-1] not in refused.output and KEY[::-1][8:] not in refused.output


def test_the_python_api_logs_no_key_at_debug(
    tmp_path: Path, emulator: StartEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    srv = emulator(api_key=KEY)
    root = manifests(tmp_path)
    caplog.set_level(logging.DEBUG, logger="taxsync.http")
    settings = settings_for(srv)

    plan = reconcile.plan_tree(root, settings)
    assert reconcile.apply(plan, settings).ok
    refused = reconcile.Settings(api_url=srv.url, api_key=KEY[::-1])
    with pytest.raises(TaxsyncError) as caught:
        reconcile.plan_tree(root, refused)

    records = [r for r in caplog.records if r.name == "taxsync.http"]
    assert len(records) >= 6  # reads and writes were logged
    for record in records:
        assert_no_key(record.getMessage(), "a taxsync.http record")
        assert_no_key(repr(record.args), "a taxsync.http record's arguments")
    assert_no_key(caplog.text, "the log")
    assert KEY[::-1] not in str(caught.value) and KEY[::-1] not in caplog.text


def test_the_settings_show_no_key(emulator: StartEmulator) -> None:
    srv: EmulatorHandle = emulator(api_key=KEY)
    settings = settings_for(srv)
    assert_no_key(repr(settings), "repr(Settings)")
    assert_no_key(str(settings), "str(Settings)")
