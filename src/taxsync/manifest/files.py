"""Which files a manifest tree holds, and their bytes, read safely.

A pull request writes the tree, so the walk refuses what could read outside it or hang:
symlinks that leave the tree (or the working directory), files that are not regular
files, files over ``MAX_FILE_BYTES``, and folders that cannot be listed, each reported as
a problem naming the path rather than skipped.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from taxsync.errors import ManifestProblem
from taxsync.manifest.characters import NOT_IN_NAMES, describe_character, shown_path
from taxsync.safe_read import FileRefused, read_regular

MAX_FILE_BYTES = 8 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml")
GIT_TIMEOUT_S = 60


def manifest_files(
    root: Path, problems: list[ManifestProblem], only: frozenset[str] | None = None
) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` (in any case) under ``root`` (or ``root`` itself), hidden ones skipped.

    Walks the tree itself rather than trusting ``os.walk``, which skips what it cannot read:
    a folder that cannot be listed, a symlink that leaves the tree (a manifest or a folder
    linked from elsewhere), one that leads nowhere, and a file or folder whose name holds a
    control character are each a problem naming the path. Symlinks inside the tree are
    followed, and each real file and folder is read once (so a link loop ends). With
    ``only`` (real paths, see ``git_tracked``), files outside it are left out.
    """
    if not root.is_dir():
        return [root]  # a single file: read_bytes makes sure it is a regular one
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
            problems.append(path_problem(folder, None, f"cannot read folder: {reason(exc)}"))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            path = folder / entry.name
            kind = _entry_kind(entry, path, real_root, problems)
            if kind is None:
                continue
            if kind == "folder" or is_manifest_name(entry.name):
                bad = NOT_IN_NAMES.search(entry.name)
                if bad:
                    message = f"the name contains {describe_character(bad.group())}"
                    problems.append(path_problem(path, kind, message))
                    continue
            if kind == "folder":
                subfolders.append(path)
            elif (
                is_manifest_name(entry.name)
                and _first_visit(path, seen, problems)
                and (only is None or os.path.realpath(path) in only)
            ):
                found.append(path)
        stack.extend(reversed(subfolders))  # depth first, in name order
    return found


def git_tracked(root: Path, problems: list[ManifestProblem]) -> frozenset[str] | None:
    """The real paths of the files under ``root`` that git tracks or has staged, or None
    (and a problem) outside a git checkout.

    The pre-commit hook validates these: an untracked scratch file is no part of the
    commit, and must not block it.
    """
    folder = root if root.is_dir() else root.parent
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--", "."],
            cwd=folder,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        problems.append(path_problem(root, None, f"cannot ask git for the files it tracks: {exc}"))
        return None
    if listed.returncode != 0:
        said = listed.stderr.decode("utf-8", "replace").strip().splitlines()
        message = f"cannot ask git for the files it tracks: {said[0] if said else 'git failed'}"
        problems.append(path_problem(root, None, shown_path(message)))
        return None
    names = listed.stdout.decode("utf-8", "surrogateescape").split("\0")
    return frozenset(os.path.realpath(folder / name) for name in names if name)


def _entry_kind(
    entry: os.DirEntry[str], path: Path, real_root: str, problems: list[ManifestProblem]
) -> str | None:
    """``"folder"`` or ``"file"`` (anything else a manifest name may hold), or None to skip."""
    try:
        if not entry.is_symlink():
            return "folder" if entry.is_dir(follow_symlinks=False) else "file"
        manifest_name = is_manifest_name(entry.name)
        if not _inside(os.path.realpath(path), real_root):
            # A link out of the tree to a file no manifest name asks for is never read.
            if manifest_name or path.is_dir() or not path.exists():
                problems.append(
                    path_problem(path, None, "is a symlink leading outside the manifest tree")
                )
            return None
        info = os.stat(path)  # a dangling link or a link loop fails here
    except OSError as exc:
        problems.append(path_problem(path, None, f"cannot read: {reason(exc)}"))
        return None
    return "folder" if stat.S_ISDIR(info.st_mode) else "file"


def _first_visit(path: Path, seen: set[tuple[int, int]], problems: list[ManifestProblem]) -> bool:
    """False for a file already found through another path (a symlink to it)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        problems.append(path_problem(path, "file", f"cannot read: {reason(exc)}"))
        return False
    identity = (info.st_dev, info.st_ino)
    if stat.S_ISREG(info.st_mode) and identity in seen:
        return False
    seen.add(identity)
    return True


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def path_problem(path: Path | str, kind: str | None, message: str) -> ManifestProblem:
    """A problem with a whole file (located at its start) or a folder (no line)."""
    line = 1 if kind == "file" else None
    return ManifestProblem(shown_path(path), line, line, "", message)


def reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def root_problem(root: Path) -> ManifestProblem | None:
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
    return ManifestProblem(shown_path(root), None, None, "", message)


def read_bytes(path: Path, problems: list[ManifestProblem]) -> bytes | None:
    """The bytes of a regular file of at most ``MAX_FILE_BYTES``, or None (and a problem).

    Read by ``taxsync.safe_read``, the one reader of every file taxsync is handed.
    """
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except FileRefused as refused:
        problems.append(path_problem(path, "file", refused.reason))
        return None


def is_manifest_name(name: str) -> bool:
    """Whether a file name is a manifest's: ``.yaml`` or ``.yml`` in any case (``X.YAML``
    skipped would leave ``plan --prune`` deleting what it declares)."""
    return name.lower().endswith(MANIFEST_SUFFIXES)
