"""The ``taxsync`` command line: parse options, call ``taxsync.reconcile``, render with
``taxsync.render``, choose the exit code.

The only package that imports click: ``plan_apply`` (validate, plan, apply, and apply's
progress), ``backfill``, ``utilities`` (export, history, diff, doctor, schema), ``local`` (the emulator),
``options`` (shared options) and ``report`` (errors). Heavy modules (pydantic, httpx,
PyYAML, the emulator) are imported inside the commands, so ``taxsync --version`` starts
fast.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from taxsync import __version__
from taxsync.cli import backfill, local, plan_apply, utilities
from taxsync.cli.report import report
from taxsync.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, TaxsyncError
from taxsync.redact import RedactingStream, register_environment


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: every expected failure becomes a message and an exit code, never a traceback.

    Whatever is printed passes through ``redact``: known secrets never reach the output.
    """
    register_environment(os.environ)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        code = _main(argv)
    finally:
        sys.stdout, sys.stderr = streams
    sys.exit(code)


def _main(argv: list[str] | None) -> int:
    try:
        code = cli.main(args=argv, prog_name="taxsync", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = EXIT_ERROR  # usage errors too: 2 is reserved for "plan has changes"
    except TaxsyncError as exc:
        report(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line; the traceback only on request
        if os.environ.get("TAXSYNC_DEBUG"):
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("Set TAXSYNC_DEBUG=1 to see the traceback, and please report it.", err=True)
        code = EXIT_ERROR
    return code if isinstance(code, int) else EXIT_OK


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="taxsync")
def cli() -> None:
    """Declarative GitOps reconciler for Mixpeek taxonomies."""


for _command in (
    plan_apply.validate,
    plan_apply.plan,
    plan_apply.apply,
    backfill.backfill,
    utilities.export,
    utilities.history,
    utilities.diff,
    utilities.doctor,
    utilities.schema,
    local.local,
):
    cli.add_command(_command)
