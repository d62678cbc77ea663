"""Performance benchmark of taxsync against the local Mixpeek emulator.

Usage (from the repository root, with the project's virtualenv)::

    .venv/bin/python benchmarks/run.py            # full run: 5,000 taxonomies, 20 namespaces
    .venv/bin/python benchmarks/run.py --quick    # small smoke run, well under a minute

It starts ``taxsync local serve`` as a separate process (in-memory state, faults off except
the injected latency, list pages capped by the server), builds manifest trees in a temporary
folder, runs the ``taxsync`` CLI as child processes and a naive per-taxonomy refresh as a
baseline, and prints a markdown report: one row per target with PASS/FAIL, then the exact
command to reproduce it. Everything it starts is stopped again, also on failure or Ctrl-C,
and the whole run is bounded by ``--time-limit``.

Exit status: 0 when every measurement ran (whatever the PASS/FAIL verdicts, unless
``--strict``), 1 when the harness itself failed (emulator did not start, a taxsync command
failed or timed out, ...), 3 with ``--strict`` when a target failed.

The live state for the no-op plan is seeded by the measured full apply (``taxsync apply`` of
every taxonomy at ``--concurrency 16``), so the plan measures exactly the state taxsync wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import per_change
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
# The benchmark's manifests are variations of the shipped examples: realistic, and kept valid
# by the test that validates the example tree.
# Manifests written with ids only, so a tree measures loading as it was before names.
TEMPLATES = REPO_ROOT / "benchmarks" / "templates"
API_KEY = "sk_benchmark_local"
HIGH_CONCURRENCY = 16
BASELINE_THREADS = 10

# --- targets (from the performance issue) ------------------------------------------

PLAN_REQUESTS_MAX_FACTOR = 2.0  # no-op plan: at most 2x the request floor
PLAN_TIME_MAX_FRACTION = 0.2  # no-op plan: at most 0.2x the naive refresh
APPLY_MIN_SPEEDUP = 5.0  # concurrent apply: at least 5x one-after-another
VALIDATE_MAX_SECONDS = 10.0
STARTUP_MAX_SECONDS = 0.5
PLAN_RSS_MAX_MB = 500.0


class HarnessError(Exception):
    """The benchmark could not measure something (not a failed target)."""


# --- manifests -----------------------------------------------------------------------


def namespace_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(count)]


def build_tree(root: Path, prefix: str, taxonomies: int, namespaces: int) -> dict[str, int]:
    """Write one manifest file per taxonomy, round-robin over the namespaces.

    Every fifth taxonomy is hierarchical, the rest flat. Returns taxonomies per namespace.
    """
    names = namespace_names(prefix, namespaces)
    per_namespace = dict.fromkeys(names, 0)
    flat = yaml.safe_load((TEMPLATES / "flat.yaml").read_text(encoding="utf-8"))
    tree = next(yaml.safe_load_all((TEMPLATES / "hierarchical.yaml").read_text(encoding="utf-8")))
    for ns in names:
        (root / ns).mkdir(parents=True, exist_ok=True)
    for index in range(taxonomies):
        ns = names[index % namespaces]
        per_namespace[ns] += 1
        name = f"tax-{index:05d}"
        doc = copy.deepcopy(tree if index % 5 == 4 else flat)
        doc["metadata"].update(name=name, namespace=ns)
        # Taxonomies only: thousands of attachments to the example's one collection would
        # measure that collection's list being rewritten one entry at a time instead.
        doc["spec"].pop("appliedTo", None)
        if index % 5 == 4:
            doc["spec"]["config"]["hierarchical_nodes"][1]["label"] = f"Managers {index}"
        else:
            doc["spec"]["config"]["top_k"] = 1 + index % 50
        text = yaml.safe_dump(doc, sort_keys=False)
        (root / ns / f"{name}.yaml").write_text(text, encoding="utf-8")
    return per_namespace


# What the templates name, seeded into every namespace: plans check that it exists, and read
# it with each namespace. The emulator creates no namespace on the fly: the seed names them.
SEED_COLLECTIONS = ("col_catalog_categories", "col_employees", "col_managers", "col_executives")
SEED_RETRIEVERS = ("ret_clip_v1", "ret_face_matcher", "ret_exec_faces")


def write_seed(path: Path, namespaces: int) -> Path:
    collections = [
        {"collection_id": c, "collection_name": c.removeprefix("col_"), "document_count": 1000}
        for c in SEED_COLLECTIONS
    ]
    retrievers = [{"retriever_id": r} for r in SEED_RETRIEVERS]
    every = {"collections": collections, "retrievers": retrievers}
    prefixes = ("seq", "default", "c16", "ns")  # the trees ``online`` applies
    named = {ns: {} for p in prefixes for ns in namespace_names(p, namespaces)}
    named.update({ns: {} for ns in namespace_names("per-change", 1)})  # per_change's tree
    seed = {"namespaces": {"*": every, **named}}
    path.write_text(yaml.safe_dump(seed), encoding="utf-8")
    return path


def request_floor(per_namespace: dict[str, int], page_size: int) -> int:
    """Per namespace: one look-up, ceil(n / page size) taxonomy pages (at least one), and the
    pages of its collections and of its retrievers (at least one each)."""

    def pages(count: int) -> int:
        return max(1, math.ceil(count / page_size))

    neighbourhood = pages(len(SEED_COLLECTIONS)) + pages(len(SEED_RETRIEVERS))
    return sum(1 + pages(n) + neighbourhood for n in per_namespace.values())


# --- child processes -----------------------------------------------------------------


@dataclass
class Run:
    """One finished child process."""

    argv: list[str]
    code: int
    seconds: float
    max_rss_kb: int
    stdout: str
    stderr: str

    def http_lines(self) -> int:
        """Requests taxsync sent, from its ``-v`` log (one ``http: ...`` line per attempt)."""
        return sum(1 for line in self.stderr.splitlines() if line.startswith("http: "))

    def tail(self, lines: int = 15) -> str:
        text = (self.stdout.strip() + "\n" + self.stderr.strip()).strip()
        return "\n".join(text.splitlines()[-lines:])


class Deadline:
    """The time budget of the whole run."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def remaining(self, cap: float | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 1:
            raise HarnessError("the --time-limit of the benchmark ran out")
        return min(left, cap) if cap is not None else left


def run_child(
    argv: Sequence[str], env: dict[str, str], timeout: float, workdir: Path, label: str
) -> Run:
    """Run a child to completion, timing it and reading its own peak RSS (``wait4``).

    The child is killed (by its pid) if it runs past ``timeout``. It is waited for with
    ``waitid(WNOWAIT)`` first, so the pid stays reserved (a zombie) until the timer can no
    longer fire, and only then reaped with ``wait4``, which returns its resource usage.
    """
    out_path, err_path = workdir / f"{label}.out", workdir / f"{label}.err"
    lock = threading.Lock()
    state = {"exited": False, "killed": False}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=workdir)

        def kill() -> None:
            with lock:
                if not state["exited"]:
                    state["killed"] = True
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            seconds = time.perf_counter() - started
        except BaseException:  # Ctrl-C, SIGTERM: never leave the child running
            kill()
            proc.wait()
            raise
        finally:
            with lock:
                state["exited"] = True
            timer.cancel()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    run = Run(
        argv=list(argv),
        code=proc.returncode,
        seconds=seconds,
        max_rss_kb=usage.ru_maxrss,  # kilobytes on Linux
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
    )
    if state["killed"]:
        raise HarnessError(f"{label}: timed out after {timeout:.0f}s: {shlex.join(argv)}")
    return run


def expect(run: Run, codes: Sequence[int], label: str) -> Run:
    if run.code not in codes:
        raise HarnessError(
            f"{label}: exit {run.code} (expected {'/'.join(map(str, codes))}): "
            f"{shlex.join(run.argv)}\n{run.tail()}"
        )
    return run


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator(
    taxsync: list[str],
    latency_ms: float,
    page_size: int,
    workdir: Path,
    namespaces: int,
    timeout: float = 20.0,
) -> Iterator[str]:
    """Run ``taxsync local serve`` on a free loopback port; yield its URL; always stop it."""
    port = free_port()
    argv = [
        *taxsync,
        "local",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--max-page-size",
        str(page_size),
        "--seed",
        str(write_seed(workdir / "seed.yaml", namespaces)),
    ]
    if latency_ms > 0:
        argv += ["--faults", f"latency={latency_ms:g}ms"]
    log = (workdir / "emulator.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.flush()
                text = (workdir / "emulator.log").read_text(errors="replace")[-2000:]
                raise HarnessError(f"the emulator exited with {proc.returncode}:\n{text}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise HarnessError(f"the emulator did not listen on port {port} in {timeout:g}s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()


# --- the naive baseline ----------------------------------------------------------------


def baseline_main(argv: list[str]) -> int:
    """A naive refresh, run as its own process: list the names, then GET each taxonomy.

    Each namespace's names are listed once (pages followed sequentially, namespaces in
    parallel), then every taxonomy is fetched with ``GET /v1/taxonomies/{name}`` from a
    pool of ``--threads`` threads sharing one connection pool. Prints
    ``baseline: <taxonomies> <requests> <seconds>`` on stdout.
    """
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    parser = argparse.ArgumentParser(prog="run.py _baseline")
    parser.add_argument("--url", required=True)
    parser.add_argument("--threads", type=int, default=BASELINE_THREADS)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("namespaces", nargs="+")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counter = {"requests": 0}
    count_lock = threading.Lock()

    def request(client: httpx.Client, method: str, path: str, ns: str, **kw: Any) -> Any:
        with count_lock:
            counter["requests"] += 1
        response = client.request(method, path, headers={"X-Namespace": ns}, **kw)
        response.raise_for_status()
        return response.json()

    def list_names(client: httpx.Client, ns: str) -> list[tuple[str, str]]:
        names: list[tuple[str, str]] = []
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor else None
            body = request(
                client,
                "POST",
                "/v1/taxonomies/list",
                ns,
                json={"limit": args.page_size},
                params=params,
            )
            names += [(ns, t["taxonomy_name"]) for t in body["results"]]
            cursor = body["pagination"].get("next_cursor")
            if not cursor:
                return names

    limits = httpx.Limits(max_connections=args.threads, max_keepalive_connections=args.threads)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(base_url=args.url, headers=headers, limits=limits, timeout=60) as client,
        ThreadPoolExecutor(args.threads) as pool,
    ):
        pairs = [p for found in pool.map(lambda ns: list_names(client, ns), args.namespaces)
                 for p in found]  # fmt: skip
        fetched = list(
            pool.map(lambda p: request(client, "GET", f"/v1/taxonomies/{p[1]}", p[0]), pairs)
        )
    if len(fetched) != len(pairs) or any(not isinstance(t, dict) for t in fetched):
        print("baseline: unexpected responses", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"baseline: {len(fetched)} {counter['requests']} {seconds:.3f}")
    return 0


# --- the benchmark -------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    target: str
    result: str
    status: str  # PASS, FAIL or "info"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, target: str, result: str, passed: bool | None) -> None:
        status = "info" if passed is None else ("PASS" if passed else "FAIL")
        self.rows.append(Row(measure, target, result, status))

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "FAIL"]

    def table(self) -> str:
        lines = ["| measure | target | result | status |", "|---|---|---|---|"]
        lines += [f"| {r.measure} | {r.target} | {r.result} | {r.status} |" for r in self.rows]
        return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return fmt_s(low) if len(values) == 1 else f"{fmt_s(low)}–{fmt_s(high)}"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def load_average() -> float:
    """The 1-minute load average (other work on the machine skews every timing)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def find_taxsync(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    beside = Path(sys.executable).parent / "taxsync"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("taxsync")
    return [found] if found else [sys.executable, "-m", "taxsync"]


def child_env(url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXPEEK_", "TAXSYNC_"))}
    env["NO_COLOR"] = "1"
    env["MIXPEEK_API_KEY"] = API_KEY
    if url:
        env["MIXPEEK_API_URL"] = url
    return env


class Benchmark:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.taxsync = find_taxsync(args.taxsync)
        self.deadline = Deadline(args.time_limit)
        self.report = Report()
        self.load_before = load_average()

    def run(self, argv: Sequence[str], label: str, env: dict[str, str], cap: float) -> Run:
        return run_child(argv, env, self.deadline.remaining(cap), self.workdir, label)

    # -- offline --------------------------------------------------------------------

    def startup(self) -> None:
        runs = [
            expect(
                self.run([*self.taxsync, "--version"], f"version-{i}", child_env(), 30),
                [0],
                "taxsync --version",
            )
            for i in range(self.args.startup_runs)
        ]
        seconds = median([r.seconds for r in runs])
        self.report.add(
            f"`taxsync --version` start-up (median of {len(runs)})",
            f"< {STARTUP_MAX_SECONDS} s",
            fmt_s(seconds),
            seconds < STARTUP_MAX_SECONDS,
        )

    def validate(self) -> None:
        count = self.args.validate_manifests
        tree = self.workdir / "validate-tree"
        build_tree(tree, "val", count, self.args.namespaces)
        runs = []
        for i in range(self.args.repeats):
            run = self.run(
                [*self.taxsync, "validate", str(tree)], f"validate-{i}", child_env(), 300
            )
            expect(run, [0], "taxsync validate")
            if f"{count} taxonomy manifest(s)" not in run.stdout:
                raise HarnessError(
                    f"taxsync validate did not report {count} manifests:\n{run.tail()}"
                )
            runs.append(run)
        seconds = median([r.seconds for r in runs])
        self.report.add(
            f"`taxsync validate` of {count:,} manifests, offline (median of {len(runs)})",
            f"< {VALIDATE_MAX_SECONDS:g} s",
            f"{fmt_s(seconds)} ({count / seconds:,.0f} manifests/s, "
            f"max RSS {max(r.max_rss_kb for r in runs) / 1024:.0f} MB)",
            seconds < VALIDATE_MAX_SECONDS,
        )

    # -- against the emulator --------------------------------------------------------------

    def online(self, url: str) -> None:
        args = self.args
        env = child_env(url)
        subset = min(args.sequential_subset, args.taxonomies)

        # Concurrent vs one-after-another, on the same number of creates, each in fresh
        # namespaces of their own so every run starts from empty namespaces.
        timed: dict[str, Run] = {}
        for label, concurrency in (("seq", 1), ("default", None), ("c16", HIGH_CONCURRENCY)):
            tree = self.workdir / f"apply-{label}"
            build_tree(tree, f"{label}", subset, args.namespaces)
            flags = [] if concurrency is None else ["--concurrency", str(concurrency)]
            run = self.run(
                [*self.taxsync, "apply", "-v", "--auto-approve", *flags, str(tree)],
                f"apply-{label}",
                env,
                1800,
            )
            self._check_applied(expect(run, [0], f"apply ({label})"), subset)
            timed[label] = run
        seq = timed["seq"].seconds
        for label, name in (("default", "default concurrency"), ("c16", "`--concurrency 16`")):
            speedup = seq / timed[label].seconds
            self.report.add(
                f"`taxsync apply` of {subset:,} creates, {name} vs `--concurrency 1`",
                f">= {APPLY_MIN_SPEEDUP:g}x faster",
                f"{speedup:.1f}x ({fmt_s(timed[label].seconds)} vs {fmt_s(seq)}; "
                f"{timed[label].http_lines():,} vs {timed['seq'].http_lines():,} requests)",
                speedup >= APPLY_MIN_SPEEDUP,
            )

        per_change.measure(self, env, build_tree, expect)

        # The full tree: applied at high concurrency (this also seeds the no-op plan).
        tree = self.workdir / "tree"
        per_namespace = build_tree(tree, "ns", args.taxonomies, args.namespaces)
        full = self.run(
            [*self.taxsync, "apply", "-v", "--auto-approve", "--concurrency",
             str(HIGH_CONCURRENCY), str(tree)],
            "apply-full",
            env,
            1800,
        )  # fmt: skip
        self._check_applied(expect(full, [0], "apply (full)"), args.taxonomies)
        per_create = seq / subset
        self.report.add(
            f"`taxsync apply` of all {args.taxonomies:,} creates, `--concurrency 16`",
            "report",
            f"{fmt_s(full.seconds)} ({args.taxonomies / full.seconds:,.0f} creates/s, "
            f"{full.http_lines():,} requests, max RSS {full.max_rss_kb / 1024:.0f} MB); "
            f"one-after-another extrapolated from the subset: ~{fmt_s(per_create * args.taxonomies)}"
            f" ({per_create * args.taxonomies / full.seconds:.1f}x)",
            None,
        )

        # No-op plan vs the naive refresh, interleaved in the same run.
        floor = request_floor(per_namespace, args.page_size)
        plans: list[Run] = []
        baselines: list[Run] = []
        names = namespace_names("ns", args.namespaces)
        baseline_argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_baseline",
            "--url",
            url,
            "--page-size",
            str(args.page_size),
            *names,
        ]
        for i in range(args.repeats):
            plan = self.run(
                [*self.taxsync, "plan", "-v", "--detailed-exitcode", str(tree)],
                f"plan-{i}",
                env,
                600,
            )
            expect(plan, [0], "no-op plan (exit 2 would mean it found changes)")
            plans.append(plan)
            base = expect(self.run(baseline_argv, f"baseline-{i}", env, 900), [0], "baseline")
            baselines.append(base)
        requests = [p.http_lines() for p in plans]
        worst = max(requests)
        self.report.add(
            f"no-op `taxsync plan` requests ({args.taxonomies:,} taxonomies, "
            f"{args.namespaces} namespaces, pages of {args.page_size})",
            f"<= {PLAN_REQUESTS_MAX_FACTOR:g}x floor of {floor} = {PLAN_REQUESTS_MAX_FACTOR * floor:g}",
            f"{worst} ({worst / floor:.2f}x floor)",
            worst <= PLAN_REQUESTS_MAX_FACTOR * floor,
        )
        plan_s = median([p.seconds for p in plans])
        base_s = median([b.seconds for b in baselines])
        figures = [_baseline_figures(b) for b in baselines]
        base_requests = max(requests for requests, _ in figures)
        base_inner = median([seconds for _, seconds in figures])
        ratio = plan_s / base_s
        self.report.add(
            f"no-op `taxsync plan` time vs naive refresh ({BASELINE_THREADS} threads, "
            f"median of {len(plans)} each, interleaved)",
            f"<= {PLAN_TIME_MAX_FRACTION:g}x",
            f"{ratio:.3f}x ({fmt_s(plan_s)} vs {fmt_s(base_s)}; plan runs "
            f"{spread([p.seconds for p in plans])}, baseline runs "
            f"{spread([b.seconds for b in baselines])})",
            ratio <= PLAN_TIME_MAX_FRACTION,
        )
        self.report.add(
            "naive refresh baseline (list names once, then one GET per taxonomy)",
            "report",
            f"{fmt_s(base_s)} wall, {base_requests:,} requests "
            f"({fmt_s(base_inner)} of it inside the process, after interpreter start-up)",
            None,
        )
        rss_mb = max(p.max_rss_kb for p in plans) / 1024
        self.report.add(
            f"peak memory (max RSS) of the {args.taxonomies:,}-taxonomy `taxsync plan`",
            f"< {PLAN_RSS_MAX_MB:g} MB",
            f"{rss_mb:.0f} MB",
            rss_mb < PLAN_RSS_MAX_MB,
        )

    @staticmethod
    def _check_applied(run: Run, count: int) -> None:
        if f"Apply: {count} applied, 0 failed." not in run.stdout:
            raise HarnessError(f"apply did not report {count} applied changes:\n{run.tail()}")

    def execute(self) -> None:
        self.startup()
        self.validate()
        args = self.args
        with emulator(
            self.taxsync, args.latency_ms, args.page_size, self.workdir, args.namespaces
        ) as url:
            self.online(url)


def _baseline_figures(run: Run) -> tuple[int, float]:
    for line in run.stdout.splitlines():
        if line.startswith("baseline: "):
            _, _, requests, seconds = line.split()
            return int(requests), float(seconds)
    raise HarnessError(f"the baseline printed no figures:\n{run.tail()}")


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="Benchmark taxsync against the local emulator."
    )
    parser.add_argument("--quick", action="store_true", help="a small run for CI smoke tests")
    parser.add_argument("--taxonomies", type=int, help="taxonomies in the tree (default 5000)")
    parser.add_argument("--namespaces", type=int, help="namespaces (default 20)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="latency per request")
    parser.add_argument("--page-size", type=int, default=100, help="server page-size cap")
    parser.add_argument(
        "--sequential-subset",
        type=int,
        help="creates in the --concurrency 1 vs concurrent comparison (default 1000)",
    )
    parser.add_argument(
        "--validate-manifests", type=int, help="manifests validated offline (default 10000)"
    )
    parser.add_argument("--repeats", type=int, help="runs of plan/baseline/validate (default 3)")
    parser.add_argument("--startup-runs", type=int, help="runs of --version (default 7)")
    parser.add_argument("--time-limit", type=float, help="seconds for the whole run")
    parser.add_argument("--taxsync", help="the taxsync executable (default: next to python)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target fails")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "taxonomies": 300 if quick else 5000,
        "namespaces": 3 if quick else 20,
        "sequential_subset": 100 if quick else 1000,
        "validate_manifests": 1000 if quick else 10000,
        "repeats": 1 if quick else 3,
        "startup_runs": 3 if quick else 7,
        "time_limit": 120.0 if quick else 1200.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("taxonomies", "namespaces", "sequential_subset", "validate_manifests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.page_size < 1 or args.page_size > 1000:
        parser.error("--page-size must be between 1 and 1000")
    if args.repeats < 1 or args.startup_runs < 1:
        parser.error("--repeats and --startup-runs must be at least 1")
    return args


def reproduce_command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python", "benchmarks/run.py"]
    if args.quick:
        parts.append("--quick")
    parts += [
        "--taxonomies",
        str(args.taxonomies),
        "--namespaces",
        str(args.namespaces),
        "--latency-ms",
        f"{args.latency_ms:g}",
        "--page-size",
        str(args.page_size),
    ]
    return shlex.join(parts)


def environment_line(taxsync: list[str]) -> str:
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if found.returncode == 0:
            commit = found.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if dirty.stdout.strip():
                commit += " (with uncommitted changes in src/)"
    return (
        f"commit {commit}; Python {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs; taxsync: `{shlex.join(taxsync)}`"
    )


def render(bench: Benchmark, started: dt.datetime, elapsed: float, error: str | None) -> str:
    args = bench.args
    lines = [
        f"# taxsync benchmark{' (quick)' if args.quick else ''}",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- setup: {args.taxonomies:,} taxonomies in {args.namespaces} namespaces, "
        f"emulator `taxsync local serve --faults latency={args.latency_ms:g}ms "
        f"--max-page-size {args.page_size}` in its own process (in-memory state)",
        f"- {environment_line(bench.taxsync)}",
        f"- run took {elapsed:.0f} s; load average (1 min) {bench.load_before:.2f} before, "
        f"{load_average():.2f} after",
        "",
        bench.report.table(),
        "",
    ]
    if args.quick:
        lines += [
            "Quick run: sizes too small for the verdicts to mean anything (start-up and fixed "
            "costs dominate); it only shows that the benchmark works.",
            "",
        ]
    if error:
        lines += [f"**The benchmark did not finish:** {error}", ""]
    failed = bench.report.failed
    verdict = (
        f"{len(failed)} target(s) FAILED: " + "; ".join(r.measure for r in failed)
        if failed
        else "every measured target passed"
    )
    lines += [f"Verdict: {verdict}.", "", "Reproduce (from the repository root):", ""]
    lines += ["```sh", reproduce_command(args), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_baseline"]:
        return baseline_main(argv[1:])
    args = parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGTERM, on_term)
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="taxsync-bench-"))
    bench = Benchmark(args, workdir)
    error: str | None = None
    try:
        print(f"benchmark: working in {workdir} ...", file=sys.stderr, flush=True)
        bench.execute()
    except HarnessError as exc:
        error = str(exc)
    finally:
        if args.keep:
            print(f"benchmark: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = render(bench, started, time.monotonic() - clock, error)
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    if error:
        print(f"benchmark: error: {error.splitlines()[0]}", file=sys.stderr)
        return 1
    return 3 if args.strict and bench.report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
