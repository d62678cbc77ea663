"""Timestamps as the API writes them: ISO 8601 UTC with a ``Z`` suffix."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def iso_now() -> str:
    """Current UTC time as ISO 8601 with a ``Z`` suffix, like the API."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def iso(timestamp: float) -> str:
    """A clock reading as ISO 8601 UTC with a ``Z`` suffix, like the API."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def bumped(previous: str | None, now: float) -> str:
    """``updated_at`` for a change made now: later than ``previous`` even if the clock is not
    (a change must always be visible as a newer timestamp)."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    try:
        last = datetime.fromisoformat(previous.replace("Z", "+00:00")) if previous else None
    except ValueError:
        last = None
    if last is not None and last.tzinfo is not None and moment <= last:
        moment = last + timedelta(microseconds=1)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
