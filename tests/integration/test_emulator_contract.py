"""Where the emulator follows the contract (docs/api-contract.md, identifiers in paths and
timestamps across versions) rather than a guess:
``created_at`` is the record's, ``%2F`` names one segment, integer fields are strict ints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import StartEmulator
from tests.helpers import Api, _flat_config


def _flat(**config: Any) -> dict[str, Any]:
    return {**_flat_config(1), **config}


def test_created_at_is_the_records_on_every_version(emulator: StartEmulator) -> None:
    srv = emulator()
    api = Api(srv)
    made = api.create("production", {"taxonomy_name": "t", "config": _flat()})
    api.new_version("production", made["taxonomy_id"], _flat(top_k=2))
    listing = api.call("GET", f"/v1/taxonomies/{made['taxonomy_id']}/versions", "production")
    times = {v["created_at"] for v in listing["results"]}
    head = api.get("production", made["taxonomy_id"])
    assert times == {made["created_at"]} and head["created_at"] == made["created_at"]


def test_a_name_with_a_slash_is_reachable_percent_encoded(emulator: StartEmulator) -> None:
    srv = emulator()
    api = Api(srv)
    made = api.create("production", {"taxonomy_name": "places/regions", "config": _flat()})
    assert api.get("production", "places%2Fregions")["taxonomy_id"] == made["taxonomy_id"]
    patched = api.patch("production", "places%2Fregions", {"description": "d"})
    assert patched["description"] == "d"
    # Unencoded, it is another path: not this taxonomy.
    raw = httpx.get(f"{srv.url}/v1/taxonomies/places/regions", headers=srv.headers("production"))
    assert raw.status_code == 404
    api.delete("production", "places%2Fregions")
    assert api.names("production") == []


@pytest.mark.parametrize("bad", ["2", True, 2.0])
@pytest.mark.parametrize("field", ["top_k"])
def test_integer_fields_refuse_strings_and_booleans(
    emulator: StartEmulator, field: str, bad: Any
) -> None:
    srv = emulator()
    body = {"taxonomy_name": "t", "config": _flat(**{field: bad})}
    answer = httpx.post(f"{srv.url}/v1/taxonomies", json=body, headers=srv.headers("production"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["type"] == "ValidationError"


@pytest.mark.parametrize("bad", ["1", False])
@pytest.mark.parametrize("field", ["execution_phase", "priority"])
def test_application_integers_are_strict(emulator: StartEmulator, field: str, bad: Any) -> None:
    srv = emulator()
    api = Api(srv)
    made = api.create("production", {"taxonomy_name": "t", "config": _flat()})
    entry = {"taxonomy_id": made["taxonomy_id"], field: bad}
    answer = httpx.patch(
        f"{srv.url}/v1/collections/col_a",
        json={"taxonomy_applications": [entry]},
        headers=srv.headers("production"),
    )
    assert answer.status_code == 422, answer.text
