"""Every file, option and variable taxsync reads is untrusted (issue 22's reproductions).

Over real HTTP against the emulator: a malformed namespace, name or API URL is refused in
one line before any request reaches it; seed, state and saved-plan files are read with the
manifest loader's limits; a manifest's extension is matched in any case, so ``plan --prune``
never plans the delete of what an ``*.YAML`` file declares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, env, flat, run_cli, seed_local, write

NS = "production"


@pytest.fixture
def server(emulator: StartEmulator) -> EmulatorHandle:
    return emulator()


def refused_before_any_request(srv: EmulatorHandle, *args: str, url: str | None = None) -> str:
    """Run taxsync; it must exit 1 with one ``Error:`` line and send nothing. Its message."""
    environ = env(srv) if url is None else {**env(srv), "MIXPEEK_API_URL": url}
    result = run_cli(*args, env=environ)
    assert result.code == 1, result.output
    assert srv.requests == [], [r.path for r in srv.requests]
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    return lines[0]


# --- namespaces and names from options ----------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "why"),
    [
        ("a\nb", "must not contain a control character U+000A"),
        (" production", "must not start or end with whitespace"),
        ("a/b", "must not contain '/'"),
        ("", "must not be empty"),
        ("..", "must not be '..'"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ("plan", "{root}", "--prune", "-n", "{ns}"),
        ("apply", "{root}", "--auto-approve", "-n", "{ns}"),
        ("history", "products", "-n", "{ns}"),
        ("doctor", "-n", "{ns}"),
        ("export", "-n", "{ns}", "--out", "{out}"),
        ("diff", "{ns}", NS),
    ],
    ids=lambda command: command[0],
)
def test_a_malformed_namespace_option_is_refused_before_any_request(
    tmp_path: Path, server: EmulatorHandle, command: tuple[str, ...], namespace: str, why: str
) -> None:
    root = write(tmp_path / "m", "products.yaml", flat("products", NS)).parent
    given = {"{root}": str(root), "{ns}": namespace, "{out}": str(tmp_path / "out")}
    message = refused_before_any_request(server, *(given.get(a, a) for a in command))
    assert why in message, message


def test_a_malformed_taxonomy_name_is_refused_before_any_request(server: EmulatorHandle) -> None:
    message = refused_before_any_request(server, "history", "a\nb", "-n", NS)
    assert "NAME 'a\\nb': must not contain a control character U+000A" in message


# --- the API URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "why"),
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:abc", "Port could not be cast"),
        ("{url}\n", "must not contain whitespace"),
        (" {url}", "must not contain whitespace"),
        ("{url}/?token=x", "must not have a query or fragment"),
        ("{url}#frag", "must not have a query or fragment"),
        ("http://127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("http://user:secretpass@127.0.0.1:9", "has a user or password in it"),
    ],
)
@pytest.mark.parametrize("source", ["option", "variable"])
def test_a_malformed_api_url_is_refused_before_any_request(
    server: EmulatorHandle, shape: str, why: str, source: str
) -> None:
    url = shape.replace("{url}", server.url)
    if source == "option":
        message = refused_before_any_request(server, "history", "x", "-n", NS, "--api-url", url)
        assert message.startswith("Error: --api-url: "), message
    else:
        message = refused_before_any_request(server, "history", "x", "-n", NS, url=url)
        assert message.startswith("Error: MIXPEEK_API_URL: "), message
    assert why in message and "secretpass" not in message, message


def test_a_well_formed_api_url_still_reaches_the_api(
    tmp_path: Path, server: EmulatorHandle
) -> None:
    root = write(tmp_path / "m", "products.yaml", flat("products", NS)).parent
    result = run_cli("plan", str(root), "--api-url", server.url + "/", env=env(server))
    assert result.code == 0, result.output
    assert server.requests


# --- saved plans --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("namespace", "../../etc", "namespace '../../etc' must not contain '/'"),
        ("namespace", "prod\n", "namespace 'prod\\n' must not contain a control character"),
        ("name", "..", "name '..' must not be '..'"),
        ("name", "", "name '' must not be empty"),
        ("namespace", "x" * 100_000, "namespace '" + "x" * 77 + "...' must be at most 64"),
    ],
)
def test_a_saved_plan_names_and_namespaces_are_checked_when_loaded(
    tmp_path: Path, server: EmulatorHandle, field: str, value: str, why: str
) -> None:
    root = write(tmp_path / "m", "products.yaml", flat("products", NS)).parent
    plan_file = tmp_path / "plan.json"
    assert run_cli("plan", str(root), "--out", str(plan_file), env=env(server)).code == 0
    data = json.loads(plan_file.read_text(encoding="utf-8"))
    data["changes"][0][field] = value
    plan_file.write_text(json.dumps(data), encoding="utf-8")
    server.forget()
    message = refused_before_any_request(server, "apply", "--plan", str(plan_file))
    assert f"{plan_file}: not a taxsync plan: changes.0.create.{field}" in message, message
    assert why in message and len(message) < len(str(plan_file)) + 300, message


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "deep", "too large"])
def test_a_saved_plan_file_is_read_with_limits(
    tmp_path: Path, server: EmulatorHandle, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file = _special_file(tmp_path, kind, monkeypatch)
    message = refused_before_any_request(server, "apply", "--plan", str(plan_file))
    assert "internal error" not in message and str(plan_file) in message, message


def _special_file(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if kind == "/dev/zero":
        return Path("/dev/zero")
    path = tmp_path / "plan.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "deep":
        path.write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    else:
        from taxsync import plan

        monkeypatch.setattr(plan, "MAX_PLAN_BYTES", 64)
        path.write_text(json.dumps({"format_version": 4, "changes": [], "pad": "x" * 64}))
    return path


# --- manifest extensions ------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["products.YAML", "products.Yml", "products.yAmL"])
def test_prune_never_deletes_what_an_upper_case_manifest_declares(
    tmp_path: Path, server: EmulatorHandle, file_name: str
) -> None:
    root = tmp_path / "m"
    write(root, file_name, flat("products", NS))
    write(root, "org.yaml", flat("org", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(server)).code == 0
    assert set(Api(server).taxonomies(NS)) == {"products", "org"}
    result = run_cli("plan", str(root), "--prune", "--format", "json", env=env(server))
    assert result.code == 0, result.output
    assert json.loads(result.out)["changes"] == []


# --- seeds and the emulator's state file -------------------------------------------------


@pytest.mark.parametrize("namespace", ["../../etc", "prod/x", "prod\nx", " prod", ""])
def test_a_seed_namespace_follows_the_manifest_rules(tmp_path: Path, namespace: str) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"namespaces": {namespace: {}}}), encoding="utf-8")
    state = tmp_path / "state.json"
    result = run_cli("local", "seed", "--local-state", str(state), str(seed))
    assert result.code == 1 and len(result.err.splitlines()) == 1, result.output
    assert f"{seed}: namespaces." in result.err and not state.exists(), result.output


def test_an_aliased_seed_cannot_grow_into_a_huge_state_file(tmp_path: Path) -> None:
    """1.3 KB of YAML that aliases expand ten-fold at each of eight levels."""
    lines = ["bomb:", "  l0: &l0 [" + ", ".join(["col_x"] * 10) + "]"]
    for level in range(1, 9):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    lines.append("namespaces: {production: {collections: [], retrievers: []}}")
    seed = tmp_path / "seed.yaml"
    seed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert seed.stat().st_size < 1400
    state = tmp_path / "state.json"
    result = run_cli("local", "seed", "--local-state", str(state), str(seed))
    assert result.code == 1, result.output
    assert "YAML aliases expand this file by more than 200000 values" in result.err
    assert not state.exists()


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "deep"])
def test_a_seed_file_is_read_with_limits(tmp_path: Path, kind: str) -> None:
    seed = Path("/dev/zero") if kind == "/dev/zero" else tmp_path / "seed.json"
    if kind == "fifo":
        os.mkfifo(seed)
    elif kind == "deep":
        seed.write_text('{"namespaces": ' + "[" * 5000 + "]" * 5000 + "}", encoding="utf-8")
    result = run_cli("local", "seed", "--local-state", str(tmp_path / "s.json"), str(seed))
    assert result.code == 1 and "internal error" not in result.err, result.output
    assert result.err.startswith(f"Error: {seed}: "), result.err


@pytest.mark.parametrize("command", ["plan", "apply", "seed"])
@pytest.mark.parametrize("content", ['{"generation": 1,', "[" * 5000 + "]" * 5000])
def test_a_corrupt_local_state_is_the_same_clean_error_everywhere(
    tmp_path: Path, command: str, content: str
) -> None:
    root = write(tmp_path / "m", "products.yaml", flat("products", NS)).parent
    state = tmp_path / "state.json"
    state.write_text(content, encoding="utf-8")
    seed = write(tmp_path, "seed.yaml", "namespaces: {production: {}}\n")
    args = {
        "plan": ("plan", "--local", "--local-state", str(state), str(root)),
        "apply": ("apply", "--local", "--local-state", str(state), "--auto-approve", str(root)),
        "seed": ("local", "seed", "--local-state", str(state), str(seed)),
    }[command]
    result = run_cli(*args)
    assert result.code == 1, result.output
    assert "internal error" not in result.err and f"emulator state file {state}" in result.err
    assert "move it aside or delete it" in result.err


def test_a_state_file_that_is_a_fifo_does_not_hang_the_emulator(tmp_path: Path) -> None:
    root = write(tmp_path / "m", "products.yaml", flat("products", NS)).parent
    state = tmp_path / "state.json"
    os.mkfifo(state)
    result = run_cli("plan", "--local", "--local-state", str(state), str(root))
    assert result.code == 1 and "not a regular file (a FIFO)" in result.err, result.output


def test_a_valid_local_state_still_plans(tmp_path: Path) -> None:
    root = write(tmp_path / "m", "products.yaml", flat("products", NS)).parent
    state = seed_local(tmp_path / "state.json", NS)
    result = run_cli("plan", "--local", "--local-state", str(state), str(root))
    assert result.code == 0, result.output


# --- the pre-commit hook -----------------------------------------------------------------


def _git(cwd: Path, *args: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=environ)


def test_the_hook_validates_what_git_tracks_and_stages_not_scratch_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    write(repo, "taxonomies/products.yaml", flat("products", NS))
    _git(repo, "init", "-q")
    _git(repo, "add", "taxonomies/products.yaml")
    write(repo, "taxonomies/scratch.yaml", "not: [a manifest\n")
    monkeypatch.chdir(repo)
    assert run_cli("validate", "taxonomies").code == 1  # the whole tree: the scratch file
    tracked = run_cli("validate", "--git-tracked", "taxonomies")
    assert tracked.code == 0 and "1 file(s)" in tracked.out, tracked.output
    _git(repo, "add", "taxonomies/scratch.yaml")  # staged: part of the commit
    staged = run_cli("validate", "--git-tracked", "taxonomies")
    assert staged.code == 1 and "taxonomies/scratch.yaml:2:1: invalid YAML" in staged.err, (
        staged.output
    )


def test_the_hook_runs_validate_on_tracked_files_for_any_case_of_yaml() -> None:
    hooks_file = Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml"
    (hook,) = yaml.safe_load(hooks_file.read_text(encoding="utf-8"))
    assert hook["entry"] == "taxsync validate --git-tracked"
    pattern = re.compile(hook["files"])
    assert all(pattern.search(n) for n in ("a.yaml", "a.YAML", "b.Yml", "c.yml"))
    assert not pattern.search("a.json")
