"""A saved plan is untrusted input: check it against itself, then against live state.

``apply --plan FILE`` must do exactly what the reviewer read, and nothing a hand-edited
(or forged) file adds. Two checks, both pure:

- ``static_problems``: the file against itself. Its digest, API URL, summary, namespaces,
  and no two changes to one taxonomy.
- ``live_problems``: each change against the live head it is about. Every change is planned
  again from its own request bodies and that head; the result must be the saved change
  (action, field diff, notes and bodies alike). So a body that does not match its diff, a
  delete of a taxonomy taxsync does not manage, or a write without the ``managed_by``
  marker is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from taxsync import normalize
from taxsync.live import LiveCollection, Neighbourhood
from taxsync.manifest import MANAGED_KEY, DesiredTaxonomy, ManifestMetadata, SourceLocation
from taxsync.plan import Change, Plan, Summary
from taxsync.planner import compare, delete_change
from taxsync.wire import TaxonomyConfig, TaxonomyResponse

_CONFIG: TypeAdapter[Any] = TypeAdapter(TaxonomyConfig)


def static_problems(plan: Plan, target_url: str) -> list[str]:
    """What is wrong with a saved plan on its own (no API call)."""
    problems = []
    if plan.digest != plan.content_digest():
        problems.append("its digest does not match its content: the file was edited after plan")
    if not plan.api_url:
        problems.append("it names no API URL")
    elif plan.api_url.rstrip("/") != target_url:
        problems.append(f"it was made against {plan.api_url!r}, not {target_url!r}")
    recount = Summary.of(plan.changes, plan.summary.unchanged)
    if recount != plan.summary:
        problems.append(f"its summary says {plan.summary.line()!r}, its changes {recount.line()!r}")
    covered = set(plan.namespaces)
    for change in plan.changes:
        if change.namespace not in covered:
            problems.append(f"{change.label!r} is outside the plan's namespaces")
        if change.action == "delete" and not plan.prune:
            problems.append(f"{change.label!r} is a delete in a plan made without --prune")
    problems.extend(_duplicates(plan.changes))
    return problems


def _duplicates(changes: Sequence[Change]) -> list[str]:
    names: set[tuple[str, str]] = set()
    ids: set[tuple[str, str]] = set()
    problems = []
    for change in changes:
        if (change.namespace, change.name) in names:
            problems.append(f"{change.label!r} is changed twice")
        names.add((change.namespace, change.name))
        if change.taxonomy_id is not None:
            if (change.namespace, change.taxonomy_id) in ids:
                problems.append(f"{change.taxonomy_id!r} is changed twice")
            ids.add((change.namespace, change.taxonomy_id))
    return problems


def stale_reasons(plan: Plan, live: Mapping[str, Sequence[TaxonomyResponse]]) -> list[str]:
    """Each planned taxonomy that moved since the plan: created, deleted or re-versioned."""
    reasons = []
    for change in plan.changes:
        if change.action == "create":
            if _by_name(live, change.namespace, change.name) is not None:
                reasons.append(f"{change.label} now exists (the plan creates it)")
            continue
        head = _by_id(live, change.namespace, change.taxonomy_id)
        if head is None:
            reasons.append(f"{change.label} ({change.taxonomy_id}) no longer exists")
        elif head.version != change.base_version:
            reasons.append(
                f"{change.label} is at v{head.version}, the plan was made at v{change.base_version}"
            )
    return reasons


def live_problems(
    plan: Plan,
    live: Mapping[str, Sequence[TaxonomyResponse]],
    around: Mapping[str, Neighbourhood] | None = None,
) -> list[str]:
    """Changes that are not what taxsync plans from their own bodies and the live heads,
    or that would backfill a collection that does not apply their taxonomy.

    Call it on a plan that is not stale (``stale_reasons`` is empty).
    """
    problems = []
    for change in plan.changes:
        if change.backfills and around is not None:
            applying = {c.collection_id for c in _applying(around, change)}
            strays = [c for c in change.backfills if c not in applying]
            if strays:
                problems.append(
                    f"{change.label!r} would backfill {', '.join(map(repr, strays))}, which "
                    "do(es) not apply it"
                )
        head = _by_id(live, change.namespace, change.taxonomy_id) if change.taxonomy_id else None
        try:
            replanned = _replan(change, head)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(
                f"{change.label!r}: its request bodies are not valid: {_first_line(exc)}"
            )
            continue
        if replanned is None or _comparable(replanned) != _comparable(change):
            problems.append(
                f"{change.label!r} ({change.action}) is not what taxsync plans from its own "
                "request bodies and the live taxonomy"
            )
    return problems


def _replan(change: Change, head: TaxonomyResponse | None) -> Change | None:
    """The change the planner makes from ``change``'s own bodies against ``head``."""
    if change.action == "delete":
        assert head is not None  # not stale
        return (
            delete_change(change.namespace, head) if normalize.is_managed(head.metadata) else None
        )
    if change.action in ("create", "replace"):
        desired = _desired_from_create(change)
    else:
        assert head is not None
        desired = _desired_from_edit(change, head)
    return compare(desired, head, change.rename_from)


def _desired_from_create(change: Change) -> DesiredTaxonomy:
    body = dict(change.create_body or {})
    if body.get("taxonomy_name") != change.name:
        raise ValueError("create_body.taxonomy_name is not the change's name")
    return _desired(change, body.get("config"), body.get("description"), body.get("metadata"))


def _desired_from_edit(change: Change, head: TaxonomyResponse) -> DesiredTaxonomy:
    """A manifest that, against ``head``, asks for exactly what the bodies write."""
    patch = dict(change.patch_body or {})
    if patch.get("taxonomy_name", change.name) != change.name:
        raise ValueError("patch_body.taxonomy_name is not the change's name")
    if change.rename_from is not None and change.rename_from != head.taxonomy_name:
        raise ValueError("rename_from is not the live taxonomy's name")
    config = (change.version_body or {}).get("config") if change.version_body else None
    description = patch.get("description", head.description)
    metadata = patch.get("metadata", head.metadata)
    if config is None:
        # No new version: the live config, as it is, is the desired one.
        return _desired(change, None, description, metadata, live_config=head.config)
    return _desired(change, config, description, metadata)


def _desired(
    change: Change,
    config: Any,
    description: Any,
    metadata: Any,
    live_config: dict[str, Any] | None = None,
) -> DesiredTaxonomy:
    names = [change.rename_from] if change.rename_from else []
    ManifestMetadata(name=change.name, namespace=change.namespace, previousNames=names)
    if description is not None and not isinstance(description, str):
        raise TypeError("description is not a string")
    if not isinstance(metadata, dict):
        raise TypeError("metadata is not an object")
    if live_config is None:
        declared = _CONFIG.validate_python(config)
        live_config = declared.model_dump(mode="json", exclude_unset=True) | {
            "taxonomy_type": declared.taxonomy_type
        }
    return DesiredTaxonomy(
        namespace=change.namespace,
        name=change.name,
        description=description,
        # The marker is taxsync's to add; the planner adds it to every write again.
        metadata={k: v for k, v in metadata.items() if k != MANAGED_KEY},
        config=live_config,
        source=SourceLocation(change.source or "saved plan", 0, 0),
        previous_names=tuple(names),
        wait=change.wait,
    )


def _applying(around: Mapping[str, Neighbourhood], change: Change) -> list[LiveCollection]:
    near = around.get(change.namespace)
    return near.applying(change.taxonomy_id) if near is not None else []


def _comparable(change: Change) -> dict[str, Any]:
    # The manifest location is the one thing a saved plan says that cannot be checked.
    # Nor whom a change affects: that is re-read at apply time, and a delete is refused
    # there if any collection still applies its taxonomy.
    # Backfills are checked against the collections that apply the taxonomy, above; ids let
    # through unchecked are the plan's own notes.
    ignored = {"source", "applied_by", "blocked", "backfills", "unchecked"}
    return change.model_dump(mode="json", exclude=ignored)


def _by_name(
    live: Mapping[str, Sequence[TaxonomyResponse]], namespace: str, name: str
) -> TaxonomyResponse | None:
    return next((t for t in live.get(namespace, ()) if t.taxonomy_name == name), None)


def _by_id(
    live: Mapping[str, Sequence[TaxonomyResponse]], namespace: str, taxonomy_id: str | None
) -> TaxonomyResponse | None:
    return next((t for t in live.get(namespace, ()) if t.taxonomy_id == taxonomy_id), None)


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
