"""Every command, handed malformed options and files, refuses them as a user mistake.

The commands come from the click group itself, and the malformed values are chosen by what
each parameter is (a namespace, a name, the API URL, the emulator's state file, a file to
read): a command or parameter added later is walked too. Each case must exit 1 (click's
usage errors exit 1 as well) with an ``Error:`` line, and never reach "internal error" or
a traceback, which only a genuine bug may print.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from taxsync.cli import cli
from taxsync.emulator import server
from tests.helpers import flat, run_cli, seed_local, write

NAMESPACE_PARAMS = ("namespace", "namespaces", "namespace_a", "namespace_b")
STATE_PARAMS = ("local_state", "state_path")
NOT_READ = ("out",)  # paths taxsync writes, not reads

BAD_NAMESPACES = ["a\nb", " lead", "trail ", "a/b", "", "..", "pr\u202eod"]
BAD_NAMES = ["a\nb", "", ".", ".."]
BAD_URLS = [
    "http://127.0.0.1:99999",
    "http://[::1",
    "http://127.0.0.1:abc",
    "http://127.0.0.1:9\n",
    " http://127.0.0.1:9",
    "http://127.0.0.1:9/?token=x",
    "http://127.0.0.1:9#x",
    "http://user:pw@127.0.0.1:9",
    "ftp://127.0.0.1:9",
]
BAD_FILES = ["fifo", "folder", "/dev/zero", "deep.json", "corrupt.json", "missing.json"]

# A valid invocation of each command, by click parameter name; "{...}" are files the
# fixture makes. A command missing here fails test_every_command_is_walked.
BASE: dict[str, dict[str, Any]] = {
    "validate": {"path": "{manifests}"},
    "plan": {"path": "{manifests}", "local": True, "local_state": "{state}"},
    "apply": {
        "path": "{manifests}",
        "local": True,
        "local_state": "{state}",
        "auto_approve": True,
    },
    "export": {
        "namespaces": ("production",),
        "out": "{out}",
        "local": True,
        "local_state": "{state}",
    },
    "history": {
        "name": "products",
        "namespace": "production",
        "local": True,
        "local_state": "{state}",
    },
    "diff": {
        "namespace_a": "production",
        "namespace_b": "staging",
        "local": True,
        "local_state": "{state}",
    },
    "doctor": {"namespace": "scratch", "local": True, "local_state": "{state}"},
    "backfill": {
        "name": "products",
        "namespace": "production",
        "local": True,
        "local_state": "{state}",
    },
    "schema": {},
    "local serve": {"port": 0},
    "local seed": {"seed_file": "{seed}", "local_state": "{state}"},
}


def leaf_commands(
    group: click.Group = cli, prefix: str = ""
) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from leaf_commands(command, path + " ")
        else:
            yield path, command


COMMANDS = dict(leaf_commands())


def test_every_command_is_walked() -> None:
    assert sorted(BASE) == sorted(COMMANDS)


def argv(path: str, values: dict[str, Any], files: dict[str, str]) -> list[str]:
    """The command line that gives ``values`` (by parameter name) to command ``path``."""
    command = COMMANDS[path]
    options: list[str] = []
    arguments: list[str] = []
    for param in command.params:
        if param.name not in values:
            continue
        value = values[param.name]
        shown = [value] if not isinstance(value, tuple) else list(value)
        shown = [files.get(v, v) if isinstance(v, str) else v for v in shown]
        if isinstance(param, click.Argument):
            arguments.extend(str(v) for v in shown)
        elif isinstance(param, click.Option) and param.is_flag:
            options.append(param.opts[-1])
        else:
            for item in shown:
                options.extend([param.opts[-1], str(item)])
    return [*path.split(), *options, *arguments]


def cases() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(command, what is malformed, the parameter values) for every command."""
    for path, command in COMMANDS.items():
        base = BASE[path]
        for param in command.params:
            name = param.name or ""
            many = isinstance(param, click.Option) and param.multiple
            if name in NAMESPACE_PARAMS:
                for bad in BAD_NAMESPACES:
                    yield path, f"{name}={bad!r}", {**base, name: (bad,) if many else bad}
            elif name == "name":
                for bad in BAD_NAMES:
                    yield path, f"name={bad!r}", {**base, name: bad}
            elif name == "api_url":
                remote = {k: v for k, v in base.items() if k not in ("local", "local_state")}
                for bad in BAD_URLS:
                    yield path, f"api_url={bad!r}", {**remote, name: bad}
            elif name in STATE_PARAMS or (
                isinstance(param.type, click.Path) and name not in NOT_READ
            ):
                without = {
                    k: v for k, v in base.items() if not (name == "plan_file" and k == "path")
                }
                for bad in BAD_FILES:
                    if name in STATE_PARAMS and bad == "missing.json":
                        continue  # a state file that does not exist yet is a fresh emulator
                    yield path, f"{name}={bad}", {**without, name: "{" + bad + "}"}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The files the cases name, and an emulator whose ``serve`` never listens."""

    class NotServing:
        def run(self) -> None:
            pass

    monkeypatch.setattr(server, "make_server", lambda *args: NotServing())
    monkeypatch.setattr(server, "_log_to_stderr", lambda level: None)
    manifests = tmp_path / "manifests"
    write(manifests, "products.yaml", flat("products", "production"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    (tmp_path / "corrupt.json").write_text('{"generation": 1, "format": ', encoding="utf-8")
    seed = write(tmp_path, "seed.yaml", "namespaces: {staging: {}}\n")
    return {
        "{manifests}": str(manifests),
        "{state}": str(seed_local(tmp_path / "state.json", "production", "staging")),
        "{out}": str(tmp_path / "out"),
        "{seed}": str(seed),
        "{fifo}": str(fifo),
        "{folder}": str(tmp_path / "folder"),
        "{/dev/zero}": "/dev/zero",
        "{deep.json}": str(tmp_path / "deep.json"),
        "{corrupt.json}": str(tmp_path / "corrupt.json"),
        "{missing.json}": str(tmp_path / "missing.json"),
    }


def test_the_base_invocations_work(files: dict[str, str]) -> None:
    """Each malformed case differs from a working command line by one value."""
    for path, values in BASE.items():
        if path == "doctor":
            continue  # its probe is a run of its own (tests/integration/test_doctor.py)
        if path == "backfill":
            continue  # it needs an applied taxonomy (tests/integration/test_backfills_owed.py)
        result = run_cli(*argv(path, values, files))
        assert result.code in (0, 2), (path, result.output)


CASES = list(cases())


def test_every_kind_of_bad_input_is_walked() -> None:
    walked = {what.partition("=")[0] for _, what, _ in CASES}
    assert {"namespace", "namespaces", "namespace_a", "name", "api_url"} <= walked
    assert {"local_state", "state_path", "path", "plan_file", "seed_file"} <= walked


@pytest.mark.parametrize(("path", "what", "values"), CASES, ids=[f"{p}:{w}" for p, w, _ in CASES])
def test_bad_input_is_an_error_not_a_crash(
    files: dict[str, str], path: str, what: str, values: dict[str, Any]
) -> None:
    result = run_cli(*argv(path, values, files), env={"MIXPEEK_API_KEY": "sk_test_walk"})
    assert result.code == 1, (what, result.output)
    assert "Error:" in result.err, (what, result.output)
    assert "internal error" not in result.output.lower(), (what, result.output)
    assert "Traceback" not in result.output, (what, result.output)
