"""Writing whole files atomically: readers see the old file or the new one, never a mix.

``write_atomic`` is for what the CLI writes (plans, exported manifests): any failure is
a ``ConfigError`` naming the path. ``replace_file`` is the primitive under it, for
callers that wrap ``OSError`` in errors of their own (the emulator's state file).

A temporary sibling is named ``.<name>.<random>.tmp``, created exclusively, so two
writers never share one, and it is removed if anything fails before the rename. A
process killed between the two leaves it behind; callers that hold a lock may sweep
``.<name>.*.tmp`` (see ``temp_files_of``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from taxsync.errors import ConfigError
from taxsync.redact import redact


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, creating its folders; all of it or nothing.

    Known secrets are masked (``taxsync.redact``). Raises
    ConfigError(``"<path>: cannot write: <reason>"``) on any OSError.
    """
    try:
        replace_file(path, redact(text).encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


def replace_file(path: Path, data: bytes, *, durable: bool = False, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` through a temporary sibling and ``os.replace``.

    Creates the parent folders. ``durable`` fsyncs the data and then the folder, so the
    new file survives a power cut. ``mode`` is that of a new file, before the umask. The
    temporary file is removed on any failure (even an interrupt), and the OSError raised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_folder(path.parent)


def temp_files_of(path: Path) -> list[Path]:
    """Temporary files that writers of ``path`` left behind (killed between write and rename)."""
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _fsync_folder(folder: Path) -> None:
    # Persist the rename itself; without this a power cut could bring back the old file.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
