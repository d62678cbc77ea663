"""``plan(desired, live, options) -> Plan``: pure, no I/O, no clock.

The API's versioning decides the action: a config change is a new version, a
description/metadata change is a PATCH, a type change cannot be versioned and is a
replace, and a delete only happens with prune, only for what taxsync manages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taxsync import normalize
from taxsync.errors import location
from taxsync.live import SYSTEM_COLLECTIONS, LiveCollection, Neighbourhood, declared, settings
from taxsync.model import (
    KEYED_LISTS,
    MANAGED_KEY,
    MANAGED_VALUE,
    DesiredTaxonomy,
    dotted,
    is_managed,
    managed_metadata,
    replacement_name,
)
from taxsync.plan import (
    AnyChange,
    AppliedBy,
    AttachmentChange,
    FieldChange,
    NodeSides,
    Plan,
    Summary,
    TaxonomyChange,
)
from taxsync.sources import changed_source
from taxsync.wire import TaxonomyResponse


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    # Namespaces to cover in addition to those the manifests name (for prune), or,
    # with only_namespaces, the only ones to plan.
    namespaces: frozenset[str] = frozenset()
    only_namespaces: bool = False
    shard: tuple[int, int] | None = None  # (i, n): only namespaces in shard i of n
    api_url: str | None = None
    backfill: bool = False  # re-enrich every collection a config change affects
    # A delete of a taxonomy collections still apply detaches it from them first
    # (otherwise the delete is blocked).
    detach_deleted: bool = False


def covered_namespaces(desired: Iterable[DesiredTaxonomy], options: PlanOptions) -> list[str]:
    """The namespaces a plan reads (and may prune): the manifests' own, or the selection."""
    if options.only_namespaces:
        chosen = set(options.namespaces)
    else:
        chosen = {d.namespace for d in desired} | options.namespaces
    if options.shard is not None:
        index, count = options.shard
        chosen = {ns for ns in chosen if shard_of(ns, count) == index}
    return sorted(chosen)


def shard_of(namespace: str, count: int) -> int:
    """The 1-based shard of a namespace: a stable hash, the same on every runner."""
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def plan(
    desired: Sequence[DesiredTaxonomy],
    live: Mapping[str, Sequence[TaxonomyResponse]],
    options: PlanOptions = PlanOptions(),
    neighbourhoods: Mapping[str, Neighbourhood] | None = None,
) -> Plan:
    """Compare desired taxonomies with the live ones of every covered namespace.

    With ``neighbourhoods`` (the collections of each namespace), each new version, replace
    and delete lists the collections that apply its taxonomy, a delete of a taxonomy still
    applied is blocked (or, with ``detach_deleted``, follows detaching it), and a manifest's
    ``appliedTo`` is planned as attach, reconfigure and detach changes, after the taxonomy
    changes of its namespace.
    """
    namespaces = covered_namespaces(desired, options)
    changes: list[AnyChange] = []
    unchanged = 0
    for namespace in namespaces:
        wanted = [d for d in desired if d.namespace == namespace]
        around = (neighbourhoods or {}).get(namespace)
        planned, same = _plan_namespace(namespace, wanted, live.get(namespace, ()), options, around)
        changes += planned
        unchanged += same
    if neighbourhoods is not None:
        changes = _with_neighbourhoods(changes, desired, options, neighbourhoods)
    return Plan(
        api_url=options.api_url,
        namespaces=namespaces,
        prune=options.prune,
        backfill_on_change=backfill_intent(changes, desired, options),
        summary=Summary.of(changes, unchanged),
        changes=changes,
    )


def backfill_intent(
    changes: Sequence[AnyChange], desired: Sequence[DesiredTaxonomy], options: PlanOptions
) -> list[str]:
    """The taxonomies of ``changes`` (``namespace/name``) planned with backfills on."""
    asked = {d.key for d in desired if d.backfill}
    return sorted(
        {
            f"{c.namespace}/{c.name}"
            for c in changes
            if options.backfill or (c.namespace, c.name) in asked
        }
    )


def _plan_namespace(
    namespace: str,
    wanted: Sequence[DesiredTaxonomy],
    live: Sequence[TaxonomyResponse],
    options: PlanOptions,
    around: Neighbourhood | None,
) -> tuple[list[AnyChange], int]:
    """One namespace's changes (taxonomies, then prunes, then attachments), and how many
    of its taxonomies are unchanged."""
    by_name = {t.taxonomy_name: t for t in live}
    changes: list[AnyChange] = []
    attachments: list[AttachmentChange] = []
    claimed: set[str] = set()
    unchanged = 0
    for taxonomy, current, rename_from in _pair(wanted, by_name):
        claimed.add(replacement_name(taxonomy.name))  # a replace in progress: never pruned
        if current is not None:
            claimed.add(current.taxonomy_name)
        change = _blocked_by_leftover(compare(taxonomy, current, rename_from), by_name)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
        if around is not None and taxonomy.applied_to is not None:
            backfill = options.backfill or taxonomy.backfill
            attachments += attachment_changes(taxonomy, current, change, around, backfill)
    if options.prune:
        orphans = [t for name, t in sorted(by_name.items()) if name not in claimed]
        changes += [delete_change(namespace, t) for t in orphans if is_managed(t.metadata)]
    return changes + attachments, unchanged


def _with_neighbourhoods(
    changes: Sequence[AnyChange],
    desired: Sequence[DesiredTaxonomy],
    options: PlanOptions,
    neighbourhoods: Mapping[str, Neighbourhood],
) -> list[AnyChange]:
    """What the collections around add: who each change affects, backfills, blocked
    deletes (or, with ``detach_deleted``, the detaches that unblock them)."""
    asked = {d.key for d in desired if d.backfill}
    placed = [
        in_neighbourhood(
            c,
            neighbourhoods.get(c.namespace),
            options.backfill or (c.namespace, c.name) in asked,
        )
        if isinstance(c, TaxonomyChange)
        else c
        for c in changes
    ]
    if options.detach_deleted:
        placed = _detaching_deletes(placed, neighbourhoods)
    return _no_backfill_where_detached(placed)


def in_neighbourhood(
    change: TaxonomyChange, around: Neighbourhood | None, backfill: bool = False
) -> TaxonomyChange:
    """``change`` with the collections that apply its taxonomy (and, with ``backfill``, a
    backfill of each after a config change); blocked if it would delete a taxonomy they
    still apply (deleting leaves their entries dangling)."""
    if around is None or change.action not in ("new_version", "replace", "delete"):
        return change
    applied_by = [_applied_by(c, change.taxonomy_id) for c in around.applying(change.taxonomy_id)]
    blocked = None
    if change.action == "delete" and applied_by:
        names = ", ".join(a.collection_name or a.collection_id for a in applied_by)
        blocked = f"still applied by {len(applied_by)} collection(s): {names}; detach it first"
    backfills = [a.collection_id for a in applied_by] if backfill and not blocked else []
    if change.action == "delete":
        backfills = []
    update = {"applied_by": applied_by, "blocked": blocked, "backfills": backfills}
    return change.model_copy(update=update)


def _no_backfill_where_detached(changes: Sequence[AnyChange]) -> list[AnyChange]:
    """A config change does not backfill a collection the same plan detaches its taxonomy
    from (the API refuses a backfill of a taxonomy the collection does not apply)."""
    detached = {
        (c.namespace, c.name, c.collection_id)
        for c in changes
        if isinstance(c, AttachmentChange) and c.action == "detach"
    }
    out: list[AnyChange] = []
    for change in changes:
        kept = [b for b in change.backfills if (change.namespace, change.name, b) not in detached]
        out.append(
            change if kept == change.backfills else change.model_copy(update={"backfills": kept})
        )
    return out


def _detaching_deletes(
    changes: Sequence[AnyChange], neighbourhoods: Mapping[str, Neighbourhood]
) -> list[AnyChange]:
    """Each delete blocked by the collections that apply its taxonomy, unblocked, after a
    detach from each of them (apply runs deletes last, and checks again right before)."""
    out: list[AnyChange] = []
    for change in changes:
        around = neighbourhoods.get(change.namespace)
        if (
            not isinstance(change, TaxonomyChange)
            or change.action != "delete"
            or not change.blocked
            or around is None
        ):
            out.append(change)
            continue
        out += [_detach(change, c) for c in around.applying(change.taxonomy_id)]
        out.append(change.model_copy(update={"blocked": None}))
    return out


DETACHED_BEFORE_DELETE = "detached before its taxonomy is deleted (--detach-deleted)"


def _detach(change: TaxonomyChange, collection: LiveCollection) -> AttachmentChange:
    entry = collection.application_of(change.taxonomy_id) or {}
    return AttachmentChange(
        action="detach",
        namespace=change.namespace,
        name=change.name,
        taxonomy_id=change.taxonomy_id,
        taxonomy_type=change.taxonomy_type,
        diff=_removed_settings(entry),
        notes=[DETACHED_BEFORE_DELETE],
        before_delete=True,
        collection_id=collection.collection_id,
        collection_name=collection.name,
        live_application=entry,
    )


def attachment_changes(
    desired: DesiredTaxonomy,
    current: TaxonomyResponse | None,
    change: TaxonomyChange | None,
    around: Neighbourhood,
    backfill: bool = False,
) -> list[AttachmentChange]:
    """The attach, reconfigure and detach changes that make the taxonomy's entries in the
    namespace's collections what ``desired.applied_to`` lists (``change``: the taxonomy's
    own planned change, if any). Other taxonomies' entries are never looked at.

    A taxonomy this plan creates or replaces has no id yet: its attachment changes carry
    none, and apply uses the id its change gives it (a replace re-points the entries it
    finds first, so they are compared as they are now).

    When an ``appliedTo`` collection does not exist (let through by
    ``--allow-missing-references``), nothing is detached: the missing one may be a
    misspelling of a collection whose entry would otherwise look unwanted. The changes
    planned (and the taxonomy's own) say so among the references let through.
    """
    assert desired.applied_to is not None
    live_id = current.taxonomy_id if current is not None else None
    new_id = change is not None and change.action in ("create", "replace")
    common: dict[str, Any] = {
        "namespace": desired.namespace,
        "name": desired.name,
        "taxonomy_id": None if new_id else live_id,
        "taxonomy_type": desired.taxonomy_type,
    }
    wanted: dict[str, tuple[int, dict[str, Any]]] = {}
    absent = []
    for index, entry in enumerate(desired.applied_to):
        found = around.collection(entry["collection"])
        if found is None:  # a reference error, or let through
            absent.append(entry["collection"])
        else:
            wanted.setdefault(found.collection_id, (index, entry))
    changes: list[AttachmentChange] = []
    for collection in sorted(around.collections, key=lambda c: (c.name, c.collection_id)):
        if {collection.name, collection.collection_id} & SYSTEM_COLLECTIONS:
            continue  # never attached to, nor detached from
        have = collection.application_of(live_id) if live_id is not None else None
        want = wanted.get(collection.collection_id)
        common["collection_id"] = collection.collection_id
        common["collection_name"] = collection.name
        entry_change = _entry_change(desired, have, want, common, backfill)
        if entry_change is not None and not (absent and entry_change.action == "detach"):
            changes.append(entry_change)
    if absent:
        note = _kept_entries_note(absent)
        for planned in [*changes, *([change] if change is not None else [])]:
            planned.unchecked.append(note)
    return changes


def _kept_entries_note(absent: Sequence[str]) -> str:
    names = ", ".join(absent)
    return (
        "no entry of this taxonomy is detached while appliedTo names a missing collection "
        f"({names})"
    )


def _entry_change(
    desired: DesiredTaxonomy,
    have: Mapping[str, Any] | None,
    want: tuple[int, dict[str, Any]] | None,
    common: Mapping[str, Any],
    backfill: bool,
) -> AttachmentChange | None:
    """The change that makes the taxonomy's entry in one collection (``have``, None when
    there is none) what the manifest's ``appliedTo[index]`` asks (``want``, None when it
    does not list the collection)."""
    if want is None:
        if have is None:
            return None
        return AttachmentChange(
            action="detach",
            **common,
            source=_source(desired, "appliedTo"),
            diff=_removed_settings(have),
            live_application=dict(have),
        )
    index, entry = want
    source = _source(desired, f"appliedTo[{index}]")
    written = declared(entry)
    if have is None:
        return AttachmentChange(
            action="attach",
            **common,
            source=source,
            diff=[_field(k, None, v, before_present=False) for k, v in written.items()],
            application=written,
            backfills=[common["collection_id"]] if backfill else [],
        )
    if settings(have) == settings(entry):
        return None
    return AttachmentChange(
        action="reconfigure",
        **common,
        source=source,
        diff=field_diff(settings(have), settings(entry)),
        application=written,
        live_application=dict(have),
    )


def _source(desired: DesiredTaxonomy, spec_path: str) -> str:
    """``file:line`` of a spec path, as a change's ``source``."""
    return location(desired.source.file, desired.position(spec_path)[0])


def _removed_settings(entry: Mapping[str, Any]) -> list[FieldChange]:
    """What a detach takes away: the settings the entry set."""
    return [_field(k, v, None, after_present=False) for k, v in declared(entry).items()]


def _applied_by(collection: LiveCollection, taxonomy_id: str | None) -> AppliedBy:
    entry = collection.application_of(taxonomy_id) or {}
    phase = entry.get("execution_phase")
    return AppliedBy(
        collection_id=collection.collection_id,
        collection_name=collection.name,
        execution_phase=phase if isinstance(phase, int) else 1,
        target_collection_id=entry.get("target_collection_id"),
        document_count=collection.document_count,
    )


Pairing = tuple[DesiredTaxonomy, TaxonomyResponse | None, str | None]


def _pair(
    wanted: Sequence[DesiredTaxonomy], by_name: Mapping[str, TaxonomyResponse]
) -> list[Pairing]:
    """Each manifest with the live taxonomy it describes, and the old name if it renames one.

    Renames are settled first: a live taxonomy a manifest renames (``previousNames``)
    belongs to that manifest, so another manifest may take its old name for a new taxonomy
    in the same plan (apply runs the rename before the create). A replace that was cut
    short after deleting the old taxonomy left its new one under ``replacement_name``:
    renaming it finishes the replace, if it carries taxsync's marker (one without it is
    someone else's, never taken over: ``_blocked_by_leftover``).
    """
    renamed: dict[str, DesiredTaxonomy] = {}
    for taxonomy in sorted(wanted, key=lambda d: d.name):
        if taxonomy.name in by_name:
            continue
        leftover = by_name.get(replacement_name(taxonomy.name))
        ours = leftover is not None and is_managed(leftover.metadata)
        finishing = (replacement_name(taxonomy.name),) if ours else ()
        candidates = (*taxonomy.previous_names, *finishing)
        old = next((n for n in candidates if n in by_name and n not in renamed), None)
        if old is not None:
            renamed[old] = taxonomy
    renaming = {id(d): old for old, d in renamed.items()}
    pairs: list[Pairing] = []
    for taxonomy in sorted(wanted, key=lambda d: d.name):
        old = renaming.get(id(taxonomy))
        if old is not None:
            pairs.append((taxonomy, by_name[old], old))
        elif taxonomy.name in by_name and taxonomy.name not in renamed:
            pairs.append((taxonomy, by_name[taxonomy.name], None))
        else:
            pairs.append((taxonomy, None, None))
    return pairs


def _blocked_by_leftover(
    change: TaxonomyChange | None, by_name: Mapping[str, TaxonomyResponse]
) -> TaxonomyChange | None:
    """A create or replace is blocked while a taxonomy without taxsync's marker holds the
    name a replace works under: it is not a leftover of ours, and neither finishing a
    replace with it nor replacing next to it may take it over."""
    if change is None or change.action not in ("create", "replace"):
        return change
    name = replacement_name(change.name)
    found = by_name.get(name)
    if found is None or is_managed(found.metadata):
        return change
    blocked = f"{name} exists but is not taxsync's; rename or delete it"
    return change.model_copy(update={"blocked": blocked})


def compare(
    desired: DesiredTaxonomy, live: TaxonomyResponse | None, rename_from: str | None
) -> TaxonomyChange | None:
    """The change that makes ``live`` (None: absent) what ``desired`` declares, or None."""
    if live is None:
        return _create(desired)
    base: dict[str, Any] = {
        "namespace": desired.namespace,
        "name": desired.name,
        "taxonomy_id": live.taxonomy_id,
        "base_version": live.version,
        "taxonomy_type": desired.taxonomy_type,
        "source": str(desired.source),
        "wait": desired.wait,
        "notes": _legacy_notes(live),
    }
    if normalize.config_type(live.config) != desired.taxonomy_type:
        return _replace(desired, live, base)
    want, have = normalize.comparable_desired(desired), normalize.comparable_live(live)
    adopt = not is_managed(live.metadata)
    if (
        rename_from is None
        and not adopt
        and normalize.fingerprint(want) == normalize.fingerprint(have)
    ):
        return None
    diff = field_diff(have, want)
    base["source"] = changed_source(desired, diff)  # the first line it changes
    if adopt:
        diff.append(_field(f"metadata.{MANAGED_KEY}", None, MANAGED_VALUE, before_present=False))
    if rename_from is not None:
        diff.insert(0, _field("taxonomy_name", rename_from, desired.name))
    patch = _patch_body(desired, want, have, adopt, rename_from, live.metadata)
    if want["config"] != have["config"]:
        version_body = {"config": desired.config}
        return TaxonomyChange(
            action="new_version",
            **base,
            diff=diff,
            nodes=node_sides(live.config, desired.config),
            version_body=version_body,
            patch_body=patch,
            adopt=adopt,
            rename_from=rename_from,
        )
    return TaxonomyChange(
        action="update", **base, diff=diff, patch_body=patch, adopt=adopt, rename_from=rename_from
    )


def _replace(
    desired: DesiredTaxonomy, live: TaxonomyResponse, base: dict[str, Any]
) -> TaxonomyChange:
    """A type change cannot be versioned: the taxonomy is deleted and created again."""
    live_type = normalize.config_type(live.config)
    base["source"] = _source(desired, "config.taxonomy_type")
    if not is_managed(live.metadata):
        base["notes"] = [*base["notes"], "taxsync does not manage it yet: made by hand?"]
    return TaxonomyChange(
        action="replace",
        **base,
        diff=[_field("config.taxonomy_type", live_type, desired.taxonomy_type)],
        create_body=_create(desired).create_body,
        nodes=node_sides(live.config, desired.config),
    )


def _create(desired: DesiredTaxonomy) -> TaxonomyChange:
    body: dict[str, Any] = {"taxonomy_name": desired.name, "config": desired.config}
    if desired.description is not None:
        body["description"] = desired.description
    body["metadata"] = managed_metadata(desired)
    # As declared (no server defaults): what the reviewer wrote is what they see.
    after = {
        "description": desired.description,
        "metadata": normalize.canonical(desired.metadata),
        "config": normalize.canonical(desired.config),
    }
    diff = [_field(path, None, value, before_present=False) for path, value in _leaves(after)]
    return TaxonomyChange(
        action="create",
        namespace=desired.namespace,
        name=desired.name,
        taxonomy_type=desired.taxonomy_type,
        source=str(desired.source),
        wait=desired.wait,
        diff=diff,
        create_body=body,
        nodes=node_sides({}, desired.config),
    )


def delete_change(namespace: str, live: TaxonomyResponse) -> TaxonomyChange:
    """The delete of a live taxonomy no manifest declares (with prune; managed only)."""
    return TaxonomyChange(
        action="delete",
        namespace=namespace,
        name=live.taxonomy_name,
        taxonomy_id=live.taxonomy_id,
        base_version=live.version,
        taxonomy_type=normalize.config_type(live.config),
        notes=["not declared in any manifest; managed by taxsync"],
        nodes=node_sides(live.config, {}),
    )


def node_sides(before: Mapping[str, Any], after: Mapping[str, Any]) -> NodeSides | None:
    """The hierarchical nodes of two configs, when they differ: what render draws."""
    sides = NodeSides(before=_nodes_by_key(before), after=_nodes_by_key(after))
    return sides if sides.before != sides.after else None


def _nodes_by_key(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A config's hierarchical nodes by collection id, canonical (nulls dropped)."""
    nodes = config.get("hierarchical_nodes")
    if not isinstance(nodes, list):
        return {}
    return {
        str(node["collection_id"]): normalize.canonical(node)
        for node in nodes
        if isinstance(node, dict) and node.get("collection_id") is not None
    }


def _patch_body(
    desired: DesiredTaxonomy,
    want: Mapping[str, Any],
    have: Mapping[str, Any],
    adopt: bool,
    rename_from: str | None,
    live_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    body: dict[str, Any] = {}
    if rename_from is not None:
        body["taxonomy_name"] = desired.name
    if want["description"] != have["description"]:
        body["description"] = desired.description  # None clears it, as removing the line means
    if adopt or want["metadata"] != have["metadata"]:
        body["metadata"] = managed_metadata(desired, live_metadata)  # bookkeeping kept
    return body or None


def _legacy_notes(live: TaxonomyResponse) -> list[str]:
    keys = normalize.unmanaged_keys(live.config)
    if not keys:
        return []
    return [f"live config has keys the API no longer declares (ignored): {', '.join(keys)}"]


def field_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """Field-level differences between two canonical forms, in a stable order."""
    from deepdiff import DeepDiff  # heavy to import; a plan with no changes never needs it

    tree = DeepDiff(dict(before), dict(after), view="tree", verbose_level=2)
    changes = []
    for report, items in tree.items():
        for item in items:
            path = dotted(item.path(output_format="list"))
            changes.append(
                _field(
                    path,
                    None if "added" in report else item.t1,
                    None if "removed" in report else item.t2,
                    before_present="added" not in report,
                    after_present="removed" not in report,
                )
            )
    return sorted(changes, key=lambda c: c.path)


def _leaves(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict) and value and prefix.rsplit(".", 1)[-1] in KEYED_LISTS:
        for key, item in value.items():
            yield f"{prefix}[{key}]", item  # one line per keyed item, as the diff shows them
    elif isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else key)
    elif value is not None and value != {}:
        yield prefix, value


def _field(
    path: str, before: Any, after: Any, before_present: bool = True, after_present: bool = True
) -> FieldChange:
    return FieldChange(
        path=path,
        before=before,
        after=after,
        before_present=before_present,
        after_present=after_present,
    )
