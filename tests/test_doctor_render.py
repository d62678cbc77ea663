"""The doctor's report prints the API's text inert: escaped in text and in JSON."""

from __future__ import annotations

import json

from taxsync import render
from taxsync.doctor import Check, DoctorReport

HOSTILE = "\x1b[31mred\n::error file=x::forged\u202e##[set-output]"


def _report() -> DoctorReport:
    check = Check("new version", "POST …/versions", "differs", HOSTILE, "taxsync: report it")
    return DoctorReport("production", "taxsync-doctor-x", [check], left_behind=[HOSTILE])


def test_text_has_one_line_per_item_and_nothing_a_terminal_or_runner_obeys() -> None:
    text = render.doctor_text(_report())
    assert len(text.splitlines()) == 4  # heading, the check, left behind, the count
    assert "\x1b" not in text and "\u202e" not in text
    assert not any(line.startswith("::") or "##[" in line for line in text.splitlines())


def test_json_keeps_the_data_and_escapes_hidden_characters() -> None:
    shown = render.doctor_json(_report())
    assert "\x1b" not in shown and "##[" not in shown
    data = json.loads(shown)
    assert data["checks"][0]["observed"] == HOSTILE and data["ok"] is False
