"""A misspelt ``appliedTo`` collection let through by ``--allow-missing-references`` never
detaches anything, over HTTP against the emulator: the taxonomy's entry in the collection
the typo meant stays, in the plan and after apply."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import env, run_cli, write
from tests.integration.test_attachments import entries, manifest

ALLOW = "--allow-missing-references"


def applied(
    tmp_path: Path, emulator: StartEmulator, applied_to: str
) -> tuple[EmulatorHandle, Path]:
    """An emulator where products (col_products_v1) applies the taxonomy, and a tree whose
    manifest now says ``applied_to`` instead."""
    srv = emulator()
    root = tmp_path / "m"
    write(root, "p.yaml", manifest(applied_to="[{collection: products}]"))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    assert len(entries(srv)) == 1
    write(root, "p.yaml", manifest(applied_to=applied_to))
    srv.forget()
    return srv, root


def test_a_misspelt_collection_plans_no_detach_and_apply_keeps_the_entry(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = applied(tmp_path, emulator, "[{collection: prodcts}]")
    planned = run_cli("plan", str(root), ALLOW, "--format", "json", env=env(srv))
    assert planned.code == 0, planned.output
    assert json.loads(planned.out)["changes"] == []
    # Nothing changes, yet the typo is said, at its line.
    (let_through,) = json.loads(planned.out)["unchecked"]
    assert "p.yaml:" in let_through and "prodcts" in let_through, let_through
    text = run_cli("plan", str(root), ALLOW, env=env(srv))
    assert "detach" not in text.out
    assert "prodcts" in text.out and "not checked: --allow-missing-references" in text.out
    markdown = run_cli("plan", str(root), ALLOW, "--format", "markdown", env=env(srv))
    assert "prodcts" in markdown.out
    done = run_cli("apply", str(root), ALLOW, "--auto-approve", env=env(srv))
    assert done.code == 0, done.output
    assert len(entries(srv)) == 1  # the real entry is still there
    assert not [r for r in srv.writes() if r.path.startswith("/v1/collections")]


def test_with_a_missing_collection_the_resolved_ones_still_attach_but_none_detach(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv, root = applied(tmp_path, emulator, "[{collection: col-a}, {collection: prodcts}]")
    planned = run_cli("plan", str(root), ALLOW, "--format", "json", env=env(srv))
    assert planned.code == 0, planned.output
    changes = json.loads(planned.out)["changes"]
    assert [(c["action"], c["collection_name"]) for c in changes] == [("attach", "col-a")]
    assert any("no entry of this taxonomy is detached" in u for u in changes[0]["unchecked"])
    assert "prodcts" in " ".join(changes[0]["unchecked"])
    saved = tmp_path / "plan.json"
    assert run_cli("plan", str(root), ALLOW, "--out", str(saved), env=env(srv)).code == 0
    done = run_cli("apply", "--plan", str(saved), "--auto-approve", env=env(srv))
    assert done.code == 0, done.output
    assert len(entries(srv)) == 1 and len(entries(srv, "col_a")) == 1


def test_once_every_collection_resolves_the_unlisted_entry_is_detached(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """Ownership still holds when nothing is missing: the rule is only about typos."""
    srv, root = applied(tmp_path, emulator, "[{collection: col-a}]")
    planned = run_cli("plan", str(root), "--format", "json", env=env(srv))
    actions = [(c["action"], c["collection_name"]) for c in json.loads(planned.out)["changes"]]
    assert actions == [("attach", "col-a"), ("detach", "products")]
