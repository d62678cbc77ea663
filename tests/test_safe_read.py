"""taxsync.safe_read: the one reader of manifests, seeds, state files and saved plans."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taxsync import safe_read
from taxsync.safe_read import FileRefused, check_json_depth, read_json, read_regular, read_yaml

LIMIT = 1024


def refusal(call: object, *args: object) -> FileRefused:
    with pytest.raises(FileRefused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_a_fifo_without_a_writer_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "seed.yaml"
    os.mkfifo(fifo)
    assert str(refusal(read_regular, fifo, LIMIT)) == f"{fifo}: not a regular file (a FIFO)"


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"), ("/", "a folder")])
def test_devices_and_folders_are_refused(path: str, kind: str) -> None:
    assert refusal(read_regular, Path(path), LIMIT).reason == f"not a regular file ({kind})"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    refused = refusal(read_regular, tmp_path / "absent.json", LIMIT)
    assert str(refused) == f"{tmp_path / 'absent.json'}: cannot read: No such file or directory"


def test_the_cap_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * LIMIT)
    assert read_regular(path, LIMIT) == b"x" * LIMIT
    path.write_bytes(b"x" * (LIMIT + 1))
    assert refusal(read_regular, path, LIMIT).reason == "file is larger than 1024 bytes"
    assert safe_read.too_large(8 * 1024 * 1024) == "file is larger than 8 MiB"


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


@pytest.mark.parametrize("brackets", [("[", "]"), ('{"a":', "}")])
def test_json_depth_is_bounded_exactly(brackets: tuple[str, str]) -> None:
    opener, closer = brackets
    check_json_depth(nested(safe_read.MAX_DEPTH, opener, closer), "f.json")
    refused = refusal(check_json_depth, nested(safe_read.MAX_DEPTH + 1, opener, closer), "f.json")
    assert refused.reason == f"nested more than {safe_read.MAX_DEPTH} levels deep"


def test_brackets_inside_strings_do_not_count() -> None:
    text = '\\"' + "[" * 5000 + '\\\\"' + "{" * 500  # an escaped quote, a backslash
    check_json_depth(json.dumps({"text": text}).encode(), "f.json")


def test_a_5000_deep_json_file_is_an_error_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b'{"namespaces": ' + nested(5000) + b"}")
    refused = refusal(read_json, path, 1 << 20)
    assert str(refused) == f"{path}: nested more than {safe_read.MAX_DEPTH} levels deep"


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{\n  "a": 1,\n  oops\n}', encoding="utf-8")
    assert str(refusal(read_json, path, LIMIT)).startswith(f"{path}:3: not valid JSON: ")


def test_yaml_depth_counts_aliases(tmp_path: Path) -> None:
    """A shallow text can nest deep through aliases: the expanded depth counts."""
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 250)]
    path = tmp_path / "seed.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = refusal(read_yaml, path, 1 << 20)
    assert refused.reason == f"nested more than {safe_read.MAX_DEPTH} levels deep"
    assert refused.line is not None and refused.line > 1


def test_a_yaml_alias_bomb_is_measured_not_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 30)]
    path = tmp_path / "seed.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = refusal(read_yaml, path, 1 << 20)
    assert refused.reason == "YAML aliases expand this file by more than 200000 values"


def test_a_small_alias_budget_is_spent_exactly(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text("a: &a [x, y]\nb: *a\nc: *a\n", encoding="utf-8")
    assert read_yaml(path, LIMIT, max_alias_values=6) == {
        "a": ["x", "y"],
        "b": ["x", "y"],
        "c": ["x", "y"],
    }
    assert "more than 5 values" in refusal(read_yaml, path, LIMIT, 200, 5).reason


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text("namespaces:\n  p: [\n", encoding="utf-8")
    assert str(refusal(read_yaml, path, LIMIT)).startswith(f"{path}:3: not valid YAML: ")


def test_two_yaml_documents_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text("a: 1\n---\nb: 2\n", encoding="utf-8")
    assert "not valid YAML" in refusal(read_yaml, path, LIMIT).reason
