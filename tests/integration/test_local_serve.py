"""`taxsync local serve` as a user starts it: a real process on a loopback port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
