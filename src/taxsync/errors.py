"""The error hierarchy, and the one place exit codes are decided.

Every expected failure is a ``TaxsyncError``: the CLI prints ``str(error)`` (one line),
then ``error.details`` (optional further lines), and exits with ``error.exit_code``.
No message here may contain the API key: errors are built from statuses, paths and the
server's own error text, never from request headers.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = (
    2  # `plan --detailed-exitcode` with a non-empty plan; `diff` of namespaces that differ
)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class TaxsyncError(Exception):
    """Root of every error taxsync expects and reports without a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


def location(file: str, line: int | None = None, col: int | None = None) -> str:
    """``file``, ``file:line`` or ``file:line:col``: how every message points into a file."""
    if line is None:
        return file
    return f"{file}:{line}" if col is None else f"{file}:{line}:{col}"


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong in a manifest, located as precisely as we know."""

    file: str
    line: int | None
    col: int | None
    path: str
    message: str

    def __str__(self) -> str:
        return self.shown_at(self.file)

    def shown_at(self, file: str) -> str:
        """The problem as one line, naming ``file`` (e.g. relative to a workspace)."""
        field = f"{self.path}: " if self.path else ""
        return f"{location(file, self.line, self.col)}: {field}{self.message}"


class ManifestError(TaxsyncError):
    """The manifest tree is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "invalid manifests"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more, [str(p) for p in problems[1:]])


class ConfigError(TaxsyncError):
    """Bad invocation or environment: a missing API key, an unsafe URL, a bad option."""


class ApiError(TaxsyncError):
    """The Mixpeek API answered with an error envelope."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        request: str,
        details: dict[str, object] | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.api_message = message
        self.request = request
        self.api_details = details or {}
        super().__init__(f"{request}: HTTP {status} {error_type}: {message}")


class NotFoundError(TaxsyncError):
    """A namespace or taxonomy the command names does not exist."""


class NetworkError(TaxsyncError):
    """The API could not be reached, or kept failing until the retry budget ran out."""


class WriteOutcomeUnknown(NetworkError):
    """A write was sent but its response was lost: it may or may not have taken effect.

    Never retried blindly; the applier re-reads the taxonomy and decides.
    """


class ResponseError(TaxsyncError):
    """The server answered 2xx with a body that is not what the API promises."""


class StalePlanError(TaxsyncError):
    """Live state moved since the plan was made; nothing was written."""


class Raced(TaxsyncError):
    """Another writer changed the same taxonomy, or collection, at the same moment as this
    apply."""


class LeftoverReplacement(TaxsyncError):
    """An earlier, interrupted replace left a taxonomy under the replacement name whose
    config is not the one this replace creates: taxsync will not guess which is right."""


class BackfillFailed(TaxsyncError):
    """A backfill was refused, lost, or its task ended badly."""


class BackfillUndecided(BackfillFailed):
    """A backfill's answer was lost and the task list cannot tell whether it started."""


class StillApplied(TaxsyncError):
    """A taxonomy to delete is still applied by collections."""


class NotReady(TaxsyncError):
    """A taxonomy's asynchronous inference did not finish within the wait timeout."""


class PlanRejected(ConfigError):
    """A saved plan that is not what taxsync planned (edited, forged, or for elsewhere)."""


class ApplyFailed(TaxsyncError):
    """Some changes failed; the others were applied. Re-running apply converges."""


class GitHubError(TaxsyncError):
    """The GitHub API could not be reached or refused a request. Never carries the token."""


class Interrupted(TaxsyncError):
    """Ctrl-C: in-flight writes finished, nothing new was started."""

    exit_code = EXIT_INTERRUPTED
