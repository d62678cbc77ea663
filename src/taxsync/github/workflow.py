"""What the Actions runner reads from a step: workflow commands, outputs, the summary.

Workflow commands (annotations, notices, warnings) are escaped so a message can never end
its line or hide what it says; outputs use the delimiter form; the step summary is
trimmed to the room left under the runner's limit.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from taxsync.errors import ConfigError, ManifestError, ManifestProblem
from taxsync.github.context import GitHubContext
from taxsync.github.trim import trim_markdown, trim_note, utf8_length
from taxsync.redact import redact
from taxsync.render import visible

# A step summary over 1 MiB is dropped whole by the runner.
SUMMARY_LIMIT_BYTES = 1024 * 1024


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR, LF), as the runner unescapes it.

    Every other hidden character (ESC, C1, bidi controls, …) is shown as ``\\u…`` first,
    so the annotation reads as what it says; CR and LF keep their meaning as ``%0D``/``%0A``
    and can never end the command's line.
    """
    shown = visible(text, keep="\r\n")
    return shown.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: the message rules plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: str | int | None) -> str:
    """``::command key=value,...::message``, every part escaped; ``None`` properties left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None
    )
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def emit(line: str) -> None:
    # The runner reads workflow commands from stdout.
    print(line, file=sys.stdout, flush=True)


def write_outputs(ctx: GitHubContext, values: Mapping[str, str]) -> None:
    """Append step outputs to ``GITHUB_OUTPUT``; a no-op outside Actions.

    Every value uses the ``name<<DELIMITER`` form, so newlines in a value are safe.
    """
    if ctx.output_path is None:
        return
    chunks = []
    for name, value in values.items():
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        if delimiter in value or "\n" in name or "<<" in name:
            raise ConfigError(f"cannot write step output {name!r} safely")
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    _append(ctx.output_path, "".join(chunks))


def append_summary(ctx: GitHubContext, markdown: str) -> None:
    """Append markdown to the step summary, trimmed to the room left under 1 MiB."""
    if ctx.summary_path is None:
        return
    try:
        used = ctx.summary_path.stat().st_size
    except OSError:
        used = 0
    room = SUMMARY_LIMIT_BYTES - used - 1
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    note = trim_note(ctx, "the step summary")
    if room < utf8_length(note) + 1024:
        return  # the summary is full: what is there already stays readable
    _append(ctx.summary_path, trim_markdown(text, room, note, utf8_length))


def _append(path: Path, text: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(redact(text))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


def workspace_relative(path: str | Path, workspace: Path) -> str:
    """``path`` relative to the workspace in POSIX form; absolute when it lies outside.

    A relative ``path`` is taken from the current directory, as taxsync read it.
    """
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return str(absolute)


def manifest_annotations(error: ManifestError, workspace: Path) -> list[str]:
    """One ``::error file=…,line=…,col=…::message`` line per manifest problem."""
    return [_annotation(problem, workspace) for problem in error.problems]


def _annotation(problem: ManifestProblem, workspace: Path) -> str:
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    return workflow_command(
        "error",
        message,
        file=workspace_relative(problem.file, workspace),
        line=problem.line,
        col=problem.col,
        title="taxsync: invalid manifest",
    )
