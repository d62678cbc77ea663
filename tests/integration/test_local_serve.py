"""`taxsync local serve` as a user starts it: a real process on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import WAIT_FAILSAFE_S

KEY = "sk_served"


def listening_port(pid: int) -> int | None:
    """The TCP port process ``pid`` listens on, read from /proc (None: not listening yet)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed while we look
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def wait_until_listening(process: subprocess.Popen[str]) -> int:
    """The port the served process listens on; fails the test if it never does."""
    deadline = time.monotonic() + WAIT_FAILSAFE_S  # a fail-safe, never reached when it works
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"taxsync local serve exited {process.returncode}:\n{out}{err}")
        port = listening_port(process.pid)
        if port is not None:
            return port
        time.sleep(0.02)
    process.kill()
    pytest.fail("taxsync local serve never started listening")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taxsync",
            "local",
            "serve",
            "--port",
            "0",  # the OS picks a free port: no race with other tests
            "--state",
            str(state),
            "--namespace",
            "production",
            "--api-key",
            KEY,
            "--ready-after-reads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = wait_until_listening(process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=WAIT_FAILSAFE_S)
    assert KEY not in err  # the server never logs the key
    assert state.exists()  # --state persisted what was written


def test_serve_refuses_an_unreadable_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "taxsync", "local", "serve", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=WAIT_FAILSAFE_S,  # a fail-safe: it must refuse before it listens
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("Error: ") and str(state) in done.stderr
    assert "Traceback" not in done.stderr
    assert state.read_text(encoding="utf-8") == "{not json"  # left alone


def test_served_emulator_honours_its_options(served: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}", "X-Namespace": "production"}
    assert httpx.get(f"{served}/v1/namespaces/production", headers=auth).status_code == 200
    assert httpx.get(f"{served}/v1/namespaces/staging", headers=auth).status_code == 404
    wrong = httpx.get(f"{served}/v1/namespaces", headers={"Authorization": "Bearer sk_other"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "UnauthorizedError"

    body = {
        "taxonomy_name": "topics",
        "config": {
            "taxonomy_type": "hierarchical",
            "inference_strategy": "llm",
            "inference_collections": ["col_a"],
        },
    }
    created = httpx.post(f"{served}/v1/taxonomies", json=body, headers=auth).json()
    assert created["ready"] is False
    reads = [
        httpx.get(f"{served}/v1/taxonomies/topics", headers=auth).json()["ready"] for _ in range(2)
    ]
    assert reads == [False, True]  # --ready-after-reads 1


# --- seeds and the collection/backfill switches ------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SEED = REPO_ROOT / "examples" / "local-seed.yaml"


def taxsync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taxsync", *args],
        capture_output=True,
        text=True,
        timeout=WAIT_FAILSAFE_S,  # a fail-safe: these commands do not wait on anything
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def served_with_switches(tmp_path: Path) -> Iterator[str]:
    """`local serve --seed` with every collection/backfill switch away from its default; the
    seed is the example's plus an empty collection, as JSON."""
    seed = yaml.safe_load(EXAMPLE_SEED.read_text(encoding="utf-8"))
    empty = {"collection_id": "col_new_uploads", "collection_name": "new_uploads"}
    seed["namespaces"]["production"]["collections"].append(empty)
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed), encoding="utf-8")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taxsync",
            "local",
            "serve",
            "--port",
            "0",
            "--namespace",
            "production",
            "--seed",
            str(seed_file),
            "--lenient-taxonomy-refs",
            "--applied-taxonomy-delete",
            "strict",
            "--empty-backfill",
            "accept",
            "--task-polls",
            "0",
            "--task-outcome",
            "failed",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{wait_until_listening(process)}"
    finally:
        process.terminate()
        process.communicate(timeout=WAIT_FAILSAFE_S)


def test_served_seed_and_switches(served_with_switches: str) -> None:
    url = served_with_switches
    auth = {"Authorization": "Bearer any", "X-Namespace": "production"}
    with httpx.Client(base_url=url, headers=auth, timeout=10) as http:
        # The seed's other namespace exists too, though only production was declared.
        staging = http.get("/v1/retrievers/ret_stg_safety_text", headers={"X-Namespace": "staging"})
        assert staging.json()["retriever_name"] == "safety_text"
        assert http.get("/v1/collections/employees").json()["document_count"] == 1250
        unresolved = http.post("/v1/collections/list", headers={"X-Namespace": "nowhere"})
        assert unresolved.headers["x-namespace-unresolved"] == "true"
        # --lenient-taxonomy-refs: an unknown taxonomy id is stored.
        lenient = {"taxonomy_applications": [{"taxonomy_id": "tax_not_yet"}]}
        assert http.patch("/v1/collections/managers", json=lenient).status_code == 200
        taxonomy = {
            "taxonomy_name": "topics",
            "config": {"taxonomy_type": "hierarchical", "inference_collections": ["col_a"]},
        }
        tax_id = http.post("/v1/taxonomies", json=taxonomy).json()["taxonomy_id"]
        attach = {"taxonomy_applications": [{"taxonomy_id": tax_id}]}
        http.patch("/v1/collections/product_images", json=attach).raise_for_status()
        # --applied-taxonomy-delete strict
        refused = http.delete(f"/v1/taxonomies/{tax_id}")
        assert refused.status_code == 400
        assert refused.json()["error"]["details"]["collection_ids"] == ["col_product_images"]
        assert http.get(f"/v1/taxonomies/{tax_id}").status_code == 200
        # --task-polls 0 --task-outcome failed
        task = http.post(
            "/v1/collections/product_images/apply-taxonomy", json={"taxonomy_id": tax_id}
        ).json()
        polled = httpx.get(
            f"{url}/v1/tasks/{task['task_id']}", headers={"Authorization": "Bearer any"}
        )
        assert polled.json()["status"] == "FAILED" and polled.json()["error"]
        # --empty-backfill accept
        http.patch("/v1/collections/new_uploads", json=attach).raise_for_status()
        empty = http.post(
            "/v1/collections/new_uploads/apply-taxonomy", json={"taxonomy_id": tax_id}
        )
        assert empty.status_code == 200 and empty.json()["estimated_documents"] == 0


def test_local_seed_writes_the_state_file_idempotently(tmp_path: Path) -> None:
    state = tmp_path / "nested" / "local-state.json"
    first = taxsync("local", "seed", str(EXAMPLE_SEED), env={"TAXSYNC_LOCAL_STATE": str(state)})
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "Seeded 10 collection(s) and 6 retriever(s) in 2 namespace(s) "
        f"(production, staging) into {state}"
    )
    written = state.read_text(encoding="utf-8")
    again = taxsync("local", "seed", str(EXAMPLE_SEED), "--local-state", str(state))
    assert again.returncode == 0, again.stderr
    assert state.read_text(encoding="utf-8") == written  # nothing to change the second time
    from taxsync.emulator import Store

    store = Store(state)
    assert store.count_collections("production") == 7 and store.count_collections("staging") == 3
    # The same names in both namespaces, under ids of each namespace's own.
    assert store.get_retriever("staging", "ret_stg_clip_v1")["collection_ids"] == [
        "col_stg_catalog_categories"
    ]
    assert store.get_retriever("production", "ret_clip_v1")["retriever_name"] == "catalog_clip_v1"
    assert store.get_retriever("staging", "ret_stg_clip_v1")["retriever_name"] == "catalog_clip_v1"


def test_local_seed_defaults_to_the_project_state_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taxsync", "local", "seed", str(EXAMPLE_SEED)],
        capture_output=True,
        text=True,
        timeout=WAIT_FAILSAFE_S,
        check=False,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "TAXSYNC_LOCAL_STATE"},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".taxsync" / "local-state.json").is_file()


def test_bad_seeds_are_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "seed.yaml"
    bad.write_text("namespaces: {p: {collections: [{collection_id: nope}]}}\n", encoding="utf-8")
    state = tmp_path / "state.json"
    for command in (
        ("local", "seed", str(bad), "--local-state", str(state)),
        ("local", "serve", "--port", "0", "--seed", str(bad)),
    ):
        done = taxsync(*command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr.splitlines() == [
            f"Error: {bad}: invalid seed",
            "  namespaces.p.collections.0.collection_id: String should match pattern "
            "'^col_[a-zA-Z0-9_]+$'",
            "  namespaces.p.collections.0.collection_name: Field required",
        ]
        assert "Traceback" not in done.stderr
    assert not state.exists()
