"""`taxsync local serve` as a user starts it: a real process on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

KEY = "sk_served"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taxsync",
            "local",
            "serve",
            "--port",
            str(port),
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
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/v1/namespaces", timeout=0.5)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
        assert KEY not in err  # the server never logs the key
    assert state.exists()  # --state persisted what was written


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
