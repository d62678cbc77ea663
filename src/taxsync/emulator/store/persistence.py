"""Where the store's state lives and how access to it is serialised.

``Store(None)`` keeps everything in memory. ``Store(path)`` keeps a JSON state file that
several processes may share:

* every mutation holds an exclusive ``flock`` on ``<state>.lock``, re-reads the file if
  another process changed it, applies the change and rewrites the file atomically (a temp
  file in the same directory, fsync, ``os.replace``), so no update is lost and a killed
  process never leaves a half-written state file;
* every read holds a shared lock and re-reads the file only if it changed, detected from
  its inode, mtime, size and the generation counter written at the start of the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from taxsync import files, safe_read
from taxsync.emulator.errors import StateFileError
from taxsync.emulator.store.state import State, state_file_error

_GENERATION_RE = re.compile(rb'^\{"generation":(\d+),')


class PersistentStore:
    """The state, in memory or in a shared JSON file, and the transactions that read and
    change it; the store's resources build on it."""

    def __init__(
        self, path: Path | str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._clock = clock
        self._mutex = threading.RLock()
        self._state = State()
        self._dirty = False
        # (inode, mtime_ns, size, generation) of the file our in-memory state came from.
        self._file_sig: tuple[int, int, int, int] | None = None
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None
        if self._path is not None:
            with self._transaction(exclusive=True):
                _remove_stale_temp_files(self._path)

    @property
    def path(self) -> Path | None:
        """The state file, or None for an in-memory store."""
        return self._path

    @contextlib.contextmanager
    def _transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        """Serialise access; with a file, lock it, catch up with other writers and save."""
        with self._mutex:
            if self._path is None:
                yield
                return
            with self._file_lock(exclusive):
                self._refresh()
                self._dirty = False
                try:
                    yield
                except BaseException:
                    if self._dirty:
                        self._discard_unsaved()
                    raise
                if self._dirty:
                    if not exclusive:
                        raise RuntimeError("a read-only transaction changed the state")
                    self._save()

    @contextlib.contextmanager
    def _file_lock(self, exclusive: bool) -> Iterator[None]:
        fd = self._lock_file_fd()
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_file_fd(self) -> int:
        # A forked child shares its parent's open file description, and flock locks
        # belong to that description: reopen so the child gets locks of its own.
        if self._lock_fd is None or self._lock_pid != os.getpid():
            assert self._path is not None
            lock_path = self._path.with_name(self._path.name + ".lock")
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StateFileError(
                    f"cannot open emulator lock file {lock_path}: {exc.strerror or exc}"
                ) from exc
            self._lock_pid = os.getpid()
        return self._lock_fd

    def _refresh(self) -> None:
        """Reload the state file if another process (or a restart) changed it."""
        assert self._path is not None
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            if self._file_sig is not None or self._state.generation:
                self._state = State()
            self._file_sig = None
            return
        except OSError as exc:
            raise state_file_error(self._path, exc) from exc
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size, _read_generation(self._path))
        if signature == self._file_sig:
            return
        self._state = State.load(self._path)
        self._file_sig = signature

    def _save(self) -> None:
        assert self._path is not None
        self._state.generation += 1
        try:
            data = self._state.encode()
            files.replace_file(self._path, data, durable=True, mode=0o600)
            stat = os.stat(self._path)
        except BaseException as exc:
            self._discard_unsaved()
            if isinstance(exc, OSError):
                raise StateFileError(
                    f"cannot write emulator state file {self._path}: {exc.strerror or exc}"
                ) from exc
            raise
        self._file_sig = (stat.st_ino, stat.st_mtime_ns, stat.st_size, self._state.generation)
        self._dirty = False

    def _discard_unsaved(self) -> None:
        """Forget in-memory changes that did not reach the file."""
        self._file_sig = None
        self._dirty = False
        self._state = State()
        with contextlib.suppress(StateFileError):
            self._refresh()


def _read_generation(path: Path) -> int:
    """The generation counter from the first bytes of the state file (-1 if unreadable)."""
    try:
        head = safe_read.read_head(path, 64)  # never blocks: the path may be a FIFO
    except safe_read.FileRefused:
        return -1
    match = _GENERATION_RE.match(head)
    return int(match.group(1)) if match else -1


def _remove_stale_temp_files(path: Path) -> None:
    """Delete temp files a killed writer left behind (call with the exclusive lock held)."""
    for leftover in files.temp_files_of(path):
        with contextlib.suppress(OSError):
            leftover.unlink()
