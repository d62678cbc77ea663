"""Errors that teach: a misspelt key or enum value names what was written and the close
match the models offer; every type error names the bad value, escaped and shortened; the
first error has the ``Error:`` line to itself, then the rest, then the count; no value can
break a line of the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taxsync.manifest.messages import MAX_SHOWN
from tests.conftest import StartEmulator
from tests.helpers import CliRun, env, run_cli, write

MANIFEST = """\
apiVersion: taxsync/v1
kind: Taxonomy
metadata:
  name: products
  namespace: production
spec:
  {spec_extra}
  config:
    taxonomy_type: {taxonomy_type}
    retriever_id: ret_clip_v1
    {config_extra}
    input_mappings:
      - {{input_key: image_vector, source_type: vector, path: features.clip}}
    source_collection:
      collection_id: col_products_v1
      enrichment_fields:
        - {{field_path: label, merge_mode: {merge_mode}}}
"""


def manifest(
    *,
    taxonomy_type: str = "flat",
    merge_mode: str = "replace",
    config_extra: str = "top_k: 1",
    spec_extra: str = "wait: false",
) -> str:
    return MANIFEST.format(
        taxonomy_type=taxonomy_type,
        merge_mode=merge_mode,
        config_extra=config_extra,
        spec_extra=spec_extra,
    )


def validate(tmp_path: Path, text: str) -> CliRun:
    write(tmp_path, "a.yaml", text)
    run = run_cli("validate", str(tmp_path))
    assert run.code == 1, run.output
    assert "Traceback" not in run.err and "internal error" not in run.err
    return run


def test_a_misspelt_key_names_the_key_it_meant(tmp_path: Path) -> None:
    run = validate(tmp_path, manifest(config_extra="topk: 3"))
    assert run.err == (
        f"Error: {tmp_path}/a.yaml:11:5: spec.config.topk: unknown key 'topk'; "
        "did you mean 'top_k'?\n"
    )


def test_an_unknown_key_without_a_close_match_lists_the_keys_of_a_small_mapping(
    tmp_path: Path,
) -> None:
    text = manifest().replace("{field_path: label,", "{field_path: label, zzz: 1,")
    run = validate(tmp_path, text)
    assert "unknown key 'zzz' (expected one of: field_path, target_field, merge_mode)" in run.err


def test_a_misspelt_enum_value_is_named_with_the_value_it_meant(tmp_path: Path) -> None:
    run = validate(tmp_path, manifest(merge_mode="apend"))
    assert "merge_mode: Input should be 'replace' or 'append', got 'apend'" in run.err
    assert run.err.rstrip().endswith("did you mean 'append'?")


def test_a_misspelt_taxonomy_type_is_reported_at_its_line_with_the_types(
    tmp_path: Path,
) -> None:
    run = validate(tmp_path, manifest(taxonomy_type="flt"))
    assert run.err == (
        f"Error: {tmp_path}/a.yaml:9:5: spec.config.taxonomy_type: 'flt' is not a taxonomy "
        "type (flat, hierarchical); did you mean 'flat'?\n"
    )


@pytest.mark.parametrize(
    ("spec_extra", "shown"),
    [
        ("wait: sometimes", "got 'sometimes'"),
        ("backfill: always", "got 'always'"),
        ("description: [a, b]", "spec.description: Input should be a valid string, got a list"),
    ],
)
def test_every_type_or_enum_error_names_the_bad_value(
    tmp_path: Path, spec_extra: str, shown: str
) -> None:
    assert shown in validate(tmp_path, manifest(spec_extra=spec_extra)).err


def test_a_long_bad_value_is_shortened_and_its_control_characters_escaped(
    tmp_path: Path,
) -> None:
    long_value = "x" * 200
    run = validate(tmp_path, manifest(merge_mode=f'"ap\\tend\\n{long_value}"'))
    assert run.err.count("\n") == 1, run.err
    quoted = run.err.split("got ", 1)[1].rstrip("\n")
    assert quoted.startswith("'ap\\tend\\nxxx") and quoted.endswith("x…'")
    assert len(quoted) == MAX_SHOWN + 4  # cut to MAX_SHOWN, two escapes, two quotes


def test_the_first_error_has_its_line_then_the_rest_then_the_count(tmp_path: Path) -> None:
    text = manifest(merge_mode="apend", config_extra="topk: 3", spec_extra="backfil: onChange")
    lines = validate(tmp_path, text).err.splitlines()
    assert lines == [
        f"Error: {tmp_path}/a.yaml:7:3: spec.backfil: unknown key 'backfil'; "
        "did you mean 'backfill'?",
        f"  {tmp_path}/a.yaml:11:5: spec.config.topk: unknown key 'topk'; did you mean 'top_k'?",
        f"  {tmp_path}/a.yaml:17:31: spec.config.source_collection.enrichment_fields[0]."
        "merge_mode: Input should be 'replace' or 'append', got 'apend'; did you mean 'append'?",
        "  (3 problems in all)",
    ]


def test_plan_against_the_emulator_teaches_the_same_and_sends_nothing(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    write(tmp_path, "a.yaml", manifest(taxonomy_type="hierarchcal", spec_extra="wiat: true"))
    run = run_cli("plan", str(tmp_path), env=env(srv))
    assert run.code == 1, run.output
    first, second, count = run.err.splitlines()
    assert first.endswith("spec.wiat: unknown key 'wiat'; did you mean 'wait'?")
    assert second.endswith(
        "is not a taxonomy type (flat, hierarchical); did you mean 'hierarchical'?"
    )
    assert count == "  (2 problems in all)"
    assert srv.writes() == []


def test_a_newline_in_a_seed_field_never_breaks_the_error_line(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    twice = [{"collection_id": f"col_{x}", "collection_name": "a\nb c"} for x in "ab"]
    seed.write_text(json.dumps({"namespaces": {"prod": {"collections": twice}}}))
    run = run_cli("local", "seed", str(seed), "--local-state", str(tmp_path / "state.json"))
    assert run.code == 1
    assert run.err.count("\n") == 1, run.err
    assert "collection_name 'a\\nb c' appears more than once" in run.err


def test_a_seed_value_cannot_forge_a_detail_line(tmp_path: Path) -> None:
    """A line break followed by the two spaces that start a detail line, in a name (quoted)
    and in a key (escaped): the error keeps only the lines taxsync wrote."""
    seed = tmp_path / "seed.json"
    forged = "a\n  Error: forged"
    twice = [{"collection_id": f"col_{x}", "collection_name": forged} for x in "ab"]
    keyed = [{"collection_id": "col_c", "collection_name": "abc", forged: 1}]
    for collections, lines in ((twice, 1), (keyed, 2)):
        seed.write_text(json.dumps({"namespaces": {"prod": {"collections": collections}}}))
        run = run_cli("local", "seed", str(seed), "--local-state", str(tmp_path / "s.json"))
        assert run.code == 1
        assert len(run.err.splitlines()) == lines, run.err
        assert "Error: forged" not in run.err.replace("\\n  Error: forged", "").replace(
            "\\u000a  Error: forged", ""
        ), run.err


def test_a_seed_error_keeps_its_detail_lines_and_escapes_a_newline_in_a_key(
    tmp_path: Path,
) -> None:
    seed = tmp_path / "seed.json"
    bad = {"collection_id": "col_a", "collection_name": "ab"}
    seed.write_text(json.dumps({"namespaces": {"prod\nfake": {"collections": [bad]}}}))
    run = run_cli("local", "seed", str(seed), "--local-state", str(tmp_path / "state.json"))
    assert run.code == 1
    assert run.err.splitlines() == [
        f"Error: {seed}: invalid seed",
        "  namespaces.prod\\u000afake.collections.0.collection_name: String should have at "
        "least 3 characters",
    ]
