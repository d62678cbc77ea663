"""Fuzzing: no manifest text and no API response makes taxsync crash.

Manifests: whatever the text, ``load_tree`` returns taxonomies or raises ``ManifestError``
whose every problem names the file and a line inside it; what it accepts can be sent.
API responses: whatever the status, headers and body, the client returns a valid model or
raises a ``TaxsyncError`` (never KeyError, TypeError, ValidationError, OverflowError...).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxsync import wire
from taxsync.client import MixpeekClient, RetryPolicy
from taxsync.errors import ManifestError, TaxsyncError
from taxsync.manifest import load_tree
from taxsync.model import DesiredTaxonomy, ManifestMetadata, ManifestSpec
from tests.helpers import flat, hierarchical

ENVIRON = {"TAXSYNC_VAR_TEAM": "search", "TAXSYNC_VAR_EMPTY": "", "HOME": "/root"}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- manifests ---------------------------------------------------------------------------

# Pieces of YAML (and of things YAML refuses) to assemble into text.
TOKENS = [
    "apiVersion: taxsync/v1",
    "kind: Taxonomy",
    "metadata:",
    "spec:",
    "config:",
    "name: products",
    "namespace: production",
    "taxonomy_type: flat",
    "taxonomy_type: hierarchical",
    "retriever_id: ret_a",
    "hierarchical_nodes:",
    "collection_id: col_a",
    "parent_collection_id: col_a",
    "top_k: ",
    "- ",
    ": ",
    ":",
    "-",
    "? ",
    ",",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "&b ",
    "*a",
    "*b",
    "&r [*r]",
    "&m {k: *m}",
    "[" * 700 + "]" * 700,
    "<<: ",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!null ",
    "!!str ",
    "!!timestamp ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "!!python/object/apply:os.system ",
    "!Ref ",
    "! ",
    "${TAXSYNC_VAR_TEAM}",
    "${TAXSYNC_VAR_UNSET}",
    "${TAXSYNC_VAR_EMPTY:-fallback}",
    "${HOME}",
    "${HOME:-x}",
    "$${",
    "${",
    '"\\e"',
    '"\\x9b"',
    '"\\u202e"',
    '"\\t"',
    "\u202e",
    "\u2066",
    "\u200f",
    "'",
    '"',
    "\\",
    "#",
    "---",
    "...",
    "%YAML 1.1\n",
    "%TAG !e! tag:example.com,2000:\n",
    "|",
    ">-",
    "\n",
    "\n  ",
    "\n    ",
    "\r\n",
    "\r",
    "\t",
    " ",
    "~",
    "null",
    "yes",
    "0x1F",
    "0o17",
    "1_000",
    "1:30",
    ".inf",
    "-.inf",
    ".nan",
    "1.0e+999",
    "2024-02-30",
    "9" * 4400,
    "\x00",
    "\x07",
    "\x1b",
    "\x85",
    "\ufeff",
    "\u2028",
    "é",
    "😀",
]

yamlish_text = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=40).map(
    "".join
)


def _mutated(base: str, edits: list[tuple[int, int, str]]) -> str:
    """``base`` with each edit applied: at a position, delete some characters, insert a token."""
    text = base
    for position, deleted, token in edits:
        at = position % (len(text) + 1)
        text = text[:at] + token + text[at + deleted :]
    return text


mutated_manifest = st.builds(
    _mutated,
    st.sampled_from([flat(), hierarchical(), flat() + "---\n" + hierarchical("h")]),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 8), st.sampled_from(TOKENS)),
        min_size=1,
        max_size=4,
    ),
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "fuzz.yaml"


def check_loads_or_locates(path: Path, text: str) -> list[DesiredTaxonomy]:
    """The property: taxonomies, or a ManifestError whose problems all point into the file."""
    path.write_text(text, encoding="utf-8", newline="")
    # splitlines() breaks on a superset of YAML's line breaks: an upper bound on the lines.
    last_line = len(text.splitlines()) + 1
    try:
        return load_tree(path, ENVIRON)
    except ManifestError as exc:
        assert exc.problems
        assert str(exc).startswith(str(path))
        for problem in exc.problems:
            assert problem.file == str(path), problem
            if problem.message == "no taxonomy manifest found":
                continue  # about the tree, not a place in it
            assert problem.line is not None, problem
            assert 1 <= problem.line <= last_line, (problem, last_line)
            assert problem.col is None or problem.col >= 1, problem
        return []


def assert_sendable(desired: list[DesiredTaxonomy]) -> None:
    """What validates is what the API would accept: a JSON body its request model takes."""
    for taxonomy in desired:
        body = {
            "taxonomy_name": taxonomy.name,
            "description": taxonomy.description,
            "config": taxonomy.config,
            "metadata": taxonomy.metadata,
        }
        wire.CreateTaxonomyRequest.model_validate_json(json.dumps(body, allow_nan=False))


# What may never be in a loaded name, namespace or key (control, line-separator and bidi
# characters), and what may never be in any loaded string (all those but newline and tab).
NOT_IN_NAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
NOT_IN_TEXT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _strings(value: Any) -> Iterator[tuple[str, bool]]:
    """Every string in a JSON-like value, and whether it is a key."""
    if isinstance(value, str):
        yield value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key, True
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def assert_clean(desired: list[DesiredTaxonomy]) -> None:
    """What loads cannot mislead a reader, reach a secret, or break a URL or a header."""
    for taxonomy in desired:
        for name in (taxonomy.name, taxonomy.namespace, *taxonomy.previous_names):
            assert not NOT_IN_NAMES.search(name), repr(name)
            assert name not in ("", ".", ".."), repr(name)
        assert taxonomy.namespace.isascii() and "/" not in taxonomy.namespace
        data = [taxonomy.description, taxonomy.metadata, taxonomy.config]
        for text, is_key in _strings(data):
            assert not (NOT_IN_NAMES if is_key else NOT_IN_TEXT).search(text), repr(text)
            assert "/root" not in text  # ${HOME} is never expanded


@settings(FUZZ, max_examples=1000)
@given(text=st.one_of(yamlish_text, mutated_manifest))
def test_any_text_loads_or_is_located(scratch: Path, text: str) -> None:
    desired = check_loads_or_locates(scratch, text)
    assert_sendable(desired)
    assert_clean(desired)


# Arbitrary data, then put somewhere in an otherwise valid manifest.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        ["nan", "-inf", "1e999", "${TAXSYNC_VAR_UNSET}", "${TAXSYNC_VAR_TEAM}", "${HOME}", ""]
    ),
    st.sampled_from(["col_a", "ret_a", ".", "..", "a/b", "é", "\x1b", "\u202e", "\n", "\t"]),
    st.sampled_from([math.nan, math.inf, 10**400]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _like(old: Any) -> st.SearchStrategy[Any]:
    """A value of the same kind as ``old``, likelier to get past the type checks."""
    if isinstance(old, bool):
        return st.one_of(st.booleans(), st.none())
    if isinstance(old, int | float):
        edges = [0, 1, 50, 51, 1e308, math.nan, math.inf, -math.inf]
        return st.one_of(st.integers(-5, 500), st.floats(), st.sampled_from(edges))
    if isinstance(old, str):
        tricky = [
            "nan",
            "inf",
            "1e999",
            "${TAXSYNC_VAR_UNSET}",
            "${TAXSYNC_VAR_TEAM}",
            "$${X}",
            "",
            " ",
        ]
        tricky += ["col_", "ret_x", "${HOME}", ".", "..", "a/b", "é", "a\x1bb", "a\u202eb"]
        return st.one_of(st.text(max_size=12), st.sampled_from(tricky), st.just(old + "_2"))
    return json_values


def _field_names(*models: type[Any]) -> list[str]:
    return sorted({name for model in models for name in model.model_fields})


KNOWN_KEYS = _field_names(
    ManifestMetadata,
    ManifestSpec,
    wire.FlatConfig,
    wire.HierarchicalConfig,
    wire.SourceCollection,
    wire.EnrichmentField,
    wire.InputMapping,
    wire.HierarchicalNode,
    wire.StepAnalyticsConfig,
    wire.CovariateConfig,
) + ["apiVersion", "kind"]

FLAT_DOC: dict[str, Any] = yaml.safe_load(flat())
FLAT_DOC["spec"]["config"]["step_analytics"] = {
    "timestamp_field": "captured_at",
    "sequence_id_field": "session_id",
    "covariates": [{"field_path": "price", "covariate_type": "numeric", "name": "price"}],
}
FLAT_DOC["spec"]["metadata"]["weight"] = 0.5  # free-form: any JSON value goes
FLAT_DOC["spec"]["config"]["input_mappings"][0]["override"] = 1.5  # typed Any
HIERARCHICAL_DOC: dict[str, Any] = yaml.safe_load(hierarchical())
HIERARCHICAL_DOC["spec"]["config"]["cluster_overlap_threshold"] = 0.7  # a float field


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every place in a JSON-like value, the value itself (``()``) first."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def manifest_with_arbitrary_data(draw: st.DrawFn) -> str:
    """A valid manifest with 1-2 values replaced by arbitrary data, removed, or added to."""
    document = copy.deepcopy(draw(st.sampled_from([FLAT_DOC, HIERARCHICAL_DOC])))
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(list(_paths(document))[1:]))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        target = _at(document, path)
        if action == "delete":
            del _at(document, path[:-1])[path[-1]]
        elif action == "add" and isinstance(target, dict):
            key = draw(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8)))
            target[key] = draw(json_values)
        elif action == "add" and isinstance(target, list):
            target.append(draw(json_values))
        else:
            _at(document, path[:-1])[path[-1]] = draw(st.one_of(json_values, _like(target)))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=draw(st.booleans()))


@settings(FUZZ, max_examples=600)
@given(text=manifest_with_arbitrary_data())
def test_arbitrary_data_in_a_manifest_loads_or_is_located(scratch: Path, text: str) -> None:
    desired = check_loads_or_locates(scratch, text)
    assert_sendable(desired)
    assert_clean(desired)


def test_the_fuzzed_manifests_start_valid(scratch: Path) -> None:
    """The envelope the fuzzers damage is itself valid, so damage is all they test."""
    for document in (FLAT_DOC, HIERARCHICAL_DOC):
        (taxonomy,) = check_loads_or_locates(scratch, yaml.safe_dump(document, sort_keys=False))
        assert_sendable([taxonomy])


# --- API responses -------------------------------------------------------------------------

SECRET = "sk_fuzz_secret_key"
RETRY = RetryPolicy(total_seconds=0.5, base_delay=0.001, max_delay=0.01)

TAXONOMY: dict[str, Any] = {
    "taxonomy_id": "tax_1",
    "version": 1,
    "taxonomy_name": "products",
    "config": {"taxonomy_type": "flat", "retriever_id": "ret_a"},
    "metadata": {"managed_by": "taxsync"},
}
VALID_BODIES: dict[str, Any] = {
    "namespace": {"namespace_id": "ns_1", "namespace_name": "production"},
    "get": TAXONOMY,
    "create": TAXONOMY,
    "list": {"results": [TAXONOMY], "total_count": 1, "pagination": {"next_cursor": None}},
}
CALLS: dict[str, Callable[[MixpeekClient], Awaitable[Any]]] = {
    "namespace": lambda c: c.get_namespace("production"),
    "get": lambda c: c.get_taxonomy("production", "products"),
    "create": lambda c: c.create_taxonomy("production", {"taxonomy_name": "products"}),
    "list": lambda c: c.list_taxonomies("production"),
}
EXPECTED: dict[str, tuple[type[Any], ...]] = {
    "namespace": (wire.NamespaceModel,),
    "get": (wire.TaxonomyResponse, type(None)),
    "create": (wire.TaxonomyResponse,),
    "list": (list,),
}


@st.composite
def damaged(draw: st.DrawFn, body: Any) -> Any:
    """``body`` with one value replaced by arbitrary JSON, or one key removed."""
    body = copy.deepcopy(body)
    path = draw(st.sampled_from(list(_paths(body))))
    if not path:
        return draw(json_values)
    parent = _at(body, path[:-1])
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return body


retry_hints = st.one_of(
    st.sampled_from([10**400, -(10**400), 1e308, 0.001, "soon", None, True, [1]]),
    st.integers(),
    st.floats(),
)


@st.composite
def error_envelope(draw: st.DrawFn) -> Any:
    details = {"retry_after_seconds": draw(retry_hints), "retryable": draw(json_scalars)}
    envelope = {
        "success": False,
        "status": draw(st.integers(100, 599)),
        "error": {"message": draw(st.text(max_size=20)), "type": "Err", "details": details},
    }
    return draw(damaged(envelope)) if draw(st.booleans()) else envelope


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def body_for(call: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=40),
        json_values.map(_encode),
        damaged(VALID_BODIES[call]).map(_encode),
        error_envelope().map(_encode),
        st.just(_encode(VALID_BODIES[call])),
        st.just(b'{"results": [], "total_count": 0, "pagination": {"next_cursor": "c1"}}'),
    )


statuses = st.one_of(
    st.sampled_from([200, 201, 204, 301, 400, 401, 404, 409, 422, 429, 500, 502, 503]),
    st.integers(100, 599),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": st.sampled_from(["0", "-1", "nan", "inf", "1e400", "soon", "0.001"]),
        "Content-Type": st.sampled_from(
            ["application/json", "text/html", "application/json; charset=bogus"]
        ),
        "Content-Encoding": st.sampled_from(["gzip", "br", "deflate", "identity", "zstd"]),
    },
)


Answer = tuple[int, dict[str, str], bytes]
MAX_ANSWERS = 10
ENOUGH: Answer = (400, {}, _encode({"status": 400, "error": {"message": "enough", "type": "E"}}))


def responses(call: str) -> st.SearchStrategy[list[Answer]]:
    """One to three answers, served in turn; the last one repeats (retries see it again).

    After ``MAX_ANSWERS`` requests the server says 400, so retries never use the budget up.
    """
    anything: st.SearchStrategy[Answer] = st.tuples(statuses, headers, body_for(call))
    # Errors the client retries, so that the server's retry hints are read.
    no_headers: dict[str, str] = {}
    retried: st.SearchStrategy[Answer] = st.tuples(
        st.sampled_from([429, 500, 502, 503]), st.just(no_headers), error_envelope().map(_encode)
    )
    return st.lists(st.one_of(anything, retried), min_size=1, max_size=3)


def call_with(call: str, answers: list[Answer]) -> Any:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, extra, content = (
            answers[min(len(seen), len(answers)) - 1] if len(seen) <= MAX_ANSWERS else ENOUGH
        )
        # A stream, as off the wire: the client, not this handler, decodes the body.
        return httpx.Response(status, headers=extra, stream=httpx.ByteStream(content))

    async def go() -> Any:
        transport = httpx.MockTransport(handler)
        async with MixpeekClient(
            "https://api.test", SECRET, transport=transport, retry=RETRY
        ) as client:
            return await CALLS[call](client)

    return asyncio.run(go())


@pytest.mark.parametrize("call", list(CALLS))
@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_any_api_response_gives_a_model_or_a_taxsync_error(call: str, data: st.DataObject) -> None:
    answers = data.draw(responses(call), label="answers")
    try:
        result = call_with(call, answers)
    except TaxsyncError as exc:
        # A message naming the request that failed, and never the key.
        assert re.match(r"(GET|POST) /v1/\S+", str(exc)), str(exc)
        assert SECRET not in str(exc)
    else:
        assert isinstance(result, EXPECTED[call])
        if call == "list":
            assert all(isinstance(t, wire.TaxonomyResponse) for t in result)


@pytest.mark.parametrize("call", list(CALLS))
def test_the_fuzzed_responses_start_valid(call: str) -> None:
    """The bodies the fuzzer damages parse, so the damage is what it tests."""
    result = call_with(call, [(200, {}, _encode(VALID_BODIES[call]))])
    assert isinstance(result, EXPECTED[call]) and result is not None
