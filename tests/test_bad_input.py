"""Bad input never crashes, and never reaches the API.

Every folder under ``tests/corpus/bad/`` is one broken manifest tree. Each is run through
``validate``, ``plan`` and ``apply --auto-approve`` against a loopback HTTP server that
counts requests; every run must exit 1 with a one-line ``Error: <file>:<line>...`` naming
the problem, print no traceback and no "internal error", and send the server nothing.

Corpus format: a case folder holds the tree (``*.yaml``/``*.yml`` files, possibly in
subfolders, committed byte for byte: CRLF, BOM and non-UTF-8 cases included) and an
``expect.txt``::

    # Why this tree is broken (lines starting with '#' are comments).
    where: <file relative to the case folder>:<line>
    error: <text the error must contain>

The first line of stderr must name ``<case folder>/<file>:<line>:`` (the loader sorts
problems by file and line, so this is the first problem) and contain the ``error`` text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from taxsync.manifest import MAX_FILE_BYTES
from tests.helpers import CliRun, flat, run_cli, write

CORPUS = Path(__file__).parent / "corpus" / "bad"
COMMANDS: dict[str, tuple[str, ...]] = {
    "validate": ("validate",),
    "plan": ("plan",),
    "apply": ("apply", "--auto-approve"),
}


@dataclass(frozen=True)
class Case:
    name: str
    root: Path
    file: Path
    line: int
    error: str


def load_case(folder: Path) -> Case:
    fields: dict[str, str] = {}
    for raw in (folder / "expect.txt").read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            key, _, value = raw.partition(": ")
            fields[key] = value
    file, _, line = fields["where"].rpartition(":")
    return Case(folder.name, folder, folder / file, int(line), fields["error"])


CASES = [load_case(folder) for folder in sorted(CORPUS.iterdir()) if folder.is_dir()]


# --- a loopback API that counts what reaches it ---------------------------------------


class CountingApi:
    """Answers the two reads a plan makes (the namespace, an empty list); refuses the rest."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with api._lock:
                    api.requests.append(f"{self.command} {self.path}")
                status, body = api.route(self.command, self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 (http.server API)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.env = {"MIXPEEK_API_URL": self.url, "MIXPEEK_API_KEY": "sk_test_bad_input"}

    @staticmethod
    def route(method: str, path: str) -> tuple[int, object]:
        if method == "GET" and path.startswith("/v1/namespaces/"):
            return 200, {"namespace_name": path.rsplit("/", 1)[-1]}
        if method == "POST" and path.startswith("/v1/taxonomies/list"):
            return 200, {"results": [], "total_count": 0}
        error = {"type": "BadRequest", "message": f"{method} {path} is not expected here"}
        return 400, {"success": False, "status": 400, "error": error}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[CountingApi]:
    api = CountingApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture
def api(server: CountingApi) -> CountingApi:
    server.requests.clear()
    return server


def assert_refused(result: CliRun, file: Path, line: int | None, error: str) -> None:
    """Exit 1, a first line ``Error: <file>:<line>: ...error...``, and nothing unexpected."""
    where = f"{file}:{line}:" if line is not None else f"{file}: "
    assert result.code == 1, result.output
    assert "Traceback" not in result.output, result.output
    assert "internal error" not in result.output.lower(), result.output
    first = result.err.splitlines()[0] if result.err else ""
    assert first.startswith(f"Error: {where}"), result.err
    assert error in first, result.err


# --- the corpus -------------------------------------------------------------------------


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 60
    for case in CASES:
        assert case.file.is_file(), f"{case.name}: expect.txt names a missing file"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_tree_is_refused_without_calling_the_api(
    case: Case, command: str, api: CountingApi
) -> None:
    result = run_cli(*COMMANDS[command], str(case.root), env=api.env)
    assert_refused(result, case.file, case.line, case.error)
    assert api.requests == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_file_over_the_size_limit_is_refused_unread(
    tmp_path: Path, command: str, api: CountingApi
) -> None:
    big = write(tmp_path, "big.yaml", flat())
    with big.open("a", encoding="utf-8") as out:  # valid YAML: a manifest, then comments
        line = "#" * 1023 + "\n"
        out.write(line * (MAX_FILE_BYTES // len(line) + 1))
    assert big.stat().st_size > MAX_FILE_BYTES
    result = run_cli(*COMMANDS[command], str(tmp_path), env=api.env)
    # A whole-file problem is located at the file's start.
    assert_refused(result, big, 1, "file is larger than 8 MiB")
    assert api.requests == []


# --- empty files and documents ------------------------------------------------------------


def test_empty_files_and_documents_are_skipped(tmp_path: Path, api: CountingApi) -> None:
    (tmp_path / "empty.yaml").write_bytes(b"")
    write(tmp_path, "comments.yaml", "# nothing here yet\n")
    write(tmp_path, "separators.yml", "---\n---\n...\n---\n")
    write(tmp_path, "team/products.yaml", "---\n\n---\n# the real one\n" + flat() + "---\n")

    validated = run_cli("validate", str(tmp_path), env=api.env)
    assert validated.code == 0, validated.output
    assert "1 taxonomy manifest(s) in 1 file(s) are valid" in validated.out
    assert api.requests == []

    planned = run_cli("plan", str(tmp_path), env=api.env)
    assert planned.code == 0, planned.output
    assert "create production/products" in planned.out
    assert "Plan: 1 to create" in planned.out
    assert api.requests  # the empty files did not stop the plan from reading live state


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_tree_without_any_manifest_is_an_error(
    tmp_path: Path, command: str, api: CountingApi
) -> None:
    (tmp_path / "empty.yaml").write_bytes(b"")
    write(tmp_path, "comments.yml", "# TODO\n---\n")
    write(tmp_path, "README.md", flat())  # not a manifest suffix
    write(tmp_path, ".drafts/products.yaml", flat())  # hidden folders are skipped
    result = run_cli(*COMMANDS[command], str(tmp_path), env=api.env)
    assert_refused(result, tmp_path, None, "no taxonomy manifest found")
    assert api.requests == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_empty_folder_and_a_missing_path_are_errors(
    tmp_path: Path, command: str, api: CountingApi
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(
        run_cli(*COMMANDS[command], str(empty), env=api.env),
        empty,
        None,
        "no taxonomy manifest found",
    )
    missing = tmp_path / "missing"
    assert_refused(
        run_cli(*COMMANDS[command], str(missing), env=api.env),
        missing,
        None,
        "no such file or folder",
    )
    assert api.requests == []
