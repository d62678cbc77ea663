"""A saved plan's backfills are checked like every other part of a change (issue 22): the
plan records the backfill intent it was made with, and apply --plan plans each change's
backfills again with it and compares them exactly. Over HTTP against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, run_cli, write
from tests.integration.test_saved_plan_checks import change, refused, tamper

NS = "production"
APPLIED = "spec:\n  appliedTo: [{collection: products}]\n"


def applied_products(top_k: int = 1) -> str:
    """products, attached to the products collection."""
    return flat("products", NS, top_k=top_k).replace("spec:\n", APPLIED, 1)


def started(tmp_path: Path, emulator: StartEmulator) -> tuple[EmulatorHandle, Path]:
    """products applied and attached; the backfill the attach asks is allowed though the
    collection is empty."""
    srv = emulator()
    srv.app.refuse_empty_backfill = False
    root = tmp_path / "m"
    write(root, "p.yaml", applied_products())
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    return srv, root


def saved(tmp_path: Path, srv: EmulatorHandle, root: Path, *flags: str) -> Path:
    plan_file = tmp_path / "plan.json"
    made = run_cli("plan", str(root), "--out", str(plan_file), *flags, env=env(srv))
    assert made.code == 0, made.output
    srv.forget()
    return plan_file


def backfills_started(srv: EmulatorHandle) -> list[str]:
    return [r.path for r in srv.committed() if r.path.endswith("/apply-taxonomy")]


@pytest.mark.parametrize("intent", [False, True], ids=["planned without", "planned with"])
def test_a_backfill_added_to_a_description_only_update_is_refused(
    tmp_path: Path, emulator: StartEmulator, intent: bool
) -> None:
    """Even a forger who also flips the recorded intent on: an update never backfills."""
    srv, root = started(tmp_path, emulator)
    text = applied_products().replace("by image similarity", "by image, said again")
    write(root, "p.yaml", text)
    plan_file = saved(tmp_path, srv, root, *(["--backfill"] if intent else []))

    def add_backfill(data: dict[str, Any]) -> None:
        update = change(data, "products")
        assert update["action"] == "update" and update["backfills"] == []
        update["backfills"] = ["col_products_v1"]
        data["backfill_on_change"] = [f"{NS}/products"]

    tamper(plan_file, add_backfill)
    refused(srv, plan_file, "would backfill 'col_products_v1'", "no backfill for it")
    assert backfills_started(srv) == []


def test_a_backfill_added_to_a_new_version_planned_without_backfills_is_refused(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator)
    write(root, "p.yaml", applied_products(top_k=4))
    plan_file = saved(tmp_path, srv, root)

    def add_backfill(data: dict[str, Any]) -> None:
        change(data, "products")["backfills"] = ["col_products_v1"]

    tamper(plan_file, add_backfill)
    refused(srv, plan_file, "would backfill 'col_products_v1'")


def test_a_new_version_planned_with_backfills_applies_them(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = started(tmp_path, emulator)
    write(root, "p.yaml", applied_products(top_k=4))
    plan_file = saved(tmp_path, srv, root, "--backfill")

    result = run_cli("apply", "--plan", str(plan_file), env=env(srv))

    assert result.code == 0, result.output
    assert backfills_started(srv) == ["/v1/collections/col_products_v1/apply-taxonomy"]
    assert Api(srv).taxonomies(NS)["products"]["version"] == 2
