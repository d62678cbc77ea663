"""``plan --changed-from REF`` over HTTP against the emulator, in a real git repository: only
the namespaces the changed manifests name are read, and what REF's manifests would do too
is pending, apart from the plan's changes."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EmulatorHandle, StartEmulator
from tests.helpers import Api, CliRun, env, flat, run_cli, write

NAMESPACES = ("alpha", "beta", "gamma", "delta")


@pytest.fixture
def server(emulator: StartEmulator) -> EmulatorHandle:
    return emulator()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose ``taxonomies/`` holds one manifest per namespace, committed."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.name", "Test Author")
    git(root, "config", "user.email", "author@example.com")
    git(root, "config", "commit.gpgsign", "false")
    for namespace in NAMESPACES:
        write(root, f"taxonomies/{namespace}/products.yaml", flat("products", namespace))
    commit(root, "one manifest per namespace")
    return root


def taxsync(server: EmulatorHandle, *args: str) -> CliRun:
    return run_cli(*args, env=env(server))


def applied(server: EmulatorHandle, repo: Path) -> None:
    """Live state matches the committed manifests; the request log starts afresh."""
    done = taxsync(server, "apply", str(repo / "taxonomies"), "--auto-approve", "--prune")
    assert done.code == 0, done.output
    server.forget()


def plan_json(server: EmulatorHandle, repo: Path, ref: str, *more: str) -> dict[str, Any]:
    done = taxsync(
        server, "plan", str(repo / "taxonomies"), "--changed-from", ref, "--format", "json", *more
    )
    assert done.code == 0, done.output
    parsed: dict[str, Any] = json.loads(done.out)
    return parsed


def read_by_namespace(server: EmulatorHandle) -> Counter[str]:
    # A namespace's own look-up names it in its path, not in a header.
    return Counter(r.namespace or r.path.rsplit("/", 1)[-1] for r in server.requests)


def actions(changes: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(c["namespace"], c["name"], c["action"]) for c in changes}


def test_only_the_namespaces_of_changed_manifests_are_read(
    server: EmulatorHandle, repo: Path
) -> None:
    applied(server, repo)
    base = git(repo, "rev-parse", "HEAD")
    write(repo, "taxonomies/beta/products.yaml", flat("products", "beta", top_k=4))
    write(repo, "taxonomies/gamma/new.yaml", flat("fresh", "gamma"))  # untracked
    plan = plan_json(server, repo, base)
    assert set(read_by_namespace(server)) == {"beta", "gamma"}
    assert plan["namespaces"] == ["beta", "gamma"]
    assert plan["left_out"] == ["alpha", "delta"]
    assert plan["changed_from"] == base
    assert actions(plan["changes"]) == {
        ("beta", "products", "new_version"),
        ("gamma", "fresh", "create"),
    }
    assert plan["pending"] == []
    # The same reads a whole plan makes for one namespace, no second round for REF's plan.
    server.forget()
    taxsync(server, "plan", str(repo / "taxonomies"), "--namespace", "beta")
    whole = read_by_namespace(server)["beta"]
    server.forget()
    plan_json(server, repo, base)
    assert read_by_namespace(server)["beta"] == whole


def test_nothing_changed_reads_nothing(server: EmulatorHandle, repo: Path) -> None:
    applied(server, repo)
    done = taxsync(server, "plan", str(repo / "taxonomies"), "--changed-from", "HEAD")
    assert done.code == 0, done.output
    assert server.requests == []
    assert "left out 4: alpha, beta, delta, gamma" in done.out


def test_a_manifest_moved_between_namespaces_plans_both(server: EmulatorHandle, repo: Path) -> None:
    write(repo, "taxonomies/alpha/other.yaml", flat("other", "alpha"))
    base = commit(repo, "alpha has two manifests")
    applied(server, repo)
    git(repo, "mv", "taxonomies/alpha/products.yaml", "taxonomies/gamma/moved.yaml")
    write(repo, "taxonomies/gamma/moved.yaml", flat("moved", "gamma"))
    plan = plan_json(server, repo, base, "--prune")
    assert plan["namespaces"] == ["alpha", "gamma"]
    assert set(read_by_namespace(server)) == {"alpha", "gamma"}
    assert actions(plan["changes"]) == {
        ("alpha", "products", "delete"),
        ("gamma", "moved", "create"),
    }


def test_a_deleted_manifest_plans_its_namespace(server: EmulatorHandle, repo: Path) -> None:
    write(repo, "taxonomies/delta/kept.yaml", flat("kept", "delta"))
    base = commit(repo, "delta has two manifests")
    applied(server, repo)
    (repo / "taxonomies/delta/products.yaml").unlink()
    plan = plan_json(server, repo, base, "--prune")
    assert plan["namespaces"] == ["delta"]
    assert set(read_by_namespace(server)) == {"delta"}
    assert actions(plan["changes"]) == {("delta", "products", "delete")}


MULTI = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: shared
  namespaces: [alpha, gamma]
spec:
  config:
    taxonomy_type: flat
    retriever_id: ret_clip_v1
    top_k: 2
    input_mappings:
      - {{input_key: image_vector, path: features.clip_vit_l_14, source_type: vector}}
    source_collection:
      collection_id: col_products_v1
      enrichment_fields:
        - {{field_path: label, merge_mode: replace}}
  overrides:
    gamma:
      config:
        top_k: {gamma_top_k}
"""


def test_a_multi_namespace_manifest_plans_every_namespace_it_lists(
    server: EmulatorHandle, repo: Path
) -> None:
    write(repo, "taxonomies/shared.yaml", MULTI.format(gamma_top_k=3))
    base = commit(repo, "one manifest for alpha and gamma")
    applied(server, repo)
    write(repo, "taxonomies/shared.yaml", MULTI.format(gamma_top_k=7))  # gamma's override only
    plan = plan_json(server, repo, base)
    assert plan["namespaces"] == ["alpha", "gamma"]
    assert set(read_by_namespace(server)) == {"alpha", "gamma"}
    assert actions(plan["changes"]) == {("gamma", "shared", "new_version")}
    assert plan["left_out"] == ["beta", "delta"]


def test_unknown_ref_and_a_folder_outside_git_are_refused(
    server: EmulatorHandle, repo: Path, tmp_path: Path
) -> None:
    for ref in ("no-such-branch", "0" * 40, "--output=/tmp/x", "HEAD~5"):
        done = taxsync(server, "plan", str(repo / "taxonomies"), f"--changed-from={ref}")
        assert done.code == 1, done.output
        assert done.err.count("\n") == 1 and "Traceback" not in done.output, done.err
        assert "--changed-from" in done.err
    loose = tmp_path / "loose"
    write(loose, "products.yaml", flat("products", "alpha"))
    done = taxsync(server, "plan", str(loose), "--changed-from", "HEAD")
    assert done.code == 1, done.output
    assert done.err.strip().endswith("is not in a git checkout"), done.err
    assert server.requests == []


def drifted(server: EmulatorHandle, namespace: str, name: str) -> None:
    """Someone changes ``name`` by hand, out of band (as in Mixpeek Studio)."""
    api = Api(server)
    live = api.taxonomies(namespace)[name]
    config = {**live["config"], "top_k": 9}
    api.new_version(namespace, live["taxonomy_id"], config)
    server.forget()


def test_drift_is_pending_apart_from_the_changes(server: EmulatorHandle, repo: Path) -> None:
    write(repo, "taxonomies/alpha/other.yaml", flat("other", "alpha"))
    base = commit(repo, "alpha has two manifests")
    applied(server, repo)
    drifted(server, "alpha", "products")
    write(repo, "taxonomies/alpha/other.yaml", flat("other", "alpha", top_k=5))
    out = repo / "plan.json"
    plan = plan_json(server, repo, base, "--out", str(out))
    assert actions(plan["changes"]) == {("alpha", "other", "new_version")}
    assert actions(plan["pending"]) == {("alpha", "products", "new_version")}
    assert plan["summary"]["new_version"] == 1
    text = taxsync(server, "plan", str(repo / "taxonomies"), "--changed-from", base)
    assert "Pending before this change: 1" in text.out
    assert "Plan: 0 to create, 1 new version" in text.out
    # A saved plan applies both: live state then matches the manifests everywhere.
    done = taxsync(server, "apply", "--plan", str(out))
    assert done.code == 0, done.output
    after = taxsync(server, "plan", str(repo / "taxonomies"), "--detailed-exitcode")
    assert after.code == 0, after.output


def test_detailed_exit_code_counts_the_changes_only(server: EmulatorHandle, repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    applied(server, repo)
    drifted(server, "beta", "products")
    # The file changes, its taxonomy does not: only the drift would be written.
    path = repo / "taxonomies/beta/products.yaml"
    path.write_text("# owned by the search team\n" + path.read_text())
    args = ("plan", str(repo / "taxonomies"), "--changed-from", base, "--detailed-exitcode")
    done = taxsync(server, *args)
    assert done.code == 0, done.output
    assert "No changes." in done.out and "Pending before this change: 1" in done.out
    write(repo, "taxonomies/beta/products.yaml", flat("products", "beta", top_k=4))
    assert taxsync(server, *args).code == 2  # now this change writes something of its own
