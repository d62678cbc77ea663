"""Links from the plan comment to the manifest lines, at the pull request's head commit.

A change's ``file:line`` comes from a pull request (or a saved plan): the link is built
only for a file inside the workspace, from percent-encoded path segments, and only on a
pull request whose head commit, repository and server read as what they should be.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import httpx
import pytest

from taxsync import github, render
from taxsync.plan import ApplyResult, Plan, Summary, TaxonomyChange
from tests.test_output_escaping import REPO, FakeGitHub, assert_safe_markdown, context

HEAD = "abcdef1234567890"  # the pull request's head commit in the test event
BLOB = f"https://github.test/{REPO}/blob/{HEAD}"


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> github.GitHubContext:
    """A pull request's run, in its workspace (taxsync runs there: sources are relative)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    return context(tmp_path, GITHUB_WORKSPACE=str(workspace))


def test_a_relative_source_links_to_its_line(ctx: github.GitHubContext) -> None:
    link = github.source_link(ctx)
    assert link is not None
    assert link("taxonomies/prod/a.yaml:4") == f"{BLOB}/taxonomies/prod/a.yaml#L4"
    assert link("a.yaml:12") == f"{BLOB}/a.yaml#L12"
    assert link(str(ctx.workspace / "t" / "b.yaml") + ":7") == f"{BLOB}/t/b.yaml#L7"
    # Dot segments are resolved first: what stays inside the workspace still links.
    assert link("taxonomies/../other/./c.yaml:2") == f"{BLOB}/other/c.yaml#L2"


def test_every_path_segment_is_percent_encoded(ctx: github.GitHubContext) -> None:
    link = github.source_link(ctx)
    assert link is not None
    url = link("prod/my file #1?x=[y](z)<b>&@o 'q'%20é:9")
    assert url == (
        f"{BLOB}/prod/my%20file%20%231%3Fx%3D%5By%5D%28z%29%3Cb%3E%26%40o%20%27q%27%2520%C3%A9#L9"
    )
    assert link("a:b.yaml:3") == f"{BLOB}/a%3Ab.yaml#L3", "the last ':' starts the line"
    assert link("a.yaml:4:5") == f"{BLOB}/a.yaml%3A4#L5"
    assert link("new\nline.yaml:3") == f"{BLOB}/new%0Aline.yaml#L3"


@pytest.mark.parametrize(
    "source",
    [
        "../outside.yaml:4",  # above the workspace
        "/etc/passwd:1",
        "a.yaml",  # no line
        "a.yaml:0",
        "a.yaml:-1",
        ".:4",  # the workspace itself
        "a\0b.yaml:4",
        ":4",
        "",
    ],
)
def test_no_link_outside_the_workspace_or_without_a_line(
    ctx: github.GitHubContext, source: str
) -> None:
    link = github.source_link(ctx)
    assert link is not None
    assert link(source) is None


def test_a_symbolic_link_out_of_the_workspace_gets_no_link(
    ctx: github.GitHubContext, tmp_path: Path
) -> None:
    (tmp_path / "secret.yaml").write_text("x: 1\n")
    os.symlink(tmp_path / "secret.yaml", ctx.workspace / "inside.yaml")
    link = github.source_link(ctx)
    assert link is not None
    assert link("inside.yaml:1") is None


@pytest.mark.parametrize(
    "change",
    [
        {"event_name": "push"},  # no pull request: no head commit to link to
        {"pr_head_sha": None},
        {"pr_head_sha": "main"},
        {"pr_head_sha": "abc123/../../evil"},
        {"repository": "acme/tax onomies"},
        {"repository": "acme/x/../../y"},
        {"server_url": "javascript:alert(1)//"},
        {"server_url": "https://github.test/a b"},
    ],
    ids=lambda c: next(iter(c)) + "=" + str(next(iter(c.values()))),
)
def test_no_links_without_a_sound_pull_request_context(
    ctx: github.GitHubContext, change: dict[str, object]
) -> None:
    assert github.source_link(dataclasses.replace(ctx, **change)) is None  # type: ignore[arg-type]


def plan_with_sources(*sources: str | None) -> Plan:
    changes = [
        TaxonomyChange(
            action="update",
            namespace="production",
            name=f"t{i}",
            taxonomy_id=f"tax_{i}",
            base_version=1,
            taxonomy_type="flat",
            source=source,
        )
        for i, source in enumerate(sources)
    ]
    return Plan(namespaces=["production"], summary=Summary.of(changes, 0), changes=changes)


@pytest.fixture
def fake_github(monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    fake = FakeGitHub()
    transport = httpx.MockTransport(fake)
    monkeypatch.setattr(
        github.comment, "GitHubApi", functools.partial(github.GitHubApi, transport=transport)
    )
    return fake


def test_the_comment_and_summary_link_each_change(
    ctx: github.GitHubContext, tmp_path: Path, fake_github: FakeGitHub
) -> None:
    plan = plan_with_sources("prod/a.yaml:4", "../elsewhere.yaml:2", None)
    assert github.report_plan(ctx, plan, tmp_path / "plan.json", comment=True) == "created"
    [comment] = fake_github.comments
    for body in (comment["body"], (tmp_path / "summary").read_text(encoding="utf-8")):
        rows = [line for line in body.split("\n") if line.startswith("| `")]
        assert rows == [
            f"| `~` | update production/t0 |  | [prod/a.yaml:4]({BLOB}/prod/a.yaml#L4) |",
            "| `~` | update production/t1 |  | ../elsewhere.yaml:2 |",
            "| `~` | update production/t2 |  |  |",
        ]
    assert_safe_markdown(comment["body"], marker=True)


def test_an_apply_summary_has_no_links(tmp_path: Path, ctx: github.GitHubContext) -> None:
    push = dataclasses.replace(ctx, event_name="push", ref="refs/heads/main")
    github.report_apply(push, ApplyResult(), plan_with_sources("prod/a.yaml:4"))
    summary = (tmp_path / "summary").read_text(encoding="utf-8")
    assert "| prod/a.yaml:4 |" in summary and "](" not in summary


def test_markdown_outside_github_is_plain(ctx: github.GitHubContext) -> None:
    markdown = render.plan_markdown(plan_with_sources("prod/a.yaml:4"))
    assert "| prod/a.yaml:4 |" in markdown and "http" not in markdown
