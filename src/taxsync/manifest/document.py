"""YAML documents as plain data with the position of every value.

Composed with the safe loader (C-accelerated when available) and converted by hand, so no
tag ever constructs an object, duplicate keys are caught, the characters each value may
hold are checked, and ``${TAXSYNC_VAR_*}`` is expanded in string values only, after
parsing, never to a secret of the process.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from taxsync.errors import ManifestProblem
from taxsync.manifest.characters import NOT_IN_NAMES, describe_character, forbidden_at, shown_key
from taxsync.model import FieldPath, Position, dotted
from taxsync.redact import SECRET_VARIABLES

MAX_DEPTH = 100  # guards the recursive conversion against deep nesting
# Only these variables are expanded (like Terraform's TF_VAR_): a manifest can never name a
# secret of the process that reads it.
VARIABLE_PREFIX = "TAXSYNC_VAR_"
# Secrets a run may hold (redact.SECRET_VARIABLES): an expansion holding one is refused.
_MIN_SECRET_INSIDE = 8  # a shorter secret is refused only as the whole value, not inside one

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVED_MAX = 100_000  # scalars whose tag ManifestLoader remembers, at most


class ManifestLoader(_Loader):  # type: ignore[valid-type,misc]
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


def secret_values(env: Mapping[str, str]) -> dict[str, str]:
    """Secret values present (in ``env`` or this process's environment) → their variable."""
    found: dict[str, str] = {}
    for source in (env, os.environ):
        for name in SECRET_VARIABLES:
            value = source.get(name, "").strip()
            if value:
                found.setdefault(value, name)
    return found


def decode(file: str, raw: bytes, problems: list[ManifestProblem]) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        problems.append(ManifestProblem(file, line, col, "", message))
        return None


def compose(file: str, text: str, problems: list[ManifestProblem]) -> list[yaml.Node] | None:
    """The documents of a file's text, composed (not constructed); None (and a problem) if
    the text is not YAML."""
    try:
        return list(yaml.compose_all(text, Loader=ManifestLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        reason = exc.problem or str(exc)
        problems.append(ManifestProblem(file, line, col, "", f"invalid YAML: {reason}"))
    except yaml.reader.ReaderError as exc:
        problems.append(_reader_problem(file, text, exc))
    except yaml.YAMLError as exc:
        problems.append(ManifestProblem(file, None, None, "", f"invalid YAML: {exc}"))
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


def is_empty_document(node: yaml.Node | None) -> bool:
    return node is None or (node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~"))


class Document:
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
            bad = NOT_IN_NAMES.search(key)
            if bad:
                # Never descended into: no message ever prints a path holding this key.
                message = f"key {shown_key(key)} contains {describe_character(bad.group())}"
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
            bad = forbidden_at(path).search(value)
            if bad:
                self.problem(node, path, f"contains {describe_character(bad.group())}")
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
