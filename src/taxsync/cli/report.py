"""How the command line reports a failure: one ``Error:`` line and its details, inert."""

from __future__ import annotations

import click

from taxsync.errors import ConfigError, TaxsyncError


def report(exc: TaxsyncError) -> None:
    """Print an expected failure on stderr."""
    # Messages quote manifests, file names and the API: untrusted text, shown inert.
    from taxsync.render import plain

    click.echo(f"Error: {plain(str(exc))}", err=True)
    for line in exc.details:
        click.echo(f"  {plain(line)}", err=True)


def emulator_error(exc: Exception) -> ConfigError:
    """A seed or state-file problem as a one-line error plus its detail lines."""
    first, *rest = str(exc).splitlines() or ["invalid seed"]
    return ConfigError(first, [line.strip() for line in rest])
