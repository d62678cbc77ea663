"""The shape of the code, as rules a change cannot quietly break (docs/layout.md says why):
short modules, classes and functions; the CLI reaches the pipeline only through
``reconcile`` and the renderers; nothing reads outside the repository; every raise names
its own error type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "taxsync"
TESTS = Path(__file__).resolve().parent
MAX_FILE_LINES = 700
MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 60


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path, node: ast.AST | None = None) -> str:
    line = f":{node.lineno}" if node is not None and hasattr(node, "lineno") else ""
    return f"{path.relative_to(SRC.parent)}{line}"


def test_no_source_file_is_over_the_limit() -> None:
    long = [
        f"{where(p)} ({n} lines)"
        for p in sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    ]
    assert long == []


def test_no_class_or_function_is_over_the_limit() -> None:
    long = []
    for path in sources():
        for node in ast.walk(parsed(path)):
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if size > limit:
                long.append(f"{where(path, node)} {node.name} ({size} lines)")
    assert long == []


def imported_modules(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


# What the CLI may reach of taxsync: the pipeline's front door, the renderers, the error
# hierarchy, output redaction, and the emulator it serves (``local serve``).
CLI_MAY_IMPORT = ("taxsync.reconcile", "taxsync.render", "taxsync.errors", "taxsync.redact")
CLI_MAY_IMPORT += ("taxsync.emulator", "taxsync.cli", "taxsync.__version__")
CLI_MAY_IMPORT += ("taxsync.plan",)  # the plan's types, for annotations and the vocabulary


def cli_modules() -> list[Path]:
    package = SRC / "cli"
    return sorted(package.rglob("*.py")) if package.is_dir() else [SRC / "cli.py"]


def test_the_cli_reaches_the_pipeline_only_through_reconcile_and_the_renderers() -> None:
    strays = []
    for path in cli_modules():
        for module in imported_modules(parsed(path)):
            if module == "taxsync" or not module.startswith("taxsync"):
                continue
            if not module.startswith(CLI_MAY_IMPORT):
                strays.append(f"{where(path)} imports {module}")
    # The names taxsync's own package exposes are fine (``from taxsync import reconcile``).
    strays = [s for s in strays if not s.endswith(("imports taxsync.reconcile",))]
    assert strays == []


def test_only_the_cli_reconcile_and_export_import_the_loader() -> None:
    allowed = ("cli", "reconcile.py", "export.py", "read_ahead.py", "manifest")
    strays = []
    for path in sources():
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(allowed):
            continue
        if any(m.startswith("taxsync.manifest") for m in imported_modules(parsed(path))):
            strays.append(relative)
    assert strays == []


def raised_names(tree: ast.Module) -> list[tuple[ast.Raise, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            if isinstance(func, ast.Name):
                out.append((node, func.id))
    return out


def test_every_raise_names_its_own_error_type() -> None:
    bare = [
        where(path, node)
        for path in sources()
        for node, name in raised_names(parsed(path))
        if name == "TaxsyncError"
    ]
    assert bare == []


# How code reached (or cited) the contract beside the repository before it moved into tests/.
OUTSIDE_MARKS = ("mixpeek-api", "TAXONOMIES.md", "COLLECTIONS.md", 'parent / "shared"')


@pytest.mark.parametrize("root", [SRC, TESTS], ids=["src", "tests"])
def test_nothing_reads_a_folder_beside_the_repository(root: Path) -> None:
    """A user's clone has nothing beside it: the contract the tests need lives in tests/."""
    readers = []
    for path in sorted(root.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        if any(mark in text for mark in OUTSIDE_MARKS):
            readers.append(str(path.relative_to(root.parent)))
    assert readers == []
