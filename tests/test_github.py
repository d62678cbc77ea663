"""The GitHub Actions integration, run as the action runs it.

A fake GitHub REST API on 127.0.0.1 records every request; temporary GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY and GITHUB_EVENT_PATH files stand in for the runner's.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from taxsync import github
from taxsync.errors import ConfigError, GitHubError, ManifestError, ManifestProblem, TaxsyncError
from taxsync.github import GitHubApi, GitHubContext
from taxsync.manifest import load_tree
from taxsync.plan import ApplyResult, ChangeResult, FieldChange, Plan, Summary, TaxonomyChange
from taxsync.render import plan_markdown
from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import creating, env, flat, refused_url, run_cli, secret_sink, write

TOKEN = "ghs_SECRETtokenVALUE1234567890"
REPO = "acme/taxonomies"
PR = 7
BOT = "github-actions[bot]"


# --- the fake GitHub API -----------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """Issue comments, GET /user and injected failures, as the REST API answers them."""

    url: str = ""
    login: str | None = None  # None: GET /user is 403, as for the Actions token
    acting_as: str = BOT  # whom new comments are attributed to
    max_page: int = 100
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    # "POST" -> answers to give first: a status, or (status, headers)
    fail: dict[str, list[int | tuple[int, dict[str, str]]]] = field(default_factory=dict)
    next_link_host: str | None = None  # send pagination links to another host
    _ids: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_comment(self, number: int, body: str, login: str) -> dict[str, Any]:
        self._ids += 1
        comment = {"id": self._ids, "body": body, "user": {"login": login, "type": "User"}}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def of(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    def received(self) -> str:
        """Everything sent to this fake, but the expected token in its Authorization header."""
        with self.lock:
            return json.dumps(
                [
                    [
                        r.method,
                        r.path,
                        r.query,
                        {
                            k: v
                            for k, v in r.headers.items()
                            if not (k == "authorization" and v == f"Bearer {TOKEN}")
                        },
                        r.body,
                    ]
                    for r in self.requests
                ]
            )

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple:
        parts = urlsplit(target)
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append(Recorded(method, parts.path, parse_qs(parts.query), headers, body))
            injected = self.fail.get(method, [])
            if injected:
                answer = injected.pop(0)
                status, extra = answer if isinstance(answer, tuple) else (answer, {})
                return status, {"message": "Server Error"}, extra
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return 401, {"message": "Bad credentials"}, {}
            return self._route(method, parts.path, parse_qs(parts.query), body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple:
        if path == "/user":
            if self.login is None:
                return 403, {"message": "Resource not accessible by integration"}, {}
            return 200, {"login": self.login}, {}
        if m := re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/comments", path):
            number = int(m.group(1))
            if method == "POST":
                return 201, self.add_comment(number, body["body"], self.acting_as), {}
            return self._page(path, number, query)
        if (m := re.fullmatch(rf"/repos/{REPO}/issues/comments/(\d+)", path)) and method == "PATCH":
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(m.group(1)):
                    comment["body"] = body["body"]
                    return 200, comment, {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, path: str, number: int, query: dict[str, list[str]]) -> tuple:
        size = min(int(query.get("per_page", ["30"])[0]), self.max_page)
        page = int(query.get("page", ["1"])[0])
        everything = self.comments.get(number, [])
        chunk = everything[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(everything):
            host = self.next_link_host or self.url
            headers["Link"] = f'<{host}{path}?per_page={size}&page={page + 1}>; rel="next"'
        return 200, chunk, headers


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, extra = fake.handle(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    yield from serve(FakeGitHub())


def serve(state: FakeGitHub) -> Iterator[FakeGitHub]:
    """Serve ``state`` (a FakeGitHub, or one that answers more) on loopback while in use."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    # Every run_cli while this fake is up also scans what it was sent for secrets.
    with secret_sink("the requests sent to GitHub", state.received):
        yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --- the runner's environment ------------------------------------------------------------


@dataclass
class Runner:
    """Temporary runner files and the environment that points at them."""

    root: Path
    env: dict[str, str]

    @property
    def output(self) -> Path:
        return Path(self.env["GITHUB_OUTPUT"])

    @property
    def summary(self) -> Path:
        return Path(self.env["GITHUB_STEP_SUMMARY"])

    def ctx(self, **overrides: str) -> GitHubContext:
        return GitHubContext.from_env({**self.env, **overrides})

    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output.read_text(encoding="utf-8"))

    def files_text(self) -> str:
        return "".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in self.root.rglob("*")
            if p.is_file()
        )


def parse_outputs(text: str) -> dict[str, str]:
    """Read GITHUB_OUTPUT as the runner does: ``name=value`` or ``name<<DELIM`` blocks."""
    values: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            else:
                raise AssertionError(f"no closing delimiter for {name}")
            values[name] = "\n".join(body)
        elif line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def pr_event(head_repo: str | None = REPO, number: int = PR) -> dict[str, Any]:
    head: dict[str, Any] = {"sha": "abcdef1234567890", "repo": None}
    if head_repo is not None:
        head["repo"] = {"full_name": head_repo}
    return {
        "number": number,
        "pull_request": {
            "number": number,
            "head": head,
            # The base commit differs from the head: what names the commit must use the head.
            "base": {"sha": "0123456789fedcba", "repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
    }


def push_event() -> dict[str, Any]:
    return {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}


@pytest.fixture
def runner(tmp_path: Path, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Runner:
    workspace = tmp_path / "workspace"
    temp = tmp_path / "runner-temp"
    workspace.mkdir()
    temp.mkdir()
    monkeypatch.chdir(workspace)  # the action runs in the workspace
    event = temp / "event.json"
    event.write_text(json.dumps(pr_event()), encoding="utf-8")
    (temp / "output").touch()
    (temp / "summary").touch()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_REF": f"refs/pull/{PR}/merge",
        "GITHUB_ACTOR": "alice",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(temp / "output"),
        "GITHUB_STEP_SUMMARY": str(temp / "summary"),
        "TAXSYNC_GITHUB_TOKEN": TOKEN,
        "MIXPEEK_API_KEY": "mxp_sk_test",
    }
    return Runner(tmp_path, env)


def set_event(runner: Runner, name: str, event: dict[str, Any], ref: str) -> None:
    Path(runner.env["GITHUB_EVENT_PATH"]).write_text(json.dumps(event), encoding="utf-8")
    runner.env["GITHUB_EVENT_NAME"] = name
    runner.env["GITHUB_REF"] = ref


# --- plans -------------------------------------------------------------------------------


def change(name: str = "topics", action: str = "create", diff: int = 1) -> TaxonomyChange:
    return TaxonomyChange(
        action=action,  # type: ignore[arg-type]
        namespace="production",
        name=name,
        taxonomy_id=None if action == "create" else f"tax_{name}",
        base_version=None if action == "create" else 3,
        taxonomy_type="flat",
        source=f"manifests/{name}.yaml:1",
        diff=[
            FieldChange(path=f"config.field_{i}", after=i, before_present=False)
            for i in range(diff)
        ],
    )


def make_plan(*changes: TaxonomyChange, unchanged: int = 0) -> Plan:
    counts = Summary(unchanged=unchanged)
    for c in changes:
        setattr(counts, c.action, getattr(counts, c.action) + 1)
    return Plan(namespaces=["production"], summary=counts, changes=list(changes))


def fast_api(ctx: GitHubContext) -> GitHubApi:
    return GitHubApi(ctx, retry_delays=(0.0, 0.0, 0.0), timeout=5.0)


def bot_comments(fake: FakeGitHub) -> list[dict[str, Any]]:
    return [c for c in fake.comments.get(PR, []) if c["user"]["login"] == BOT]


# --- context -----------------------------------------------------------------------------


def test_context_reads_the_pull_request_event(runner: Runner) -> None:
    ctx = runner.ctx()
    assert ctx.is_pull_request and ctx.pr_number == PR and not ctx.is_fork
    assert ctx.repository == REPO and ctx.pr_head_sha == "abcdef1234567890"
    assert ctx.default_branch == "main"
    assert ctx.run_url == f"https://github.example/{REPO}/actions/runs/4242"
    assert TOKEN not in repr(ctx) and TOKEN not in str(ctx)


@pytest.mark.parametrize(
    ("head", "fork"), [(REPO, False), ("mallory/taxonomies", True), (None, True)]
)
def test_fork_detection(runner: Runner, head: str | None, fork: bool) -> None:
    set_event(runner, "pull_request", pr_event(head_repo=head), f"refs/pull/{PR}/merge")
    assert runner.ctx().is_fork is fork


def test_context_outside_a_pull_request(runner: Runner) -> None:
    set_event(runner, "push", push_event(), "refs/heads/main")
    ctx = runner.ctx()
    assert not ctx.is_pull_request and ctx.pr_number is None and not ctx.is_fork


def test_unreadable_event_is_a_clear_error(runner: Runner, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GITHUB_EVENT_PATH"):
        runner.ctx(GITHUB_EVENT_PATH=str(tmp_path / "missing.json"))


def test_an_event_file_is_read_like_every_other_file(runner: Runner, tmp_path: Path) -> None:
    """A FIFO does not hang the run, and a payload nested past the reader's depth is
    refused in one line instead of exhausting the recursion limit."""
    import os

    fifo = tmp_path / "event.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"^GITHUB_EVENT_PATH: .*event\.fifo"):
        runner.ctx(GITHUB_EVENT_PATH=str(fifo))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^GITHUB_EVENT_PATH: .*deep\.json"):
        runner.ctx(GITHUB_EVENT_PATH=str(deep))


# --- workflow commands, outputs, summary -------------------------------------------------


def test_workflow_command_escaping() -> None:
    line = github.workflow_command("error", "50% bad\r\nnext", file="a:b,c%.yaml", line=3, col=None)
    assert line == "::error file=a%3Ab%2Cc%25.yaml,line=3::50%25 bad%0D%0Anext"
    assert github.workflow_command("notice", "plain") == "::notice::plain"


def test_outputs_use_the_delimiter_form(runner: Runner) -> None:
    ctx = runner.ctx()
    github.write_outputs(ctx, {"summary": "1 to create", "multi": "a\nb=c\nmulti<<X"})
    github.write_outputs(ctx, {"changes": "true"})
    assert runner.outputs() == {
        "summary": "1 to create",
        "multi": "a\nb=c\nmulti<<X",
        "changes": "true",
    }
    assert re.search(r"^summary<<ghadelimiter_[0-9a-f-]{36}$", runner.output.read_text(), re.M)


def test_outputs_and_summary_are_no_ops_outside_actions(runner: Runner) -> None:
    ctx = runner.ctx(GITHUB_OUTPUT="", GITHUB_STEP_SUMMARY="")
    github.write_outputs(ctx, {"changes": "true"})
    github.append_summary(ctx, "### hello")
    assert runner.output.read_text() == "" and runner.summary.read_text() == ""


def test_a_full_summary_is_left_alone(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github.workflow, "SUMMARY_LIMIT_BYTES", 2000)
    runner.summary.write_text("x" * 1900 + "\n")
    github.append_summary(runner.ctx(), "### more\n")
    assert runner.summary.read_text() == "x" * 1900 + "\n"


def test_summary_is_trimmed_to_the_room_left(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(github.workflow, "SUMMARY_LIMIT_BYTES", 2000)
    runner.summary.write_text("x" * 500 + "\n")
    github.append_summary(runner.ctx(), "".join(f"line {i} ✓\n" for i in range(500)))
    text = runner.summary.read_text(encoding="utf-8")
    assert len(text.encode()) <= 2000
    assert "trimmed to fit in the step summary" in text and "line 0 ✓" in text


# --- annotations -------------------------------------------------------------------------


def test_annotations_for_a_bad_manifest(runner: Runner) -> None:
    workspace = Path(runner.env["GITHUB_WORKSPACE"])
    write(workspace, "manifests/production/topics.yaml", flat("topics"))
    write(workspace, "manifests/production/broken.yaml", "metadata: [unclosed\n")
    with pytest.raises(ManifestError) as caught:
        load_tree(Path("manifests"), {})
    lines = github.manifest_annotations(caught.value, workspace)
    assert lines, "one annotation per problem"
    broken = [line for line in lines if "broken.yaml" in line]
    assert broken[0].startswith("::error file=manifests/production/broken.yaml,line=")
    assert re.match(
        r"::error file=[^,]+,line=\d+,col=\d+,title=taxsync%3A invalid manifest::", broken[0]
    )


def test_annotations_relative_paths_and_escaping(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    error = ManifestError(
        [
            ManifestProblem(
                str(workspace / "m" / "a,b:c.yaml"), 4, 2, "spec.top_k", "must be ≤ 100%\nreally"
            ),
            ManifestProblem("/elsewhere/x.yaml", None, None, "", "no such file"),
        ]
    )
    first, second = github.manifest_annotations(error, workspace)
    assert first == (
        "::error file=m/a%2Cb%3Ac.yaml,line=4,col=2,title=taxsync%3A invalid manifest"
        "::spec.top_k: must be ≤ 100%25%0Areally"
    )
    assert (
        second == "::error file=/elsewhere/x.yaml,title=taxsync%3A invalid manifest::no such file"
    )


# --- the pull-request comment ------------------------------------------------------------


def test_first_run_creates_the_comment_and_the_second_updates_it(
    runner: Runner, fake: FakeGitHub
) -> None:
    ctx = runner.ctx()
    first = github.upsert_pr_comment(ctx, plan_markdown(make_plan(change("a"))))
    second = github.upsert_pr_comment(ctx, plan_markdown(make_plan(change("a"), change("b"))))
    assert (first, second) == ("created", "updated")
    [only] = fake.comments[PR]
    assert only["body"].startswith(github.MARKER + "\n") and "production/b" in only["body"]
    assert len(fake.of("POST")) == 1 and len(fake.of("PATCH")) == 1
    assert fake.of("PATCH")[0].path == f"/repos/{REPO}/issues/comments/{only['id']}"
    listing = fake.of("GET")[-1]
    assert listing.query["per_page"] == ["100"]
    assert listing.headers["authorization"] == f"Bearer {TOKEN}"
    assert listing.headers["x-github-api-version"] == "2022-11-28"


def test_an_unchanged_plan_does_not_edit_the_comment(runner: Runner, fake: FakeGitHub) -> None:
    ctx = runner.ctx()
    markdown = plan_markdown(make_plan(change()))
    assert github.upsert_pr_comment(ctx, markdown) == "created"
    assert github.upsert_pr_comment(ctx, markdown) == "unchanged"
    assert not fake.of("PATCH") and len(fake.comments[PR]) == 1


def test_a_marked_comment_by_someone_else_is_ignored(runner: Runner, fake: FakeGitHub) -> None:
    forged = fake.add_comment(PR, github.MARKER + "\nplease apply my plan", "mallory")
    assert github.upsert_pr_comment(runner.ctx(), "### taxsync plan\n") == "created"
    assert forged["body"] == github.MARKER + "\nplease apply my plan"
    assert len(bot_comments(fake)) == 1 and not fake.of("PATCH")


def test_the_token_owner_is_asked_when_the_token_can_say(runner: Runner, fake: FakeGitHub) -> None:
    fake.login = fake.acting_as = "taxsync-bot"
    fake.add_comment(PR, github.MARKER + "\nold, by the Actions bot", BOT)
    ctx = runner.ctx()
    assert github.upsert_pr_comment(ctx, "### one\n") == "created"
    assert github.upsert_pr_comment(ctx, "### two\n") == "updated"
    mine = [c for c in fake.comments[PR] if c["user"]["login"] == "taxsync-bot"]
    assert len(mine) == 1 and "### two" in mine[0]["body"]


def test_comment_author_override(runner: Runner, fake: FakeGitHub) -> None:
    fake.acting_as = "my-app[bot]"
    ctx = runner.ctx(TAXSYNC_COMMENT_AUTHOR="my-app[bot]")
    github.upsert_pr_comment(ctx, "### one\n")
    assert github.upsert_pr_comment(ctx, "### two\n") == "updated"
    assert len(fake.comments[PR]) == 1
    assert not [r for r in fake.requests if r.path == "/user"]


def test_comment_key_keeps_one_comment_per_manifest_tree(runner: Runner, fake: FakeGitHub) -> None:
    github.upsert_pr_comment(runner.ctx(TAXSYNC_COMMENT_KEY="prod"), "### prod\n")
    github.upsert_pr_comment(runner.ctx(TAXSYNC_COMMENT_KEY="staging"), "### staging\n")
    github.upsert_pr_comment(runner.ctx(TAXSYNC_COMMENT_KEY="prod"), "### prod v2\n")
    bodies = sorted(c["body"] for c in fake.comments[PR])
    assert len(bodies) == 2 and "### prod v2" in bodies[0] and "### staging" in bodies[1]
    assert bodies[0].startswith("<!-- taxsync-plan prod -->\n")


@pytest.mark.parametrize(
    ("path", "key"), [(".", ""), ("./", ""), ("", ""), ("./prod/", "prod"), ("a/b", "a/b")]
)
def test_comment_key_from_the_path_input(runner: Runner, path: str, key: str) -> None:
    ctx = runner.ctx(TAXSYNC_COMMENT_KEY=path)
    assert ctx.comment_key == key
    assert github.comment_marker(ctx.comment_key) == (
        f"<!-- taxsync-plan {key} -->" if key else github.MARKER
    )


def test_the_comment_is_found_on_a_later_page(runner: Runner, fake: FakeGitHub) -> None:
    fake.max_page = 2
    for i in range(5):
        fake.add_comment(PR, f"chatter {i}", "alice")
    ours = fake.add_comment(PR, github.MARKER + "\nold plan", BOT)
    fake.add_comment(PR, "more chatter", "bob")
    assert github.upsert_pr_comment(runner.ctx(), "### new plan\n") == "updated"
    assert "### new plan" in ours["body"] and len(fake.comments[PR]) == 7
    pages = [r.query.get("page", ["1"])[0] for r in fake.of("GET") if "comments" in r.path]
    assert pages == ["1", "2", "3", "4"]


def test_pagination_never_leaves_the_api_host(runner: Runner, fake: FakeGitHub) -> None:
    fake.max_page = 1
    fake.next_link_host = "https://evil.example"
    fake.add_comment(PR, "one", "alice")
    fake.add_comment(PR, "two", "alice")
    with pytest.raises(GitHubError, match="refusing to follow"):
        github.upsert_pr_comment(runner.ctx(), "### plan\n")


def test_a_big_plan_is_trimmed_under_the_limit(runner: Runner, fake: FakeGitHub) -> None:
    big = make_plan(*(change(f"taxonomy-{i:04d}", diff=12) for i in range(400)))
    markdown = plan_markdown(big)
    assert len(markdown) > github.COMMENT_LIMIT
    github.upsert_pr_comment(runner.ctx(), markdown)
    [posted] = fake.of("POST")
    body = posted.body["body"]
    assert len(body) + body.count("\n") < github.COMMENT_LIMIT
    assert len(body) > 60_000, "trimming keeps as much as fits"
    assert "This plan was trimmed to fit in a GitHub comment" in body
    assert "actions/runs/4242" in body
    assert body.count("```") % 2 == 0 and body.count("<details>") == body.count("</details>")


def test_gets_are_retried_but_a_post_is_never_repeated(runner: Runner, fake: FakeGitHub) -> None:
    ctx = runner.ctx()
    fake.fail["GET"] = [502, 503]
    fake.fail["POST"] = [502]
    with fast_api(ctx) as api, pytest.raises(GitHubError, match="HTTP 502") as caught:
        github.upsert_pr_comment(ctx, "### plan\n", api=api)
    assert len(fake.of("POST")) == 1, "a POST whose outcome is unknown is not sent again"
    assert TOKEN not in str(caught.value)
    with fast_api(ctx) as api:
        assert github.upsert_pr_comment(ctx, "### plan\n", api=api) == "created"


def test_rate_limits_are_waited_out(
    runner: Runner, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = runner.ctx()
    fake.fail["GET"] = [(429, {"Retry-After": "0.3"})]
    # What the client asks to wait, not how long the clock says it took: a slow machine
    # would pass a timing check whatever the client asked for.
    waits: list[float] = []
    caller = threading.get_ident()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.get_ident() == caller:
            waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    with fast_api(ctx) as api:  # its own retry delays are all 0: only Retry-After waits
        assert github.upsert_pr_comment(ctx, "### plan\n", api=api) == "created"
    assert waits == [0.3]  # once, as long as Retry-After said


def test_a_comment_edited_with_crlf_is_still_ours(runner: Runner, fake: FakeGitHub) -> None:
    ours = fake.add_comment(PR, github.MARKER + "\r\nedited in the browser\r\n", BOT)
    assert github.upsert_pr_comment(runner.ctx(), "### plan\n") == "updated"
    assert len(fake.comments[PR]) == 1 and "### plan" in ours["body"]


def test_an_unreachable_api_is_a_clear_error(runner: Runner) -> None:
    with refused_url() as url:
        ctx = runner.ctx(GITHUB_API_URL=url)
        with (
            fast_api(ctx) as api,
            pytest.raises(GitHubError, match="no answer from the GitHub API") as caught,
        ):
            github.upsert_pr_comment(ctx, "### plan\n", api=api)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(api)


def test_the_token_only_travels_over_https(runner: Runner) -> None:
    with pytest.raises(ConfigError, match="plain http"):
        GitHubApi(runner.ctx(GITHUB_API_URL="http://github.internal"))
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHubApi(runner.ctx(TAXSYNC_GITHUB_TOKEN=""))


def test_a_rejected_token_never_appears_in_the_error(runner: Runner, fake: FakeGitHub) -> None:
    ctx = runner.ctx(TAXSYNC_GITHUB_TOKEN="ghp_wrong_token_abcdef")
    with pytest.raises(GitHubError, match="HTTP 401") as caught:
        github.upsert_pr_comment(ctx, "### plan\n")
    assert "ghp_wrong_token_abcdef" not in str(caught.value)


# --- what the CLI calls ------------------------------------------------------------------


def test_report_plan_on_a_pull_request(
    runner: Runner, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = runner.ctx()
    plan_file = ctx.workspace / ".taxsync" / "github" / "plan.json"
    plan_file.parent.mkdir(parents=True)
    the_plan = make_plan(change("a"), change("b", action="new_version"), unchanged=4)
    plan_file.write_text(the_plan.to_json())
    assert github.report_plan(ctx, the_plan, plan_file, comment=True) == "created"
    assert runner.outputs() == {
        "changes": "true",
        "plan-file": ".taxsync/github/plan.json",
        "summary": "1 to create, 1 new version",
    }
    assert "### taxsync plan" in runner.summary.read_text()
    assert (plan_file.parent / ".gitignore").read_text().endswith("*\n")
    assert len(bot_comments(fake)) == 1
    assert "comment created" in capsys.readouterr().out
    github.report_plan(ctx, make_plan(unchanged=6), plan_file, comment=True)
    [only] = bot_comments(fake)
    assert "no changes" in only["body"]
    assert runner.outputs()["changes"] == "false"


def test_report_plan_without_comment_or_outside_a_pr(runner: Runner, fake: FakeGitHub) -> None:
    plan_file = runner.root / "elsewhere" / "plan.json"
    github.report_plan(runner.ctx(), make_plan(change()), plan_file, comment=False)
    set_event(runner, "push", push_event(), "refs/heads/main")
    assert github.report_plan(runner.ctx(), make_plan(change()), plan_file, comment=True) is None
    assert not fake.requests
    assert runner.outputs()["plan-file"] == str(plan_file.resolve()), (
        "outside the workspace: absolute"
    )


def test_a_comment_that_cannot_be_written_is_a_warning(
    runner: Runner, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail["POST"] = [403]
    ctx = runner.ctx()
    assert (
        github.report_plan(ctx, make_plan(change()), ctx.workspace / "p.json", comment=True) is None
    )
    out = capsys.readouterr().out
    assert out.startswith("::warning::could not comment on the pull request")
    assert "pull-requests: write" in out
    assert runner.outputs()["changes"] == "true"


def test_report_plan_error_annotates_and_replaces_a_stale_plan(
    runner: Runner, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = runner.ctx()
    github.upsert_pr_comment(ctx, plan_markdown(make_plan(change())))
    workspace = ctx.workspace
    error = ManifestError(
        [ManifestProblem(str(workspace / "m.yaml"), 2, 5, "metadata.name", "is ```bad```")]
    )
    github.report_plan_error(ctx, error, comment=True)
    out = capsys.readouterr().out
    assert "::error file=m.yaml,line=2,col=5," in out
    [only] = bot_comments(fake)
    assert (
        "The plan failed" in only["body"]
        and "m.yaml:2:5: metadata.name: is ```bad```" in only["body"]
    )
    assert "````text" in only["body"], "the fence outgrows the backticks in the message"
    assert "The plan failed" in runner.summary.read_text()


def test_report_plan_error_for_an_api_failure(runner: Runner, fake: FakeGitHub) -> None:
    error = TaxsyncError("GET /v1/taxonomies: HTTP 500", ["retried 3 times"])
    github.report_plan_error(runner.ctx(), error, comment=False)
    summary = runner.summary.read_text()
    assert "GET /v1/taxonomies: HTTP 500\nretried 3 times" in summary and not fake.requests


def test_fork_pull_request_is_skipped_with_a_notice(
    runner: Runner, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    set_event(
        runner, "pull_request", pr_event(head_repo="mallory/taxonomies"), f"refs/pull/{PR}/merge"
    )
    env = {**runner.env, "MIXPEEK_API_KEY": ""}
    assert github.skip_fork_without_secrets(GitHubContext.from_env(env), False) is True
    out = capsys.readouterr().out
    assert out.startswith("::notice title=taxsync::taxsync plan skipped: pull request from a fork")
    assert runner.outputs()["changes"] == "false"
    assert "skipped" in runner.summary.read_text() and not fake.requests


def test_skip_only_when_secrets_are_really_missing(runner: Runner) -> None:
    no_key = {**runner.env, "MIXPEEK_API_KEY": ""}
    assert not github.skip_fork_without_secrets(runner.ctx(), False), "same-repo PR: a real error"
    set_event(
        runner, "pull_request", pr_event(head_repo="mallory/taxonomies"), f"refs/pull/{PR}/merge"
    )
    assert not github.skip_fork_without_secrets(runner.ctx(), True), "fork with the key set"
    set_event(runner, "pull_request", pr_event(), f"refs/pull/{PR}/merge")
    dependabot = {**no_key, "GITHUB_ACTOR": "dependabot[bot]"}
    assert github.skip_fork_without_secrets(GitHubContext.from_env(dependabot), False)


def test_apply_on_push(
    runner: Runner, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    set_event(runner, "push", push_event(), "refs/heads/main")
    ctx = runner.ctx()
    github.check_apply_allowed(ctx)
    the_plan = make_plan(change("a"), change("b"))
    result = ApplyResult(
        [
            ChangeResult(the_plan.changes[0], "applied", taxonomy_id="tax_a", version=1),
            ChangeResult(the_plan.changes[1], "failed", "HTTP 422 invalid_config: bad retriever"),
        ]
    )
    github.report_apply(ctx, result, the_plan)
    assert runner.outputs() == {"changes": "true", "plan-file": "", "summary": "2 to create"}
    summary = runner.summary.read_text()
    assert "### taxsync apply" in summary and "1 applied, 1 failed" in summary
    assert (
        "::error title=taxsync::taxsync apply: 1 change(s) did not apply" in capsys.readouterr().out
    )
    assert not fake.requests


def test_apply_with_nothing_to_do(runner: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    set_event(runner, "push", push_event(), "refs/heads/main")
    github.report_apply(runner.ctx(), ApplyResult(), make_plan(unchanged=3))
    assert runner.outputs()["changes"] == "false"
    assert "### taxsync apply" not in runner.summary.read_text()
    assert "::error" not in capsys.readouterr().out


def test_apply_is_refused_on_a_pull_request(
    runner: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="refusing to apply on a pull_request event"):
        github.check_apply_allowed(runner.ctx())
    set_event(runner, "push", push_event(), "refs/heads/feature")
    github.check_apply_allowed(runner.ctx())
    assert "::warning title=taxsync::applying from refs/heads/feature" in capsys.readouterr().out


def test_the_token_never_appears_anywhere(
    runner: Runner, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = runner.ctx()
    plan_file = ctx.workspace / "plan.json"
    github.report_plan(ctx, make_plan(change()), plan_file, comment=True)
    github.report_plan_error(ctx, TaxsyncError("boom"), comment=True)
    fake.fail["POST"] = [500]
    github.report_plan(
        runner.ctx(TAXSYNC_COMMENT_KEY="x"), make_plan(change()), plan_file, comment=True
    )
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert TOKEN not in runner.files_text()
    bodies = json.dumps([r.body for r in fake.requests])
    assert TOKEN not in bodies


# --- the CLI's --github flag, end to end against the emulator ------------------------------


def cli_env(runner: Runner, srv: EmulatorHandle) -> dict[str, str]:
    return {**runner.env, **env(srv)}


def test_plan_on_a_pull_request_comments_once_and_updates_in_place(
    runner: Runner, fake: FakeGitHub, emulator: StartEmulator
) -> None:
    srv = emulator()
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a"))
    plan_file = runner.root / "workspace" / ".taxsync" / "plan.json"

    first = run_cli(
        "plan", "--github", "--out", str(plan_file), "--", str(tree), env=cli_env(runner, srv)
    )
    assert first.code == 0, first.output
    assert runner.outputs() == {
        "changes": "true",
        "plan-file": ".taxsync/plan.json",
        "summary": "1 to create",
    }
    assert "### taxsync plan" in runner.summary.read_text(encoding="utf-8")
    (comment,) = bot_comments(fake)
    assert "+ create production/a (flat)" in comment["body"]

    write(tree, "prod/b.yaml", flat("b"))
    second = run_cli(
        "plan", "--github", "--out", str(plan_file), str(tree), env=cli_env(runner, srv)
    )
    assert second.code == 0, second.output
    (updated,) = bot_comments(fake)  # still exactly one comment, edited in place
    assert updated["id"] == comment["id"] and "2 to create" in updated["body"]
    assert TOKEN not in first.output + second.output + runner.files_text()


def test_bad_manifest_becomes_an_annotation_and_fails(
    runner: Runner, fake: FakeGitHub, emulator: StartEmulator
) -> None:
    srv = emulator()
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a", top_k=99))
    result = run_cli("plan", "--github", str(tree), env=cli_env(runner, srv))
    assert result.code == 1
    assert "::error file=taxonomies/prod/a.yaml,line=12,col=5," in result.out
    assert "The plan failed." in bot_comments(fake)[0]["body"]


def test_apply_on_push_sets_outputs_and_summary(
    runner: Runner, fake: FakeGitHub, emulator: StartEmulator
) -> None:
    srv = emulator()
    set_event(runner, "push", push_event(), "refs/heads/main")
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a"))
    result = run_cli("apply", "--github", "--auto-approve", str(tree), env=cli_env(runner, srv))
    assert result.code == 0, result.output
    assert runner.outputs()["changes"] == "true"
    assert "Apply: 1 applied, 0 failed." in runner.summary.read_text(encoding="utf-8")
    assert fake.comments == {}  # no pull request: no comment

    refused = run_cli(
        "apply",
        "--github",
        "--auto-approve",
        str(tree),
        env={**cli_env(runner, srv), "GITHUB_EVENT_NAME": "pull_request"},
    )
    assert refused.code == 1 and "refusing to apply" in refused.err


# --- exit codes and secrets of --github runs -----------------------------------------------


def test_apply_on_push_fails_the_step_when_one_change_fails(
    runner: Runner, fake: FakeGitHub, emulator: StartEmulator
) -> None:
    srv = emulator()
    set_event(runner, "push", push_event(), "refs/heads/main")
    tree = runner.root / "workspace" / "taxonomies"
    for name in ("a", "b", "c"):
        write(tree, f"prod/{name}.yaml", flat(name))
    srv.answer(creating("b"), 400, "collection col_products_v1 is being deleted")

    result = run_cli(
        "apply",
        "--github",
        "--auto-approve",
        "--concurrency",
        "1",
        str(tree),
        env=cli_env(runner, srv),
    )
    assert result.code == 1, result.output
    errors = [line for line in result.out.splitlines() if line.startswith("::error")]
    assert errors and "did not apply" in errors[0]
    summary = runner.summary.read_text(encoding="utf-8")
    assert "Apply: 2 applied, 1 failed." in summary
    assert "production/b" in summary and "is being deleted" in summary
    assert runner.outputs()["changes"] == "true"
    assert sorted(r.json()["taxonomy_name"] for r in srv.committed()) == ["a", "c"]


def test_an_api_error_echoing_the_key_reaches_no_report(
    runner: Runner, fake: FakeGitHub, emulator: StartEmulator
) -> None:
    # Some gateways quote the credential they refuse. run_cli scans stdout, stderr, the
    # step summary, GITHUB_OUTPUT, the plan file and every request the fake GitHub got.
    srv = emulator()
    tree = runner.root / "workspace" / "taxonomies"
    write(tree, "prod/a.yaml", flat("a"))
    srv.answer(lambda r: True, 401, f"Invalid API key '{srv.api_key}' for project prj_1")

    result = run_cli("plan", "--github", str(tree), env=cli_env(runner, srv))
    assert result.code == 1, result.output
    assert "HTTP 401" in result.err
    (comment,) = bot_comments(fake)
    assert "The plan failed" in comment["body"] and "HTTP 401" in comment["body"]
    assert "HTTP 401" in runner.summary.read_text(encoding="utf-8")
