"""HTTP policy shared by taxsync's two API clients (Mixpeek in client.py, GitHub in github/).

What is safe to send again, what a server's ``Retry-After`` asks for, and where a
credential may travel. The clients keep their own transports, budgets and messages; the
rules here are plain functions so they can be tested as tables, and ``send_with_retries``
applies them on a fixed schedule of waits for a synchronous client.

The one rule behind the retry classification: an idempotent request may be repeated
after any transient failure, but a request that is not (a write that creates something)
only when we know it did nothing: the connection never opened, or the server answered
with a status that promises nothing was stored.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable, Collection, Sequence
from typing import NoReturn
from urllib.parse import SplitResult, urlsplit

import httpx

from taxsync.errors import ConfigError

# Transport errors raised before any byte of the request reached the server: even a
# write may be sent again. (A PoolTimeout never got a connection at all.)
NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

# 429 is a refusal by definition (RFC 6585): the server did not act on the request.
# An API may promise more (Mixpeek: a 503 also stores nothing), via ``unprocessed``.
UNPROCESSED = frozenset({429})


def retryable_status(
    status: int, *, idempotent: bool, unprocessed: Collection[int] = UNPROCESSED
) -> bool:
    """Whether an error answer with ``status`` may be retried.

    Idempotent requests: on 429 and every 5xx. Others: only on the statuses in
    ``unprocessed``, since any other failure may have stored something.
    """
    if status in unprocessed:
        return True
    return idempotent and (status == 429 or status >= 500)


def retryable_transport_error(error: httpx.TransportError, *, idempotent: bool) -> bool:
    """Whether a request that failed with ``error`` (no answer) may be sent again.

    An idempotent request always may; another only if it never left (``NOT_SENT``),
    because a lost answer says nothing about whether the server acted on it.
    """
    return idempotent or isinstance(error, NOT_SENT)


def parse_retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header value asks for; None if absent or unreadable.

    Only the delay-seconds form is read; an HTTP date counts as unreadable, so the caller
    falls back to its own wait. Negative values and NaN mean "no wait" (0.0); a huge value
    stays huge (possibly ``inf``): capping it is the caller's decision, against its budget.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # empty, garbage, or an HTTP date
    if math.isnan(seconds):
        return 0.0
    return max(0.0, seconds)


def send_with_retries(
    send: Callable[[], httpx.Response],
    *,
    idempotent: bool,
    delays: Sequence[float],
    max_server_wait: float,
    unprocessed: Collection[int] = UNPROCESSED,
) -> httpx.Response:
    """Send a request once, then once more after each of ``delays`` while it may be retried.

    Returns the first answer that is final (or the last one); a transport error that may
    not be retried, or that ends the schedule, propagates. Between attempts the wait is the
    schedule's, or the server's ``Retry-After`` when longer, capped at ``max_server_wait``
    so a step never hangs on one answer.
    """
    for delay in delays:
        try:
            response = send()
        except httpx.TransportError as exc:
            if not retryable_transport_error(exc, idempotent=idempotent):
                raise
        else:
            if not retryable_status(
                response.status_code, idempotent=idempotent, unprocessed=unprocessed
            ):
                return response
            asked = parse_retry_after(response.headers.get("Retry-After")) or 0.0
            delay = max(delay, min(asked, max_server_wait))
        time.sleep(delay)
    return send()  # the last attempt: its answer, or its error, stands


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or IP literal, bracketed IPv6 allowed) is this machine.

    Only ``localhost`` and loopback IP literals count: any other name could resolve
    anywhere, so it is treated as remote.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_api_url(url: str, insecure: bool, where: str = "") -> str:
    """``url`` without a trailing slash; refuses plain HTTP to non-loopback hosts.

    Credentials travel in headers, so plain ``http://`` would expose them to the network:
    allowed only to loopback, or when the user insists (``insecure``).
    """
    parts = parse_api_url(url, where)
    hostname = parts.hostname or ""
    if parts.scheme == "http" and not insecure and not is_loopback(hostname):
        raise ConfigError(
            f"refusing plain http:// to non-loopback host {hostname!r}: "
            "use https, or pass --insecure"
        )
    return url.rstrip("/")


_UNSAFE_IN_URLS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def parse_api_url(url: str, where: str = "") -> SplitResult:
    """``url`` split, if it is an API base URL: ``http(s)://host[:port][/path]``.

    Refused, each with a one-line ConfigError naming ``where`` (the option or variable
    the URL came from), if given:
    whitespace or a control character anywhere (httpx would strip some and send others),
    a URL that does not parse (``http://[::1``), another scheme, no host, a port that is
    not a number from 1 to 65535, a user or password, a query or fragment (``?token=…``
    would travel in the URL of every request, and turn every path into another).
    """

    def refuse(reason: str) -> NoReturn:
        shown = _UNSAFE_IN_URLS.sub(lambda m: f"\\u{ord(m.group()):04x}", _masked(url))
        raise ConfigError(f"{_prefix(where)}invalid API URL '{shown}': {reason}")

    if _UNSAFE_IN_URLS.search(url):
        refuse("it must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        refuse(f"{exc} (expected http(s)://host[:port])")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        refuse("expected http(s)://host[:port]")
    check_credentials(url, where)
    if port == 0 or parts.netloc.endswith(":"):
        refuse("the port must be a number from 1 to 65535")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        refuse("it must not have a query or fragment (the key goes in MIXPEEK_API_KEY)")
    return parts


def check_credentials(url: str, where: str = "") -> None:
    """Refuse a user or password in an API URL: httpx would send it as Basic auth instead
    of the key, and a URL is printed and saved where a password must never be."""
    if urlsplit(url).netloc.rpartition("@")[1]:
        raise ConfigError(
            f"{_prefix(where)}the API URL {without_credentials(url)!r} has a user or password "
            "in it: remove it (the key goes in MIXPEEK_API_KEY, sent as a Bearer token)"
        )


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _masked(url: str) -> str:
    """``url`` with anything before an ``@`` in its authority masked, even if it does not
    parse (the message of a refused URL must not show a password)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{slash}{path}"
    return url


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: safe to print."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    return parts._replace(netloc=f"***@{host}").geturl()
