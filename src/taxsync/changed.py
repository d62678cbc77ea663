"""``plan --changed-from REF``: what a pull request touches, told apart from what was pending.

Git says which manifest files differ between REF and the working tree (added, changed,
deleted, renamed, untracked); each of those files names namespaces now, at REF, or both,
and only those namespaces are planned. REF's own manifests, planned against the same live
state, tell which of the plan's changes were already pending before this change (drift, or
a merge never applied): those move from ``changes`` to ``pending``.

Git runs without a shell, with ``--`` before every path, on a REF that must name a commit.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from taxsync.errors import ConfigError
from taxsync.plan import AnyChange, Plan, Summary

if TYPE_CHECKING:
    from taxsync.live import Neighbourhood
    from taxsync.model import DesiredTaxonomy
    from taxsync.planner import PlanOptions
    from taxsync.reconcile import PlanChoices
    from taxsync.wire import TaxonomyResponse

MANIFEST_SUFFIXES = (".yaml", ".yml")  # the loader's own (manifest.files)
_GIT_TIMEOUT_SECONDS = 120.0


class GitError(ConfigError):
    """REF unknown, no git checkout, or git itself failed: ``--changed-from`` cannot work."""


@dataclass(frozen=True)
class Changes:
    """The manifest files under the plan's root that differ between REF and the working tree."""

    ref: str  # as given
    commit: str  # the commit REF names
    top: Path  # the checkout's top folder
    root: str  # the manifest tree, relative to ``top`` (posix; "" for the whole checkout)
    paths: frozenset[str]  # relative to ``top``: both sides of a rename


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(
            ["git", "-c", "core.quotepath=off", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("--changed-from needs git, and git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took over {_GIT_TIMEOUT_SECONDS:.0f} s") from None


def _checked(cwd: Path, *args: str) -> bytes:
    done = _git(cwd, *args)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {said[-1] if said else done.returncode}")
    return done.stdout


def find_changes(root: Path, ref: str) -> Changes:
    """What git says differs under ``root`` since ``ref`` (see ``Changes``)."""
    if not ref or ref.startswith("-"):
        raise GitError(f"--changed-from {ref!r}: not a git revision")
    where = root if root.is_dir() else root.parent
    if not where.is_dir():
        raise GitError(f"--changed-from: {root} is not in a git checkout")
    found = _git(where, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        said = found.stderr.decode(errors="replace")
        # A checkout owned by another user (a container's) is refused by git itself.
        why = (
            " (git: dubious ownership; see git config safe.directory)" if "dubious" in said else ""
        )
        raise GitError(f"--changed-from: {root} is not in a git checkout{why}")
    top = Path(found.stdout.decode().strip())
    named = _git(top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if named.returncode != 0:
        raise GitError(
            f"--changed-from {ref!r}: no such commit in this checkout "
            "(fetch it, or check out with more history)"
        )
    commit = named.stdout.decode().strip()
    try:
        inside = root.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise GitError(f"--changed-from: {root} is outside the checkout at {top}") from None
    inside = "" if inside == "." else inside
    spec = [inside] if inside else ["."]
    diff = _checked(top, "diff", "--no-ext-diff", "--name-status", "-M", "-z", commit, "--", *spec)
    untracked = _checked(top, "ls-files", "--others", "--exclude-standard", "-z", "--", *spec)
    paths = {*_diff_paths(diff), *_split(untracked)}
    manifests = frozenset(p for p in paths if p.endswith(MANIFEST_SUFFIXES))
    return Changes(ref, commit, top, inside, manifests)


def _split(output: bytes) -> list[str]:
    return [p for p in output.decode(errors="surrogateescape").split("\0") if p]


def _diff_paths(output: bytes) -> Iterator[str]:
    """The paths of ``git diff --name-status -z``: a status, then one path, or two for a
    rename or copy (R100, C75)."""
    fields = _split(output)
    index = 0
    while index < len(fields):
        status = fields[index]
        count = 2 if status[:1] in ("R", "C") else 1
        yield from fields[index + 1 : index + 1 + count]
        index += 1 + count


@contextlib.contextmanager
def tree_at(changes: Changes) -> Iterator[Path | None]:
    """REF's manifest tree in a temporary folder (None: REF has no such tree)."""
    spec = changes.root or "."
    listed = _checked(changes.top, "ls-tree", "--name-only", changes.commit, "--", spec)
    if not listed.strip():
        yield None
        return
    archive = _checked(changes.top, "archive", "--format=tar", changes.commit, "--", spec)
    with tempfile.TemporaryDirectory(prefix="taxsync-ref-") as folder:
        base = Path(folder)
        _extract(archive, base)
        yield base / changes.root if changes.root else base


def _extract(archive: bytes, into: Path) -> None:
    """Regular files only, each inside ``into``: symlinks and the rest are left out, as the
    loader would refuse them."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                continue
            target = into.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())


def by_file(desired: Iterable[DesiredTaxonomy], root: Path, prefix: str) -> dict[str, set[str]]:
    """The namespaces each manifest file names, by its path in the checkout (``prefix``: the
    tree's own path there; ``root`` may be a single manifest file)."""
    found: dict[str, set[str]] = {}
    base = os.path.abspath(root)
    for taxonomy in desired:
        key = prefix
        if root.is_dir():
            inside = os.path.relpath(os.path.abspath(taxonomy.source.file), base)
            key = PurePosixPath(prefix, Path(inside).as_posix()).as_posix()
        found.setdefault(key, set()).add(taxonomy.namespace)
    return found


@dataclass(frozen=True)
class Scope:
    """What a plan ``--changed-from`` covers: the manifests now and at REF, and the
    namespaces the changed files name on either side."""

    changes: Changes
    desired: list[DesiredTaxonomy]
    before: list[DesiredTaxonomy] | None  # None: REF's tree does not load
    touched: frozenset[str]


Load = Callable[[Path], "list[DesiredTaxonomy]"]


def scope(root: Path, ref: str, load: Load) -> Scope:
    """Find the changes, load the tree now and at REF with ``load``, name the namespaces."""
    from taxsync.errors import ManifestError

    changes = find_changes(root, ref)
    desired = load(root)
    before: list[DesiredTaxonomy] | None = []
    then: dict[str, set[str]] = {}
    with tree_at(changes) as old_root:
        if old_root is not None:
            try:
                before = load(old_root)
            except ManifestError:
                before = None
            then = by_file(before or [], old_root, changes.root)
    now = by_file(desired, root, changes.root)
    touched: set[str] = set()
    for path in changes.paths:
        touched |= now.get(path, set()) | then.get(path, set())
    if before is None:  # what a changed file named at REF is unknown: every namespace
        touched |= {d.namespace for d in desired}
    return Scope(changes, desired, before, frozenset(touched))


PlanWith = Callable[..., Plan]  # reconcile.plan_manifests, settings and reporter bound


def plan_changed(
    root: Path, ref: str, choices: PlanChoices, load: Load, plan: PlanWith, api_url: str
) -> Plan:
    """Plan only the namespaces the changed manifests name (among those a whole plan would
    cover), with what REF's manifests would do too set apart as ``pending``."""
    from dataclasses import replace

    from taxsync.planner import covered_namespaces

    found = scope(root, ref, load)
    covered = covered_namespaces(found.desired, choices.options())
    planned = [ns for ns in covered if ns in found.touched]
    if planned:
        narrow = replace(choices, namespaces=tuple(planned))
        made = plan(found.desired, choices=narrow, baseline=found.before)
    else:  # nothing to read: no request at all
        made = Plan(api_url=api_url, prune=choices.prune)
    recorded = {
        "changed_from": found.changes.commit,
        "left_out": sorted(set(covered) - set(planned)),
    }
    return made.model_copy(update=recorded)


def split_against(
    plan: Plan,
    before: Sequence[DesiredTaxonomy],
    live: Mapping[str, Sequence[TaxonomyResponse]],
    around: Mapping[str, Neighbourhood],
    options: PlanOptions,
) -> Plan:
    """``split_pending`` with REF's manifests planned against the same live state (the plan's
    own reads: no request more)."""
    from taxsync import references
    from taxsync.errors import ManifestError
    from taxsync.planner import plan as make_plan

    chosen = set(plan.namespaces)
    selected = [d for d in before if d.namespace in chosen]
    try:
        ready = references.checked(selected, around, check_references=False)
    except ManifestError:  # REF's names no longer resolve: nothing is called pending
        return plan
    return split_pending(plan, make_plan(ready.desired, live, options, around))


# --- pending before this change ---------------------------------------------------------


def _key(change: AnyChange) -> tuple[Any, ...]:
    return (change.namespace, change.name, change.action, getattr(change, "collection_id", None))


def _effect(change: AnyChange) -> dict[str, Any]:
    # What the change does, not where it was declared or what it noted on the way.
    ignored = {"source", "notes", "names", "unchecked"}
    return change.model_dump(mode="json", exclude=ignored)


def split_pending(plan: Plan, before: Plan) -> Plan:
    """``plan`` with the changes ``before`` (REF's manifests) would also make, to the same
    effect, moved to ``pending``; the summary counts what is left."""
    already = {_key(c): _effect(c) for c in before.changes}
    changes: list[AnyChange] = []
    pending: list[AnyChange] = []
    for change in plan.changes:
        same = already.get(_key(change)) == _effect(change)
        (pending if same else changes).append(change)
    summary = Summary.of(changes, plan.summary.unchanged)
    return plan.model_copy(update={"changes": changes, "pending": pending, "summary": summary})


def with_pending(plan: Plan) -> Plan:
    """A saved plan as apply carries it out: its changes and what was pending alike."""
    if not plan.pending:
        return plan
    everything = [*plan.changes, *plan.pending]
    merged = plan.model_copy(
        update={
            "changes": everything,
            "pending": [],
            "summary": Summary.of(everything, plan.summary.unchanged),
        }
    )
    return merged.model_copy(update={"digest": merged.content_digest()})
