"""Time per create: ``taxsync apply`` of N new taxonomies against the independent fake API,
as a ratio to the sequential floor.

The sequential floor is N x latency: the time N creates take one after another when taxsync
itself costs nothing. At ``--concurrency C`` the ratio can reach at most C; what it loses
to that bound is taxsync's own time (loading, planning, building and parsing requests).

    .venv/bin/python benchmarks/creates.py --runs 5            # 5,000 creates, 20 ms
    .venv/bin/python benchmarks/creates.py --src /tmp/old/src  # the same, another tree's code
    .venv/bin/python benchmarks/creates.py --runs 1 --profile out.prof

Each run starts a fresh fake (``benchmarks/fake_api.py``, its own process) and applies the
whole tree; prints one line per run and the median ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import build_tree, free_port  # noqa: E402


def start_fake(port: int, latency_ms: float) -> subprocess.Popen[str]:
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "fake_api.py"), "--port", str(port),
         "--latency-ms", f"{latency_ms:g}"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert fake.stdout is not None
    if fake.stdout.readline().strip() != "listening":
        fake.kill()
        raise SystemExit("the fake API did not start")
    return fake


def one_run(args: argparse.Namespace, tree: Path, profile: Path | None) -> tuple[float, float]:
    """The apply's wall time and the CPU time it used (user and system, its own process)."""
    port = free_port()
    fake = start_fake(port, args.latency_ms)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(Path(p).resolve()) for p in [args.src, *args.path]),
        "MIXPEEK_API_KEY": "sk_fake",
        "MIXPEEK_API_URL": f"http://127.0.0.1:{port}",
    }
    python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else [])]
    argv = [*python, "-m", "taxsync", "apply", "--auto-approve", "--concurrency",
            str(args.concurrency), str(tree)]  # fmt: skip
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - started
        # Read before the fake is reaped, so its CPU is not counted.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    finally:
        fake.kill()
        fake.wait()
    if f"Apply: {args.taxonomies} applied, 0 failed." not in done.stdout:
        raise SystemExit(f"apply failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taxonomies", type=int, default=5000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", default=str(HERE.parent / "src"), help="the code to measure")
    parser.add_argument(
        "--path", action="append", default=[], help="another folder for PYTHONPATH, after --src"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the (last) run here")
    args = parser.parse_args()
    floor = args.taxonomies * args.latency_ms / 1000
    ratios, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="taxsync-creates-") as folder:
        tree = Path(folder) / "tree"
        build_tree(tree, "ns", args.taxonomies, args.namespaces)
        for index in range(args.runs):
            last = index == args.runs - 1
            seconds, cpu = one_run(args, tree, args.profile if last else None)
            ratios.append(floor / seconds)
            cpus.append(cpu)
            print(
                f"run {index + 1}: {seconds:.2f} s, {floor / seconds:.2f}x the floor, "
                f"CPU {cpu:.2f} s ({cpu / args.taxonomies * 1e3:.2f} ms per create)",
                flush=True,
            )
    print(
        f"{args.taxonomies:,} creates at --concurrency {args.concurrency}, "
        f"{args.latency_ms:g} ms latency: median {statistics.median(ratios):.2f}x the sequential "
        f"floor of {floor:.1f} s (runs {min(ratios):.2f}x-{max(ratios):.2f}x); CPU median "
        f"{statistics.median(cpus):.2f} s ({statistics.median(cpus) / args.taxonomies * 1e3:.2f} "
        "ms per create)"
    )


if __name__ == "__main__":
    main()
