"""How the command line reports a failure: one ``Error:`` line and its details, inert."""

from __future__ import annotations

import click

from taxsync.errors import ConfigError, ManifestError, TaxsyncError


def report(exc: TaxsyncError) -> None:
    """Print an expected failure on stderr: the ``Error:`` line, its details, and for
    manifest problems their count last, so the first problem reads on a line of its own."""
    # Messages quote manifests, file names and the API: untrusted text, shown inert.
    from taxsync.render import plain

    first, *details = error_lines(exc)
    click.echo(f"Error: {plain(first)}", err=True)
    for line in details:
        click.echo(f"  {plain(line)}", err=True)


def error_lines(exc: TaxsyncError) -> list[str]:
    """The lines of a failure, unescaped: the error, then each detail."""
    if isinstance(exc, ManifestError) and len(exc.problems) > 1:
        first, *rest = (str(problem) for problem in exc.problems)
        return [first, *rest, f"({len(exc.problems)} problems in all)"]
    return [str(exc), *exc.details]


# A detail line of a seed or state-file error starts on a line of its own, indented; any
# other line break is part of a value (a namespace, a name, a path) and stays escaped.
_DETAIL_BREAK = "\n  "


def emulator_error(exc: Exception) -> ConfigError:
    """A seed or state-file problem as a one-line error plus its detail lines."""
    first, *rest = str(exc).split(_DETAIL_BREAK)
    return ConfigError(first or "invalid seed", [line.strip() for line in rest])
