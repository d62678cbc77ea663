"""The Python API: the snippet of docs/python-api.md runs as written, and a
``reconcile.Reporter`` hears a run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from taxsync import reconcile
from taxsync.errors import ManifestError, TaxsyncError
from taxsync.plan import ApplyResult, ChangeResult, Plan
from tests.helpers import flat, hierarchical, seed_local, write

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC = REPO_ROOT / "docs" / "python-api.md"


def documented_snippet() -> str:
    """The first python block of the Python API page: the one it tells readers to run."""
    found = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert found, f"{DOC} has no python block"
    return found.group(1)


def test_the_documented_python_snippet_plans_and_applies_the_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(documented_snippet(), str(DOC), "exec"), {})
    assert capsys.readouterr().out.strip() == "5 to create, 1 to attach"
    assert (tmp_path / ".taxsync" / "local-state.json").is_file()


class Heard(reconcile.Reporter):
    """A front end that writes down what it hears."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.planned_with: list[tuple[Plan, Path | None]] = []
        self.done: list[ChangeResult] = []
        self.applied_with: list[tuple[ApplyResult, Plan]] = []
        self.errors: list[TaxsyncError] = []

    def planned(self, plan: Plan, plan_file: Path | None) -> None:
        self.events.append("planned")
        self.planned_with.append((plan, plan_file))

    def apply_started(self, plan: Plan) -> None:
        self.events.append("apply_started")

    def change_done(self, result: ChangeResult) -> None:
        self.events.append("change_done")
        self.done.append(result)

    def interrupting(self) -> None:
        self.events.append("interrupting")

    def applied(self, result: ApplyResult, plan: Plan) -> None:
        self.events.append("applied")
        self.applied_with.append((result, plan))

    def failed(self, error: TaxsyncError) -> None:
        self.events.append("failed")
        self.errors.append(error)


def test_reporters_hear_a_run_in_order_and_fan_out_to_each(tmp_path: Path) -> None:
    settings = reconcile.Settings.local(seed_local(tmp_path / "state.json", "production"))
    root = tmp_path / "m"
    write(root, "a.yaml", flat("a"))
    write(root, "b.yaml", flat("b"))
    write(root, "c.yaml", hierarchical("c"))
    first, second = Heard(), Heard()
    both = reconcile.Reporters(first, second)
    out = tmp_path / "plan.json"

    plan = reconcile.plan_tree(root, settings, out=out, reporter=both)
    result = reconcile.apply(plan, settings, reporter=both)
    nothing = reconcile.plan_tree(root, settings, reporter=both)
    unchanged = reconcile.apply(nothing, settings, reporter=both)
    write(root, "d.yaml", flat("d", top_k=99))  # over the API's limit of 50
    with pytest.raises(ManifestError) as caught:
        reconcile.plan_tree(root, settings, reporter=both)

    assert result.ok and plan.summary.create == 3 and not nothing.has_changes
    for heard in (first, second):
        assert heard.events == [
            *["planned", "apply_started", "change_done", "change_done", "change_done", "applied"],
            *["planned", "applied"],  # nothing to apply: no write starts
            "failed",
        ]
        assert heard.planned_with == [(plan, out), (nothing, None)]
        assert sorted(r.change.name for r in heard.done) == ["a", "b", "c"]
        assert all(any(r is mine for mine in result.results) for r in heard.done)
        assert heard.applied_with == [(result, plan), (unchanged, nothing)]
        assert heard.errors == [caught.value]
