"""Manifests: the taxonomies a team wants, read from a directory of YAML files.

Loading keeps the line and column of every value so that each problem, ours or the
API's, can be reported as ``file:line:col: path: message``. YAML is composed with the
safe loader (C-accelerated when available) and converted by hand, so no tag ever
constructs an object, duplicate keys are caught, and ``${TAXSYNC_VAR_*}`` is expanded in
string values only, after parsing.

Manifests are untrusted input (a pull request writes them, and the plan job holds the API
key and a token that can comment), so the loader also refuses what could leak a secret or
mislead a reader: other environment variables, control and bidirectional-text characters
in names and keys, namespaces and names that are not safe in a URL path or an HTTP header,
files that are not regular files, symlinks out of the tree, unreadable folders, and YAML
aliases that multiply the work.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
import stat
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taxsync import wire
from taxsync.errors import ManifestError, ManifestProblem
from taxsync.model import (
    API_VERSION,
    MANAGED_KEY,
    AppliedTo,
    DesiredTaxonomy,
    FieldPath,
    ManifestSpec,
    Position,
    SourceLocation,
    TaxonomyManifest,
    dotted,
    strip_union_tags,
)
from taxsync.redact import SECRET_VARIABLES

MAX_FILE_BYTES = 8 * 1024 * 1024
# Alias bombs ("billion laughs"): how many values YAML aliases may add, beyond the nodes the
# text itself holds, in one file and in one run. Checked before any value is converted.
MAX_ALIAS_VALUES_PER_FILE = 200_000
MAX_ALIAS_VALUES_PER_RUN = 1_000_000
MAX_DEPTH = 100  # guards the recursive conversion against deep nesting
MANIFEST_SUFFIXES = (".yaml", ".yml")
# Only these variables are expanded (like Terraform's TF_VAR_): a manifest can never name a
# secret of the process that reads it.
VARIABLE_PREFIX = "TAXSYNC_VAR_"
# Secrets a run may hold (redact.SECRET_VARIABLES): an expansion holding one is refused.
_MIN_SECRET_INSIDE = 8  # a shorter secret is refused only as the whole value, not inside one

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVED_MAX = 100_000  # scalars whose tag _ManifestLoader remembers, at most


class _ManifestLoader(_Loader):  # type: ignore[valid-type,misc]
    """The safe loader, remembering the tag each plain scalar resolves to: the same keys and
    values recur in every manifest, and resolving them again (regular expressions, in Python,
    called back from libyaml) was a fifth of composing a manifest. The tag depends only on
    what is remembered, unless path resolvers are registered (then nothing is)."""

    _resolved: dict[tuple[Any, Any, Any], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        key = (kind, value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._resolved) >= _RESOLVED_MAX:
                self._resolved.clear()
            self._resolved[key] = tag
        return tag


_constructor = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_STR_TAG = "tag:yaml.org,2002:str"
_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Invisible characters that reorder or hide text (Trojan Source): bidi embeddings,
# overrides and isolates, and the left-to-right, right-to-left and Arabic letter marks.
_BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Names, namespaces, keys and ids: no control character at all (C0 with tab, newline and
# carriage return, DEL, C1), no line or paragraph separator, no bidi control.
_NOT_IN_NAMES = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI_CONTROLS}]")
# Free text (descriptions, other values): newlines and tabs are kept (values are quoted when
# printed); carriage returns, escapes and other controls are not.
_NOT_IN_TEXT = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
# Values that name things (fields, collections, retrievers, nodes) follow the rule for names.
_NAME_VALUED_CONFIG_KEYS = frozenset(
    {
        "input_key",
        "field_path",
        "target_field",
        "collection_id",
        "parent_collection_id",
        "label",
        "retriever_id",
        "path_field",
        "timestamp_field",
        "sequence_id_field",
        "step_key_field_path",
    }
)


# --- loading -------------------------------------------------------------------------


def manifest_files(root: Path, problems: list[ManifestProblem]) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under ``root`` (or ``root`` itself), hidden ones skipped.

    Walks the tree itself rather than trusting ``os.walk``, which skips what it cannot read:
    a folder that cannot be listed, a symlink that leaves the tree (a manifest or a folder
    linked from elsewhere), one that leads nowhere, and a file or folder whose name holds a
    control character are each a problem naming the path. Symlinks inside the tree are
    followed, and each real file and folder is read once (so a link loop ends).
    """
    if not root.is_dir():
        return [root]  # a single file: _read_bytes makes sure it is a regular one
    real_root = os.path.realpath(root)
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
            identity = (info.st_dev, info.st_ino)
            if identity in seen:
                continue  # reached again through a symlink
            seen.add(identity)
            with os.scandir(folder) as listing:
                entries = sorted(
                    (e for e in listing if not e.name.startswith(".")), key=lambda e: e.name
                )
        except OSError as exc:
            problems.append(_path_problem(folder, None, f"cannot read folder: {_reason(exc)}"))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            path = folder / entry.name
            kind = _entry_kind(entry, path, real_root, problems)
            if kind is None:
                continue
            if kind == "folder" or entry.name.endswith(MANIFEST_SUFFIXES):
                bad = _NOT_IN_NAMES.search(entry.name)
                if bad:
                    message = f"the name contains {_describe_character(bad.group())}"
                    problems.append(_path_problem(path, kind, message))
                    continue
            if kind == "folder":
                subfolders.append(path)
            elif entry.name.endswith(MANIFEST_SUFFIXES) and _first_visit(path, seen, problems):
                found.append(path)
        stack.extend(reversed(subfolders))  # depth first, in name order
    return found


def _entry_kind(
    entry: os.DirEntry[str], path: Path, real_root: str, problems: list[ManifestProblem]
) -> str | None:
    """``"folder"`` or ``"file"`` (anything else a manifest name may hold), or None to skip."""
    try:
        if not entry.is_symlink():
            return "folder" if entry.is_dir(follow_symlinks=False) else "file"
        manifest_name = entry.name.endswith(MANIFEST_SUFFIXES)
        if not _inside(os.path.realpath(path), real_root):
            # A link out of the tree to a file no manifest name asks for is never read.
            if manifest_name or path.is_dir() or not path.exists():
                problems.append(
                    _path_problem(path, None, "is a symlink leading outside the manifest tree")
                )
            return None
        info = os.stat(path)  # a dangling link or a link loop fails here
    except OSError as exc:
        problems.append(_path_problem(path, None, f"cannot read: {_reason(exc)}"))
        return None
    return "folder" if stat.S_ISDIR(info.st_mode) else "file"


def _first_visit(path: Path, seen: set[tuple[int, int]], problems: list[ManifestProblem]) -> bool:
    """False for a file already found through another path (a symlink to it)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        problems.append(_path_problem(path, "file", f"cannot read: {_reason(exc)}"))
        return False
    identity = (info.st_dev, info.st_ino)
    if stat.S_ISREG(info.st_mode) and identity in seen:
        return False
    seen.add(identity)
    return True


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _shown_path(path: Path | str) -> str:
    """The path as messages print it: control and bidi characters escaped."""
    text = str(path)
    return _NOT_IN_NAMES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _path_problem(path: Path | str, kind: str | None, message: str) -> ManifestProblem:
    """A problem with a whole file (located at its start) or a folder (no line)."""
    line = 1 if kind == "file" else None
    return ManifestProblem(_shown_path(path), line, line, "", message)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _root_problem(root: Path) -> ManifestProblem | None:
    """A manifest path inside the working directory (the checkout) must stay inside it.

    A pull request controls the checkout: it could replace the manifest folder (or a folder
    above it) with a symlink to ``/``. A path outside the working directory was spelled by
    whoever runs taxsync, and is taken as given.
    """
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    given = os.path.abspath(root)
    if not _inside(given, os.path.abspath(cwd)):
        return None
    if _inside(os.path.realpath(given), os.path.realpath(cwd)):
        return None
    message = "leads outside the working directory through a symlink"
    return ManifestProblem(_shown_path(root), None, None, "", message)


@dataclass
class _RunBudget:
    """What one run may still spend on values YAML aliases add."""

    alias_values: int
    exhausted: bool = False


def load_tree(root: Path, environ: Mapping[str, str] | None = None) -> list[DesiredTaxonomy]:
    """Load and validate every manifest under ``root``; raise one error listing all problems."""
    loading = load_tree_stepwise(root, environ)
    while True:
        try:
            next(loading)
        except StopIteration as done:
            return done.value


def load_tree_stepwise(
    root: Path, environ: Mapping[str, str] | None = None
) -> Generator[list[DesiredTaxonomy], None, list[DesiredTaxonomy]]:
    """``load_tree`` one file at a time, so a caller can do other work in between (read the
    namespaces already named): yields each file's taxonomies once read, valid on their own but
    not yet checked against the rest of the tree; returns what ``load_tree`` returns and
    raises what it raises, once every file is read."""
    env = os.environ if environ is None else environ
    if not root.exists():
        raise ManifestError(
            [ManifestProblem(_shown_path(root), None, None, "", "no such file or folder")]
        )
    escaped = _root_problem(root)
    if escaped is not None:
        raise ManifestError([escaped])
    problems: list[ManifestProblem] = []
    desired: list[DesiredTaxonomy] = []
    secrets = _secrets(env)
    budget = _RunBudget(MAX_ALIAS_VALUES_PER_RUN)
    for path in manifest_files(root, problems):
        loaded = list(_load_file(path, env, secrets, budget, problems))
        desired.extend(loaded)
        yield loaded
    if not desired and not problems:
        problems.append(
            ManifestProblem(_shown_path(root), None, None, "", "no taxonomy manifest found")
        )
    problems.extend(_cross_file_problems(desired))
    if problems:
        problems.sort(key=lambda p: (p.file, p.line or 0, p.col or 0))
        raise ManifestError(problems)
    return desired


def _secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Secret values present (in ``env`` or this process's environment) → their variable."""
    found: dict[str, str] = {}
    for source in (env, os.environ):
        for name in SECRET_VARIABLES:
            value = source.get(name, "").strip()
            if value:
                found.setdefault(value, name)
    return found


def _load_file(
    path: Path,
    env: Mapping[str, str],
    secrets: Mapping[str, str],
    budget: _RunBudget,
    problems: list[ManifestProblem],
) -> Iterator[DesiredTaxonomy]:
    file = _shown_path(path)
    raw = _read_bytes(path, problems)
    if raw is None:
        return
    text = _decode(file, raw, problems)
    if text is None:
        return
    try:
        nodes = list(yaml.compose_all(text, Loader=_ManifestLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        reason = exc.problem or str(exc)
        problems.append(ManifestProblem(file, line, col, "", f"invalid YAML: {reason}"))
        return
    except yaml.reader.ReaderError as exc:
        problems.append(_reader_problem(file, text, exc))
        return
    except yaml.YAMLError as exc:
        problems.append(ManifestProblem(file, None, None, "", f"invalid YAML: {exc}"))
        return
    lines = text.splitlines()
    has_aliases = "*" in text  # an alias is written `*name`: without one, nothing to measure
    file_alias_values = 0
    for node in nodes:
        if _is_empty_document(node):
            continue  # an empty document between `---` separators is skipped, as kubectl does
        document = _Document(file, env, secrets, lines)
        added = _check_aliases(node, document, budget, file_alias_values) if has_aliases else 0
        if added is None:
            problems.extend(document.problems)
            return  # the rest of the file is not worth reading
        file_alias_values += added
        value = document.convert(node)
        problems.extend(document.problems)
        if document.problems:
            continue
        taxonomy = _validate(value, document, node, problems)
        if taxonomy is not None:
            yield taxonomy


def _read_bytes(path: Path, problems: list[ManifestProblem]) -> bytes | None:
    """The bytes of a regular file of at most ``MAX_FILE_BYTES``, or None (and a problem).

    Opened without blocking (a FIFO has no writer) and checked on the open descriptor (the
    path may change in between); read with a bound, as ``st_size`` may lie (``/proc``).
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        mode = _mode(path) if exc.errno == errno.ENXIO else None  # ENXIO: a socket
        if mode is not None and not stat.S_ISREG(mode):
            problems.append(_not_regular(path, mode))
            return None
        problems.append(_path_problem(path, "file", f"cannot read: {_reason(exc)}"))
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            problems.append(_not_regular(path, info.st_mode))
            return None
        if info.st_size > MAX_FILE_BYTES:
            problems.append(_too_large(path))
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(descriptor, min(MAX_FILE_BYTES + 1 - size, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:
            problems.append(_too_large(path))
            return None
        return b"".join(chunks)
    except OSError as exc:
        problems.append(_path_problem(path, "file", f"cannot read: {_reason(exc)}"))
        return None
    finally:
        os.close(descriptor)


_OPEN_FLAGS = os.O_RDONLY
for _flag in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
    _OPEN_FLAGS |= getattr(os, _flag, 0)


def _too_large(path: Path) -> ManifestProblem:
    return _path_problem(path, "file", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(path: Path, mode: int) -> ManifestProblem:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
    return _path_problem(path, "file", f"not a regular file ({kind})")


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def _decode(file: str, raw: bytes, problems: list[ManifestProblem]) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        problems.append(ManifestProblem(file, line, col, "", message))
        return None


def _reader_problem(file: str, text: str, exc: yaml.reader.ReaderError) -> ManifestProblem:
    """A character YAML forbids, such as a control character, located by line and column.

    libyaml counts ``exc.position`` in bytes, the pure-Python reader in characters, so find
    the character instead: the reader stops at the first forbidden one.
    """
    code = exc.character if isinstance(exc.character, int) else None
    index = text.find(chr(code)) if code is not None else -1
    if code is None or index < 0:
        return ManifestProblem(file, None, None, "", f"invalid YAML: {exc.reason}")
    line = text.count("\n", 0, index) + 1
    col = index - text.rfind("\n", 0, index)
    message = f"invalid YAML: unacceptable character #x{code:04x}: {exc.reason}"
    return ManifestProblem(file, line, col, "", message)


def _is_empty_document(node: yaml.Node | None) -> bool:
    return node is None or (node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~"))


# --- YAML aliases ------------------------------------------------------------------------


def _values(node: yaml.Node) -> list[yaml.Node]:
    """The nodes conversion descends into: mapping values (keys are plain scalars), items."""
    if isinstance(node, yaml.MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_sizes(root: yaml.Node, document: _Document) -> dict[int, int] | None:
    """How many values each node of a document converts to, aliases expanded.

    One pass over the distinct nodes (an alias is the very node it names), so an alias
    bomb is measured without being expanded. A value that contains itself is a problem
    (None): conversion would never end.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _values(node))
            sizes[key] = min(total, 2**62)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _values(node):
            if id(child) in open_nodes:
                where = node
                if isinstance(node, yaml.MappingNode):  # at the entry's key
                    where = next(k for k, v in node.value if v is child)
                document.problem(where, (), "recursive YAML alias: a value contains itself")
                return None
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes


def _heaviest(root: yaml.Node, sizes: Mapping[int, int]) -> tuple[yaml.Node, FieldPath]:
    """Where most of a document's expansion is: follow the child holding most of it."""
    node, at = root, root
    path: FieldPath = ()
    while True:
        entries: list[tuple[yaml.Node, yaml.Node, str | int]]
        if isinstance(node, yaml.MappingNode):
            entries = [(k, v, _shown_key(str(k.value))) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            entries = [(item, item, i) for i, item in enumerate(node.value)]
        else:
            return at, path
        if not entries:
            return at, path
        mark, child, part = max(entries, key=lambda entry: sizes[id(entry[1])])
        if sizes[id(child)] * 2 <= sizes[id(node)]:
            return at, path
        node, at, path = child, mark, (*path, part)


def _check_aliases(
    root: yaml.Node, document: _Document, budget: _RunBudget, file_values: int
) -> int | None:
    """The values aliases add to this document, or None if the file must not be read on."""
    sizes = _expanded_sizes(root, document)
    if sizes is None:
        return None
    added = sizes[id(root)] - len(sizes)
    if added <= 0:
        return 0
    if file_values + added > MAX_ALIAS_VALUES_PER_FILE:
        node, path = _heaviest(root, sizes)
        limit = MAX_ALIAS_VALUES_PER_FILE
        document.problem(node, path, f"YAML aliases expand this file by more than {limit} values")
        return None
    if budget.exhausted:
        return None  # already reported once for this run
    budget.alias_values -= added
    if budget.alias_values < 0:
        budget.exhausted = True
        node, path = _heaviest(root, sizes)
        limit = MAX_ALIAS_VALUES_PER_RUN
        document.problem(
            node, path, f"YAML aliases expand the manifests by more than {limit} values"
        )
        return None
    return added


# --- converting ------------------------------------------------------------------------


def _describe_character(character: str) -> str:
    code = ord(character)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        kind = "a control character"
    elif code in (0x2028, 0x2029):
        kind = "a line separator"
    else:
        kind = "an invisible bidirectional-text control"
    return f"{kind} U+{code:04X}"


def _shown_key(key: str) -> str:
    """A key as a message may print it: escaped, and not too long."""
    shown = key if len(key) <= 40 else key[:37] + "..."
    return shown if not _NOT_IN_NAMES.search(shown) else repr(shown)


def _names_something(path: FieldPath) -> bool:
    """Whether the string at ``path`` is a name, namespace or id (strict characters)."""
    if path[:1] == ("metadata",):
        return len(path) > 1 and path[1] in ("name", "namespace", "previousNames")
    if path[:2] == ("spec", "appliedTo"):
        return len(path) == 4 and path[3] in ("collection", "target_collection_id")
    if path[:2] != ("spec", "config") or len(path) < 3:
        return False
    last = path[-1]
    if isinstance(last, int):
        return path[-2] == "inference_collections"
    return last in _NAME_VALUED_CONFIG_KEYS


@functools.lru_cache(maxsize=4096)
def _forbidden_at(path: FieldPath) -> re.Pattern[str]:
    """The characters a string at ``path`` must not hold (the same paths recur in every
    manifest: worked out once each)."""
    return _NOT_IN_NAMES if _names_something(path) else _NOT_IN_TEXT


class _Document:
    """Converts one composed YAML document to plain data, remembering positions."""

    def __init__(
        self,
        file: str,
        env: Mapping[str, str],
        secrets: Mapping[str, str] | None = None,
        lines: Sequence[str] = (),
    ) -> None:
        self.file = file
        self.env = env
        self.secrets = secrets or {}
        self.lines = lines
        self.positions: dict[FieldPath, Position] = {}
        self.problems: list[ManifestProblem] = []
        self._too_deep = False

    def problem(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        mark = node.start_mark
        self.problem_at((mark.line + 1, mark.column + 1), path, message)

    def problem_at(self, position: Position, path: FieldPath, message: str) -> None:
        line, col = position
        self.problems.append(ManifestProblem(self.file, line, col, dotted(path), message))

    def convert(self, node: yaml.Node, path: FieldPath = ()) -> Any:
        if len(path) > MAX_DEPTH:
            if not self._too_deep:  # one problem per document, not one per branch
                self._too_deep = True
                self.problem(node, path, f"nested more than {MAX_DEPTH} levels deep")
            return None
        # A mapping entry is located at its key (set by _mapping), everything else at itself.
        if path not in self.positions:
            mark = node.start_mark
            self.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node, path, "YAML merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                self.problem(key_node, path, "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            bad = _NOT_IN_NAMES.search(key)
            if bad:
                # Never descended into: no message ever prints a path holding this key.
                message = f"key {_shown_key(key)} contains {_describe_character(bad.group())}"
                self.problem(key_node, path, message)
                continue
            if key in result:
                self.problem(key_node, (*path, key), "duplicate key")
                continue
            mark = key_node.start_mark
            entry = (*path, key)
            self.positions[entry] = (mark.line + 1, mark.column + 1)
            result[key] = self.convert(value_node, entry)
        return result

    def _scalar(self, node: yaml.Node, path: FieldPath) -> Any:
        tag = node.tag
        if tag == _TIMESTAMP_TAG:
            return str(node.value)  # keep dates as written; JSON has no date type
        if tag not in _PLAIN_TAGS:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        try:
            if tag == _STR_TAG:
                value = str(node.value)  # what the constructor would make of it, without its cost
            else:
                value = _constructor.construct_object(node)
                _constructor.constructed_objects.pop(node, None)  # it caches every node
        except (ValueError, KeyError, IndexError, yaml.YAMLError):
            # An explicit tag on text it cannot read (`!!int three`, `!!bool maybe`), or an
            # integer past Python's digit limit: a problem in the manifest, not a crash.
            text = str(node.value)
            shown = text if len(text) <= 40 else text[:37] + "..."
            kind = node.tag.rsplit(":", 1)[-1]
            self.problem(node, path, f"cannot read {shown!r} as {kind}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            # JSON has neither: the API request could not even be encoded.
            self.problem(node, path, f"{node.value!r} is not allowed: JSON has no NaN or infinity")
            return None
        if isinstance(value, str):
            if "$" in value:
                value = self._expand(value, node, path)
            bad = _forbidden_at(path).search(value)
            if bad:
                self.problem(node, path, f"contains {_describe_character(bad.group())}")
        return value

    def _expand(self, text: str, node: yaml.Node, path: FieldPath) -> str:
        if "$" not in text:
            return text
        occurrences: dict[str, int] = {}

        def substitute(match: re.Match[str]) -> str:
            written = match.group(0)
            if written == "$${":
                return "${"
            nth = occurrences.get(written, 0)
            occurrences[written] = nth + 1
            name, default = match.group(1), match.group(2)
            if not name.startswith(VARIABLE_PREFIX):
                message = f"${{{name}}}: only variables named {VARIABLE_PREFIX}* are expanded"
                self.problem_at(self._source_position(node, written, nth), path, message)
                return ""
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    message = f"environment variable ${{{name}}} is not set"
                    self.problem_at(self._source_position(node, written, nth), path, message)
                    return ""
                return default
            secret = self._secret_in(value)
            if secret is not None:
                message = (
                    f"${{{name}}}: its value is the value of {secret}, a secret; "
                    "secrets are never expanded"
                )
                self.problem_at(self._source_position(node, written, nth), path, message)
                return ""
            return value

        return _ENV_PATTERN.sub(substitute, text)

    def _secret_in(self, value: str) -> str | None:
        """The variable holding a secret that ``value`` is (or contains), if any."""
        stripped = value.strip()
        for secret, variable in self.secrets.items():
            if stripped == secret or (len(secret) >= _MIN_SECRET_INSIDE and secret in value):
                return variable
        return None

    def _source_position(self, node: yaml.Node, written: str, nth: int) -> Position:
        """Where the ``nth`` ``written`` expression of a scalar is in the source text.

        Found by tokenising the scalar's source lines as the value was; an escaped form
        (``"\\${X}"``) is not found, and the scalar's own position stands in for it.
        """
        start, end = node.start_mark, node.end_mark
        seen = 0
        for number in range(start.line, min(end.line, len(self.lines) - 1) + 1):
            line = self.lines[number]
            begin = start.column if number == start.line else 0
            stop = end.column if number == end.line else len(line)
            for match in _ENV_PATTERN.finditer(line, begin, stop):
                if match.group(0) == written:
                    if seen == nth:
                        return (number + 1, match.start() + 1)
                    seen += 1
        return (start.line + 1, start.column + 1)


# --- validation ----------------------------------------------------------------------


def _validate(
    value: Any, document: _Document, node: yaml.Node, problems: list[ManifestProblem]
) -> DesiredTaxonomy | None:
    if not isinstance(value, dict):
        document.problem(node, (), "a manifest document must be a mapping")
        problems.extend(document.problems)
        return None
    config = value.get("spec", {}).get("config") if isinstance(value.get("spec"), dict) else None
    if isinstance(config, dict) and "taxonomy_type" not in config:
        _add(problems, document, ("spec", "config"), "taxonomy_type is required in manifests")
        return None
    try:
        manifest = TaxonomyManifest.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors():
            loc = strip_union_tags(error["loc"])
            _add(problems, document, loc, _describe(error))
        return None
    before = len(problems)
    _check_names(manifest, document, problems)
    _check_semantics(manifest, document, problems)
    if len(problems) > before:
        return None
    return _desired(manifest, document)


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "finite_number":
        return "must be a finite number: JSON has no NaN or infinity"
    if kind == "literal_error" and error["loc"] == ("apiVersion",):
        return f"must be {API_VERSION!r}"
    bounds = {
        "less_than_equal": "<=",
        "less_than": "<",
        "greater_than_equal": ">=",
        "greater_than": ">",
    }
    if kind in bounds:
        limit = next(iter(error.get("ctx", {}).values()), "?")
        return f"must be {bounds[kind]} {limit}"
    return str(error["msg"])


def _add(
    problems: list[ManifestProblem], document: _Document, path: FieldPath, message: str
) -> None:
    line, col = _nearest_position(document.positions, path)
    problems.append(ManifestProblem(document.file, line, col, dotted(path), message))


def _nearest_position(positions: Mapping[FieldPath, Position], path: FieldPath) -> Position:
    for end in range(len(path), -1, -1):
        pos = positions.get(path[:end])
        if pos:
            return pos
    return (1, 1)


def _check_names(
    manifest: TaxonomyManifest, document: _Document, problems: list[ManifestProblem]
) -> None:
    """Names and namespaces are URL path segments, and a namespace is an HTTP header value.

    The API sets no pattern on either, so this refuses only what cannot travel: a path
    segment ``.`` or ``..`` (resolved away by URL normalisation), ``/`` in a namespace
    (names may hold it: ``places/regions`` exists), and a namespace that is not ASCII or
    has whitespace at its ends (header values are Latin-1 and trimmed).
    """
    metadata = manifest.metadata
    namespace = metadata.namespace
    where: FieldPath = ("metadata", "namespace")
    if not namespace.isascii():
        character = next(c for c in namespace if not c.isascii())
        message = f"must be ASCII (it is sent in an HTTP header): U+{ord(character):04X}"
        _add(problems, document, where, message)
    if namespace != namespace.strip():
        _add(problems, document, where, "must not start or end with whitespace")
    if "/" in namespace:
        _add(problems, document, where, "must not contain '/' (it is a URL path segment)")
    named = [(("metadata", "name"), metadata.name)] + [
        (("metadata", "previousNames", i), old) for i, old in enumerate(metadata.previousNames)
    ]
    for path, name in [(where, namespace), *named]:
        if name in (".", ".."):
            _add(problems, document, path, f"must not be {name!r} (it is a URL path segment)")
        elif not name:
            _add(problems, document, path, "must not be empty")


def _check_semantics(
    manifest: TaxonomyManifest, document: _Document, problems: list[ManifestProblem]
) -> None:
    def report(path: FieldPath, message: str) -> None:
        _add(problems, document, ("spec", *path), message)

    metadata = manifest.spec.metadata or {}
    if MANAGED_KEY in metadata:
        report(("metadata", MANAGED_KEY), "is reserved: taxsync sets it on what it manages")
    config = manifest.spec.config
    id_checks: list[tuple[FieldPath, str | None, str]] = [
        (("config", "retriever_id"), config.retriever_id, wire.RETRIEVER_ID_PATTERN)
    ]
    if isinstance(config, wire.FlatConfig):
        collection = config.source_collection.collection_id
        id_checks.append(
            (
                ("config", "source_collection", "collection_id"),
                collection,
                wire.COLLECTION_ID_PATTERN,
            )
        )
    else:
        for i, collection in enumerate(config.inference_collections or []):
            path: FieldPath = ("config", "inference_collections", i)
            id_checks.append((path, collection, wire.COLLECTION_ID_PATTERN))
        _check_hierarchy(config, report)
    for id_path, value, pattern in id_checks:
        if value is not None and not re.match(pattern, value):
            report(id_path, f"String should match pattern '{pattern}'")
    _check_applied_to(manifest.spec, report)


def _check_applied_to(spec: ManifestSpec, report: Any) -> None:
    """One entry per collection (as written: an id and a name of the same collection are
    caught at plan time), and settings the taxonomy's type can use."""
    seen: dict[str, int] = {}
    for i, entry in enumerate(spec.appliedTo or []):
        first = seen.setdefault(entry.collection, i)
        if first != i:
            report(
                ("appliedTo", i, "collection"),
                f"{entry.collection!r} is already listed at appliedTo[{first}]",
            )
        style = entry.hierarchical_enrichment_style
        if style is not None and spec.config.taxonomy_type != "hierarchical":
            report(
                ("appliedTo", i, "hierarchical_enrichment_style"),
                "is for hierarchical taxonomies only",
            )


def _check_hierarchy(config: wire.HierarchicalConfig, report: Any) -> None:
    nodes = config.hierarchical_nodes or []
    if config.path_field is not None and (nodes or config.inference_strategy):
        report(("config", "path_field"), "cannot be combined with hierarchical_nodes or inference")
    parents: dict[str, str | None] = {}
    for i, node in enumerate(nodes):
        if node.collection_id in parents:
            report(("config", "hierarchical_nodes", i, "collection_id"), "duplicate node")
        parents[node.collection_id] = node.parent_collection_id
    for i, node in enumerate(nodes):
        parent = node.parent_collection_id
        path = ("config", "hierarchical_nodes", i, "parent_collection_id")
        if parent is not None and parent not in parents:
            report(path, f"parent {parent!r} is not a node of this taxonomy")
        elif parent is not None and _in_cycle(node.collection_id, parents):
            report(path, f"parent cycle through {node.collection_id!r}")


def _in_cycle(start: str, parents: Mapping[str, str | None]) -> bool:
    seen = {start}
    current = parents.get(start)
    while current is not None:
        if current in seen:
            return current == start
        seen.add(current)
        current = parents.get(current)
    return False


class _SpecPositions(Mapping[str, Position]):
    """Dotted spec paths ("config.top_k") to positions, built on first use: a plan looks one
    up only to point an error at its line, and naming every value of every manifest up front
    cost a tenth of a large plan's time."""

    def __init__(self, positions: Mapping[FieldPath, Position]) -> None:
        self._positions = positions
        self._table: dict[str, Position] | None = None

    def _built(self) -> dict[str, Position]:
        if self._table is None:
            self._table = {
                dotted(path[1:]): pos
                for path, pos in self._positions.items()
                if path and path[0] == "spec" and len(path) > 1
            }
        return self._table

    def __getitem__(self, key: str) -> Position:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def _desired(manifest: TaxonomyManifest, document: _Document) -> DesiredTaxonomy:
    spec_positions = _SpecPositions(document.positions)
    # Changes and duplicate errors point at the taxonomy's name, the line a reviewer looks for.
    line, col = document.positions.get(("metadata", "name"), document.positions.get((), (1, 1)))
    return DesiredTaxonomy(
        namespace=manifest.metadata.namespace,
        name=manifest.metadata.name,
        description=manifest.spec.description,
        metadata=dict(manifest.spec.metadata or {}),
        # Only what the manifest declares is sent; the server fills its own defaults.
        config=manifest.spec.config.model_dump(mode="json", exclude_unset=True)
        | {"taxonomy_type": manifest.spec.config.taxonomy_type},
        source=SourceLocation(document.file, line, col),
        previous_names=tuple(manifest.metadata.previousNames),
        wait=manifest.spec.wait,
        backfill=manifest.spec.backfill == "onChange",
        applied_to=_applied_to(manifest.spec.appliedTo),
        positions=spec_positions,
    )


def _applied_to(entries: list[AppliedTo] | None) -> tuple[dict[str, Any], ...] | None:
    if entries is None:
        return None
    # As written: no default of the filter model (case_sensitive) added, no null kept.
    return tuple(
        entry.model_dump(mode="json", exclude_unset=True, exclude_none=True) for entry in entries
    )


def _cross_file_problems(desired: list[DesiredTaxonomy]) -> list[ManifestProblem]:
    problems = []
    first: dict[tuple[str, str], DesiredTaxonomy] = {}
    for taxonomy in desired:
        seen = first.setdefault(taxonomy.key, taxonomy)
        if seen is not taxonomy:
            src = taxonomy.source
            message = f"{taxonomy.namespace}/{taxonomy.name} is already declared at {seen.source}"
            problems.append(ManifestProblem(src.file, src.line, src.col, "metadata.name", message))
    return problems


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document, as ``taxsync schema`` publishes it."""
    schema = TaxonomyManifest.model_json_schema()
    for variant in ("FlatConfig", "HierarchicalConfig"):  # optional for the API, not for us
        definition = schema["$defs"][variant]
        definition["required"] = ["taxonomy_type", *definition.get("required", [])]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "taxsync Taxonomy manifest"
    return schema
