"""A saved plan is untrusted input: check it against itself, then against live state.

``apply --plan FILE`` must do exactly what the reviewer read, and nothing a hand-edited
(or forged) file adds. Two checks, both pure:

- ``static_problems``: the file against itself. Its digest, API URL, summary, namespaces,
  no two changes to one taxonomy (nor two to its entry in one collection), and attachment
  changes of the right shape: a collection, settings taxsync knows, the taxonomy change
  that gives an id-less one its id, the delete a ``--detach-deleted`` detach goes with.
- ``stale_reasons``: what moved since the plan: heads, collections, and entries.
- ``live_problems``: each change against the live state it is about. Every change is planned
  again from its own request bodies (an attachment change: its own settings) and that
  state; the result must be the saved change (action, field diff, notes and bodies alike).
  So a body that does not match its diff, a delete of a taxonomy taxsync does not manage, a
  write without the ``managed_by`` marker, or an attach, reconfigure or detach of a
  taxonomy taxsync neither manages nor takes on in this plan is refused before anything
  is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from taxsync import normalize
from taxsync.live import SETTINGS, LiveCollection, Neighbourhood, settings
from taxsync.model import (
    MANAGED_KEY,
    DesiredTaxonomy,
    ManifestMetadata,
    SourceLocation,
    is_managed,
)
from taxsync.names import look_up
from taxsync.plan import (
    AnyChange,
    AttachmentChange,
    BackfillChange,
    Plan,
    Summary,
    TaxonomyChange,
)
from taxsync.planner import (
    PlanOptions,
    attachment_changes,
    compare,
    delete_change,
    in_neighbourhood,
)
from taxsync.planner import plan as replan_namespace
from taxsync.wire import TaxonomyApplicationConfigInput, TaxonomyConfig, TaxonomyResponse

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
    taxonomies = _taxonomy_changes(plan)
    for attachment in plan.attachment_changes:
        problems.extend(_attachment_shape(attachment, taxonomies))
    return problems


def _duplicates(changes: Sequence[AnyChange]) -> list[str]:
    """One change per taxonomy (by name and by id), and one per taxonomy and collection."""
    names: set[tuple[str, ...]] = set()
    ids: set[tuple[str, ...]] = set()
    problems = []
    for change in changes:
        # An attachment change is about the taxonomy's entry in one collection, an owed
        # backfill about the documents of one.
        where: tuple[str, ...] = ()
        if isinstance(change, AttachmentChange):
            where = (change.collection_id,)
        elif isinstance(change, BackfillChange):
            where = (change.collection_id, "backfill")
        if (change.namespace, change.name, *where) in names:
            problems.append(f"{change.label!r} is changed twice")
        names.add((change.namespace, change.name, *where))
        if change.taxonomy_id is not None:
            if (change.namespace, change.taxonomy_id, *where) in ids:
                on = f" on {where[0]!r}" if where else ""
                problems.append(f"{change.taxonomy_id!r}{on} is changed twice")
            ids.add((change.namespace, change.taxonomy_id, *where))
    return problems


def _taxonomy_changes(plan: Plan) -> dict[tuple[str, str], TaxonomyChange]:
    """The plan's changes to taxonomies (not attachments), by namespace and name."""
    return {(c.namespace, c.name): c for c in plan.taxonomy_changes}


def _attachment_shape(
    change: AttachmentChange, taxonomies: Mapping[tuple[str, str], TaxonomyChange]
) -> list[str]:
    """The settings an attachment change writes, and the taxonomy change it needs (its id,
    or the delete a ``--detach-deleted`` detach goes with)."""
    label, problems = change.label, []
    if change.application is not None:
        problems.extend(_application_problems(label, change.application))
    taxonomy = taxonomies.get((change.namespace, change.name))
    if change.taxonomy_id is None and (
        taxonomy is None or taxonomy.action not in ("create", "replace")
    ):
        problems.append(
            f"{label!r} ({change.action}) names no taxonomy id, and the plan neither creates "
            f"nor replaces {change.namespace}/{change.name}"
        )
    if change.before_delete:
        deleted = taxonomy is not None and taxonomy.action == "delete"
        if not deleted or taxonomy is None or taxonomy.taxonomy_id != change.taxonomy_id:
            problems.append(
                f"{label!r} is a detach for a delete (--detach-deleted) in a plan that does "
                f"not delete {change.namespace}/{change.name}"
            )
    return problems


def _application_problems(label: str, application: Mapping[str, Any]) -> list[str]:
    """Settings taxsync knows (no ``taxonomy_id``: apply fills that in), valid for the API."""
    unknown = sorted(k for k in application if k not in SETTINGS)
    if unknown:
        return [f"{label!r}: its application sets {', '.join(map(repr, unknown))}, not a setting"]
    try:
        TaxonomyApplicationConfigInput.model_validate({**application, "taxonomy_id": "tax_"})
    except ValidationError as exc:
        return [f"{label!r}: its application is not valid: {_first_line(exc)}"]
    return []


def stale_reasons(
    plan: Plan,
    live: Mapping[str, Sequence[TaxonomyResponse]],
    around: Mapping[str, Neighbourhood] | None = None,
) -> list[str]:
    """Each planned taxonomy that moved since the plan: created, deleted or re-versioned;
    and (with ``around``, the collections) each attachment change whose collection is gone
    or whose taxonomy's entry there is not what the plan saw."""
    reasons = []
    taxonomies = _taxonomy_changes(plan)
    for change in plan.changes:
        if around is not None:
            reasons.extend(_names_moved(change, around.get(change.namespace)))
        if isinstance(change, AttachmentChange):
            reasons.extend(_attachment_stale(change, taxonomies, live, around))
            continue
        if isinstance(change, BackfillChange):
            reasons.extend(_owed_stale(change, live))
            continue
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


def _names_moved(change: AnyChange, around: Neighbourhood | None) -> list[str]:
    """The references by name that resolve to another id now than when planned."""
    reasons = []
    for named in change.names:
        now, why = look_up(named.kind, named.name, around or Neighbourhood())
        if now != named.id:
            moved = f"now resolves to {now}" if now is not None else why
            reasons.append(
                f"{change.label}: {named.kind} {named.name!r} ({named.path}) {moved}; the plan "
                f"resolved it to {named.id}"
            )
    return reasons


def _attachment_stale(
    change: AttachmentChange,
    taxonomies: Mapping[tuple[str, str], TaxonomyChange],
    live: Mapping[str, Sequence[TaxonomyResponse]],
    around: Mapping[str, Neighbourhood] | None,
) -> list[str]:
    label = change.label
    if (
        change.taxonomy_id is not None
        and _by_id(live, change.namespace, change.taxonomy_id) is None
    ):
        return [f"{label}: its taxonomy ({change.taxonomy_id}) no longer exists"]
    if around is None:
        return []
    collection = _collection(around, change)
    if collection is None:
        return [f"{label}: collection {change.collection_id} no longer exists"]
    live_id = _live_id(change, taxonomies)
    entry = collection.application_of(live_id) if live_id is not None else None
    if change.action == "attach":
        if entry is None:
            return []
        same = settings(entry) == settings(change.application or {})
        return [
            f"{label}: attached since the plan ({'same' if same else 'other'} settings), "
            "the plan attaches it"
        ]
    if live_id is None:
        return []  # nothing to compare with: live_problems refuses it
    if entry is None:
        return [f"{label}: detached since the plan"]
    if settings(entry) != settings(change.live_application or {}):
        return [f"{label}: its settings changed since the plan"]
    return []


def _live_id(
    change: AttachmentChange, taxonomies: Mapping[tuple[str, str], TaxonomyChange]
) -> str | None:
    """The id the taxonomy's entries go by now: the change's own, or (when the plan replaces
    the taxonomy) the id of the taxonomy it replaces."""
    if change.taxonomy_id is not None:
        return change.taxonomy_id
    taxonomy = taxonomies.get((change.namespace, change.name))
    return taxonomy.taxonomy_id if taxonomy is not None and taxonomy.action == "replace" else None


def _collection(
    around: Mapping[str, Neighbourhood], change: AttachmentChange
) -> LiveCollection | None:
    """The change's collection, by id only (never a collection whose name looks like one)."""
    near = around.get(change.namespace)
    if near is None:
        return None
    return next((c for c in near.collections if c.collection_id == change.collection_id), None)


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
    taxonomies = _taxonomy_changes(plan)
    for change in plan.changes:
        if isinstance(change, AttachmentChange):
            backfill = _backfill_intended(plan, change)
            problems.extend(_attachment_problems(change, taxonomies, live, around, backfill))
            continue
        if isinstance(change, BackfillChange):
            problems.extend(_owed_problems(change, around))
            continue  # what it owes is read again from the bookkeeping when it runs
        problems.extend(_backfill_problems(plan, change, around))
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


def _backfill_problems(
    plan: Plan, change: TaxonomyChange, around: Mapping[str, Neighbourhood] | None
) -> list[str]:
    """A taxonomy change's backfills must be exactly those the planner makes for it, with
    the backfill intent the plan records, from the collections that apply it now (none
    that the plan detaches it from)."""
    near = around.get(change.namespace) if around is not None else None
    bare = change.model_copy(update={"backfills": []})
    planned = in_neighbourhood(bare, near, _backfill_intended(plan, change)).backfills
    detached = {
        c.collection_id
        for c in plan.attachment_changes
        if c.action == "detach" and (c.namespace, c.name) == (change.namespace, change.name)
    }
    expected = [b for b in planned if b not in detached]
    if change.backfills == expected:
        return []
    said = ", ".join(map(repr, change.backfills)) or "nothing"
    return [
        f"{change.label!r} would backfill {said}; taxsync plans "
        f"{', '.join(map(repr, expected)) or 'no backfill'} for it"
    ]


def _backfill_intended(plan: Plan, change: AnyChange) -> bool:
    """Whether the plan was made with backfills on for this change's taxonomy."""
    return f"{change.namespace}/{change.name}" in plan.backfill_on_change


def _attachment_problems(
    change: AttachmentChange,
    taxonomies: Mapping[tuple[str, str], TaxonomyChange],
    live: Mapping[str, Sequence[TaxonomyResponse]],
    around: Mapping[str, Neighbourhood] | None,
    backfill: bool,
) -> list[str]:
    """An attach, reconfigure or detach planned again from its own settings (and the
    plan's backfill intent) against the live collection and taxonomy: it must come out as
    saved, and be of a taxonomy that taxsync manages or that this plan creates, adopts,
    replaces or deletes."""
    label = change.label
    collection = _collection(around, change) if around is not None else None
    if collection is None:
        return [f"{label!r}: its collection {change.collection_id!r} cannot be read"]
    if change.backfills not in ([], [collection.collection_id]):
        return [
            f"{label!r} would backfill {', '.join(map(repr, change.backfills))}: an attach "
            "backfills its own collection or none"
        ]
    taxonomy = taxonomies.get((change.namespace, change.name))
    by_id = next(
        (
            t
            for t in taxonomies.values()
            if t.namespace == change.namespace and t.taxonomy_id == change.taxonomy_id
        ),
        None,
    )
    if change.taxonomy_id is not None and by_id is not None and by_id is not taxonomy:
        return [f"{label!r}: its taxonomy id is that of {by_id.label!r}, which the plan changes"]
    if taxonomy is None:
        head = _by_id(live, change.namespace, change.taxonomy_id)
        if head is None or head.taxonomy_name != change.name:
            return [
                f"{label!r}: {change.taxonomy_id!r} is not the live {change.namespace}/{change.name}"
            ]
        if not is_managed(head.metadata):
            return [
                f"{label!r} ({change.action}) is of a taxonomy taxsync does not manage (and the "
                "plan does not adopt it)"
            ]
        replanned = _replan_attachment(change, head, None, collection, backfill)
    elif taxonomy.action == "delete":
        head = _by_id(live, change.namespace, taxonomy.taxonomy_id)
        replanned = _replan_detach_deleted(change, head, collection) if head else None
    else:
        head = _by_id(live, change.namespace, taxonomy.taxonomy_id)
        if taxonomy.action != "create" and head is None:
            return [f"{label!r}: the taxonomy it is of cannot be read"]
        replanned = _replan_attachment(change, head, taxonomy, collection, backfill)
    if replanned is None or _comparable_attachment(replanned) != _comparable_attachment(change):
        return [
            f"{label!r} ({change.action}) is not what taxsync plans from its own settings and "
            "the live collection"
        ]
    return []


def _replan_attachment(
    change: AttachmentChange,
    head: TaxonomyResponse | None,
    taxonomy: TaxonomyChange | None,
    collection: LiveCollection,
    backfill: bool,
) -> AttachmentChange | None:
    """What the planner makes of a manifest whose ``appliedTo`` asks for exactly this
    change's settings in its collection (a detach: not listing it), against live state,
    with the backfill intent the plan records.

    ``taxonomy``: the plan's change to the taxonomy itself, if any; ``head``: the live
    taxonomy the manifest describes (None for a create)."""
    if change.action in ("attach", "reconfigure"):
        applied_to: tuple[dict[str, Any], ...] = (
            {**(change.application or {}), "collection": collection.collection_id},
        )
    else:
        applied_to = ()
    if taxonomy is not None:
        taxonomy_type = taxonomy.taxonomy_type
    else:
        assert head is not None
        taxonomy_type = normalize.config_type(head.config)
    desired = DesiredTaxonomy(
        namespace=change.namespace,
        name=change.name,
        description=None,
        metadata={},
        config={"taxonomy_type": taxonomy_type},
        source=SourceLocation("saved plan", 1, 1),
        applied_to=applied_to,
    )
    around = Neighbourhood(collections=(collection,))
    planned = attachment_changes(desired, head, taxonomy, around, backfill=backfill)
    return next((c for c in planned if c.collection_id == collection.collection_id), None)


def _replan_detach_deleted(
    change: AttachmentChange, head: TaxonomyResponse, collection: LiveCollection
) -> AttachmentChange | None:
    """The detach ``plan --prune --detach-deleted`` makes before deleting ``head`` (only if
    taxsync manages it, as for any delete)."""
    options = PlanOptions(
        prune=True,
        namespaces=frozenset({change.namespace}),
        only_namespaces=True,
        detach_deleted=True,
    )
    planned = replan_namespace(
        [],
        {change.namespace: [head]},
        options,
        {change.namespace: Neighbourhood(collections=(collection,))},
    )
    return next((c for c in planned.attachment_changes if c.action == "detach"), None)


def _replan(change: TaxonomyChange, head: TaxonomyResponse | None) -> TaxonomyChange | None:
    """The change the planner makes from ``change``'s own bodies against ``head``."""
    if change.action == "delete":
        assert head is not None  # not stale
        return delete_change(change.namespace, head) if is_managed(head.metadata) else None
    if change.action in ("create", "replace"):
        desired = _desired_from_create(change)
    else:
        assert head is not None
        desired = _desired_from_edit(change, head)
    return compare(desired, head, change.rename_from)


def _desired_from_create(change: TaxonomyChange) -> DesiredTaxonomy:
    body = dict(change.create_body or {})
    if body.get("taxonomy_name") != change.name:
        raise ValueError("create_body.taxonomy_name is not the change's name")
    return _desired(change, body.get("config"), body.get("description"), body.get("metadata"))


def _desired_from_edit(change: TaxonomyChange, head: TaxonomyResponse) -> DesiredTaxonomy:
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
    change: TaxonomyChange,
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


def _owed_problems(change: BackfillChange, around: Mapping[str, Neighbourhood] | None) -> list[str]:
    """An owed backfill is of its own collection, one that applies its taxonomy now."""
    near = around.get(change.namespace) if around is not None else None
    if near is None:
        return []
    applying = {c.collection_id for c in near.applying(change.taxonomy_id)}
    if change.backfills == [change.collection_id] and change.collection_id in applying:
        return []
    return [
        f"{change.label!r} would backfill {', '.join(map(repr, change.backfills))}: an owed "
        "backfill is of its own collection, which must apply the taxonomy"
    ]


def _comparable(change: TaxonomyChange) -> dict[str, Any]:
    # The manifest location is the one thing a saved plan says that cannot be checked.
    # Nor whom a change affects: that is re-read at apply time, and a delete is refused
    # there if any collection still applies its taxonomy.
    # Backfills are planned again on their own, above (they need the collections); ids let
    # through unchecked are the plan's own notes.
    # What names resolved to is checked against the namespace, as a stale plan.
    ignored = {"source", "applied_by", "blocked", "backfills", "unchecked", "names"}
    return change.model_dump(mode="json", exclude=ignored)


def _comparable_attachment(change: AttachmentChange) -> dict[str, Any]:
    # All but the manifest location, names (checked as a stale plan) and the references let
    # through (the whole tree's, which one attachment's re-plan does not see): the
    # collection, settings, diff, notes and backfills.
    return change.model_dump(mode="json", exclude={"source", "names", "unchecked"})


def _by_name(
    live: Mapping[str, Sequence[TaxonomyResponse]], namespace: str, name: str
) -> TaxonomyResponse | None:
    return next((t for t in live.get(namespace, ()) if t.taxonomy_name == name), None)


def _owed_stale(
    change: BackfillChange, live: Mapping[str, Sequence[TaxonomyResponse]]
) -> list[str]:
    head = _by_id(live, change.namespace, change.taxonomy_id)
    if head is None:
        return [f"{change.label} ({change.taxonomy_id}) no longer exists"]
    if head.version != change.head_version:
        return [
            f"{change.label} is at v{head.version}, the plan was made at v{change.head_version}"
        ]
    return []


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
