"""Known secrets never leave the process, whatever path they took to get out.

taxsync keeps the API key and tokens out of every message by construction; this module is
the second line of defence, the way the Actions runner masks registered secrets: every
known secret value is replaced by ``***`` in what taxsync prints, writes to files (plans,
exports, the step summary and outputs) and posts (the PR comment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

# The environment variables whose values are secrets wherever taxsync runs.
SECRET_VARIABLES = (
    "MIXPEEK_API_KEY",
    "GITHUB_TOKEN",
    "TAXSYNC_GITHUB_TOKEN",
    "TAXSYNC_LOCAL_API_KEY",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)
MASK = "***"
# Shorter values would mask ordinary words ("local", "true"); real keys are far longer.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()


def register(value: str | None) -> None:
    """Mask ``value`` from now on (ignored when empty or too short to be a real secret)."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        _secrets.add(value.strip())


def register_environment(environ: Mapping[str, str]) -> None:
    """Mask the values of every secret variable set in ``environ``."""
    for name in SECRET_VARIABLES:
        register(environ.get(name))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``; longest first."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingStream:
    """A text stream that masks registered secrets in everything written to it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)  # what the caller asked to write, as io's contract says

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # isatty, flush, encoding, fileno…: the wrapped stream's own.
        return getattr(self.stream, name)
