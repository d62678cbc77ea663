"""Two applies at once: how many taxonomies end with a second, duplicate new version?

The Mixpeek API has no concurrency token, so two `taxsync apply` runs racing on the same
namespace can both re-version a taxonomy. This script measures how often that happens and
how often taxsync reports it, against the emulator on loopback:

    .venv/bin/python benchmarks/race.py --taxonomies 40 --rounds 5 --latency-ms 20

Each round: create the fleet, change every config, start two applies at the same moment,
then count taxonomies above v2 (a duplicate new version) and runs that failed (exit 1: the
race was reported). Prints one line per round and the totals. Counts vary from run to run
(scheduling on a 2-core machine decides which apply re-checks a head first): compare totals
over several rounds, on a quiet machine.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from taxsync.emulator import EmulatorOptions, Faults, create_app, make_server  # noqa: E402

API_KEY = "sk_race_local"
TEMPLATE = REPO_ROOT / "benchmarks" / "templates" / "flat.yaml"


def serve(latency_ms: int, namespaces: list[str]) -> str:
    """The emulator, holding ``namespaces``, in a background thread on a free loopback port;
    returns its URL."""
    options = EmulatorOptions(
        api_key=API_KEY, namespaces=tuple(namespaces), faults=Faults(latency_ms=latency_ms)
    )
    app = create_app(options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = make_server(app, "127.0.0.1", sock.getsockname()[1])
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the emulator did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def write_fleet(root: Path, namespace: str, count: int, top_k: int) -> None:
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    for index in range(count):
        template["metadata"].update(name=f"tax-{index:03d}", namespace=namespace)
        template["spec"]["config"]["top_k"] = top_k
        (root / f"tax-{index:03d}.yaml").write_text(yaml.safe_dump(template), encoding="utf-8")


def apply_command(root: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "taxsync", "apply", "--auto-approve", "--api-url", url, str(root)]


def versions(url: str, namespace: str) -> list[int]:
    response = httpx.post(
        f"{url}/v1/taxonomies/list",
        json={"limit": 1000},
        headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": namespace},
    )
    response.raise_for_status()
    return [t["version"] for t in response.json()["results"]]


def one_round(url: str, namespace: str, count: int) -> tuple[int, int]:
    """(taxonomies with a duplicate version, runs that exited 1)."""
    env = {"MIXPEEK_API_KEY": API_KEY, "PATH": "", "PYTHONPATH": str(REPO_ROOT / "src")}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_fleet(root, namespace, count, top_k=1)
        subprocess.run(apply_command(root, url), env=env, check=True, capture_output=True)
        write_fleet(root, namespace, count, top_k=2)
        runs = [
            subprocess.Popen(apply_command(root, url), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            for _ in range(2)
        ]  # fmt: skip
        codes = [run.wait(timeout=300) for run in runs]
    duplicates = sum(1 for version in versions(url, namespace) if version > 2)
    return duplicates, sum(1 for code in codes if code != 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taxonomies", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    url = serve(args.latency_ms, [f"race-{index}" for index in range(args.rounds)])
    total_duplicates = total_reported = 0
    for index in range(args.rounds):
        duplicates, reported = one_round(url, f"race-{index}", args.taxonomies)
        total_duplicates += duplicates
        total_reported += reported
        print(f"round {index + 1}: {duplicates}/{args.taxonomies} duplicate new versions, "
              f"{reported}/2 runs exited 1")  # fmt: skip
    print(
        f"total: {total_duplicates}/{args.taxonomies * args.rounds} taxonomies re-versioned "
        f"twice; {total_reported}/{2 * args.rounds} runs reported a failure"
    )


if __name__ == "__main__":
    main()
