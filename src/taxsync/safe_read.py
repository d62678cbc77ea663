"""Reading the files taxsync is handed: manifests, seeds, emulator state, saved plans.

Whoever can write one of them (a pull request, a careless copy, another process) must not
be able to hang taxsync, exhaust its memory or crash its parsers, so every such file is
read the same way:

* regular files only: opened without blocking (a FIFO with no writer would hang the open)
  and checked on the open descriptor (the path may change in between), so a folder, FIFO,
  device (``/dev/zero``) or socket is refused;
* at most ``limit`` bytes, counted while reading (``st_size`` may lie, as in ``/proc``);
* JSON and YAML nested at most ``MAX_DEPTH`` levels, measured before anything recurses
  on the value (Python's JSON parser and PyYAML's composer recurse once per level);
* YAML aliases adding at most ``MAX_ALIAS_VALUES`` values ("billion laughs"), measured on
  the composed nodes without expanding them.

Each failure is a ``FileRefused`` naming the file (and the line when known); each caller
turns it into its own error type.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from array import array
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from taxsync.errors import location
from taxsync.identifiers import shown

# Nesting deep enough for any file taxsync writes (a manifest's values nest at most 100
# levels, and a plan or state file wraps them in a few more), far from any recursion limit.
MAX_DEPTH = 200
# How many values YAML aliases may add to one file (the manifests' per-file budget).
MAX_ALIAS_VALUES = 200_000

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FileRefused(Exception):
    """A file taxsync will not read or parse: ``reason`` says why, ``line`` where if known."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        super().__init__(f"{location(shown(str(path)), line)}: {reason}")


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them, or FileRefused."""
    descriptor, info = _open_regular(path)
    try:
        if info.st_size > limit:
            raise FileRefused(path, too_large(limit))
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(descriptor, min(limit + 1 - size, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileRefused(path, too_large(limit))
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(path, f"cannot read: {_reason(exc)}") from None
    finally:
        os.close(descriptor)


def read_head(path: Path | str, count: int) -> bytes:
    """The first ``count`` bytes (or fewer) of the regular file ``path``, or FileRefused."""
    descriptor, _ = _open_regular(path)
    try:
        return os.read(descriptor, count)
    except OSError as exc:
        raise FileRefused(path, f"cannot read: {_reason(exc)}") from None
    finally:
        os.close(descriptor)


def _open_regular(path: Path | str) -> tuple[int, os.stat_result]:
    """A descriptor open on the regular file ``path`` and what it is, or FileRefused."""
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        mode = _mode(path) if exc.errno == errno.ENXIO else None  # ENXIO: a socket
        if mode is not None and not stat.S_ISREG(mode):
            raise FileRefused(path, _not_regular(mode)) from None
        raise FileRefused(path, f"cannot read: {_reason(exc)}") from None
    try:
        info = os.fstat(descriptor)
    except OSError as exc:
        os.close(descriptor)
        raise FileRefused(path, f"cannot read: {_reason(exc)}") from None
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise FileRefused(path, _not_regular(info.st_mode))
    return descriptor, info


def read_json(path: Path | str, limit: int, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of the regular file ``path`` (see ``read_regular``), or FileRefused."""
    raw = read_regular(path, limit)
    check_json_depth(raw, path, max_depth)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FileRefused(path, f"not valid JSON: {exc.msg}", exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise FileRefused(path, _not_utf8(raw, exc), _line_of(raw, exc.start)) from None


def read_yaml(
    path: Path | str,
    limit: int,
    max_depth: int = MAX_DEPTH,
    max_alias_values: int = MAX_ALIAS_VALUES,
) -> Any:
    """The one YAML document of the regular file ``path``, as plain data (the safe loader's
    types), or FileRefused: depth and aliases are measured before it is constructed."""
    raw = read_regular(path, limit)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(path, _not_utf8(raw, exc), _line_of(raw, exc.start)) from None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _measure(root, path, max_depth, max_alias_values)
        return loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid"
        line = mark.line + 1 if mark else None
        raise FileRefused(path, f"not valid YAML: {reason}", line) from None
    except yaml.YAMLError as exc:
        raise FileRefused(path, f"not valid YAML: {_one_line(str(exc))}") from None
    except RecursionError:  # the pure-Python composer, without libyaml
        raise FileRefused(path, f"nested more than {max_depth} levels deep") from None
    finally:
        loader.dispose()


# --- nesting and aliases ---------------------------------------------------------------------

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Each bracket as a step of depth: an opening one +1, a closing one -1 (0xff as a signed byte).
_DEPTH_STEPS = bytes(range(256)).translate(bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff"))


def check_json_depth(raw: bytes, path: Path | str, max_depth: int = MAX_DEPTH) -> None:
    """FileRefused if the JSON text ``raw`` nests more than ``max_depth`` levels.

    Strings are dropped (escaped backslashes and quotes first, so every quote left delimits
    one), then each bracket becomes a step of +1 or -1 and the deepest running total is the
    depth: in C loops, about a third of the time parsing the text takes (16 MB: 0.3 s).
    Unbalanced brackets are left for the parser to locate.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    steps = array("b", outside_strings.translate(_DEPTH_STEPS, _NOT_BRACKETS))
    if steps and max(accumulate(steps)) > max_depth:
        raise FileRefused(path, f"nested more than {max_depth} levels deep")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class AliasCycle(Exception):
    """A YAML value that contains itself (through an alias): ``parent`` holds ``child``,
    one of its own ancestors."""

    def __init__(self, parent: yaml.Node, child: yaml.Node) -> None:
        super().__init__("recursive YAML alias: a value contains itself")
        self.parent, self.child = parent, child


def expanded(
    root: yaml.Node, children: Callable[[yaml.Node], list[yaml.Node]] = _children
) -> tuple[dict[int, int], dict[int, int]]:
    """Each distinct node's expanded size (values, aliases expanded) and height, by ``id``.

    One pass over the distinct nodes (an alias is the very node it names), so an alias bomb
    is measured without being expanded; ``AliasCycle`` if a value contains itself.
    ``children``: what a node holds (the manifest loader counts mapping values only).
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            held = children(node)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in held), 2**62)
            heights[key] = 1 + max((heights[id(c)] for c in held), default=0)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children(node):
            if id(child) in open_nodes:
                raise AliasCycle(node, child)
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes, heights


def _measure(root: yaml.Node, path: Path | str, max_depth: int, max_alias_values: int) -> None:
    """Refuse a composed document that nests too deep or whose aliases add too many values."""
    try:
        sizes, heights = expanded(root)
    except AliasCycle as cycle:
        raise FileRefused(path, str(cycle), cycle.child.start_mark.line + 1) from None
    if heights[id(root)] > max_depth:
        line = _deepest(root, heights, max_depth).start_mark.line + 1
        raise FileRefused(path, f"nested more than {max_depth} levels deep", line)
    if sizes[id(root)] - len(sizes) > max_alias_values:
        message = f"YAML aliases expand this file by more than {max_alias_values} values"
        raise FileRefused(path, message)


def _deepest(root: yaml.Node, heights: dict[int, int], levels: int) -> yaml.Node:
    """The node ``levels`` deep on the way to the deepest value: where the limit is crossed."""
    node = root
    for _ in range(levels):
        children = _children(node)
        if not children:
            break
        node = max(children, key=lambda child: heights[id(child)])
    return node


# --- messages --------------------------------------------------------------------------------


def too_large(limit: int) -> str:
    mib = 1024 * 1024
    size = f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"
    return f"file is larger than {size}"


_OPEN_FLAGS = os.O_RDONLY
for _flag in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
    _OPEN_FLAGS |= getattr(os, _flag, 0)

_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
    return f"not a regular file ({kind})"


def _mode(path: Path | str) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    start = exc.start
    return f"not valid UTF-8 (byte 0x{raw[start]:02x})" if start < len(raw) else "not valid UTF-8"


def _one_line(text: str) -> str:
    return " ".join(text.split())
