"""A seeded apply replays: the order the applier sends a phase's changes in (its own,
shuffled, so that two applies of one plan do not race in lockstep) is drawn from the seed."""

from __future__ import annotations

from pathlib import Path

from taxsync import reconcile
from tests.conftest import StartEmulator
from tests.helpers import flat, settings_for, write

NS = "production"
NAMES = [f"t-{i}" for i in range(8)]  # 8! orders: the same one twice by chance is unlikely


def created_in_order(tmp_path: Path, emulator: StartEmulator, seed: int) -> list[str]:
    """The names of the taxonomies, in the order a fresh emulator received their creates,
    when a plan creating all of them is applied one change at a time with ``seed``."""
    srv = emulator()
    root = tmp_path / f"m-{seed}-{len(list(tmp_path.iterdir()))}"
    for name in NAMES:
        write(root, f"{name}.yaml", flat(name, NS))
    settings = settings_for(srv, concurrency=1)  # one at a time: the arrival order is the order
    plan = reconcile.plan_tree(root, settings)
    assert [c.name for c in plan.changes] == NAMES
    assert reconcile.apply(plan, settings, seed=seed).ok
    return [r.json()["taxonomy_name"] for r in srv.committed()]


def test_two_applies_with_one_seed_send_their_writes_in_the_same_order(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    first = created_in_order(tmp_path, emulator, seed=7)
    assert sorted(first) == NAMES
    assert created_in_order(tmp_path, emulator, seed=7) == first


def test_the_order_is_drawn_from_the_seed(tmp_path: Path, emulator: StartEmulator) -> None:
    """Not the plan's order whatever the seed: the seed is what the order comes from."""
    orders = {tuple(created_in_order(tmp_path, emulator, seed)) for seed in (1, 2, 3)}
    assert len(orders) > 1
    assert tuple(NAMES) not in orders
