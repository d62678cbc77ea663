"""Small things apply and its neighbours say: the step summary's bullets, and what
``--concurrency`` bounds in each command's help."""

from __future__ import annotations

import re

import pytest

from taxsync import render
from taxsync.plan import ApplyResult, AttachmentChange, ChangeResult, TaxonomyChange
from tests.helpers import run_cli


def test_step_summary_bullets_never_open_a_nested_list() -> None:
    attach = AttachmentChange(
        action="attach",
        namespace="production",
        name="products",
        taxonomy_type="flat",
        collection_id="col_a",
        collection_name="a",
        application={},
    )
    delete = TaxonomyChange(
        action="delete",
        namespace="production",
        name="old",
        taxonomy_type="flat",
        taxonomy_id="tax_old",
        base_version=1,
    )
    result = ApplyResult([ChangeResult(attach, "applied", taxonomy_id="tax_p"),
                          ChangeResult(delete, "applied")])  # fmt: skip
    bullets = [line for line in render.apply_markdown(result).splitlines() if line.startswith("-")]
    assert len(bullets) == 2
    for bullet in bullets:
        # CommonMark: a list marker followed by a space opens a list inside the item.
        assert not re.match(r"- [-+*] ", bullet), bullet
    assert bullets[0].startswith("- \\+ attach production/products to collection")


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("apply", "changes applied"),
        ("plan", "Namespaces read at the same time."),
        ("export", "Namespaces read at the same time."),
        ("history", "connection pool"),
    ],
)
def test_concurrency_help_speaks_of_what_the_command_does(command: str, said: str) -> None:
    shown = run_cli(command, "--help")
    assert shown.code == 0
    text = " ".join(shown.out.split())
    assert said in text
    if command != "apply":
        assert "changes applied" not in text
