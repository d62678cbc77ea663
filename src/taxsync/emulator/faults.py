"""Fault injection for the emulator: latency, throttling, server errors and lost connections.

Faults are off by default. Every request draws the same number of random values from one
seedable ``random.Random`` in a fixed order, so a seeded run is repeatable request by request
whatever the rates are.
"""

from __future__ import annotations

import enum
import math
import random
import threading
from dataclasses import dataclass, field

# Names accepted by Faults.parse, mapped to the constructor argument they set.
_SPEC_KEYS: dict[str, str] = {
    "latency": "latency_ms",
    "429": "rate_429",
    "503": "rate_503",
    "500": "rate_500",
    "reset": "rate_reset",
    "drop": "rate_drop_after_commit",
    "retry_after": "retry_after_seconds",
    "seed": "seed",
}

_RATE_FIELDS = ("rate_429", "rate_503", "rate_500", "rate_reset", "rate_drop_after_commit")


class FaultAction(enum.Enum):
    """What the emulator does to one request instead of (or after) handling it."""

    NONE = "none"
    TOO_MANY_REQUESTS = "429"
    UNAVAILABLE = "503"
    INTERNAL_ERROR = "500"
    RESET = "reset"


@dataclass(frozen=True)
class FaultPlan:
    """The faults drawn for one request.

    ``before`` is applied before the request is handled (nothing is stored); ``drop``
    means a successful write is committed and then its connection is dropped.
    """

    before: FaultAction = FaultAction.NONE
    drop: bool = False


@dataclass
class Faults:
    """Fault-injection settings plus the random source that applies them.

    Rates are probabilities in [0, 1]. ``rate_500`` applies to reads only (GET and the
    ``/list`` POSTs) and ``rate_drop_after_commit`` to successful writes only (POST create,
    POST versions, PATCH, DELETE); latency, 429, 503 and reset apply to every request.
    The namespace routes are not exempt: a client resolves namespaces through the same
    flaky network and rate limiter as everything else.

    On the wire: 429 and 503 carry ``Retry-After`` and ``details.retryable``; ``reset``
    closes the connection before handling (nothing stored) and ``drop`` closes it after
    the write is committed, both mid-response, which httpx reports as
    ``httpx.RemoteProtocolError`` (a TransportError).
    """

    latency_ms: float = 0
    rate_429: float = 0
    rate_503: float = 0
    rate_500: float = 0
    rate_reset: float = 0
    rate_drop_after_commit: float = 0
    retry_after_seconds: float = 1
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"latency must be a finite number >= 0 ms, got {self.latency_ms!r}")
        for name in _RATE_FIELDS:
            rate = getattr(self, name)
            if not (0 <= rate <= 1):
                raise ValueError(f"{name} must be a probability between 0 and 1, got {rate!r}")
        if not math.isfinite(self.retry_after_seconds) or self.retry_after_seconds < 0:
            raise ValueError(
                f"retry_after_seconds must be a finite number >= 0, got {self.retry_after_seconds!r}"
            )
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Build Faults from a CLI string such as ``"latency=20ms,429=0.1,drop=0.05,seed=7"``.

        Keys: latency (``20ms``, ``0.5s`` or a bare number of ms), 429, 503, 500, reset,
        drop (probabilities), retry_after (seconds, optional ``s`` suffix), seed (int).
        An empty string means no faults. Raises ValueError naming the bad item.
        """
        values: dict[str, float | int] = {}
        for raw_item in spec.split(","):
            item = raw_item.strip()
            if not item:
                continue
            key, sep, raw_value = item.partition("=")
            key, raw_value = key.strip().lower(), raw_value.strip()
            if not sep or not raw_value:
                raise ValueError(f"fault spec item {item!r} is not of the form key=value")
            if key not in _SPEC_KEYS:
                known = ", ".join(_SPEC_KEYS)
                raise ValueError(f"unknown fault {key!r} in {spec!r}; known faults: {known}")
            target = _SPEC_KEYS[key]
            if target in values:
                raise ValueError(f"fault {key!r} is given twice in {spec!r}")
            values[target] = _parse_value(key, raw_value)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def enabled(self) -> bool:
        """True when any fault or latency is configured."""
        return self.latency_ms > 0 or any(getattr(self, name) > 0 for name in _RATE_FIELDS)

    def plan(self, *, is_read: bool, is_write: bool) -> FaultPlan:
        """Draw the faults for one request.

        Always consumes five draws, in the order 429, 503, 500, reset, drop, so the
        sequence of outcomes for a given seed does not depend on the rates or the routes.
        """
        with self._lock:
            draws = [self._rng.random() for _ in range(5)]
        if draws[0] < self.rate_429:
            return FaultPlan(before=FaultAction.TOO_MANY_REQUESTS)
        if draws[1] < self.rate_503:
            return FaultPlan(before=FaultAction.UNAVAILABLE)
        if is_read and draws[2] < self.rate_500:
            return FaultPlan(before=FaultAction.INTERNAL_ERROR)
        if draws[3] < self.rate_reset:
            return FaultPlan(before=FaultAction.RESET)
        return FaultPlan(drop=is_write and draws[4] < self.rate_drop_after_commit)

    def describe(self) -> str:
        """The settings as a spec string that ``parse`` accepts (for logs and banners)."""
        parts = [f"latency={self.latency_ms:g}ms"]
        for key, target in _SPEC_KEYS.items():
            if target in _RATE_FIELDS:
                parts.append(f"{key}={getattr(self, target):g}")
        parts.append(f"retry_after={self.retry_after_seconds:g}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts)


def _parse_value(key: str, raw: str) -> float | int:
    """Parse one spec value; the unit suffixes depend on the key."""
    text = raw.lower()
    try:
        if key == "seed":
            return int(text)
        if key == "latency":
            if text.endswith("ms"):
                return _finite(float(text[:-2]))
            if text.endswith("s"):
                return _finite(float(text[:-1]) * 1000)
            return _finite(float(text))
        if key == "retry_after" and text.endswith("s"):
            return _finite(float(text[:-1]))
        return _finite(float(text))
    except ValueError:
        raise ValueError(f"fault {key!r} has an invalid value {raw!r}") from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value
