"""The drift issue a scheduled plan keeps, and the run's values checked before any request.

The stand-in GitHub API of ``test_github`` learns issues and labels here; the plans run
through the CLI against the emulator, as the drift workflow runs them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from taxsync.github import compose_comment, drift_marker
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import env, flat, run_cli, write
from tests.test_github import BOT, REPO, FakeGitHub, Runner, runner, serve, set_event

__all__ = ["runner"]  # the fixture, shared with test_github

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class IssuesGitHub(FakeGitHub):
    """The fake GitHub API, with issues and labels as the REST API answers them."""

    issues: list[dict[str, Any]] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)

    def add_issue(self, title: str, body: str, labels: list[str], login: str) -> dict[str, Any]:
        number = len(self.issues) + 1
        issue = {
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "labels": [{"name": name} for name in labels],
            "user": {"login": login, "type": "Bot"},
        }
        self.issues.append(issue)
        return issue

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple:
        if path == f"/repos/{REPO}/labels" and method == "POST":
            if body["name"] in self.labels:
                return 422, {"errors": [{"resource": "Label", "code": "already_exists"}]}, {}
            self.labels.add(body["name"])
            return 201, body, {}
        if path == f"/repos/{REPO}/issues" and method == "POST":
            # Like GitHub for a token with push access: a missing label would be created.
            self.labels.update(body["labels"])
            return 201, self.add_issue(body["title"], body["body"], body["labels"], BOT), {}
        if path == f"/repos/{REPO}/issues" and method == "GET":
            return 200, self._open_with(query["labels"][0], query["state"][0]), {}
        if (m := re.fullmatch(rf"/repos/{REPO}/issues/(\d+)", path)) and method == "PATCH":
            issue = self.issues[int(m.group(1)) - 1]
            issue.update(body)
            return 200, issue, {}
        return super()._route(method, path, query, body)

    def _open_with(self, label: str, state: str) -> list[dict[str, Any]]:
        return [
            issue
            for issue in self.issues
            if issue["state"] == state and label in [x["name"] for x in issue["labels"]]
        ]

    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if r.method != "GET"]


@pytest.fixture
def fake() -> Iterator[IssuesGitHub]:
    yield from serve(IssuesGitHub())  # type: ignore[misc]


@pytest.fixture
def drift_run(runner: Runner, emulator: StartEmulator) -> DriftRun:
    """A nightly drift check: a schedule event on main, and the emulator as Mixpeek."""
    set_event(runner, "schedule", {"repository": {"full_name": REPO}}, "refs/heads/main")
    return DriftRun(runner, emulator())


@dataclass
class DriftRun:
    runner: Runner
    srv: EmulatorHandle

    @property
    def tree(self) -> Path:
        return self.runner.root / "workspace" / "taxonomies"

    def plan(self, **extra: str) -> Any:
        cli_env = {**self.runner.env, **env(self.srv), **extra}
        result = run_cli("plan", "--github", str(self.tree), env=cli_env)
        assert result.code == 0, result.output
        return result


# --- the drift issue ------------------------------------------------------------------------


def test_the_drift_issue_is_opened_once_updated_then_closed(
    drift_run: DriftRun, fake: IssuesGitHub
) -> None:
    write(drift_run.tree, "prod/a.yaml", flat("a"))
    first = drift_run.plan()
    assert "drift issue labelled taxsync-drift: opened" in first.out
    (issue,) = fake.issues
    assert issue["labels"] == [{"name": "taxsync-drift"}] and fake.labels == {"taxsync-drift"}
    assert issue["body"].startswith(drift_marker() + "\n")
    assert "+ create production/a (flat)" in issue["body"]
    assert fake.writes() == [("POST", f"/repos/{REPO}/labels"), ("POST", f"/repos/{REPO}/issues")]

    fake.requests.clear()
    write(drift_run.tree, "prod/b.yaml", flat("b"))
    assert "drift issue labelled taxsync-drift: updated" in drift_run.plan().out
    assert len(fake.issues) == 1 and "2 to create" in issue["body"]
    assert fake.writes() == [("PATCH", f"/repos/{REPO}/issues/1")]
    listed = [r for r in fake.requests if r.path == f"/repos/{REPO}/issues"]
    assert [(r.query["labels"], r.query["state"]) for r in listed] == [
        (["taxsync-drift"], ["open"])
    ]

    fake.requests.clear()
    assert "drift issue labelled taxsync-drift: unchanged" in drift_run.plan().out
    assert fake.writes() == []

    applied = run_cli("apply", "--auto-approve", str(drift_run.tree), env=env(drift_run.srv))
    assert applied.code == 0, applied.output
    fake.requests.clear()
    assert "drift issue labelled taxsync-drift: closed" in drift_run.plan().out
    assert fake.writes() == [
        ("POST", f"/repos/{REPO}/issues/1/comments"),
        ("PATCH", f"/repos/{REPO}/issues/1"),
    ]
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    assert "No drift" in fake.comments[1][0]["body"]

    fake.requests.clear()
    assert "drift issue labelled taxsync-drift: none" in drift_run.plan().out
    assert fake.writes() == []


def test_the_label_comes_from_the_drift_label_setting(
    drift_run: DriftRun, fake: IssuesGitHub
) -> None:
    write(drift_run.tree, "prod/a.yaml", flat("a"))
    fake.labels.add("infra: drift")  # there already: the 422 answer is not an error
    drift_run.plan(TAXSYNC_DRIFT_LABEL="infra: drift")
    (issue,) = fake.issues
    assert issue["labels"] == [{"name": "infra: drift"}]
    listed = [r.query["labels"] for r in fake.of("GET") if r.path == f"/repos/{REPO}/issues"]
    assert listed == [["infra: drift"]]


def test_an_issue_someone_else_labelled_is_left_alone(
    drift_run: DriftRun, fake: IssuesGitHub
) -> None:
    write(drift_run.tree, "prod/a.yaml", flat("a"))
    theirs = fake.add_issue("drift?", drift_marker() + "\nmine", ["taxsync-drift"], "mallory")
    unmarked = fake.add_issue("notes", "taxonomy notes", ["taxsync-drift"], BOT)
    drift_run.plan()
    assert len(fake.issues) == 3  # a new issue of its own
    assert theirs["body"].endswith("mine") and unmarked["body"] == "taxonomy notes"


def test_pull_requests_and_pushes_keep_no_drift_issue(
    runner: Runner, fake: IssuesGitHub, emulator: StartEmulator
) -> None:
    srv = emulator()
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a"))
    result = run_cli("plan", "--github", str(tree), env={**runner.env, **env(srv)})
    assert result.code == 0, result.output
    set_event(runner, "push", {"repository": {"full_name": REPO}}, "refs/heads/main")
    result = run_cli("plan", "--github", str(tree), env={**runner.env, **env(srv)})
    assert result.code == 0, result.output
    assert fake.issues == [] and not any("/issues?" in r.path for r in fake.requests)
    assert [path for _, path in fake.writes()] == [f"/repos/{REPO}/issues/7/comments"]


def test_no_comment_turns_the_drift_issue_off(drift_run: DriftRun, fake: IssuesGitHub) -> None:
    write(drift_run.tree, "prod/a.yaml", flat("a"))
    cli_env = {**drift_run.runner.env, **env(drift_run.srv)}
    result = run_cli("plan", "--github", "--no-comment", str(drift_run.tree), env=cli_env)
    assert result.code == 0, result.output
    assert fake.requests == []


def test_the_action_maps_the_drift_label_input() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["inputs"]["drift-label"]["default"] == "taxsync-drift"
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "taxsync"]
    assert step["env"]["TAXSYNC_DRIFT_LABEL"] == "${{ inputs.drift-label }}"


def test_the_drift_workflow_uses_the_action_with_issues_write_only() -> None:
    workflow = yaml.safe_load((ROOT / "examples/workflows/drift.yml").read_text("utf-8"))
    (job,) = workflow["jobs"].values()
    permissions = {**workflow.get("permissions", {}), **job.get("permissions", {})}
    assert permissions == {"contents": "read", "issues": "write"}
    (step,) = [s for s in job["steps"] if "taxsync" in str(s.get("uses", ""))]
    assert step["with"]["command"] == "plan" and "drift-label" in step["with"]
    assert set(workflow[True]) == {"schedule", "workflow_dispatch"}  # YAML 1.1 reads on: as True


# --- the run's values, checked before any request ---------------------------------------------


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("GITHUB_REPOSITORY", "acme/tax/../../../user"),
        ("GITHUB_REPOSITORY", "acme/.."),
        ("GITHUB_REPOSITORY", "acme"),
        ("GITHUB_SERVER_URL", "javascript:alert(1)//"),
        ("GITHUB_SERVER_URL", "https://github.example/a b"),
        ("GITHUB_API_URL", "http://127.0.0.1:99999"),
        ("GITHUB_API_URL", "http://[::1"),
        ("GITHUB_API_URL", "https://api.github.example/?token=x"),
        ("GITHUB_RUN_ID", "42/../../x"),
        ("GITHUB_RUN_ID", "[a](javascript:alert(1))"),
        ("TAXSYNC_DRIFT_LABEL", "a,b"),
        ("TAXSYNC_DRIFT_LABEL", "x" * 51),
    ],
)
def test_an_unsound_run_value_is_refused_before_any_request(
    runner: Runner, fake: IssuesGitHub, emulator: StartEmulator, variable: str, bad: str
) -> None:
    srv = emulator()
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a"))
    result = run_cli("plan", "--github", str(tree), env={**runner.env, **env(srv), variable: bad})
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert f"GitHub reporting stopped: {variable} is" in line
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert fake.requests == []
    assert srv.committed() == []


@pytest.mark.parametrize(
    ("head", "number"), [("abc<!--x", 7), ("abcdef1/../../evil", 7), ("abcdef1234", 0)]
)
def test_an_unsound_event_is_refused_before_any_request(
    runner: Runner, fake: IssuesGitHub, emulator: StartEmulator, head: str, number: int
) -> None:
    event = {
        "number": number,
        "pull_request": {"number": number, "head": {"sha": head, "repo": {"full_name": REPO}}},
    }
    set_event(runner, "pull_request", event, "refs/pull/7/merge")
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a"))
    result = run_cli("plan", "--github", str(tree), env={**runner.env, **env(emulator())})
    assert result.code == 1 and "GitHub reporting stopped:" in result.err
    assert fake.requests == []


def test_the_footer_is_built_from_sound_values_and_escaped(runner: Runner) -> None:
    ctx = runner.ctx()
    footer = compose_comment(ctx, "plan\n").split("plan\n", 1)[1]
    assert "commit abcdef1" in footer
    assert f"[workflow run](https://github.example/{REPO}/actions/runs/4242)" in footer

    forged = dataclasses.replace(
        ctx,
        pr_head_sha="<!--abc",
        run_id="1)[a](javascript:alert(1)",
        server_url="javascript:alert(1)//",
        comment_key="<!--@x",
    )
    footer = compose_comment(forged, "plan\n").split("plan\n", 1)[1]
    assert "<!--" not in footer and "javascript" not in footer and "@x" not in footer
    assert "](" not in footer
