"""What the tests share: builders of manifests (on disk and in memory) and of live
taxonomies, the CLI run in process, and the test's own ways into a running emulator (the
environment and settings that reach it, a raw-HTTP view of its live state, a CLI process).

The emulator itself (``EmulatorHandle``, the request log and its rules) is in conftest.py,
with the ``emulator`` fixture that starts it.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from pydantic import TypeAdapter

from taxsync import cli, reconcile, wire
from taxsync.emulator import Faults
from taxsync.model import DesiredTaxonomy, Position, SourceLocation
from taxsync.wire import TaxonomyResponse
from tests.conftest import (
    EVERY_NAMESPACE_SEED,
    OWN_REQUEST_HEADER,
    WAIT_FAILSAFE_S,
    EmulatorHandle,
    Rule,
    Seen,
)

FLAT_MANIFEST = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  description: Product categories by image similarity
  metadata: {{team: search}}
  config:
    taxonomy_type: flat
    retriever_id: ret_clip_v1
    top_k: {top_k}
    input_mappings:
      - {{input_key: image_vector, path: features.clip_vit_l_14, source_type: vector}}
    source_collection:
      collection_id: col_products_v1
      enrichment_fields:
        - {{field_path: metadata.tags, merge_mode: append}}
        - {{field_path: label, target_field: category, merge_mode: replace}}
"""

HIERARCHICAL_MANIFEST = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  config:
    taxonomy_type: hierarchical
    retriever_id: ret_face_matcher
    input_mappings: [{{input_key: face_vec, source_type: vector, path: features.face}}]
    hierarchical_nodes:
      - {{collection_id: col_employees, label: Employees}}
      - {{collection_id: col_managers, parent_collection_id: col_employees, label: {label}}}
"""


@contextlib.contextmanager
def refused_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where every connection is refused: a port the OS gave us,
    bound but not listening, so nothing else can take it while the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{closed.getsockname()[1]}"


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def flat(name: str = "products", namespace: str = "production", top_k: int = 1) -> str:
    return FLAT_MANIFEST.format(name=name, namespace=namespace, top_k=top_k)


def hierarchical(name: str = "org", namespace: str = "production", label: str = "Managers") -> str:
    return HIERARCHICAL_MANIFEST.format(name=name, namespace=namespace, label=label)


# --- desired taxonomies in memory: what flat() and hierarchical() load to ------------------

FLAT_DESCRIPTION = "Product categories by image similarity"
_CONFIG = TypeAdapter[Any](wire.TaxonomyConfig)


def _flat_config(top_k: int) -> dict[str, Any]:
    return {
        "taxonomy_type": "flat",
        "retriever_id": "ret_clip_v1",
        "top_k": top_k,
        "input_mappings": [
            {"input_key": "image_vector", "path": "features.clip_vit_l_14", "source_type": "vector"}
        ],
        "source_collection": {
            "collection_id": "col_products_v1",
            "enrichment_fields": [
                {"field_path": "metadata.tags", "merge_mode": "append"},
                {"field_path": "label", "target_field": "category", "merge_mode": "replace"},
            ],
        },
    }


def _hierarchical_config(label: str) -> dict[str, Any]:
    return {
        "taxonomy_type": "hierarchical",
        "retriever_id": "ret_face_matcher",
        "input_mappings": [
            {"input_key": "face_vec", "source_type": "vector", "path": "features.face"}
        ],
        "hierarchical_nodes": [
            {"collection_id": "col_employees", "label": "Employees"},
            {
                "collection_id": "col_managers",
                "parent_collection_id": "col_employees",
                "label": label,
            },
        ],
    }


def _desired(
    name: str,
    namespace: str,
    config: dict[str, Any],
    *,
    description: str | None,
    metadata: Mapping[str, Any],
    previous_names: tuple[str, ...],
    wait: bool,
    source: SourceLocation | None,
    positions: Mapping[str, Position] | None,
) -> DesiredTaxonomy:
    # The config as the loader keeps it: validated by the API's model, only what was given.
    model = _CONFIG.validate_python(config)
    loaded = model.model_dump(mode="json", exclude_unset=True) | {
        "taxonomy_type": model.taxonomy_type
    }
    return DesiredTaxonomy(
        namespace=namespace,
        name=name,
        description=description,
        metadata=dict(metadata),
        config=loaded,
        # The metadata.name line of the manifest, as flat() and hierarchical() place it.
        source=source or SourceLocation(f"{namespace}/{name}.yaml", 4, 3),
        previous_names=previous_names,
        wait=wait,
        positions=dict(positions or {}),
    )


def desired_flat(
    name: str = "products",
    namespace: str = "production",
    top_k: int = 1,
    *,
    config: Mapping[str, Any] | None = None,
    description: str | None = FLAT_DESCRIPTION,
    metadata: Mapping[str, Any] | None = None,
    previous_names: tuple[str, ...] = (),
    wait: bool = False,
    source: SourceLocation | None = None,
    positions: Mapping[str, Position] | None = None,
) -> DesiredTaxonomy:
    """What ``flat(name, namespace, top_k)`` loads to, without a file.

    ``config``: keys that replace the config's own (top level); ``metadata``: the user
    metadata (default ``{"team": "search"}``; ``{}`` for none); ``description=None``: none.
    ``source`` and ``positions``: where the manifest would be (for messages and the locator).
    """
    return _desired(
        name,
        namespace,
        _flat_config(top_k) | dict(config or {}),
        description=description,
        metadata={"team": "search"} if metadata is None else metadata,
        previous_names=previous_names,
        wait=wait,
        source=source,
        positions=positions,
    )


def desired_hierarchical(
    name: str = "org",
    namespace: str = "production",
    label: str = "Managers",
    *,
    config: Mapping[str, Any] | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    previous_names: tuple[str, ...] = (),
    wait: bool = False,
    source: SourceLocation | None = None,
    positions: Mapping[str, Position] | None = None,
) -> DesiredTaxonomy:
    """What ``hierarchical(name, namespace, label)`` loads to, without a file (see
    ``desired_flat``; no description and no metadata by default)."""
    return _desired(
        name,
        namespace,
        _hierarchical_config(label) | dict(config or {}),
        description=description,
        metadata=metadata or {},
        previous_names=previous_names,
        wait=wait,
        source=source,
        positions=positions,
    )


# LLM inference: the emulator reports such a taxonomy not ready for its first reads.
INFERRED = {"inference_strategy": "llm", "inference_collections": ["col_a"]}


def live_flat(**overrides: Any) -> TaxonomyResponse:
    """A flat taxonomy as the server echoes it: defaults filled, nulls explicit."""
    body: dict[str, Any] = {
        "taxonomy_id": "tax_products",
        "version": 1,
        "taxonomy_name": "products",
        "description": "Product categories by image similarity",
        "retriever_id": None,
        "input_mappings": None,
        "config": {
            "taxonomy_type": "flat",
            "retriever_id": "ret_clip_v1",
            "input_mappings": [
                {
                    "input_key": "image_vector",
                    "source_type": "vector",
                    "path": "features.clip_vit_l_14",
                    "override": None,
                }
            ],
            "source_collection": {
                "collection_id": "col_products_v1",
                # Reversed order: keyed lists compare by key, not position.
                "enrichment_fields": [
                    {"field_path": "label", "target_field": "category", "merge_mode": "replace"},
                    {"field_path": "metadata.tags", "target_field": None, "merge_mode": "append"},
                ],
            },
            "top_k": 1,
            "step_analytics": None,
        },
        "nodes": None,
        "ready": True,
        "created_at": "2026-10-21T09:14:03Z",
        "metadata": {"team": "search", "managed_by": "taxsync", "validation_warnings": []},
    }
    body.update(overrides)
    return TaxonomyResponse.model_validate(body)


# --- reaching a running emulator -------------------------------------------------------------


def env(srv: EmulatorHandle) -> dict[str, str]:
    """The environment a CLI run needs to reach ``srv``."""
    return {"MIXPEEK_API_URL": srv.url, "MIXPEEK_API_KEY": srv.api_key}


def settings_for(srv: EmulatorHandle, **options: Any) -> reconcile.Settings:
    """``reconcile.Settings`` that reach ``srv``; ``options`` as Settings takes them."""
    return reconcile.Settings(api_url=srv.url, api_key=srv.api_key, **options)


class Api:
    """The test's own raw-HTTP hands on the emulator: it looks at live state, and plays
    someone else changing it.

    Injected faults are paused while it is at work (latency stays), so a test of faults
    still sees the truth. Its requests are marked (``OWN_REQUEST_HEADER``): the handle's
    request log keeps only what taxsync sent, and no hold, answer or lose rule touches
    them. Like any GET, ``get`` counts as a read towards a taxonomy's ``ready``.
    """

    _pausing = threading.Lock()  # one pause at a time, whichever test thread asks

    def __init__(self, srv: EmulatorHandle) -> None:
        self.srv = srv

    def call(
        self,
        method: str,
        path: str,
        namespace: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON answer to one request (None if it has no body); raises on an error status."""
        app = self.srv.app
        headers = {**self.srv.headers(namespace), OWN_REQUEST_HEADER: "1"}
        with Api._pausing:
            faults, app.faults = app.faults, Faults(latency_ms=app.faults.latency_ms)
            try:
                response = httpx.request(
                    method, f"{self.srv.url}{path}", json=body, params=params, headers=headers
                )
            finally:
                app.faults = faults
        response.raise_for_status()
        return response.json() if response.content else None

    def listing(self, namespace: str) -> list[dict[str, Any]]:
        """Every taxonomy head of ``namespace`` as listed (a name twice would be here twice)."""
        results: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            page = self.call("POST", "/v1/taxonomies/list", namespace, {"limit": 1000}, params)
            results.extend(page["results"])
            cursor = (page.get("pagination") or {}).get("next_cursor")
            if not cursor:
                return results
            params = {"cursor": cursor}

    def names(self, namespace: str) -> list[str]:
        return [t["taxonomy_name"] for t in self.listing(namespace)]

    def taxonomies(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The heads of ``namespace`` by name."""
        return {t["taxonomy_name"]: t for t in self.listing(namespace)}

    def get(self, namespace: str, ident: str, version: int | None = None) -> dict[str, Any]:
        params = {"version": str(version)} if version is not None else None
        found: dict[str, Any] = self.call("GET", f"/v1/taxonomies/{ident}", namespace, None, params)
        return found

    def versions(self, namespace: str, taxonomy_id: str) -> list[int]:
        listing = self.call("GET", f"/v1/taxonomies/{taxonomy_id}/versions", namespace)
        return [t["version"] for t in listing["results"]]

    def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.call("POST", "/v1/taxonomies", namespace, dict(body))
        return created

    def new_version(
        self, namespace: str, taxonomy_id: str, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = f"/v1/taxonomies/{taxonomy_id}/versions"
        made: dict[str, Any] = self.call("POST", path, namespace, {"config": dict(config)})
        return made

    def patch(self, namespace: str, ident: str, body: Mapping[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = self.call(
            "PATCH", f"/v1/taxonomies/{ident}", namespace, dict(body)
        )
        return patched

    def delete(self, namespace: str, ident: str) -> None:
        self.call("DELETE", f"/v1/taxonomies/{ident}", namespace)


def creating(name: str) -> Callable[[Seen], bool]:
    """Matches the request that creates taxonomy ``name``."""

    def match(request: Seen) -> bool:
        body = request.json() if request.method == "POST" else None
        return (
            request.path == "/v1/taxonomies"
            and isinstance(body, dict)
            and body.get("taxonomy_name") == name
        )

    return match


def writes_of(requests: list[Seen]) -> Counter[tuple[str, str]]:
    """How many requests of each (method, path)."""
    return Counter((r.method, r.path) for r in requests)


def spawn_cli(srv: EmulatorHandle, *args: str) -> subprocess.Popen[str]:
    """``taxsync ARGS`` in a process of its own, reaching ``srv`` (to kill or interrupt it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "taxsync", *args],
        env={**os.environ, **env(srv), "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_held(hold: Rule, process: subprocess.Popen[str]) -> Seen:
    """The request ``hold`` caught, once it arrived; fails if ``process`` ends without sending it."""
    for _ in range(int(WAIT_FAILSAFE_S / 0.05)):
        if hold.reached.wait(0.05):
            return hold.held[0]
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the process exited {process.returncode} first:\n{out}{err}")
    process.kill()
    raise AssertionError("the held request never arrived:\n" + "".join(process.communicate()))


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


class _Terminal(io.StringIO):
    """Standard input that is a terminal, with what the user will type."""

    def isatty(self) -> bool:
        return True


def run_cli(*args: str, env: dict[str, str] | None = None, typed: str | None = None) -> CliRun:
    """Run ``taxsync ARGS`` in process, as a user would from a shell, capturing everything.

    ``typed``: standard input is a terminal and the user types this; otherwise it is not
    a terminal (as in CI).
    """
    out, err = io.StringIO(), io.StringIO()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MIXPEEK_", "TAXSYNC_"))}
    environ.update(env or {})
    environ.setdefault("NO_COLOR", "1")
    with (
        mock.patch.dict(os.environ, environ, clear=True),
        mock.patch("sys.stdin", _Terminal(typed) if typed is not None else io.StringIO()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            cli.main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        else:
            code = 0
    run = CliRun(code, out.getvalue(), err.getvalue())
    # Every CLI run of the suite is scanned: the secrets must never reach any output.
    assert_no_secret_leaked(run, args, environ)
    return run


# Secrets a run may hold, by the environment variable that gives them.
SECRET_VARIABLES = ("MIXPEEK_API_KEY", "TAXSYNC_GITHUB_TOKEN", "GITHUB_TOKEN")
# Files a run may write for others to read, by the environment variable naming them.
REPORT_FILE_VARIABLES = ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")
# Everything fake servers (the fake GitHub API) received, registered with ``secret_sink``.
_SINKS: dict[str, Callable[[], str]] = {}


@contextlib.contextmanager
def secret_sink(name: str, received: Callable[[], str]) -> Iterator[None]:
    """While active, every ``run_cli`` also scans ``received()`` (what a fake server was sent)."""
    _SINKS[name] = received
    try:
        yield
    finally:
        del _SINKS[name]


def assert_no_secret_leaked(run: CliRun, args: tuple[str, ...], environ: dict[str, str]) -> None:
    """No secret in the output, the GitHub report files, a saved plan or a fake server's inbox."""
    places = {"stdout/stderr": run.output}
    for variable in REPORT_FILE_VARIABLES:
        if environ.get(variable) and Path(environ[variable]).is_file():
            places[variable] = Path(environ[variable]).read_text(encoding="utf-8", errors="replace")
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "--out" and Path(value).is_file():
            places[f"the plan file {value}"] = Path(value).read_text(encoding="utf-8")
    for name, received in _SINKS.items():
        places[name] = received()
    for variable in SECRET_VARIABLES:
        secret = environ.get(variable, "").strip()
        for where, text in places.items():
            assert not secret or secret not in text, f"{variable} leaked into {where}"


GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/NAME``.

    ``TAXSYNC_UPDATE_GOLDEN=1`` rewrites the file instead and skips the comparison (a
    test that compared a file with what it just wrote would pass whatever the output).
    Under CI the switch is refused: there the comparison always runs.
    """
    path = GOLDEN / name
    if os.environ.get("TAXSYNC_UPDATE_GOLDEN"):
        if os.environ.get("CI"):
            pytest.fail(
                "TAXSYNC_UPDATE_GOLDEN is set under CI: golden files are only regenerated on a "
                "developer's machine, and CI always compares them; unset it",
                pytrace=False,
            )
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"golden file {name} rewritten; run again without TAXSYNC_UPDATE_GOLDEN")
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing (create it with TAXSYNC_UPDATE_GOLDEN=1)")
    assert text == path.read_text(encoding="utf-8"), f"output differs from golden file {name}"


def seed_local(state: Path, *namespaces: str) -> Path:
    """The embedded emulator's state file, with what the builders name in ``namespaces``
    (what ``taxsync local seed`` does; ``--local`` plans check that it exists)."""
    from taxsync.emulator import Seed, Store

    content = EVERY_NAMESPACE_SEED["namespaces"]["*"]
    Store(state).seed(Seed.parse({"namespaces": dict.fromkeys(namespaces, content)}))
    return state
