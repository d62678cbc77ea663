"""The copied contract fixtures still agree with the pinned SDK (mixpeek==1.3.783).

They are copies (tests/contract/README.md), so a refresh that pastes a payload from another
SDK release, or hand-edits one, should fail here rather than in an emulator test that trusts
them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mixpeek.models
import pytest

from tests.integration.contract_schema import CONTRACT, EXAMPLES, schema_errors

DEFS: dict[str, Any] = json.loads((CONTRACT / "collections.schema.json").read_text("utf-8"))[
    "$defs"
]
FILES = sorted(EXAMPLES.glob("*.json"))


def test_the_contract_is_the_pinned_sdks() -> None:
    assert mixpeek.__version__ == "1.3.783"  # the version tests/contract/README.md names
    schema = json.loads((CONTRACT / "collections.schema.json").read_text("utf-8"))
    assert "mixpeek Python SDK 1.3.783" in schema["description"]
    assert FILES, f"no examples under {EXAMPLES}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_example_loads_with_its_sdk_model_and_fits_the_schema(path: Path) -> None:
    def_name = path.name.split(".")[0]
    payload = json.loads(path.read_text("utf-8"))
    # The schema names the SDK class it was derived from; the two taxonomy requests come from
    # the taxonomies half of the contract, whose schema the suite does not read.
    sdk_name = DEFS.get(def_name, {}).get("x-sdk-model", f"mixpeek.models.{def_name}")
    if sdk_name.startswith("mixpeek.models."):
        model = getattr(mixpeek.models, sdk_name.rsplit(".", 1)[1])
        assert model.from_dict(payload) is not None
    else:  # PatchCollectionRequest is an untyped body in the SDK: check its typed entries
        for entry in payload.get("taxonomy_applications") or []:
            mixpeek.models.TaxonomyApplicationConfigInput.from_dict(entry)
    if def_name in DEFS:
        assert schema_errors(payload, def_name) == []
