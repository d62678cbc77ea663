"""The manifest JSON Schema where editors find it: schema/taxsync-v1.schema.json and the
``# yaml-language-server: $schema=…`` modelines of the example manifests.

The examples are checked against the committed schema as they are written, before any
``${TAXSYNC_VAR_…}`` expansion, because that is the text an editor validates: an example
that shows red squiggles in VS Code is a broken example even if ``taxsync validate`` (which
expands first) accepts it. The schema therefore only sees expressions where it allows any
string (``spec.metadata`` values, descriptions, names), which is where the examples use them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from taxsync import names
from taxsync.errors import ManifestError
from taxsync.manifest import load_tree
from tests import helpers
from tests.helpers import write

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = REPO_ROOT / "schema" / "taxsync-v1.schema.json"
EXAMPLES = REPO_ROOT / "examples" / "taxonomies"
MODELINE_PREFIX = "# yaml-language-server: $schema="
REGENERATE = "taxsync schema > schema/taxsync-v1.schema.json"

# What JSON Schema draft-07 validators also understand. The Red Hat YAML language server
# (VS Code's YAML extension and most other editors) validates with draft-07 semantics and
# silently ignores keywords it does not know (prefixItems, unevaluatedProperties, …), so a
# schema using them would let editors accept manifests taxsync refuses.
DRAFT_07_KEYWORDS = {
    "$schema", "$ref", "$defs", "definitions", "title", "description", "default",
    "examples", "type", "enum", "const", "properties", "additionalProperties", "required",
    "patternProperties", "propertyNames", "minProperties", "maxProperties", "items",
    "additionalItems", "minItems", "maxItems", "uniqueItems", "contains", "minLength",
    "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "anyOf", "oneOf", "allOf", "not", "if", "then", "else",
    "readOnly", "writeOnly",
}  # fmt: skip


def example_files() -> list[Path]:
    files = sorted([*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")])
    assert files, f"no example manifests under {EXAMPLES}"
    return files


def documents(path: Path) -> list[tuple[int, str]]:
    """Each document of a YAML file: (the 0-based line its content starts on, its text).

    The text keeps the document's own lines where they are in the file (earlier lines are
    blank), so a line a validator reports is the line in the example.
    """
    text = path.read_text(encoding="utf-8")
    found = []
    for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if node is None:
            continue
        start, end = node.start_mark, node.end_mark
        padding = "\n" * start.line + " " * start.column
        found.append((start.line, padding + text[start.index : end.index] + "\n"))
    return found


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_committed_schema_is_what_taxsync_schema_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "taxsync", "schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    committed = SCHEMA.read_text(encoding="utf-8")
    assert committed == printed, (
        f"{SCHEMA.relative_to(REPO_ROOT)} is not the output of `taxsync schema` (the "
        f"manifest models changed): regenerate it with `{REGENERATE}` and commit it"
    )


def test_committed_schema_passes_its_metaschema() -> None:
    result = check_jsonschema("--check-metaschema", str(SCHEMA))
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_schema_uses_only_keywords_draft_07_editors_understand() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    unknown: set[str] = set()

    def walk(node: object, where: str) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}/{index}")
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("properties", "$defs", "definitions", "patternProperties"):
                    for name, sub in value.items():  # names, not keywords
                        walk(sub, f"{where}/{key}/{name}")
                elif key in ("enum", "const", "default", "examples", "defaultSnippets"):
                    continue  # values (and the editor's snippets), not schemas
                else:
                    if key not in DRAFT_07_KEYWORDS:
                        unknown.add(f"{where}/{key}")
                    walk(value, f"{where}/{key}")

    walk(schema, "#")
    assert not unknown, f"keywords draft-07 editors ignore: {sorted(unknown)}"
    # References are JSON pointers into the file, which every draft resolves the same way.
    refs = json.dumps(schema).count('"$ref": "#/$defs/')
    assert refs == json.dumps(schema).count('"$ref"'), "a $ref that is not #/$defs/…"


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_document_starts_with_the_modeline(path: Path) -> None:
    """The modeline of each document points at the committed schema.

    The YAML language server reads a modeline per document (from the comments heading it),
    so a document after `---` needs its own: without it the editor checks nothing there.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    relative = os.path.relpath(SCHEMA, path.parent).replace(os.sep, "/")
    expected = MODELINE_PREFIX + relative
    headers = [0] + [index + 1 for index, line in enumerate(lines) if line.startswith("---")]
    for header in headers:
        assert lines[header] == expected, (
            f"{path.relative_to(REPO_ROOT)}:{header + 1}: expected the modeline "
            f"{expected!r} as the first line of the document, found {lines[header]!r}"
        )
    assert (path.parent / relative).resolve() == SCHEMA.resolve()


def test_every_example_document_validates_against_the_committed_schema(
    tmp_path: Path,
) -> None:
    """check-jsonschema reads one document per file, so each document gets a file of its
    own, padded so that reported lines are the example's lines."""
    written: dict[Path, str] = {}
    for path in example_files():
        relative = path.relative_to(EXAMPLES)
        docs = documents(path)
        assert docs, f"{relative}: no documents"
        for index, (line, text) in enumerate(docs, start=1):
            target = tmp_path / relative.parent / f"{relative.stem}.doc{index}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written[target] = f"{relative} (document {index}, from line {line + 1})"
    assert len(written) >= 4  # the examples hold four documents (five taxonomies) in three files
    result = check_jsonschema("--schemafile", str(SCHEMA), *map(str, written))
    report = result.stdout + result.stderr
    for target, origin in written.items():
        report = report.replace(str(target), origin)
    assert result.returncode == 0, report


def test_the_examples_with_modelines_still_validate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taxsync", "validate", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 taxonomy manifest(s) in 3 file(s) are valid." in result.stdout


# --- what the editor shows and completes --------------------------------------------------


def committed_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def properties_of(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every property schema anywhere in the schema: (where, key, its schema)."""

    def walk(node: object, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{where}/{index}")
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    for name, sub in value.items():
                        yield where, name, sub
                        yield from walk(sub, f"{where}/{name}")
                elif key not in ("enum", "const", "default", "examples", "defaultSnippets"):
                    yield from walk(value, f"{where}/{key}")

    return walk(schema, "#")


def test_every_property_has_a_description_and_reads_as_its_key() -> None:
    found = list(properties_of(committed_schema()))
    assert len(found) > 74
    undescribed = [f"{where}/{key}" for where, key, prop in found if not prop.get("description")]
    assert undescribed == []
    assert [f"{w}/{k}" for w, k, prop in found if prop.get("title") != k] == []


def test_no_property_completes_to_an_empty_or_null_value() -> None:
    """The YAML language server inserts an empty value for a key whose schema offers
    several enum values (even with a default it could insert), and ``null`` for a null
    default."""
    found = list(properties_of(committed_schema()))
    several = [f"{w}/{k}" for w, k, p in found if len(p.get("enum", [])) > 1 and "default" in p]
    nulls = [f"{w}/{k}" for w, k, prop in found if "default" in prop and prop["default"] is None]
    assert (several, nulls) == ([], [])
    spec = committed_schema()["$defs"]["ManifestSpec"]["properties"]
    assert spec["backfill"]["default"] == "never"


def name_reference_places(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each property (or list of) that takes ``{name: …}``: its id alternative, by place."""
    places = {}
    for where, key, prop in properties_of(schema):
        target = prop
        for choice in prop.get("anyOf", []):
            if choice.get("type") == "array":
                target, key = choice["items"], f"{key}[]"
        choices = target.get("anyOf", [])
        if {"$ref": "#/$defs/NameReference"} in choices:
            places[f"{where}/{key}"] = next(c for c in choices if c.get("type") == "string")
    return places


def reference_documents() -> list[dict[str, Any]]:
    """A flat and a hierarchical manifest that hold an id at every place
    ``taxsync.names`` knows a reference can be."""
    flat_doc = yaml.safe_load(helpers.flat())
    flat_doc["spec"]["appliedTo"] = [
        {"collection": "col_images", "target_collection_id": "col_enriched"}
    ]
    tree = yaml.safe_load(helpers.hierarchical())
    config = tree["spec"]["config"]
    config |= {"retriever_id": "ret_tree", "inference_collections": ["col_docs"]}
    config["hierarchical_nodes"][1]["retriever_id"] = "ret_node"
    return [flat_doc, tree]


def test_every_id_field_has_the_pattern_the_loader_enforces(tmp_path: Path) -> None:
    """At every place the code resolves references (``names.held``), a malformed id is
    refused by ``taxsync validate`` and underlined by the schema alike; a good one passes
    both. The schema holds exactly as many reference places as the documents exercise."""
    schema = committed_schema()
    validator = jsonschema.Draft202012Validator(schema)
    places = name_reference_places(schema)
    assert all("pattern" in choice for choice in places.values()), places
    checked = set()
    for document in reference_documents():
        assert not list(validator.iter_errors(document))
        spec = document["spec"]
        for slot, _ in names.held(spec["config"], spec.get("appliedTo") or []):
            checked.add((spec["config"]["taxonomy_type"], re.sub(r"\d+", "", slot.spec_path)))
            broken = copy.deepcopy(document)
            holder = broken["spec"]
            for part in slot.path[:-1]:
                holder = holder[part]
            holder[slot.path[-1]] = "not-an-id"
            write(tmp_path, "a.yaml", yaml.safe_dump(broken))
            refused = loader_problems(tmp_path)
            assert f"spec.{slot.spec_path}: 'not-an-id' is not a" in refused, slot
            assert list(validator.iter_errors(broken)), f"the schema accepts {slot.spec_path}"
    assert len(checked) == len(places)


def loader_problems(root: Path) -> str:
    try:
        load_tree(root)
    except ManifestError as error:
        return "\n".join(str(problem) for problem in error.problems)
    return ""


def snippets(node: object, where: str = "#") -> Iterator[tuple[str, object, dict[str, Any]]]:
    """Every snippet of the schema: (where, the schema it completes, its body)."""
    if isinstance(node, dict):
        for snippet in node.get("defaultSnippets", []):
            yield where, node, snippet["body"]
        for key, value in node.items():
            if key not in ("defaultSnippets", "enum", "const", "default"):
                yield from snippets(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from snippets(item, f"{where}/{index}")


def inserted(body: object) -> object:
    """What a snippet inserts: each ``${n:text}`` tab stop as its text."""
    if isinstance(body, str):
        return re.sub(r"\$\{\d+:([^}]*)\}", r"\1", body)
    if isinstance(body, dict):
        return {key: inserted(value) for key, value in body.items()}
    if isinstance(body, list):
        return [inserted(value) for value in body]
    return body


def test_every_snippet_inserts_a_valid_value(tmp_path: Path) -> None:
    schema = committed_schema()
    found = list(snippets(schema))
    kinds = {where for where, _, _ in found}
    assert {"#", "#/$defs/ManifestSpec", "#/$defs/ManifestSpec/properties/config"} <= kinds
    for where, target, body in found:
        value = inserted(body)
        assert "null" not in json.dumps(value) and '""' not in json.dumps(value), where
        part = {**target, "$defs": schema["$defs"]} if where != "#" else schema
        errors = [e.message for e in jsonschema.Draft202012Validator(part).iter_errors(value)]
        assert errors == [], (where, errors)
    documents_ = [inserted(body) for where, _, body in found if where == "#"]
    assert {d["spec"]["config"]["taxonomy_type"] for d in documents_} == {"flat", "hierarchical"}
    for index, document in enumerate(documents_):
        write(tmp_path / str(index), "a.yaml", yaml.safe_dump(document))
        assert len(load_tree(tmp_path / str(index))) == 1
