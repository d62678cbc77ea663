"""Settings and connection options: refused early, in one line, never echoing a secret."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from taxsync import reconcile
from taxsync.errors import ConfigError
from tests.helpers import flat, run_cli, seed_local, write

PASSWORD = "hunter2hunter2"


def test_settings_read_the_environment_and_options_win() -> None:
    environ = {"MIXPEEK_API_URL": "https://env.example", "MIXPEEK_API_KEY": " sk_env_key "}
    assert reconcile.Settings.from_env(environ).api_url == "https://env.example"
    assert reconcile.Settings.from_env(environ).api_key == "sk_env_key"
    chosen = reconcile.Settings.from_env(environ, api_url="https://option.example")
    assert chosen.api_url == "https://option.example"
    assert reconcile.Settings.from_env({}).api_url == reconcile.DEFAULT_API_URL


def test_local_settings_record_the_local_url_whatever_the_environment() -> None:
    environ = {"MIXPEEK_API_URL": "https://env.example", "TAXSYNC_LOCAL_STATE": "s.json"}
    settings = reconcile.Settings.from_env(environ, local=True)
    assert settings.local_state == Path("s.json")
    assert settings.target_url == reconcile.LOCAL_API_URL


def test_the_key_is_not_in_the_settings_repr() -> None:
    assert "sk_secret_value" not in repr(reconcile.Settings(api_key="sk_secret_value"))


@pytest.mark.parametrize(
    "options",
    [
        {"retry_timeout": math.nan},
        {"retry_timeout": math.inf},
        {"retry_timeout": 0.0},
        {"rate_limit_per_minute": math.nan},
        {"rate_limit_per_minute": 1e-300},
        {"rate_limit_per_minute": math.inf},
        {"concurrency": 0},
    ],
)
def test_absurd_numbers_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        reconcile.Settings(**options)


def test_a_user_or_password_in_the_api_url_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        reconcile.Settings(api_url=f"https://user:{PASSWORD}@api.example", api_key="sk_test_key")
    assert PASSWORD not in str(caught.value) and "***@api.example" in str(caught.value)


def test_a_non_ascii_key_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="non-ASCII"):
        reconcile.Settings(api_key="sk_clé_secrète")


@pytest.mark.parametrize(
    "args",
    [
        ["--retry-timeout", "nan"],
        ["--rate-limit", "nan/min"],
        ["--rate-limit", "1e-300/min"],
        ["--api-url", f"https://user:{PASSWORD}@api.example"],
    ],
)
def test_the_cli_refuses_them_with_exit_1_and_one_line(tmp_path: Path, args: list[str]) -> None:
    write(tmp_path, "a.yaml", flat("a", "alpha"))
    result = run_cli("plan", str(tmp_path), *args, env={"MIXPEEK_API_KEY": "sk_test_key"})
    assert result.code == 1, result.output
    assert result.err.startswith("Error: ") and result.err.count("\n") == 1, result.err
    assert PASSWORD not in result.output


def test_wait_timeout_nan_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "m", "a.yaml", flat("a", "alpha"))
    state = seed_local(tmp_path / "state.json", "alpha")
    result = run_cli(
        "apply", "--local", "--local-state", str(state), "--auto-approve", "--wait-timeout",
        "nan", str(tmp_path / "m"),
    )  # fmt: skip
    assert result.code == 1 and "wait timeout" in result.err, result.output


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused_not_resolved_to_another_route(tmp_path: Path, name: str) -> None:
    state = tmp_path / "state.json"
    result = run_cli("history", "--local", "--local-state", str(state), "-n", "alpha", name)
    assert result.code == 1, result.err
    assert f"NAME '{name}': must not be '{name}' (it is a URL path segment)" in result.err


def test_a_non_ascii_namespace_is_refused_not_a_crash(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    result = run_cli("history", "--local", "--local-state", str(state), "-n", "prodüction", "a")
    assert result.code == 1 and "must be ASCII" in result.err, result.err
    assert "internal error" not in result.err
