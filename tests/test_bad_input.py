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

import errno
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from taxsync.manifest import MAX_FILE_BYTES
from tests.helpers import CliRun, flat, run_cli, write
from tests.test_manifest_hardening import guard_fifo_opens

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
        # What tests.helpers.flat() names, so a plan's reference check passes.
        if method == "POST" and path.startswith("/v1/collections/list"):
            products = {"collection_id": "col_products_v1", "collection_name": "products"}
            return 200, {"results": [products], "total_count": 1}
        if method == "POST" and path.startswith("/v1/retrievers/list"):
            return 200, {"results": [{"retriever_id": "ret_clip_v1"}], "total": 1}
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


# --- trees git cannot hold: special files, symlinks out, unreadable folders ----------------


def _fifo(root: Path) -> Path:
    os.mkfifo(root / "pipe.yaml")
    return root / "pipe.yaml"


def _link_to_dev_zero(root: Path) -> Path:
    (root / "zero.yaml").symlink_to("/dev/zero")
    return root / "zero.yaml"


def _linked_folder_outside(root: Path) -> Path:
    outside = root.parent / f"{root.name}-outside"
    write(outside, "elsewhere.yaml", flat("elsewhere"))
    (root / "shared").symlink_to(outside)
    return root / "shared"


def _dangling_folder_link(root: Path) -> Path:
    (root / "team").symlink_to("team-was-renamed")
    return root / "team"


def _socket(root: Path) -> Path:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "sock.yaml"))
    server.close()  # the socket file stays
    return root / "sock.yaml"


def _control_character_in_a_file_name(root: Path) -> Path:
    write(root, "b\x1b[2J.yaml", flat("b"))
    return Path(f"{root}/b\\u001b[2J.yaml")  # as the message shows it


SPECIAL_TREES: dict[str, tuple[Callable[[Path], Path], int | None, str]] = {
    # name: (make it next to a valid manifest, returning the path named; line; error)
    "fifo": (_fifo, 1, "not a regular file (a FIFO)"),
    "symlink-to-dev-zero": (_link_to_dev_zero, None, "symlink leading outside the manifest tree"),
    "symlinked-folder-outside": (
        _linked_folder_outside,
        None,
        "symlink leading outside the manifest tree",
    ),
    "dangling-folder-symlink": (_dangling_folder_link, None, "cannot read: No such file"),
    "socket": (_socket, 1, "not a regular file (a socket)"),
    "control-character-in-file-name": (
        _control_character_in_a_file_name,
        1,
        "the name contains a control character U+001B",
    ),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("tree", list(SPECIAL_TREES))
def test_special_files_are_refused_without_calling_the_api(
    tmp_path: Path, tree: str, command: str, api: CountingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard_fifo_opens(monkeypatch)  # a blocking open of the FIFO fails instead of hanging
    root = tmp_path / "tree"
    write(root, "a.yaml", flat("a"))
    make, line, error = SPECIAL_TREES[tree]
    named = make(root)
    result = run_cli(*COMMANDS[command], str(root), env=api.env)
    assert_refused(result, named, line, error)
    assert api.requests == []


def test_an_unreadable_folder_never_becomes_a_prune(
    tmp_path: Path, api: CountingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan --prune`` of a tree whose sub-folder cannot be read must not plan deletes of
    what that folder declares: the run fails before any request."""
    write(tmp_path, "a/one.yaml", flat("one"))
    write(tmp_path, "b/two.yaml", flat("two"))
    unreadable = str(tmp_path / "b")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:  # root reads any mode; the kernel's answer is simulated
        if str(path) == unreadable:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), unreadable)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for command in (("plan", "--prune"), ("apply", "--auto-approve", "--prune")):
        result = run_cli(*command, str(tmp_path), env=api.env)
        assert_refused(result, Path(unreadable), None, "cannot read folder: Permission denied")
        assert api.requests == []


SECRET = "sk_live_plan_job_secret_0123"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("variable", "written"),
    [
        ("MIXPEEK_API_KEY", "${MIXPEEK_API_KEY}"),
        ("GITHUB_TOKEN", "${GITHUB_TOKEN}"),
        ("MIXPEEK_API_KEY", "${TAXSYNC_VAR_KEY}"),  # the workflow mapped the secret in
        ("GITHUB_TOKEN", "${TAXSYNC_VAR_KEY}"),
    ],
)
def test_a_secret_never_reaches_a_plan(
    tmp_path: Path, api: CountingApi, command: str, variable: str, written: str
) -> None:
    path = write(tmp_path, "a.yaml", flat().replace("by image similarity", written))
    env = api.env | {variable: SECRET, "TAXSYNC_VAR_KEY": SECRET}
    # run_cli scans stdout, stderr and the report files for every secret it was given.
    result = run_cli(*COMMANDS[command], str(tmp_path), env=env)
    error = "is the value of" if written == "${TAXSYNC_VAR_KEY}" else "only variables named"
    assert_refused(result, path, 7, error)
    assert api.requests == []
