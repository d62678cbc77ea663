"""Manifests: the taxonomies a team wants, read from a directory of YAML files.

Loading keeps the line and column of every value so that each problem, ours or the
API's, can be reported as ``file:line:col: path: message``. YAML is composed with the
safe loader (C-accelerated when available) and converted by hand, so no tag ever
constructs an object, duplicate keys are caught, and ``${VAR}`` is expanded in string
values only, after parsing.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taxsync import wire
from taxsync.errors import ManifestError, ManifestProblem, location

API_VERSION = "taxsync/v1"
KIND = "Taxonomy"
# taxsync marks what it manages with this metadata entry; prune only ever touches those.
MANAGED_KEY = "managed_by"
MANAGED_VALUE = "taxsync"
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NODES_PER_DOCUMENT = 200_000  # guards against alias bombs ("billion laughs")
MAX_DEPTH = 100  # guards the recursive conversion against deep nesting and self-referencing aliases
MANIFEST_SUFFIXES = (".yaml", ".yml")

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Position = tuple[int, int]
FieldPath = tuple[str | int, ...]


# --- the manifest envelope --------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestMetadata(_Strict):
    name: str = Field(min_length=1, max_length=256)
    namespace: str = Field(min_length=1, max_length=64)
    previousNames: list[str] = Field(default_factory=list)  # noqa: N815 (manifest key)


class ManifestSpec(_Strict):
    description: str | None = None
    metadata: dict[str, Any] | None = None
    config: wire.TaxonomyConfig
    wait: bool = False


class TaxonomyManifest(_Strict):
    """One YAML document: ``apiVersion``/``kind``/``metadata``/``spec``."""

    apiVersion: Literal["taxsync/v1"]  # noqa: N815 (manifest key)
    kind: Literal["Taxonomy"]
    metadata: ManifestMetadata
    spec: ManifestSpec


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return location(self.file, self.line)


@dataclass(frozen=True)
class DesiredTaxonomy:
    """A taxonomy as a manifest declares it, ready to compare and to send."""

    namespace: str
    name: str
    description: str | None
    metadata: dict[str, Any]
    config: dict[str, Any]  # wire JSON: only the keys the manifest declares
    source: SourceLocation
    previous_names: tuple[str, ...] = ()
    wait: bool = False
    # Dotted spec paths ("config.top_k") to positions, to map API errors back.
    positions: Mapping[str, Position] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def taxonomy_type(self) -> str:
        return str(self.config["taxonomy_type"])

    def locate(self, spec_path: str) -> str:
        """``file:line:col`` of the deepest known prefix of a dotted spec path."""
        parts = spec_path.split(".")
        while parts:
            pos = self.positions.get(".".join(parts))
            if pos:
                return location(self.source.file, *pos)
            parts.pop()
        return location(self.source.file, self.source.line, self.source.col)


# --- loading -------------------------------------------------------------------------


def manifest_files(root: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under ``root`` (or ``root`` itself), hidden ones skipped."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES):
                found.append(Path(folder) / name)
    return found


def load_tree(root: Path, environ: Mapping[str, str] | None = None) -> list[DesiredTaxonomy]:
    """Load and validate every manifest under ``root``; raise one error listing all problems."""
    env = os.environ if environ is None else environ
    if not root.exists():
        raise ManifestError([ManifestProblem(str(root), None, None, "", "no such file or folder")])
    problems: list[ManifestProblem] = []
    desired: list[DesiredTaxonomy] = []
    for path in manifest_files(root):
        desired.extend(_load_file(path, env, problems))
    if not desired and not problems:
        problems.append(ManifestProblem(str(root), None, None, "", "no taxonomy manifest found"))
    problems.extend(_cross_file_problems(desired))
    if problems:
        problems.sort(key=lambda p: (p.file, p.line or 0, p.col or 0))
        raise ManifestError(problems)
    return desired


def _load_file(
    path: Path, env: Mapping[str, str], problems: list[ManifestProblem]
) -> Iterator[DesiredTaxonomy]:
    file = str(path)
    text = _read_text(path, problems)
    if text is None:
        return
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
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
    for node in nodes:
        if _is_empty_document(node):
            continue  # an empty document between `---` separators is skipped, as kubectl does
        document = _Document(file, env)
        value = document.convert(node)
        problems.extend(document.problems)
        if document.problems:
            continue
        taxonomy = _validate(value, document, node, problems)
        if taxonomy is not None:
            yield taxonomy


def _read_text(path: Path, problems: list[ManifestProblem]) -> str | None:
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            limit = MAX_FILE_BYTES // (1024 * 1024)
            problems.append(ManifestProblem(file, 1, 1, "", f"file is larger than {limit} MiB"))
            return None
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(ManifestProblem(file, None, None, "", f"cannot read: {exc.strerror}"))
        return None
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


class _Document:
    """Converts one composed YAML document to plain data, remembering positions."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.positions: dict[FieldPath, Position] = {}
        self.problems: list[ManifestProblem] = []
        self._budget = MAX_NODES_PER_DOCUMENT
        self._too_deep = False

    def problem(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        mark = node.start_mark
        self.problems.append(
            ManifestProblem(self.file, mark.line + 1, mark.column + 1, dotted(path), message)
        )

    def convert(self, node: yaml.Node, path: FieldPath = ()) -> Any:
        self._budget -= 1
        if self._budget < 0:
            if self._budget == -1:
                self.problem(node, path, "document too large (aliases expand past the limit)")
            return None
        if len(path) > MAX_DEPTH:
            if not self._too_deep:  # one problem per document, not one per branch
                self._too_deep = True
                self.problem(node, path, f"nested more than {MAX_DEPTH} levels deep")
            return None
        # A mapping entry is located at its key (set by _mapping), everything else at itself.
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
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
            if key in result:
                self.problem(key_node, (*path, key), "duplicate key")
                continue
            mark = key_node.start_mark
            entry = (*path, key)
            self.positions[entry] = (mark.line + 1, mark.column + 1)
            result[key] = self.convert(value_node, entry)
        return result

    def _scalar(self, node: yaml.Node, path: FieldPath) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return str(node.value)  # keep dates as written; JSON has no date type
        if node.tag not in _PLAIN_TAGS:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        try:
            value = _constructor.construct_object(node)
            _constructor.constructed_objects.pop(node, None)  # it caches every node it built
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
            return self._expand(value, node, path)
        return value

    def _expand(self, text: str, node: yaml.Node, path: FieldPath) -> str:
        if "$" not in text:
            return text

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    self.problem(node, path, f"environment variable ${{{name}}} is not set")
                    return ""
                return default
            return value

        return _ENV_PATTERN.sub(substitute, text)


def dotted(path: FieldPath) -> str:
    """``("spec", "config", "nodes", 1, "label")`` → ``spec.config.nodes[1].label``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


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
    _check_semantics(manifest, document, problems)
    if len(problems) > before:
        return None
    return _desired(manifest, document)


_UNION_TAGS = {
    "flat",
    "hierarchical",
    "FlatTaxonomyConfigInput",
    "HierarchicalTaxonomyConfigInput",
}


def strip_union_tags(loc: Sequence[Any]) -> FieldPath:
    """Pydantic (ours, and the API's) puts the union member in a location
    (``config.flat.top_k``); users never wrote it."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if part in _UNION_TAGS and i > 0 and loc[i - 1] == "config":
            continue
        out.append(part)
    return tuple(out)


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


def _desired(manifest: TaxonomyManifest, document: _Document) -> DesiredTaxonomy:
    spec_positions = {
        dotted(path[1:]): pos
        for path, pos in document.positions.items()
        if path and path[0] == "spec" and len(path) > 1
    }
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
        positions=spec_positions,
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
