"""The pre-commit hook of .pre-commit-hooks.yaml, run by pre-commit itself.

pre-commit installs the hook as a consumer would get it: it clones this repository at a
commit and `pip install .`s it into a virtualenv of its own (reaching PyPI for taxsync's
dependencies). The repository is given to pre-commit as a snapshot: the files of this
working tree (tracked and untracked, minus what .gitignore ignores) committed into a
temporary git repository, so uncommitted edits are tested as they are (`try-repo` on the
checkout itself would take modified tracked files but not new ones). They skip outside a
git checkout of taxsync.

An install takes 10-20 s, so it happens once per session: every `pre-commit run` below
shares one PRE_COMMIT_HOME under pytest's temporary folder (pre-commit reuses the
environment of a repository at a revision). `pre-commit try-repo` cannot share it (it
always builds in a store of its own in a temporary folder), so exactly one test uses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "taxonomies" / "product-categories.yaml"
HOOK_ID = "taxsync-validate"
INSTALL_TIMEOUT_S = 600  # a cold pip cache downloads taxsync's dependencies
RUN_TIMEOUT_S = 120

# docs/manifest.md's .pre-commit-config.yaml snippet, with this checkout in place of the URL.
DOCUMENTED_CONFIG = """\
repos:
  - repo: {repo}
    rev: {rev}
    hooks:
      - id: taxsync-validate
        args: [taxonomies]        # your manifest folder
        files: ^taxonomies/       # optional: run only when a manifest changes
"""

# Where the consumer repositories keep their one manifest.
MANIFEST = "taxonomies/prod/products.yaml"
# Its broken version: the example with a top_k above the API's maximum (in its production
# override, so the error points at the override's line).
GOOD_TOP_K = "        top_k: 3\n"


def _git_env() -> dict[str, str]:
    """The environment without anything pointing git at another repository (as when the
    suite runs inside a git hook) or skipping hooks, with an identity for commits."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_", "PRE_COMMIT")) and key != "SKIP"
    }
    env.update(
        GIT_AUTHOR_NAME="taxsync tests",
        GIT_AUTHOR_EMAIL="tests@taxsync.invalid",
        GIT_COMMITTER_NAME="taxsync tests",
        GIT_COMMITTER_EMAIL="tests@taxsync.invalid",
    )
    return env


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "safe.directory=*", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        env=_git_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class HookSource:
    """This repository as pre-commit will clone it, and where pre-commit keeps its envs."""

    repo: Path
    rev: str
    home: Path

    def env(self) -> dict[str, str]:
        """For pre-commit: its own home, and no taxsync on PATH (the hook must bring its own,
        as it does for a user who never installed taxsync)."""
        env = _git_env()
        folders = env.get("PATH", os.defpath).split(os.pathsep)
        env["PATH"] = os.pathsep.join(f for f in folders if not shutil.which("taxsync", path=f))
        env.update(
            PRE_COMMIT_HOME=str(self.home),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INPUT="1",
        )
        return env


def _snapshot(destination: Path) -> str:
    """Commit this working tree's files into a new repository; return the commit."""
    listed = _git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if not os.path.lexists(source):  # deleted but not yet committed
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    _git(destination, "init", "-q")
    _git(destination, "add", "-A")
    _git(destination, "commit", "-q", "-m", "snapshot of the taxsync working tree")
    return _git(destination, "rev-parse", "HEAD").strip()


def pre_commit(
    source: HookSource, cwd: Path, *args: str, timeout: float = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=cwd,
        env=source.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def consumer_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository holding ``files``, all staged (as they would be for a commit)."""
    root.mkdir(parents=True)
    _git(root, "init", "-q")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(root, "add", "-A")
    return root


def documented_config(source: HookSource, *, without: tuple[str, ...] = ()) -> str:
    """The documented configuration, less the hook options named in ``without``."""
    lines = DOCUMENTED_CONFIG.format(repo=source.repo, rev=source.rev).splitlines(keepends=True)
    kept = [line for line in lines if line.strip().split(":")[0] not in without]
    assert len(kept) == len(lines) - len(without), without
    return "".join(kept)


def good_manifest() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def broken_manifest() -> tuple[str, str]:
    """The broken manifest's text, and the error line `taxsync validate` prints for it."""
    lines = good_manifest().splitlines(keepends=True)
    number = lines.index(GOOD_TOP_K) + 1
    lines[number - 1] = GOOD_TOP_K.replace("3", "99")
    return "".join(lines), f"Error: {MANIFEST}:{number}:9: spec.config.top_k: must be <= 50, got 99"


# A repository's usual non-manifest YAML: a workflow (hidden folder: taxsync skips it) and
# a tool's configuration at the root (not hidden: a manifest tree of "." would include it).
OTHER_YAML = {
    ".github/workflows/ci.yml": "on: push\njobs: {}\n",
    "mkdocs.yml": "site_name: docs\n",
    "README.md": "# our taxonomies\n",
}


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="session")
def hook_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookSource]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(
        ["git", "-c", "safe.directory=*", "rev-parse", "--is-inside-work-tree"],
        cwd=REPO_ROOT,
        env=_git_env(),
        capture_output=True,
        text=True,
    )
    if inside.stdout.strip() != "true":
        pytest.skip("the hook is tested from a git checkout of taxsync")
    base = tmp_path_factory.mktemp("pre-commit")
    repo = base / "taxsync"
    source = HookSource(repo=repo, rev=_snapshot(repo), home=base / "home")
    # The one install of the session, made from the documented configuration.
    warm = consumer_repo(
        base / "install",
        {".pre-commit-config.yaml": documented_config(source)},
    )
    installed = pre_commit(source, warm, "install-hooks", timeout=INSTALL_TIMEOUT_S)
    assert installed.returncode == 0, output(installed)
    yield source


def test_try_repo_fails_a_broken_manifest_naming_its_file_and_line(
    hook_source: HookSource, tmp_path: Path
) -> None:
    """The hook as published (its default tree is the repository root) through
    `pre-commit try-repo`, which builds an environment of its own."""
    broken, error = broken_manifest()
    consumer = consumer_repo(
        tmp_path / "consumer",
        {
            ".github/workflows/ci.yml": OTHER_YAML[".github/workflows/ci.yml"],
            MANIFEST: broken,
        },
    )
    result = pre_commit(
        hook_source,
        consumer,
        "try-repo",
        str(hook_source.repo),
        HOOK_ID,
        "--ref",
        hook_source.rev,
        "--all-files",
        "--color",
        "never",
        timeout=INSTALL_TIMEOUT_S,
    )
    assert result.returncode == 1, output(result)
    assert "taxsync validate....." in result.stdout and "Failed" in result.stdout, output(result)
    assert error in result.stdout, output(result)


def test_a_commit_of_a_valid_tree_passes(hook_source: HookSource, tmp_path: Path) -> None:
    consumer = consumer_repo(
        tmp_path / "consumer",
        {
            ".pre-commit-config.yaml": documented_config(hook_source),
            MANIFEST: good_manifest(),
            **OTHER_YAML,
        },
    )
    result = pre_commit(hook_source, consumer, "run", "--color", "never")  # the staged files
    assert result.returncode == 0, output(result)
    assert "taxsync validate....." in result.stdout and "Passed" in result.stdout, output(result)


def test_a_commit_of_a_broken_manifest_fails_naming_its_file_and_line(
    hook_source: HookSource, tmp_path: Path
) -> None:
    broken, error = broken_manifest()
    consumer = consumer_repo(
        tmp_path / "consumer",
        {
            ".pre-commit-config.yaml": documented_config(hook_source),
            MANIFEST: broken,
            **OTHER_YAML,
        },
    )
    result = pre_commit(hook_source, consumer, "run", "--color", "never")
    assert result.returncode == 1, output(result)
    assert error in result.stdout, output(result)


def test_the_hook_is_skipped_when_no_yaml_file_changes(
    hook_source: HookSource, tmp_path: Path
) -> None:
    """Its own `files` pattern (no override here): a commit touching only the README does
    not run it, broken tree or not."""
    broken, error = broken_manifest()
    config = documented_config(hook_source, without=("files",))
    consumer = consumer_repo(
        tmp_path / "consumer",
        {
            ".pre-commit-config.yaml": config,
            MANIFEST: broken,
            **OTHER_YAML,
        },
    )
    readme = pre_commit(hook_source, consumer, "run", "--color", "never", "--files", "README.md")
    assert readme.returncode == 0, output(readme)
    assert "(no files to check)Skipped" in readme.stdout, output(readme)
    # Any YAML file triggers it, and it then validates the whole tree.
    workflow = pre_commit(hook_source, consumer, "run", "--color", "never", "--files", "mkdocs.yml")
    assert workflow.returncode == 1, output(workflow)
    assert error in workflow.stdout, output(workflow)


def test_without_args_the_tree_is_the_whole_repository(
    hook_source: HookSource, tmp_path: Path
) -> None:
    """Why the README tells users to point the hook at their manifest folder: with the
    default `.`, a non-manifest YAML file outside hidden folders is read as a manifest."""
    config = documented_config(hook_source, without=("args",))
    consumer = consumer_repo(
        tmp_path / "consumer",
        {
            ".pre-commit-config.yaml": config,
            MANIFEST: good_manifest(),
            **OTHER_YAML,
        },
    )
    result = pre_commit(hook_source, consumer, "run", "--color", "never")
    assert result.returncode == 1, output(result)
    assert "mkdocs.yml:1:1: apiVersion: required key is missing" in result.stdout, output(result)
    assert "ci.yml" not in result.stdout, output(result)  # hidden folders are skipped
    # The same repository without the stray file passes with the default.
    _git(consumer, "rm", "-q", "-f", "mkdocs.yml")
    result = pre_commit(hook_source, consumer, "run", "--color", "never")
    assert result.returncode == 0, output(result)
