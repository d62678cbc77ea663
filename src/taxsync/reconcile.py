"""The public entry points: connect, read live state, plan a tree, check a saved plan, apply.

Every front end drives the reconcile flow through these functions: the CLI, the GitHub
Action (through the CLI), the benchmarks and the tests. This is the one place that
sequences load → read live → plan → apply; what happens along the way is told to a
``Reporter``, so front ends differ only in how they show it::

    from taxsync import reconcile

    settings = reconcile.Settings.local(".taxsync/local-state.json")
    plan = reconcile.plan_tree("examples/taxonomies", settings)
    result = reconcile.apply(plan, settings)

The functions are synchronous: each runs its own event loop, in which Ctrl-C stops
new writes from starting while in-flight ones finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxsync.errors import ConfigError, NotFoundError, PlanRejected, StalePlanError, TaxsyncError
from taxsync.identifiers import check_name as check_name  # the CLI checks its options with them
from taxsync.identifiers import check_namespace as check_namespace
from taxsync.session import DEFAULT_API_URL as DEFAULT_API_URL
from taxsync.session import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY
from taxsync.session import DEFAULT_LOCAL_STATE as DEFAULT_LOCAL_STATE
from taxsync.session import LOCAL_API_URL as LOCAL_API_URL
from taxsync.session import Reporter as Reporter
from taxsync.session import Reporters as Reporters
from taxsync.session import Settings as Settings
from taxsync.session import connect as connect
from taxsync.session import run as _run

if TYPE_CHECKING:  # the heavy modules load when a function first needs them
    from taxsync.client import MixpeekClient
    from taxsync.doctor import DoctorReport
    from taxsync.export import ExportedFile
    from taxsync.history import History
    from taxsync.live import Neighbourhood
    from taxsync.model import DesiredTaxonomy
    from taxsync.namespace_diff import NamespaceDiff
    from taxsync.plan import ApplyResult, Change, Plan
    from taxsync.planner import PlanOptions
    from taxsync.read_ahead import ReadAhead
    from taxsync.wire import TaxonomyResponse

# --- reading ------------------------------------------------------------------------------


def read_live(settings: Settings, namespaces: Sequence[str]) -> dict[str, list[TaxonomyResponse]]:
    """The live taxonomies (head versions) of each namespace."""
    wanted = sorted(set(namespaces))

    async def read(client: MixpeekClient, stop: asyncio.Event) -> dict[str, list[TaxonomyResponse]]:
        return await client.read_live(wanted, settings.concurrency)

    return _run(settings, read)


def read_live_and_neighbourhoods(
    settings: Settings, namespaces: Sequence[str]
) -> tuple[dict[str, list[TaxonomyResponse]], dict[str, Neighbourhood]]:
    """The live taxonomies (head versions) of each namespace, and its collections and
    retrievers (what ``export`` needs to write ``appliedTo``), read concurrently."""
    wanted = sorted(set(namespaces))

    async def read(
        client: MixpeekClient, stop: asyncio.Event
    ) -> tuple[dict[str, list[TaxonomyResponse]], dict[str, Neighbourhood]]:
        return await asyncio.gather(
            client.read_live(wanted, settings.concurrency),
            client.read_neighbourhood(wanted, settings.concurrency),
        )

    return _run(settings, read)


def diff_namespaces(settings: Settings, a: str, b: str) -> NamespaceDiff:
    """How the live taxonomies of namespace ``a`` differ from those of ``b``, references
    compared by the names of what they point at (``taxsync.namespace_diff``)."""
    from taxsync.namespace_diff import compare

    live, around = read_live_and_neighbourhoods(settings, [a, b])
    return compare(a, live[a], around[a], b, live[b], around[b])


def read_versions(settings: Settings, namespace: str, name: str) -> list[TaxonomyResponse]:
    """Every stored version of taxonomy ``name`` (or id) in ``namespace``."""

    async def read(client: MixpeekClient, stop: asyncio.Event) -> list[TaxonomyResponse]:
        head = await client.get_taxonomy(namespace, name)
        if head is None or head.taxonomy_id is None:
            raise NotFoundError(f"taxonomy {name!r} not found in namespace {namespace!r}")
        return await client.list_versions(namespace, head.taxonomy_id)

    return _run(settings, read)


def doctor(
    settings: Settings,
    namespace: str,
    *,
    collections: Sequence[str] = (),
    reporter: Reporter | None = None,
    consent: Callable[[Sequence[str]], bool] | None = None,
) -> DoctorReport:
    """Probe the API's contract in ``namespace`` (see ``taxsync.doctor``); never raises for
    a differing assumption: check ``report.ok``. ``collections``: the only collections the
    probe may touch (their applications are restored exactly). A namespace holding
    taxonomies taxsync manages is written to only if ``consent(their names)`` says yes
    (else ``ConfigError``, nothing written). Ctrl-C or SIGTERM stops the probe and still
    cleans up (``report.interrupted``); a second is only told, a third aborts the clean-up."""
    from taxsync.doctor import Probe, patient

    async def run(client: MixpeekClient, stop: asyncio.Event) -> DoctorReport:
        probe = Probe(client, namespace, collections, stop, consent)
        with patient(probe.state, reporter.interrupting if reporter is not None else None):
            return await probe.run()

    return _run(settings, run, reporter)


# --- planning -----------------------------------------------------------------------------


def load_manifests(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    *,
    tracked_only: bool = False,
) -> list[DesiredTaxonomy]:
    """Load and validate the manifest tree at ``path`` offline; raises ``ManifestError``.

    ``tracked_only``: only the files git tracks or has staged (what a commit holds)."""
    from taxsync.manifest import load_tree

    with _reported(reporter):
        return load_tree(Path(path), environ, tracked_only=tracked_only)


@dataclass(frozen=True)
class PlanChoices:
    """What a plan covers and how it treats what it finds (``plan`` and ``apply`` alike).

    ``namespaces``: only these (with ``prune``, covered even if no manifest names them);
    ``shard``: ``(i, n)``, only namespaces in shard i of n. Every retriever and collection
    a manifest names must exist in its namespace (a ``ManifestError`` listing each one at its
    line), unless ``check_references`` is off: then they are notes of the plan.
    ``backfill``: after each config change, re-enrich every collection that applies it
    (and each collection an ``appliedTo`` attaches it to). ``detach_deleted``: a pruned
    taxonomy that collections still apply is detached from them, then deleted (otherwise
    its delete is blocked).
    """

    prune: bool = False
    namespaces: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    check_references: bool = True
    backfill: bool = False
    detach_deleted: bool = False

    def options(self, api_url: str | None = None) -> PlanOptions:
        """The planner's options for these choices."""
        from taxsync.planner import PlanOptions

        return PlanOptions(
            prune=self.prune,
            namespaces=frozenset(self.namespaces),
            only_namespaces=bool(self.namespaces),
            shard=self.shard,
            api_url=api_url,
            backfill=self.backfill,
            detach_deleted=self.detach_deleted,
        )


def plan_manifests(
    desired: Sequence[DesiredTaxonomy],
    settings: Settings,
    choices: PlanChoices = PlanChoices(),
    *,
    reporter: Reporter | None = None,
    ahead: ReadAhead | None = None,
    baseline: Sequence[DesiredTaxonomy] | None = None,
) -> Plan:
    """Read the covered namespaces and plan ``desired`` against them (see ``PlanChoices``).

    ``ahead``: the reads ``plan_tree`` started while the manifests loaded, with the client
    and event loop they run in; the plan takes those answers instead of asking again.
    ``baseline``: the manifests before this change; what they would do too is ``pending``."""
    from taxsync import references
    from taxsync.backfills import with_owed
    from taxsync.planner import covered_namespaces
    from taxsync.planner import plan as make_plan

    options = choices.options(settings.target_url)
    wanted = covered_namespaces(desired, options)
    chosen = set(wanted)
    selected = [d for d in desired if d.namespace in chosen]

    async def build(client: MixpeekClient, stop: asyncio.Event) -> Plan:
        if ahead is not None:
            live, around = await ahead.read(client, wanted)
        else:
            live, around = await asyncio.gather(
                client.read_live(wanted, concurrency=settings.concurrency),
                client.read_neighbourhood(wanted, concurrency=settings.concurrency),
            )
        ready = references.checked(selected, around, choices.check_references)
        made = ready.annotate(make_plan(ready.desired, live, options, around))
        if baseline is not None:
            from taxsync.changed import split_against

            made = split_against(made, baseline, live, around, options)
        reader = ahead.task_states if ahead is not None else None
        return await with_owed(client, made, live, around, settings.concurrency, reader)

    with _reported(reporter):
        return _run(settings, build, ahead=ahead)


def plan_tree(
    path: str | Path,
    settings: Settings,
    choices: PlanChoices = PlanChoices(),
    *,
    out: Path | None = None,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    changed_from: str | None = None,
) -> Plan:
    """Load the manifests at ``path`` and plan them; save the plan as JSON to ``out``.

    The namespaces the plan covers are read while the manifests still load (``ReadAhead``).
    ``changed_from``: a git revision; plan only what changed since (``taxsync.changed``).
    """
    from taxsync.read_ahead import ReadAhead

    if changed_from is not None:
        from taxsync.changed import plan_changed

        with _reported(reporter):
            load, make = (
                partial(load_manifests, environ=environ),
                partial(plan_manifests, settings=settings),
            )
            the_plan = plan_changed(
                Path(path), changed_from, choices, load, make, settings.target_url
            )
    else:
        with ReadAhead.open(settings, choices.options(), connect) as ahead:
            if ahead is not None:
                with _reported(reporter):
                    desired = ahead.load_manifests(Path(path), environ)
            else:
                desired = load_manifests(path, environ, reporter)
            the_plan = plan_manifests(desired, settings, choices, reporter=reporter, ahead=ahead)
    if out is not None:
        from taxsync.files import write_atomic
        from taxsync.render import plan_json

        write_atomic(out, plan_json(the_plan))
    if reporter is not None:
        reporter.planned(the_plan, out)
    return the_plan


def load_plan(path: Path, settings: Settings, reporter: Reporter | None = None) -> Plan:
    """A saved plan, checked: readable, a taxsync plan, this format, made against this API."""
    from pydantic import ValidationError

    from taxsync import safe_read, verify
    from taxsync.changed import with_pending
    from taxsync.plan import FORMAT_VERSION, MAX_PLAN_BYTES, SAVED, Plan, first_problem

    with _reported(reporter):
        try:
            raw = safe_read.read_regular(path, MAX_PLAN_BYTES)
            safe_read.check_json_depth(raw, path)
            the_plan = Plan.model_validate_json(raw, context=SAVED)
        except safe_read.FileRefused as refused:
            raise ConfigError(f"{refused} (the saved plan)") from None
        except ValidationError as exc:
            raise ConfigError(f"{path}: not a taxsync plan: {first_problem(exc)}") from None
        if the_plan.format_version != FORMAT_VERSION:
            raise ConfigError(
                f"{path}: plan format {the_plan.format_version} is not supported "
                f"(this taxsync writes {FORMAT_VERSION}): make the plan again"
            )
        _refuse_if(verify.static_problems(the_plan, settings.target_url), path)
        the_plan = with_pending(the_plan)  # applied alike, so that apply converges
        _refuse_if(verify.static_problems(the_plan, settings.target_url), path)
    return the_plan


def _refuse_if(problems: Sequence[str], path: Path | None) -> None:
    if problems:
        where = f"{path}: " if path else ""
        raise PlanRejected(
            f"{where}refusing the saved plan: {problems[0]}; nothing was written",
            list(problems[1:]),
        )


@contextlib.contextmanager
def _reported(reporter: Reporter | None) -> Iterator[None]:
    """A failure to load or plan is told to the reporter, then raised."""
    try:
        yield
    except TaxsyncError as exc:
        if reporter is not None:
            reporter.failed(exc)
        raise


# --- applying -----------------------------------------------------------------------------


def check_replaces(plan: Plan, allow_replace: bool) -> None:
    """Refuse a plan with replaces (new ids) unless they are allowed; nothing is written."""
    replaces = [c.label for c in plan.changes if c.action == "replace"]
    if replaces and not allow_replace:
        raise ConfigError(
            f"the plan replaces {len(replaces)} taxonomy(ies) (deleted, then recreated with a "
            f"new id): {', '.join(replaces)}; pass --allow-replace to proceed. Nothing was written."
        )


def apply(
    plan: Plan,
    settings: Settings,
    *,
    allow_replace: bool = False,
    wait: bool = False,
    wait_timeout: float = 300.0,
    saved: bool = False,
    desired: Sequence[DesiredTaxonomy] | None = None,
    reporter: Reporter | None = None,
    seed: int | None = None,
) -> ApplyResult:
    """Carry out ``plan`` and return what became of each change.

    ``saved``: the plan was made earlier (``load_plan``); every planned taxonomy's head is
    re-read first and the whole plan refused (``StalePlanError``) if any moved.
    ``desired``: the manifests the plan came from, so API field errors name their lines.
    ``seed``: the order changes are sent in is drawn from it, so the apply replays.
    A failed change does not stop the others; check ``result.ok``.
    """
    from taxsync.applier import ApplyOptions, apply_plan
    from taxsync.plan import ApplyResult

    reporter = reporter or Reporter()
    if not plan.has_changes:
        result = ApplyResult()
        reporter.applied(result, plan)
        return result
    check_replaces(plan, allow_replace)
    if not (math.isfinite(wait_timeout) and wait_timeout > 0):
        raise ConfigError(f"wait timeout must be a positive number, not {wait_timeout}")
    options = ApplyOptions(
        settings.concurrency,
        allow_replace,
        wait,
        wait_timeout,
        _locator(desired),
        on_task=reporter.task_polled,
        on_wait=reporter.waiting,
        rng=None if seed is None else random.Random(seed),
    )

    async def run(client: MixpeekClient, stop: asyncio.Event) -> ApplyResult:
        if saved:
            await _check_against_live(client, plan, settings.concurrency)
        reporter.apply_started(plan)
        return await apply_plan(client, plan, options, reporter.change_done, stop)

    result = _run(settings, run, reporter)
    reporter.applied(result, plan)
    return result


async def _check_against_live(client: MixpeekClient, plan: Plan, concurrency: int) -> None:
    """Before any write of a saved plan: refuse it if live state moved since the plan, or if
    a change is not what taxsync plans from its own bodies and the live heads."""
    from taxsync import verify

    namespaces = sorted({c.namespace for c in plan.changes})
    live, around = await asyncio.gather(
        client.read_live(namespaces, concurrency),
        client.read_neighbourhood(namespaces, concurrency),
    )
    reasons = verify.stale_reasons(plan, live, around)
    if reasons:
        raise StalePlanError(
            f"the saved plan is stale: {len(reasons)} planned change(s) moved; nothing was written",
            reasons,
        )
    _refuse_if(verify.live_problems(plan, live, around), None)


def _locator(
    desired: Sequence[DesiredTaxonomy] | None,
) -> Callable[[Change, str], str] | None:
    """With the manifests at hand, API field errors point at their exact line."""
    if desired is None:
        return None
    by_key = {d.key: d for d in desired}

    def locate(change: Change, field: str) -> str:
        found = by_key.get((change.namespace, change.name))
        return found.locate(field) if found else str(change.source or change.label)

    return locate


# --- what the other commands need (the CLI imports no other part of the pipeline) -------


def backfill(settings: Settings, *args: Any, reporter: Reporter | None = None, **kw: Any) -> Any:
    """``taxsync backfill``: the arguments and result of ``taxsync.backfills.backfill_work``."""
    from taxsync.backfills import backfill_work

    on_task = reporter.task_polled if reporter is not None else None
    return _run(settings, backfill_work(*args, on_task=on_task, **kw), reporter)


def export(
    settings: Settings, namespaces: Sequence[str], out: Path, *, force: bool
) -> tuple[list[ExportedFile], list[str]]:
    """Write one manifest per live taxonomy of ``namespaces`` under ``out`` (every file or
    none; existing ones only with ``force``); return the files and what ``validate`` would
    refuse in them."""
    from taxsync.export import plan_files, problems_in, write_files

    files = plan_files(out, *read_live_and_neighbourhoods(settings, namespaces))
    write_files(files, force)
    return files, problems_in(files)


def history(settings: Settings, namespace: str, name: str) -> History:
    """The versions of taxonomy ``name`` and what changed between consecutive ones."""
    from taxsync.history import history as build_history

    return build_history(namespace, read_versions(settings, namespace, name))


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of one taxonomy manifest document."""
    from taxsync.manifest import json_schema

    return json_schema()


def task_ended(status: str) -> bool:
    """Whether a backfill task with this status has ended, well or not."""
    from taxsync.plan import task_ended as ended

    return ended(status)


def github_plan_reporter(environ: Mapping[str, str], comment: bool) -> Reporter:
    """What ``plan --github`` reports to GitHub Actions (``comment``: the PR comment too)."""
    from taxsync.github import GitHubContext, PlanReporter

    return PlanReporter(GitHubContext.from_env(environ), comment)


def github_apply_reporter(environ: Mapping[str, str]) -> Reporter:
    """What ``apply --github`` reports to GitHub Actions."""
    from taxsync.github import ApplyReporter, GitHubContext

    return ApplyReporter(GitHubContext.from_env(environ))
