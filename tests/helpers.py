"""Builders shared by the unit tests: manifests on disk and live taxonomies as the API returns them."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from taxsync import cli
from taxsync.wire import TaxonomyResponse

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
