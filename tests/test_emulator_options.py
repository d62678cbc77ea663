"""``EmulatorOptions``: what ``local serve``'s flags turn into (without listening), and the
settings it refuses before any emulator is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import taxsync.emulator
from taxsync.emulator import EmulatorOptions, Faults, Store, create_app, load_seed
from tests.helpers import run_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SEED = REPO_ROOT / "examples" / "local-seed.yaml"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``local serve`` would have served, in place of serving it."""
    calls: list[dict[str, Any]] = []

    def record(options: EmulatorOptions, host: str, port: int) -> None:
        calls.append({"options": options, "host": host, "port": port})

    monkeypatch.setattr(taxsync.emulator, "serve", record)
    return calls


def test_local_serve_defaults_are_the_emulator_defaults(served: list[dict[str, Any]]) -> None:
    assert run_cli("local", "serve").code == 0
    assert served == [
        {
            "options": EmulatorOptions(task_polls=1, task_outcome="completed"),
            "host": "127.0.0.1",
            "port": 8080,
        }
    ]
    options = served[0]["options"]
    assert options.refuse_empty_backfill and options.namespaces == ()


def test_every_local_serve_flag_reaches_its_option(
    served: list[dict[str, Any]], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    done = run_cli(
        "local",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--state",
        str(state),
        "--namespace",
        "production",
        "--namespace",
        "staging",
        "--faults",
        "latency=20ms,429=0.1,seed=7",
        "--max-page-size",
        "5",
        "--ready-after-reads",
        "0",
        "--ready-after-seconds",
        "1.5",
        "--seed",
        str(EXAMPLE_SEED),
        "--lenient-taxonomy-refs",
        "--applied-taxonomy-delete",
        "strict",
        "--empty-backfill",
        "accept",
        "--task-polls",
        "4",
        "--task-outcome",
        "canceled",
        env={"TAXSYNC_LOCAL_API_KEY": "sk_local_only"},
    )
    assert done.code == 0, done.err
    assert served == [
        {
            "options": EmulatorOptions(
                state_path=state,
                namespaces=("production", "staging"),
                api_key="sk_local_only",
                faults=Faults(latency_ms=20, rate_429=0.1, seed=7),
                max_page_size=5,
                ready_after_reads=0,
                ready_after_seconds=1.5,
                seed=load_seed(EXAMPLE_SEED),
                lenient_taxonomy_refs=True,
                applied_taxonomy_delete="strict",
                refuse_empty_backfill=False,
                task_polls=4,
                task_outcome="canceled",
            ),
            "host": "0.0.0.0",
            "port": 0,
        }
    ]


def test_a_bad_fault_spec_is_one_error_line(served: list[dict[str, Any]]) -> None:
    done = run_cli("local", "serve", "--faults", "429=2")
    assert done.code == 1
    assert done.err.startswith("Error: --faults: ") and len(done.err.splitlines()) == 1
    assert served == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_page_size": 0}, "max_page_size"),
        ({"default_page_size": 0}, "default_page_size"),
        ({"ready_after_reads": -1}, "ready_after_reads"),
        ({"applied_taxonomy_delete": "cascade"}, "applied_taxonomy_delete"),
    ],
)
def test_impossible_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmulatorOptions(**settings)


def test_a_store_and_a_state_file_are_one_too_many(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        create_app(EmulatorOptions(state_path=tmp_path / "s.json"), store=Store())


def test_options_keep_one_shape_and_never_show_the_key() -> None:
    options = EmulatorOptions(state_path="s.json", namespaces=["a"], api_key="sk_hidden_key")
    assert options.state_path == Path("s.json") and options.namespaces == ("a",)
    assert "sk_hidden_key" not in repr(options)
