"""Requests per applied change: 200 new versions, then 200 updates, of one namespace.

Apply checks each change against its namespace's heads, read as one list (a page per
1,000, or per the server's cap) and shared by every change of the namespace, so an applied
change should cost about one request: its write. ``run.py`` calls ``measure`` after its
creates; the plan's own reads (measured by a plan of the same tree just before) are left
out, the heads apply reads itself are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from run import Benchmark, Run

FLEET = 200
MAX_REQUESTS_PER_CHANGE = 1.05  # the target of the issue, reads included


def _edit_tree(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    for path in sorted(root.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _new_config(doc: dict[str, Any]) -> None:
    config = doc["spec"]["config"]
    if config["taxonomy_type"] == "flat":
        config["top_k"] = 51 - config["top_k"]  # another value in 1-50
    else:
        config["hierarchical_nodes"][1]["label"] += " (renamed)"


def _new_description(doc: dict[str, Any]) -> None:
    doc["spec"]["description"] = "Reworded for the requests-per-change measurement"


def measure(
    bench: Benchmark,
    env: dict[str, str],
    build_tree: Callable[[Path, str, int, int], object],
    expect: Callable[[Run, list[int], str], Run],
) -> None:
    """Add the row: requests per applied change for new versions, then for updates.
    (``run.py`` hands in its own helpers: importing them here would load a second copy of
    the script, whose errors the harness would not recognise.)"""
    tree = bench.workdir / "per-change"
    build_tree(tree, "per-change", FLEET, 1)
    apply = [*bench.taxsync, "apply", "-v", "--auto-approve", str(tree)]
    bench._check_applied(
        expect(bench.run(apply, "per-change-create", env, 600), [0], "apply"), FLEET
    )
    found = []
    for label, edit in (("new versions", _new_config), ("updates", _new_description)):
        _edit_tree(tree, edit)
        plan = bench.run([*bench.taxsync, "plan", "-v", "--detailed-exitcode", str(tree)],
                         f"per-change-plan-{label}", env, 600)  # fmt: skip
        expect(plan, [2], f"plan of {label} (exit 2: changes)")
        applied = expect(bench.run(apply, f"per-change-{label}", env, 600), [0], "apply")
        bench._check_applied(applied, FLEET)
        requests = applied.http_lines() - plan.http_lines()
        found.append((label, requests))
    bench.report.add(
        f"`taxsync apply` requests per applied change ({FLEET} new versions, then {FLEET} "
        "updates, one namespace; reads included, the plan's own left out)",
        f"<= {MAX_REQUESTS_PER_CHANGE:g}",
        "; ".join(f"{label}: {n / FLEET:.3f} ({n} requests)" for label, n in found),
        all(n / FLEET <= MAX_REQUESTS_PER_CHANGE for _, n in found),
    )
