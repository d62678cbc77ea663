"""Manifests: the taxonomies a team wants, read from a directory of YAML files.

Loading keeps the line and column of every value so that each problem, ours or the
API's, can be reported as ``file:line:col: path: message``. The package follows the
steps of a load: ``files`` walks the tree and reads bytes safely, ``document`` turns YAML
into plain data with positions (``${VAR}`` expansion and character rules included),
``aliases`` budgets what YAML aliases may add, ``validate`` turns a document into a
``DesiredTaxonomy`` or problems, and ``schema`` publishes the JSON Schema.

Manifests are untrusted input (a pull request writes them, and the plan job holds the API
key and a token that can comment), so the loader also refuses what could leak a secret or
mislead a reader: other environment variables, control and bidirectional-text characters
in names and keys, namespaces and names that are not safe in a URL path or an HTTP header,
files that are not regular files, symlinks out of the tree, unreadable folders, and YAML
aliases that multiply the work.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

from taxsync.errors import ManifestError, ManifestProblem
from taxsync.manifest.aliases import (
    MAX_ALIAS_VALUES_PER_FILE,
    MAX_ALIAS_VALUES_PER_RUN,
    RunBudget,
    check_aliases,
)
from taxsync.manifest.characters import NOT_IN_NAMES, shown_path
from taxsync.manifest.document import (
    MAX_DEPTH,
    VARIABLE_PREFIX,
    Document,
    compose,
    decode,
    is_empty_document,
    secret_values,
)
from taxsync.manifest.files import (
    MANIFEST_SUFFIXES,
    MAX_FILE_BYTES,
    git_tracked,
    manifest_files,
    read_bytes,
    root_problem,
)
from taxsync.manifest.schema import json_schema
from taxsync.manifest.validate import cross_file_problems, validated
from taxsync.model import DesiredTaxonomy

__all__ = [
    "MANIFEST_SUFFIXES",
    "MAX_ALIAS_VALUES_PER_FILE",
    "MAX_ALIAS_VALUES_PER_RUN",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "NOT_IN_NAMES",
    "VARIABLE_PREFIX",
    "json_schema",
    "load_tree",
    "load_tree_stepwise",
    "manifest_files",
]


def load_tree(
    root: Path, environ: Mapping[str, str] | None = None, *, tracked_only: bool = False
) -> list[DesiredTaxonomy]:
    """Load and validate every manifest under ``root``; raise one error listing all problems.

    ``tracked_only``: only the files git tracks or has staged (the pre-commit hook)."""
    loading = load_tree_stepwise(root, environ, tracked_only=tracked_only)
    while True:
        try:
            next(loading)
        except StopIteration as done:
            return done.value


def load_tree_stepwise(
    root: Path, environ: Mapping[str, str] | None = None, *, tracked_only: bool = False
) -> Generator[list[DesiredTaxonomy], None, list[DesiredTaxonomy]]:
    """``load_tree`` one file at a time, so a caller can do other work in between (read the
    namespaces already named): yields each file's taxonomies once read, valid on their own but
    not yet checked against the rest of the tree; returns what ``load_tree`` returns and
    raises what it raises, once every file is read."""
    env = os.environ if environ is None else environ
    if not root.exists():
        raise ManifestError(
            [ManifestProblem(shown_path(root), None, None, "", "no such file or folder")]
        )
    escaped = root_problem(root)
    if escaped is not None:
        raise ManifestError([escaped])
    problems: list[ManifestProblem] = []
    desired: list[DesiredTaxonomy] = []
    secrets = secret_values(env)
    budget = RunBudget()
    only = git_tracked(root, problems) if tracked_only else None
    if tracked_only and only is None:
        raise ManifestError(problems)
    for path in manifest_files(root, problems, only):
        loaded = list(_load_file(path, env, secrets, budget, problems))
        desired.extend(loaded)
        yield loaded
    if not desired and not problems:
        problems.append(
            ManifestProblem(shown_path(root), None, None, "", "no taxonomy manifest found")
        )
    problems.extend(cross_file_problems(desired))
    if problems:
        problems.sort(key=lambda p: (p.file, p.line or 0, p.col or 0))
        raise ManifestError(problems)
    return desired


def _load_file(
    path: Path,
    env: Mapping[str, str],
    secrets: Mapping[str, str],
    budget: RunBudget,
    problems: list[ManifestProblem],
) -> Iterator[DesiredTaxonomy]:
    file = shown_path(path)
    raw = read_bytes(path, problems)
    if raw is None:
        return
    text = decode(file, raw, problems)
    if text is None:
        return
    nodes = compose(file, text, problems)
    if nodes is None:
        return
    lines = text.splitlines()
    has_aliases = "*" in text  # an alias is written `*name`: without one, nothing to measure
    file_alias_values = 0
    for node in nodes:
        if is_empty_document(node):
            continue  # an empty document between `---` separators is skipped, as kubectl does
        document = Document(file, env, secrets, lines)
        added = check_aliases(node, document, budget, file_alias_values) if has_aliases else 0
        if added is None:
            problems.extend(document.problems)
            return  # the rest of the file is not worth reading
        file_alias_values += added
        value = document.convert(node)
        problems.extend(document.problems)
        if document.problems:
            continue
        yield from validated(value, document, node, problems)
