"""Export live taxonomies as manifests, to bring hand-made ones under git.

The manifest holds what a person would have written: server-owned fields, server
defaults, explicit nulls and legacy keys are left out, so ``taxsync plan`` on the export
shows no create, new version, replace or delete (only the adoption ``update`` that marks
an unmanaged taxonomy as managed). With the namespace's collections, a taxonomy that
collections apply gets ``spec.appliedTo`` listing them as they are, so the plan shows no
attach, reconfigure or detach either.

With them too, every collection and retriever the taxonomy names is written by name
(``retriever_id: {name: clip}``) where that name is its kind's alone in the namespace: an
export of staging, retargeted to production, then plans against production's own ids. An
id is kept where the name is not unique (or cannot be written), with a comment saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from taxsync import names, normalize, wire
from taxsync.errors import ConfigError, ManifestError
from taxsync.files import replace_file, write_atomic
from taxsync.live import SYSTEM_COLLECTIONS, LiveCollection, Neighbourhood, non_default
from taxsync.manifest import NOT_IN_NAMES, load_tree
from taxsync.model import API_VERSION, KIND, FieldPath

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

SUFFIX = ".yaml"
# The longest file name (one path component) Linux, macOS and Windows file systems take.
NAME_MAX_BYTES = 255
# files.replace_file writes each file through a sibling ".<name>.<8 hex digits>.tmp".
TEMP_OVERHEAD_BYTES = len(".") + len(".") + 8 + len(".tmp")
# The longest stem of an exported file: the name and its temporary sibling must both fit.
STEM_MAX_BYTES = NAME_MAX_BYTES - TEMP_OVERHEAD_BYTES - len(SUFFIX)
# Namespace folders are created directly, with no temporary sibling.
FOLDER_MAX_BYTES = NAME_MAX_BYTES
# The longest collection id or name an ``appliedTo`` entry takes (manifest.AppliedTo).
_COLLECTION_MAX_CHARS = 256


@dataclass(frozen=True)
class ExportedFile:
    """One manifest to write: where, for which taxonomy, and its YAML text."""

    path: Path
    namespace: str
    name: str
    text: str


# A note on the line of a value: where in the document, and what it says.
Note = tuple[FieldPath, str]


def manifest_for(
    namespace: str, live: wire.TaxonomyResponse, around: Neighbourhood | None = None
) -> dict[str, Any]:
    """The manifest document that describes a live taxonomy (with ``around``, the
    namespace's collections and retrievers: its ``appliedTo`` if any of them applies it,
    and references by name)."""
    return _document(namespace, live, around)[0]


def _document(
    namespace: str, live: wire.TaxonomyResponse, around: Neighbourhood | None
) -> tuple[dict[str, Any], list[Note]]:
    """The manifest document, and the notes for the lines that keep an id."""
    spec: dict[str, Any] = {}
    if live.description is not None:
        spec["description"] = live.description
    user = normalize.user_metadata(live.metadata)
    if user:
        spec["metadata"] = user
    config = declared_config(live.config)
    applied = applied_to(live.taxonomy_id, around) if around is not None else []
    notes: list[Note] = []
    if around is not None:
        config, applied, notes = by_name(config, applied, around)
    spec["config"] = config
    if applied:
        spec["appliedTo"] = applied
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": live.taxonomy_name, "namespace": namespace},
        "spec": spec,
    }
    return document, [(("spec", *path), note) for path, note in notes]


def by_name(
    config: dict[str, Any], applied: list[dict[str, Any]], around: Neighbourhood
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Note]]:
    """The config and ``appliedTo`` entries with each reference written ``{name: …}`` where
    the name is unique among things of its kind and loads as written, and a note for each
    reference kept as an id because its name is not (paths relative to the spec)."""
    named_config, named_applied, kept = names.to_names(config, applied, around, unique_only=True)
    ids: dict[str, Any] = {"config": config, "appliedTo": applied}
    spec: dict[str, Any] = {"config": named_config, "appliedTo": named_applied}
    notes: list[Note] = []
    for slot in kept:
        known = around.names_of(slot.kind)
        name = known.get(names.value_at(ids, slot.path), "")
        count = sum(1 for its_name in known.values() if its_name == name)
        notes.append((slot.path, f"{count} {slot.kind}s are named {_quoted(name)}: the id is kept"))
    for slot in names.slots(config, applied):
        written = names.value_at(spec, slot.path)
        if names.is_name(written) and NOT_IN_NAMES.search(written["name"]):
            # A name with a control character does not load; the id means the same and does.
            spec = names.with_value(spec, slot.path, names.value_at(ids, slot.path))
            why = f"the name {_quoted(written['name'])} holds a control character: the id is kept"
            notes.append((slot.path, why))
    return spec["config"], spec["appliedTo"], notes


# The longest name a note quotes whole.
_NOTE_NAME_MAX_CHARS = 60


def _quoted(name: str) -> str:
    """A name as a comment may hold it: quoted, cut short, every character that is not
    printable (line breaks of any kind, controls, bidi controls) written as an escape, so
    a name never ends the comment, starts a line or hides text."""
    if len(name) > _NOTE_NAME_MAX_CHARS:
        name = name[:_NOTE_NAME_MAX_CHARS] + "..."
    text = json.dumps(name, ensure_ascii=False)
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def declared_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A live config without nulls, legacy keys, or values equal to the server's defaults
    (the nested ones of ``step_analytics.covariates`` too)."""
    kind = normalize.config_type(config)
    legacy = set(normalize.unmanaged_keys(config))
    out: dict[str, Any] = {"taxonomy_type": kind}
    declared = _without_defaults(
        {k: v for k, v in config.items() if k not in legacy and k != "taxonomy_type"},
        wire.SERVER_DEFAULTS[kind],
    )
    out.update(_without_nulls(declared))
    analytics = out.get("step_analytics")
    if isinstance(analytics, dict) and isinstance(analytics.get("covariates"), list):
        covariates = [
            _without_defaults(c, wire.COVARIATE_DEFAULTS) for c in analytics["covariates"]
        ]
        out["step_analytics"] = {**analytics, "covariates": covariates}
    return out


def applied_to(taxonomy_id: str | None, around: Neighbourhood) -> list[dict[str, Any]]:
    """The ``appliedTo`` entries that say what the collections applying the taxonomy have:
    by collection name (then id), each with the settings that differ from the server's
    defaults. System collections are left out (taxsync never attaches to them)."""
    entries = []
    for collection in around.applying(taxonomy_id):
        if {collection.name, collection.collection_id} & SYSTEM_COLLECTIONS:
            continue
        entry = collection.application_of(taxonomy_id) or {}
        entries.append({"collection": collection_ident(collection, around), **non_default(entry)})
    return entries


def collection_ident(collection: LiveCollection, around: Neighbourhood) -> str:
    """How a manifest names ``collection``: by its name when that name finds it again (not
    another collection of the same name, nor one whose id it is) and loads as written,
    else by its id."""
    name = collection.name
    found = around.collection(name) if name else None
    if (
        found is not None
        and found.collection_id == collection.collection_id
        and len(name) <= _COLLECTION_MAX_CHARS
        and not NOT_IN_NAMES.search(name)
        and "${" not in name  # the loader would expand it
    ):
        return name
    return collection.collection_id


def _without_defaults(item: Any, defaults: Mapping[str, Any]) -> Any:
    if not isinstance(item, dict):
        return item
    return {k: v for k, v in item.items() if not (k in defaults and v == defaults[k])}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def plan_files(
    out: Path,
    live: Mapping[str, Sequence[wire.TaxonomyResponse]],
    neighbourhoods: Mapping[str, Neighbourhood] | None = None,
) -> list[ExportedFile]:
    """``out/<namespace>/<name>.yaml`` per taxonomy: names made safe, short enough and unique.

    Every file gets its own path, distinct from every other even on a case-insensitive
    file system, whatever the names (see ``unique_stems``). ``neighbourhoods``: the
    collections of each namespace, for ``appliedTo`` (without them, or for a namespace
    not among them, no manifest has one).
    """
    namespaces = sorted(live)
    folders = unique_stems(namespaces, FOLDER_MAX_BYTES)
    files: list[ExportedFile] = []
    for namespace, folder in zip(namespaces, folders, strict=True):
        taxonomies = sorted(live[namespace], key=lambda t: t.taxonomy_name)
        stems = unique_stems([t.taxonomy_name for t in taxonomies], STEM_MAX_BYTES)
        for taxonomy, stem in zip(taxonomies, stems, strict=True):
            around = (neighbourhoods or {}).get(namespace)
            text = to_yaml(*_document(namespace, taxonomy, around))
            files.append(
                ExportedFile(
                    out / folder / f"{stem}{SUFFIX}", namespace, taxonomy.taxonomy_name, text
                )
            )
    return files


def to_yaml(document: Mapping[str, Any], notes: Sequence[Note] = ()) -> str:
    """The document as YAML, each note a comment at the end of its value's line.

    Each noted value is dumped first as a mark (a plain word the document holds nowhere
    else), then the mark is swapped for the value written as a one-line YAML scalar and
    the comment. A mark not alone at the end of its line gets the value alone.
    """
    literal = _literal(document)
    plain = _dump(literal)
    if not notes:
        return plain
    prefix = "taxsync_note_"
    while prefix in plain:
        prefix += "_"
    marked = literal
    for index, (path, _) in enumerate(notes):
        marked = names.with_value(marked, path, f"{prefix}{index}x")
    text = _dump(marked)
    for index, (path, note) in enumerate(notes):
        mark = f"{prefix}{index}x"
        value = _scalar(names.value_at(literal, path))
        comment = f"{value}  # {note}" if text.count(f"{mark}\n") == 1 else value
        text = text.replace(mark, comment, 1)
    return text


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with a reference by name written on its key's line: ``{name: clip}``."""

    def represent_dict(self, data: Any) -> yaml.MappingNode:
        if names.is_name(data):
            return self.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
        return super().represent_dict(data)


_Dumper.add_representer(dict, _Dumper.represent_dict)


def _dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _scalar(value: Any) -> str:
    """A value as a YAML scalar on one line (quoted and escaped where it has to be)."""
    flow = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=2**31)
    return flow.strip()[1:-1]


def _literal(value: Any) -> Any:
    """Every string value with ``${`` written ``$${``, which the loader reads back as
    ``${``: a live value is text, never a variable to expand (keys are never expanded)."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


def safe_name(name: str) -> str:
    """A file-name-safe form: no separators, no leading dots, never empty or '..'.

    Only ASCII letters, digits, ``.``, ``_`` and ``-`` are kept, so case-folding and
    Unicode normalisation (macOS) cannot make two different safe names one file.
    """
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    return cleaned or "_"


def unique_stems(names: Sequence[str], max_bytes: int) -> list[str]:
    """One file-name stem per name (same order), each at most ``max_bytes`` in UTF-8 and
    all distinct case-insensitively, whatever the names.

    A name keeps its plain ``safe_name`` when that fits and no name before it took it
    (names that are already safe go first, then in code-point order). Every other name
    gets its safe name, truncated to fit, plus ``-`` and a short hash of the name; in the
    unlikely case that this too is taken, ``-2``, ``-3``... after the hash.
    """
    order = sorted(range(len(names)), key=lambda i: (safe_name(names[i]) != names[i], names[i]))
    stems: dict[int, str] = {}
    taken: set[str] = set()
    for i in order:
        stem = safe_name(names[i])
        if _utf8_len(stem) <= max_bytes and _fold(stem) not in taken:
            stems[i] = stem
            taken.add(_fold(stem))
    for i in order:
        if i in stems:
            continue
        stem = safe_name(names[i])
        digest = hashlib.sha256(names[i].encode("utf-8")).hexdigest()[:8]
        for attempt in itertools.count(1):
            suffix = f"-{digest}" if attempt == 1 else f"-{digest}-{attempt}"
            candidate = _truncate_utf8(stem, max_bytes - _utf8_len(suffix)) + suffix
            if _fold(candidate) not in taken:
                break
        stems[i] = candidate
        taken.add(_fold(candidate))
    return [stems[i] for i in range(len(names))]


def _fold(stem: str) -> str:
    return stem.casefold()


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` in UTF-8."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


@dataclass
class _Target:
    """What is at a file's path before the export, to check it and to undo the write."""

    exported: ExportedFile
    previous: bytes | None  # the file it replaces (None: there is none)
    mode: int
    new_folders: list[Path]  # the missing folders writing it creates, outermost first


def write_files(files: Sequence[ExportedFile], force: bool) -> None:
    """Write every file (each atomically), or none.

    Before writing the first file every target is checked: two files on one path (even
    only case-insensitively), a file name too long for the file system, files that exist
    without ``force``, a folder where a file must go, and a file or an unwritable folder
    where a folder must be are refused with a ConfigError and nothing is written. If a
    write still fails, the files this run wrote are removed (or, if they replaced
    existing ones, the old contents are put back), and the ConfigError names the file
    that failed, and any it could not undo.
    """
    _check_unique_and_short(files)
    targets, existing, problems = _inspect_targets(files, force)
    if existing and not force:
        raise ConfigError(
            f"{len(existing)} file(s) already exist; pass --force to overwrite them",
            [str(p) for p in existing],
        )
    if problems:
        _refuse(problems)
    done: list[_Target] = []
    for target in targets:
        try:
            write_atomic(target.exported.path, target.exported.text)
        except ConfigError as error:  # the file is as it was: undo the ones before it
            left = _undo(done)
            _remove_folders(target.new_folders)
            if left:
                raise ConfigError(
                    f"{error}; {len(left)} file(s) written before it could not be undone",
                    [str(p) for p in left],
                ) from None
            undone = f": the {len(done)} file(s) written before it were undone" if done else ""
            raise ConfigError(f"{error}; nothing was written{undone}") from None
        except BaseException:  # interrupted, perhaps after the rename: undo this one too
            _undo([*done, target])
            raise
        done.append(target)


def _check_unique_and_short(files: Sequence[ExportedFile]) -> None:
    seen: dict[str, Path] = {}
    problems: list[str] = []
    for exported in files:
        key = _fold(str(exported.path))
        if key in seen:
            problems.append(f"{exported.path}: same file as {seen[key]}")
        seen[key] = exported.path
        limit = NAME_MAX_BYTES - TEMP_OVERHEAD_BYTES
        if _utf8_len(exported.path.name) > limit:
            problems.append(f"{exported.path}: file name longer than {limit} bytes")
        if _utf8_len(exported.path.parent.name) > FOLDER_MAX_BYTES:
            problems.append(f"{exported.path}: folder name longer than {FOLDER_MAX_BYTES} bytes")
    if problems:
        _refuse(problems)


def _refuse(problems: list[str]) -> NoReturn:
    """The first problem on the error line, the others below it, their count last."""
    if len(problems) == 1:
        raise ConfigError(f"{problems[0]}; nothing was written")
    count = f"({len(problems)} problems in all; nothing was written)"
    raise ConfigError(problems[0], [*problems[1:], count])


def _inspect_targets(
    files: Sequence[ExportedFile], force: bool
) -> tuple[list[_Target], list[Path], list[str]]:
    """The targets to write, the files that exist already, and what would stop a write."""
    targets: list[_Target] = []
    existing: list[Path] = []
    problems: list[str] = []
    for exported in files:
        path = exported.path
        try:
            if _exists(path):
                existing.append(path)
            problem, target = _inspect(exported, force)
        except OSError as exc:  # e.g. a folder on the way that cannot be searched
            problem, target = f"{path}: cannot write: {_reason(exc)}", None
        if problem is not None:
            problems.append(problem)
        if target is not None:
            targets.append(target)
    return targets, existing, problems


def _inspect(exported: ExportedFile, force: bool) -> tuple[str | None, _Target | None]:
    path = exported.path
    if path.is_dir():
        return f"{path}: cannot write: a folder is in its place", None
    previous: bytes | None = None
    mode = 0o666
    if force and path.exists():
        try:
            previous = path.read_bytes()
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            return f"{path}: cannot read the file it would replace: {_reason(exc)}", None
    new_folders: list[Path] = []
    folder = path.parent
    while not _exists(folder) and folder != folder.parent:
        new_folders.insert(0, folder)
        folder = folder.parent
    if not folder.is_dir():
        return f"{path}: cannot write: {folder} is not a folder", None
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{path}: cannot write: Permission denied ({folder})", None
    return None, _Target(exported, previous, mode, new_folders)


def _exists(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling symbolic link too."""
    return path.exists() or path.is_symlink()


def _undo(targets: Sequence[_Target]) -> list[Path]:
    """Remove (or restore) what ``targets`` wrote; return the files that stay changed."""
    left: list[Path] = []
    for target in reversed(targets):
        path = target.exported.path
        try:
            if target.previous is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                replace_file(path, target.previous, mode=target.mode)
        except OSError:
            left.append(path)
        _remove_folders(target.new_folders)
    return sorted(left)


def _remove_folders(folders: Sequence[Path]) -> None:
    """Remove the folders an export created, innermost first, unless something is in them."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):  # not empty (or gone): leave it
            folder.rmdir()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def problems_in(files: Sequence[ExportedFile]) -> list[str]:
    """What ``validate`` would refuse in the exported files (e.g. legacy ids that break the
    API's patterns): live data the manifest format is stricter about, to fix by hand."""
    found: list[str] = []
    for exported in files:
        try:
            load_tree(exported.path, {})
        except ManifestError as error:
            found.extend(str(problem) for problem in error.problems)
    return found
