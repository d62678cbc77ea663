"""Export live taxonomies as manifests, to bring hand-made ones under git.

The manifest holds what a person would have written: server-owned fields, server
defaults, explicit nulls and legacy keys are left out, so ``taxsync plan`` on the export
shows no create, new version, replace or delete (only the adoption ``update`` that marks
an unmanaged taxonomy as managed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from taxsync import normalize, wire
from taxsync.errors import ConfigError, ManifestError
from taxsync.files import write_atomic
from taxsync.manifest import API_VERSION, KIND, load_tree

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExportedFile:
    """One manifest to write: where, for which taxonomy, and its YAML text."""

    path: Path
    namespace: str
    name: str
    text: str


def manifest_for(namespace: str, live: wire.TaxonomyResponse) -> dict[str, Any]:
    """The manifest document that describes a live taxonomy."""
    spec: dict[str, Any] = {}
    if live.description is not None:
        spec["description"] = live.description
    user = normalize.user_metadata(live.metadata)
    if user:
        spec["metadata"] = user
    spec["config"] = declared_config(live.config)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": live.taxonomy_name, "namespace": namespace},
        "spec": spec,
    }


def declared_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A live config without nulls, legacy keys, or values equal to the server's defaults
    (the nested ones of ``step_analytics.covariates`` too)."""
    kind = normalize.config_type(config)
    legacy = set(normalize.unmanaged_keys(config))
    out: dict[str, Any] = {"taxonomy_type": kind}
    declared = _without_defaults(
        {k: v for k, v in config.items() if k not in legacy and k != "taxonomy_type"},
        wire.SERVER_DEFAULTS[kind],
    )
    out.update(_without_nulls(declared))
    analytics = out.get("step_analytics")
    if isinstance(analytics, dict) and isinstance(analytics.get("covariates"), list):
        covariates = [
            _without_defaults(c, wire.COVARIATE_DEFAULTS) for c in analytics["covariates"]
        ]
        out["step_analytics"] = {**analytics, "covariates": covariates}
    return out


def _without_defaults(item: Any, defaults: Mapping[str, Any]) -> Any:
    if not isinstance(item, dict):
        return item
    return {k: v for k, v in item.items() if not (k in defaults and v == defaults[k])}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def plan_files(
    out: Path, live: Mapping[str, Sequence[wire.TaxonomyResponse]]
) -> list[ExportedFile]:
    """``out/<namespace>/<name>.yaml`` per taxonomy, names made safe and unique."""
    files: list[ExportedFile] = []
    for namespace in sorted(live):
        folder = out / safe_name(namespace)
        used: set[str] = set()
        for taxonomy in sorted(live[namespace], key=lambda t: t.taxonomy_name):
            stem = safe_name(taxonomy.taxonomy_name)
            if stem.lower() in used:  # a collision after sanitising (or case-folding filesystems)
                digest = hashlib.sha256(taxonomy.taxonomy_name.encode()).hexdigest()[:8]
                stem = f"{stem}-{digest}"
            used.add(stem.lower())
            document = manifest_for(namespace, taxonomy)
            text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
            files.append(
                ExportedFile(folder / f"{stem}.yaml", namespace, taxonomy.taxonomy_name, text)
            )
    return files


def safe_name(name: str) -> str:
    """A file-name-safe form: no separators, no leading dots, never empty or '..'."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    return cleaned or "_"


def write_files(files: Sequence[ExportedFile], force: bool) -> None:
    """Write every file (each atomically), or none if any exists and ``force`` is not set.

    Raises ConfigError when files exist without ``force``, or when a file cannot be written
    (the message names it; files written before it stay written).
    """
    existing = [f.path for f in files if f.path.exists()]
    if existing and not force:
        raise ConfigError(
            f"{len(existing)} file(s) already exist; pass --force to overwrite them",
            [str(p) for p in existing],
        )
    for exported in files:
        write_atomic(exported.path, exported.text)


def problems_in(files: Sequence[ExportedFile]) -> list[str]:
    """What ``validate`` would refuse in the exported files (e.g. legacy ids that break the
    API's patterns): live data the manifest format is stricter about, to fix by hand."""
    found: list[str] = []
    for exported in files:
        try:
            load_tree(exported.path, {})
        except ManifestError as error:
            found.extend(str(problem) for problem in error.problems)
    return found
