"""What a doctor run finds: one ``Check`` per assumption, and the report that holds them.

Also how a report words the server's answer (status, type, first field error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from taxsync.errors import ApiError

Status = Literal["ok", "differs", "skipped"]
REPORT_UPSTREAM = "please report this line with `taxsync doctor --format json`"


@dataclass(frozen=True)
class Check:
    """One assumption: what was checked, and how it came out."""

    check: str
    what: str
    status: Status
    observed: str = ""  # what the server actually did (for ``differs`` and ``skipped``)
    consequence: str = ""  # what taxsync does about it

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "what": self.what,
            "status": self.status,
            "observed": self.observed,
            "consequence": self.consequence,
        }


@dataclass
class DoctorReport:
    """Every check, what was cleaned up, and anything that could not be."""

    namespace: str
    probe: str
    checks: list[Check] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None  # what stopped the probe midway, if anything did

    @property
    def ok(self) -> bool:
        """Every checked assumption holds, and nothing was left behind."""
        differs = any(c.status == "differs" for c in self.checks)
        return not (differs or self.left_behind or self.interrupted or self.error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "probe": self.probe,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "error": self.error,
            "checks": [c.as_dict() for c in self.checks],
            "cleaned": self.cleaned,
            "left_behind": self.left_behind,
        }


def api_answer(exc: ApiError) -> str:
    """What the server answered, as a report shows it: status, type, first field error."""
    problems = exc.api_details.get("validation_errors")
    first = problems[0] if isinstance(problems, list) and problems else None
    where = ""
    if isinstance(first, dict):
        loc = ".".join(str(p) for p in first.get("loc", []))
        where = f" ({loc}: {first.get('msg', '')})"
    return f"HTTP {exc.status} {exc.error_type}: {exc.api_message}{where}"


def names_key(error: ApiError, key: str) -> bool:
    """The 422's field errors name ``key`` (its ``loc`` ends with it)."""
    problems = error.api_details.get("validation_errors")
    if not isinstance(problems, list):
        return False
    return any(
        isinstance(p, dict) and isinstance(p.get("loc"), list) and p["loc"][-1:] == [key]
        for p in problems
    )
