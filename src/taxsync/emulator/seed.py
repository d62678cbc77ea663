"""Seed files: the collections and retrievers of each namespace, which the emulator has no
route to create (the real API creates them from buckets and extractors).

A seed file is YAML or JSON::

    namespaces:
      production:
        collections:
          - {collection_id: col_products_v1, collection_name: products}
          - collection_id: col_catalog_categories
            collection_name: catalog_categories
            document_count: 214
            taxonomy_applications: [{taxonomy_id: tax_8f3k2m1q9z}]
        retrievers:
          - {retriever_id: ret_clip_v1, collection_ids: [col_catalog_categories]}

A collection needs ``collection_id`` (``col_…``) and ``collection_name`` (3 to 100
characters); ``document_count`` defaults to 0, ``feature_extractor`` to a text extractor
and ``source`` to a bucket named after the collection. Any other field of
``CollectionResponse`` may be given, except the computed ``taxonomy_count`` and
``retriever_count``. A retriever needs ``retriever_id`` (``ret_…``); its name defaults to
the id without ``ret_``, ``collection_ids`` to none and ``stages`` to one
``feature_search`` stage. Ids and names are unique per namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taxsync import safe_read
from taxsync.identifiers import namespace_problem, quoted, shown
from taxsync.wire import (
    CollectionId,
    CollectionResponse,
    RetrieverId,
    RetrieverModelOutput,
    TaxonomyApplicationConfigInput,
    application_entries,
)

MAX_SEED_BYTES = 8 * 1024 * 1024
_COMPUTED_COLLECTION_FIELDS = ("taxonomy_count", "retriever_count")
_COMPUTED_RETRIEVER_FIELDS = ("collection_identifiers",)


# The namespace key whose collections and retrievers every namespace gets, including those
# created later by the same emulator (handy for tests and demos; not persisted).
EVERY_NAMESPACE = "*"


class SeedError(ValueError):
    """A seed file that cannot be read or is not valid; the message names the file and field."""


class _SeedCollection(BaseModel):
    """One seeded collection: the required fields, then any other CollectionResponse field."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    collection_id: CollectionId
    collection_name: str = Field(min_length=3, max_length=100)
    document_count: int = Field(default=0, ge=0)
    taxonomy_applications: list[TaxonomyApplicationConfigInput] | None = None

    @model_validator(mode="after")
    def _known_fields_only(self) -> _SeedCollection:
        _refuse_unknown(self, CollectionResponse, _COMPUTED_COLLECTION_FIELDS)
        return self


class _SeedRetriever(BaseModel):
    """One seeded retriever: its id, then any other RetrieverModelOutput field."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    retriever_id: RetrieverId
    retriever_name: str | None = Field(default=None, min_length=1)
    collection_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_fields_only(self) -> _SeedRetriever:
        _refuse_unknown(self, RetrieverModelOutput, _COMPUTED_RETRIEVER_FIELDS)
        return self


class _SeedNamespace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collections: list[_SeedCollection] = Field(default_factory=list)
    retrievers: list[_SeedRetriever] = Field(default_factory=list)


class _SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespaces: dict[str, _SeedNamespace | None]


@dataclass
class SeedNamespace:
    """The collections and retrievers of one namespace, as stored ``data`` dicts."""

    collections: list[dict[str, Any]] = field(default_factory=list)
    retrievers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Seed:
    """A parsed, validated seed: namespace name -> what to put in it."""

    namespaces: dict[str, SeedNamespace] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, source: str = "seed") -> Seed:
        """Validate seed data (the loaded YAML/JSON); SeedError names ``source`` and the field."""
        try:
            parsed = _SeedFile.model_validate(data)
        except ValidationError as exc:
            raise SeedError(_describe(exc, source)) from None
        seed = cls()
        for name, namespace in parsed.namespaces.items():
            _check_namespace_name(name, source)
            namespace = namespace or _SeedNamespace()
            where = f"{source}: namespaces.{name}"
            entry = SeedNamespace(
                collections=[
                    _collection_data(c, f"{where}.collections.{i}")
                    for i, c in enumerate(namespace.collections)
                ],
                retrievers=[
                    _retriever_data(r, f"{where}.retrievers.{i}")
                    for i, r in enumerate(namespace.retrievers)
                ],
            )
            _check_unique(entry, name, source)
            seed.namespaces[name] = entry
        return seed

    def counts(self) -> tuple[int, int]:
        """How many collections and retrievers the seed holds, over all namespaces."""
        return (
            sum(len(ns.collections) for ns in self.namespaces.values()),
            sum(len(ns.retrievers) for ns in self.namespaces.values()),
        )


def load_seed(path: Path | str) -> Seed:
    """Read and validate a seed file (``.json`` as JSON, anything else as YAML).

    Read by ``taxsync.safe_read``: a regular file of at most ``MAX_SEED_BYTES``, nested and
    aliased within its limits; anything else is a SeedError naming the file.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            data = safe_read.read_json(path, MAX_SEED_BYTES)
        else:
            data = safe_read.read_yaml(path, MAX_SEED_BYTES)
    except safe_read.FileRefused as refused:
        raise SeedError(str(refused)) from None
    return Seed.parse(data, str(path))


def as_seed(value: Seed | Mapping[str, Any] | Path | str) -> Seed:
    """A Seed from a Seed, already-loaded data, or a seed file's path."""
    if isinstance(value, Seed):
        return value
    if isinstance(value, Mapping):
        return Seed.parse(dict(value))
    return load_seed(value)


# --- defaults --------------------------------------------------------------------------------


def _collection_data(entry: _SeedCollection, where: str) -> dict[str, Any]:
    data = entry.model_dump(mode="json", exclude_unset=True)
    data["document_count"] = entry.document_count
    data.setdefault("feature_extractor", _default_extractor())
    data.setdefault("source", {"type": "bucket", "bucket_ids": [_bucket_id(entry.collection_name)]})
    if entry.taxonomy_applications is not None:
        data["taxonomy_applications"] = application_entries(entry.taxonomy_applications)
    _check_shape(CollectionResponse, data, where)
    return data


def _retriever_data(entry: _SeedRetriever, where: str) -> dict[str, Any]:
    data = entry.model_dump(mode="json", exclude_unset=True)
    data["retriever_name"] = entry.retriever_name or entry.retriever_id.removeprefix("ret_")
    data["collection_ids"] = list(entry.collection_ids)
    stages = data["stages"] if "stages" in data else [_default_stage()]
    data["stages"] = [_mirror_parameters(stage) for stage in stages or []]
    data.setdefault("fusion", None)
    data.setdefault("version", 1)
    probe = {**data, "collection_identifiers": data["collection_ids"]}
    _check_shape(RetrieverModelOutput, probe, where)
    return data


def _default_extractor() -> dict[str, Any]:
    return {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "feature_extractor_id": "text_extractor_v1",
        "include_all_source_fields": False,
    }


def _bucket_id(collection_name: str) -> str:
    return "bkt_" + re.sub(r"[^A-Za-z0-9_]", "_", collection_name)


def _default_stage() -> dict[str, Any]:
    parameters = {"searches": [], "final_top_k": 10}
    return {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {"stage_id": "feature_search", "parameters": parameters},
    }


def _mirror_parameters(stage: Any) -> Any:
    """A stage's top-level ``parameters`` mirrors ``config.parameters`` on the wire."""
    if isinstance(stage, dict) and "parameters" not in stage:
        config = stage.get("config")
        params = config.get("parameters", {}) if isinstance(config, dict) else {}
        return {**stage, "parameters": params}
    return stage


# --- checks ----------------------------------------------------------------------------------


def _refuse_unknown(entry: BaseModel, model: type[BaseModel], computed: tuple[str, ...]) -> None:
    allowed = set(model.model_fields) - set(computed)
    unknown = sorted(set(entry.model_extra or {}) - allowed)
    if unknown:
        raise ValueError(
            f"unknown or computed field(s) {', '.join(unknown)}; a seed entry takes the "
            f"fields of {model.__name__} except {', '.join(computed)}"
        )


def _check_shape(model: type[BaseModel], data: dict[str, Any], where: str) -> None:
    # The stored data must make a valid response: catch a bad type here, not in a GET.
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise SeedError(_describe(exc, where)) from None


def _check_unique(namespace: SeedNamespace, name: str, source: str) -> None:
    for kind, entries, id_key, name_key in (
        ("collection", namespace.collections, "collection_id", "collection_name"),
        ("retriever", namespace.retrievers, "retriever_id", "retriever_name"),
    ):
        for key in (id_key, name_key):
            values = [entry[key] for entry in entries]
            doubles = sorted({v for v in values if values.count(v) > 1})
            if doubles:
                raise SeedError(
                    f"{source}: namespaces.{name}: {kind} {key} {', '.join(map(quoted, doubles))} "
                    "appears more than once"
                )


def _check_namespace_name(name: str, source: str) -> None:
    """A seeded namespace follows the rules of a manifest's (``*`` aside): ``../../etc`` or
    ``prod/x`` would reach other routes, and the state file would keep it."""
    problem = None if name == EVERY_NAMESPACE else namespace_problem(name)
    if problem:
        raise SeedError(f"{source}: namespaces.{quoted(name)}: {problem}")


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid seed"]
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        # Keys and messages quote the file: a line break there must not start a line of ours.
        lines.append(f"  {shown(where)}: {shown(error['msg'])}")
    return "\n".join(lines)
