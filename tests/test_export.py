"""Export: live taxonomies as the manifests a person would have written."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from taxsync import files as files_module
from taxsync import normalize, planner, references
from taxsync.errors import ConfigError
from taxsync.export import ExportedFile, manifest_for, plan_files, problems_in, write_files
from taxsync.live import Neighbourhood, neighbourhood
from taxsync.manifest import load_tree
from taxsync.planner import PlanOptions
from taxsync.wire import TaxonomyResponse
from tests.helpers import live_flat


def live_tree(**overrides: Any) -> TaxonomyResponse:
    """A hierarchical taxonomy as the server echoes it: every default filled, nulls explicit."""
    body: dict[str, Any] = {
        "taxonomy_id": "tax_places",
        "version": 3,
        "taxonomy_name": "places",
        "description": None,
        "retriever_id": None,
        "input_mappings": None,
        "config": {
            "taxonomy_type": "hierarchical",
            "retriever_id": None,
            "input_mappings": None,
            "inference_strategy": None,
            "llm_sample_size": 0,
            "cluster_overlap_threshold": 0.7,
            "path_separator": "/",
            "hierarchical_nodes": [
                {"collection_id": "col_world", "parent_collection_id": None, "label": None},
                {"collection_id": "col_europe", "parent_collection_id": "col_world"},
            ],
            "step_analytics": None,
        },
        "nodes": [{"node_id": "n1"}],
        "ready": True,
        "created_at": "2026-10-21T09:14:03Z",
        "metadata": {"validation_warnings": []},
    }
    body.update(overrides)
    return TaxonomyResponse.model_validate(body)


def spec(live: TaxonomyResponse) -> dict[str, Any]:
    return dict(manifest_for("design", live)["spec"])


def named(*names: str) -> list[TaxonomyResponse]:
    return [live_flat(taxonomy_name=name) for name in names]


# --- the manifest --------------------------------------------------------------------------


def test_manifest_holds_only_what_a_person_writes() -> None:
    assert manifest_for("production", live_flat()) == {
        "apiVersion": "taxsync/v1",
        "kind": "Taxonomy",
        "metadata": {"name": "products", "namespace": "production"},
        "spec": {
            "description": "Product categories by image similarity",
            "metadata": {"team": "search"},
            "config": {
                "taxonomy_type": "flat",
                "retriever_id": "ret_clip_v1",
                "input_mappings": [
                    {
                        "input_key": "image_vector",
                        "source_type": "vector",
                        "path": "features.clip_vit_l_14",
                    }
                ],
                "source_collection": {
                    "collection_id": "col_products_v1",
                    "enrichment_fields": [
                        {
                            "field_path": "label",
                            "target_field": "category",
                            "merge_mode": "replace",
                        },
                        {"field_path": "metadata.tags", "merge_mode": "append"},
                    ],
                },
            },
        },
    }


def test_server_defaults_are_left_out() -> None:
    assert spec(live_tree())["config"] == {
        "taxonomy_type": "hierarchical",
        "hierarchical_nodes": [
            {"collection_id": "col_world"},
            {"collection_id": "col_europe", "parent_collection_id": "col_world"},
        ],
    }


def test_values_other_than_the_default_are_kept() -> None:
    config = {**live_tree().config, "cluster_overlap_threshold": 0.5, "llm_sample_size": 20}
    exported = spec(live_tree(config=config))["config"]
    assert (exported["cluster_overlap_threshold"], exported["llm_sample_size"]) == (0.5, 20)


def test_nested_covariate_defaults_are_left_out() -> None:
    covariate = {"field_path": "age", "covariate_type": "numeric", "name": "age"}
    echoed = {"binning_strategy": "quartiles", "clustering_method": "kmeans", "n_clusters": 10}
    analytics = {"timestamp_field": "ts", "sequence_id_field": "session"}
    config = {
        **live_flat().config,
        "step_analytics": {
            **analytics,
            "step_key_source": None,
            "covariates": [{**covariate, **echoed}, {**covariate, "name": "b", "n_clusters": 4}],
        },
    }
    exported = spec(live_flat(config=config))["config"]["step_analytics"]
    assert exported == {
        **analytics,
        "covariates": [covariate, {**covariate, "name": "b", "n_clusters": 4}],
    }


def test_legacy_config_keys_are_left_out() -> None:
    config = {**live_flat().config, "build_mode": "incremental"}
    assert "build_mode" not in spec(live_flat(config=config))["config"]


def test_an_empty_enrichment_list_is_kept() -> None:
    # [] copies nothing; absent copies the whole payload: the export must not merge them.
    config = {
        **live_flat().config,
        "source_collection": {"collection_id": "col_a", "enrichment_fields": []},
    }
    exported = spec(live_flat(config=config))["config"]["source_collection"]
    assert exported == {"collection_id": "col_a", "enrichment_fields": []}


def test_no_description_and_only_system_metadata_leave_no_keys() -> None:
    assert set(spec(live_tree())) == {"config"}


def test_the_marker_and_validation_warnings_are_not_exported() -> None:
    metadata = {"owner": "design", "managed_by": "taxsync", "validation_warnings": ["w"]}
    assert spec(live_flat(metadata=metadata))["metadata"] == {"owner": "design"}


def test_exported_manifest_plans_no_config_change(tmp_path: Path) -> None:
    lives = [live_flat(), live_tree()]
    write_files(plan_files(tmp_path, {"design": lives}), force=False)
    loaded = {d.name: d for d in load_tree(tmp_path, {})}
    for live in lives:
        want = normalize.comparable_desired(loaded[live.taxonomy_name])
        assert normalize.fingerprint(want) == normalize.fingerprint(normalize.comparable_live(live))


def test_dollar_braces_in_live_text_export_as_text_not_variables(tmp_path: Path) -> None:
    """A live value holding ``${…}`` is text: exported as ``$${…}``, it loads back as it was,
    never expanded and never refused as a variable."""
    odd = "cost ${HOME} and ${TAXSYNC_VAR_X:-y} and $${kept}"
    live = live_flat(
        taxonomy_name=f"n{odd}",
        description=odd,
        metadata={"note": odd, "nested": [odd]},
    )
    write_files(plan_files(tmp_path, {"design": [live]}), force=False)
    (loaded,) = load_tree(tmp_path, {"TAXSYNC_VAR_X": "expanded"})
    assert loaded.name == f"n{odd}"
    assert loaded.description == odd
    assert loaded.metadata == {"note": odd, "nested": [odd]}


# --- file names --------------------------------------------------------------------------


def test_files_go_to_namespace_and_safe_name(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"team/design": named("places/regions", "colours")})
    assert [f.path.relative_to(tmp_path).as_posix() for f in files] == [
        "team_design/colours.yaml",
        "team_design/places_regions.yaml",
    ]
    assert [(f.namespace, f.name) for f in files] == [
        ("team/design", "colours"),
        ("team/design", "places/regions"),
    ]


@pytest.mark.parametrize(
    ("name", "stem"), [("../../etc/passwd", "_.._etc_passwd"), ("..", "_"), (".hidden", "hidden")]
)
def test_names_cannot_escape_or_hide(tmp_path: Path, name: str, stem: str) -> None:
    (exported,) = plan_files(tmp_path, {"design": named(name)})
    assert exported.path == tmp_path / "design" / f"{stem}.yaml"


def test_colliding_names_get_a_short_stable_hash(tmp_path: Path) -> None:
    lives = {"design": named("a/b", "a_b", "A_B")}
    stems = [f.path.stem for f in plan_files(tmp_path, lives)]
    assert len({s.lower() for s in stems}) == 3
    plain, *hashed = sorted(stems, key=len)
    assert plain.lower() == "a_b"
    assert all(s.startswith("a_b-") and len(s) == len("a_b-") + 8 for s in hashed)
    assert stems == [f.path.stem for f in plan_files(tmp_path, lives)]


def assert_written_once_each(out: Path, files: list[ExportedFile]) -> None:
    """Every taxonomy has a file of its own: distinct paths (case-insensitively too), each
    within the file-system limit with room for its temporary sibling, and on disk one file
    per taxonomy holding that taxonomy."""
    keys = [str(f.path).casefold() for f in files]
    assert len(set(keys)) == len(keys), sorted(keys)
    for exported in files:
        assert len(exported.path.name.encode()) + len(".") + len(".12345678.tmp") <= 255
        assert len(exported.path.parent.name.encode()) <= 255
        assert not exported.path.name.startswith(".")
    write_files(files, force=False)
    on_disk = sorted(out.rglob("*.yaml"))
    assert len(on_disk) == len(files)
    found = [
        (str(doc["metadata"]["namespace"]), str(doc["metadata"]["name"]))
        for doc in (yaml.safe_load(p.read_text(encoding="utf-8")) for p in on_disk)
    ]
    assert sorted(found) == sorted((f.namespace, f.name) for f in files)


def test_a_hashed_name_never_lands_on_another_taxonomys_file(tmp_path: Path) -> None:
    # "a?b" collides with "a/b" and gets "a_b-<hash>"; a taxonomy literally named so (or
    # named to sort first, or differing only in case) must still get a file of its own.
    names = ["a/b", "a?b"]
    (hashed,) = [f.path.stem for f in plan_files(tmp_path, {"d": named(*names)}) if f.name == "a?b"]
    assert hashed.startswith("a_b-")
    for twin in (hashed, hashed.replace("_", "/"), hashed.upper()):
        out = tmp_path / twin.replace("/", "%")
        assert_written_once_each(out, plan_files(out, {"d": named(*names, twin)}))


def test_names_built_to_collide_with_every_hashed_name_still_get_files_of_their_own(
    tmp_path: Path,
) -> None:
    # Each round adds taxonomies named after the hashed file names of the round before.
    names = {"a/b", "a?b", "A_B", "a_b"}
    for round_ in range(3):
        files = plan_files(tmp_path, {"d": named(*sorted(names))})
        stems = {f.path.stem for f in files if f.path.stem != f.name}
        names |= {variant for s in stems for variant in (s, s.upper(), s.replace("_", "?"))}
        out = tmp_path / f"round{round_}"
        assert_written_once_each(out, plan_files(out, {"d": named(*sorted(names))}))


def test_colliding_namespaces_get_folders_of_their_own(tmp_path: Path) -> None:
    lives = {ns: named("colours") for ns in ("team/design", "team_design", "TEAM_DESIGN")}
    files = plan_files(tmp_path, lives)
    assert len({f.path.parent.name.casefold() for f in files}) == 3
    assert_written_once_each(tmp_path, files)


def test_a_250_character_name_is_truncated_with_a_hash_and_written(tmp_path: Path) -> None:
    long_a, long_b = "a" * 249 + "1", "a" * 249 + "2"  # the same once truncated
    files = plan_files(tmp_path, {"design": named(long_a, long_b, "short")})
    stems = {f.name: f.path.stem for f in files}
    assert stems["short"] == "short"
    for name in (long_a, long_b):
        assert stems[name].startswith("a" * 200)
        assert re.fullmatch(r"a+-[0-9a-f]{8}", stems[name])
        assert len(stems[name]) == 236  # the whole budget: 255 - 14 (temporary) - 5 (.yaml)
    assert stems == {
        f.name: f.path.stem
        for f in plan_files(tmp_path, {"design": named(long_a, long_b, "short")})
    }
    assert_written_once_each(tmp_path, files)


@pytest.mark.parametrize(
    "name",
    [
        "Zürich-" * 30 + "üa" * 20,  # 250 characters, 250 once made safe: truncated
        ("a" * 16 + "\N{GRINNING FACE}") * 15,  # four bytes each: 255 characters, truncated
        "é" * 150,  # 300 bytes, all of it unsafe
        "地域" * 50,  # 300 bytes, three per character
    ],
)
def test_a_300_byte_multibyte_name_gets_a_file_within_the_limit(tmp_path: Path, name: str) -> None:
    assert len(name.encode()) == 300
    files = plan_files(tmp_path, {"design": named(name, "other")})
    assert_written_once_each(tmp_path, files)
    (mine,) = [f for f in files if f.name == name]
    assert load_tree(mine.path, {})[0].name == name


def test_the_longest_name_that_fits_stays_plain_and_one_more_byte_is_hashed(
    tmp_path: Path,
) -> None:
    fits, over = "x" * 236, "y" * 237
    files = plan_files(tmp_path, {"design": named(fits, over)})
    stems = {f.name: f.path.stem for f in files}
    assert stems[fits] == fits
    assert stems[over] != over and len(stems[over]) == 236
    assert_written_once_each(tmp_path, files)  # the file system takes them and their temps


def test_a_long_namespace_gets_a_folder_within_the_limit(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"n" * 300: named("colours"), "n" * 255: named("colours")})
    assert {len(f.path.parent.name) for f in files} == {255}
    assert_written_once_each(tmp_path, files)


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.text(alphabet="aAbB_/-.?é0", max_size=6)
        | st.text(alphabet="aA_/", min_size=230, max_size=260),
        min_size=1,
        max_size=12,
        unique=True,
    )
)
def test_any_names_get_distinct_files_within_the_limit(names: list[str]) -> None:
    files = plan_files(Path("/out"), {"d": named(*names)})
    stems = [f.path.stem for f in files]
    assert len({s.casefold() for s in stems}) == len(names)
    assert all(0 < len(s.encode()) <= 236 and not s.startswith(".") for s in stems)
    assert sorted(f.name for f in files) == sorted(names)
    assert stems == [f.path.stem for f in plan_files(Path("/out"), {"d": named(*names)})]


# --- writing --------------------------------------------------------------------------------


def test_existing_files_are_not_overwritten_and_nothing_is_written(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours", "shapes")})
    files[1].path.parent.mkdir(parents=True)
    files[1].path.write_text("# mine\n")
    with pytest.raises(ConfigError, match="--force") as refused:
        write_files(files, force=False)
    assert refused.value.details == [str(files[1].path)]
    assert not files[0].path.exists()
    assert files[1].path.read_text() == "# mine\n"


def test_force_overwrites(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    files[0].path.parent.mkdir(parents=True)
    files[0].path.write_text("# mine\n")
    write_files(files, force=True)
    assert yaml.safe_load(files[0].path.read_text())["metadata"]["name"] == "colours"
    assert [p.name for p in files[0].path.parent.iterdir()] == ["colours.yaml"]  # no temp left


def test_read_only_folder_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    folder = files[0].path.parent
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _writable(folder):
            pytest.skip("this process writes into read-only folders (root)")
        with pytest.raises(ConfigError, match=f"{files[0].path}: cannot write: Permission denied"):
            write_files(files, force=False)
    finally:
        folder.chmod(0o755)


def test_a_read_only_folder_fails_the_export_for_real(tmp_path: Path) -> None:
    """The counterpart of the test above, run whoever runs the suite (as root, CI included,
    in a child with the capabilities that bypass file permissions dropped)."""
    from tests.test_export_cli import seed
    from tests.test_manifest_hardening import _run_unprivileged

    state = tmp_path / "state.json"
    seed(state, "design", ["colours"])
    out = tmp_path / "out"
    (out / "design").mkdir(parents=True)
    (out / "design").chmod(0o555)
    try:
        result = _run_unprivileged(
            "export", "-n", "design", "--out", str(out), "--local", "--local-state", str(state)
        )
    finally:
        (out / "design").chmod(0o755)
    assert result.returncode == 1, result
    assert f"{out / 'design' / 'colours.yaml'}: cannot write: Permission denied" in result.stderr
    assert list((out / "design").iterdir()) == []


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.touch()
    except PermissionError:
        return False
    probe.unlink()
    return True


def test_a_file_in_place_of_the_folder_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    files[0].path.parent.write_text("not a folder")
    with pytest.raises(ConfigError, match=f"{files[0].path}: cannot write: "):
        write_files(files, force=False)


def test_a_failed_replace_leaves_no_temporary_file(tmp_path: Path) -> None:
    files = plan_files(tmp_path, {"design": named("colours")})
    files[0].path.mkdir(parents=True)  # a folder where the file should go: the rename fails
    with pytest.raises(ConfigError, match=f"{files[0].path}: cannot write: "):
        write_files(files, force=True)
    assert [p.name for p in files[0].path.parent.iterdir()] == ["colours.yaml"]


class FailingReplace:
    """``os.replace`` in taxsync.files that fails (or is interrupted) at call ``fail_at``."""

    def __init__(self, fail_at: int, error: BaseException) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.error = error
        self.real = files_module.os.replace

    def __call__(self, src: Any, dst: Any) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error
        self.real(src, dst)


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def replaces(monkeypatch: pytest.MonkeyPatch) -> FailingReplace:
    """Counts the files written (renamed into place); fails none."""
    counter = FailingReplace(0, OSError())
    monkeypatch.setattr(files_module.os, "replace", counter)
    return counter


def test_a_folder_in_place_of_a_later_file_stops_the_export_before_any_write(
    tmp_path: Path, replaces: FailingReplace
) -> None:
    files = plan_files(tmp_path, {"design": named("colours", "shapes")})
    files[1].path.mkdir(parents=True)
    with pytest.raises(ConfigError, match=f"^{files[1].path}: cannot write: .*nothing was written"):
        write_files(files, force=True)
    assert replaces.calls == 0
    assert tree(tmp_path) == ["design", "design/shapes.yaml"]  # colours.yaml never written


def test_a_file_in_place_of_a_later_namespace_folder_stops_the_export_before_any_write(
    tmp_path: Path,
    replaces: FailingReplace,
) -> None:
    out = tmp_path / "out"
    files = plan_files(out, {"design": named("colours"), "sales": named("regions")})
    out.mkdir()
    (out / "sales").write_text("not a folder")
    with pytest.raises(ConfigError, match=f"^{files[1].path}: cannot write: .*not a folder"):
        write_files(files, force=False)
    assert replaces.calls == 0
    assert tree(out) == ["sales"]  # not even the design folder was created


def test_every_problem_is_reported_at_once(tmp_path: Path, replaces: FailingReplace) -> None:
    files = plan_files(tmp_path, {"design": named("colours", "shapes"), "sales": named("x")})
    (tmp_path / "sales").write_text("not a folder")
    files[1].path.mkdir(parents=True)
    with pytest.raises(ConfigError) as refused:
        write_files(files, force=True)
    assert replaces.calls == 0
    # The first problem is the error line; the second follows, then the count.
    assert "more" not in str(refused.value), refused.value
    *others, count = refused.value.details
    assert [d.split(":")[0] for d in others] == [str(files[2].path)]
    assert count == "(2 problems in all; nothing was written)"


def test_two_files_on_one_path_are_refused_before_any_write(
    tmp_path: Path, replaces: FailingReplace
) -> None:
    # Not from plan_files, which never does this; write_files checks whatever it is given.
    files = [
        ExportedFile(tmp_path / "d" / "first.yaml", "d", "first", "a: 1\n"),
        ExportedFile(tmp_path / "d" / "Colours.yaml", "d", "Colours", "a: 1\n"),
        ExportedFile(tmp_path / "d" / "colours.yaml", "d", "colours", "a: 1\n"),
    ]
    with pytest.raises(ConfigError, match="colours.yaml: same file as .*Colours.yaml"):
        write_files(files, force=False)
    assert replaces.calls == 0
    assert tree(tmp_path) == []


def test_a_file_name_too_long_is_refused_before_any_write(
    tmp_path: Path, replaces: FailingReplace
) -> None:
    files = [
        ExportedFile(tmp_path / "d" / "first.yaml", "d", "first", "a: 1\n"),
        ExportedFile(tmp_path / "d" / ("x" * 237 + ".yaml"), "d", "x", "a: 1\n"),
    ]
    with pytest.raises(ConfigError, match="file name longer than 241 bytes"):
        write_files(files, force=False)
    assert replaces.calls == 0
    assert tree(tmp_path) == []


def midway_setup(tmp_path: Path) -> tuple[Path, list[ExportedFile]]:
    """Four files in two namespaces, out/ missing but for one existing file (--force)."""
    out = tmp_path / "out"
    files = plan_files(out, {"design": named("colours", "shapes"), "sales": named("a", "b")})
    files[1].path.parent.mkdir(parents=True)
    files[1].path.write_text("# mine\n")
    files[1].path.chmod(0o640)
    return out, files


def test_a_write_failing_midway_undoes_the_files_written_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, files = midway_setup(tmp_path)
    disk_full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(files_module.os, "replace", FailingReplace(3, disk_full))
    expected = (
        f"{files[2].path}: cannot write: No space left on device; nothing was written: "
        "the 2 file(s) written before it were undone"
    )
    with pytest.raises(ConfigError) as failed:
        write_files(files, force=True)
    assert str(failed.value) == expected
    assert tree(out) == ["design", "design/shapes.yaml"]  # no sales/, no temporary files
    assert files[1].path.read_text() == "# mine\n"  # the overwritten file is back
    assert stat.S_IMODE(files[1].path.stat().st_mode) == 0o640


def test_files_that_cannot_be_undone_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, files = midway_setup(tmp_path)
    monkeypatch.setattr(files_module.os, "replace", FailingReplace(3, OSError(errno.EIO, "I/O")))
    real_unlink = Path.unlink

    def stuck_unlink(self: Path, missing_ok: bool = False) -> None:
        if self == files[0].path:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", stuck_unlink)
    with pytest.raises(ConfigError, match="1 file.s. written before it could not be undone") as e:
        write_files(files, force=True)
    assert e.value.details == [str(files[0].path)]
    monkeypatch.undo()
    assert tree(out) == ["design", "design/colours.yaml", "design/shapes.yaml"]
    assert files[1].path.read_text() == "# mine\n"


def test_an_interrupted_export_undoes_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, files = midway_setup(tmp_path)
    monkeypatch.setattr(files_module.os, "replace", FailingReplace(4, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_files(files, force=True)
    assert tree(out) == ["design", "design/shapes.yaml"]
    assert files[1].path.read_text() == "# mine\n"


# --- warnings ---------------------------------------------------------------------------------


def test_legacy_ids_are_warned_about_with_file_and_field(tmp_path: Path) -> None:
    legacy = live_flat(config={**live_flat().config, "retriever_id": "legacy-one"})
    files = plan_files(tmp_path, {"design": [legacy, live_tree()]})
    write_files(files, force=False)
    (problem,) = problems_in(files)
    assert problem.startswith(f"{tmp_path / 'design' / 'products.yaml'}:12:")
    assert "spec.config.retriever_id" in problem


# --- appliedTo ------------------------------------------------------------------------------

MANAGED = {"managed_by": "taxsync"}


def collection(collection_id: str, name: str, *entries: dict[str, Any]) -> dict[str, Any]:
    """A collection as the list route returns it."""
    return {
        "collection_id": collection_id,
        "collection_name": name,
        "taxonomy_applications": list(entries),
    }


def applying(taxonomy_id: str = "tax_products", **entry: Any) -> dict[str, Any]:
    return {"taxonomy_id": taxonomy_id, **entry}


def around(*collections: dict[str, Any]) -> Neighbourhood:
    return neighbourhood(collections, [])


def applied(live: TaxonomyResponse, *collections: dict[str, Any]) -> Any:
    return manifest_for("design", live, around(*collections))["spec"].get("appliedTo")


def test_applied_to_lists_the_collections_by_name_with_only_their_non_default_settings() -> None:
    defaults = {
        "execution_mode": "materialize",
        "execution_phase": 1,
        "priority": 0,
        "hierarchical_enrichment_style": "combined",
        "target_collection_id": None,
        "scroll_filters": None,
    }
    filters = {"AND": [{"field": "lang", "operator": "eq", "value": "en"}]}
    set_ = {"execution_phase": 2, "priority": 7, "target_collection_id": "col_out"}
    assert applied(
        live_flat(),
        collection("col_z", "zoo", applying(**defaults)),
        collection("col_n", "none", applying("tax_other", priority=3)),
        collection("col_a", "archive", applying("tax_other"), applying(**set_)),
        collection("col_p", "photos", applying(execution_phase=None, scroll_filters=filters)),
    ) == [
        {"collection": "archive", **set_},
        {"collection": "photos", "scroll_filters": filters},
        {"collection": "zoo"},
    ]


def test_a_collection_whose_name_finds_another_or_does_not_load_is_named_by_its_id() -> None:
    entry = applying()
    assert applied(
        live_flat(),
        collection("col_1", "col_2", entry),  # "col_2" is another collection's id
        collection("col_2", "second", entry),
        collection("col_3", "twin", entry),
        collection("col_4", "twin", entry),  # "twin" finds col_3
        collection("col_5", "", entry),
        collection("col_6", "cost-${TAXSYNC_VAR_X}", entry),  # the loader would expand it
        collection("col_7", "bell\x07", entry),
        collection("col_8", "n" * 257, entry),
        collection("col_9", "n" * 256, entry),
    ) == [
        {"collection": "col_5"},
        {"collection": "col_7"},
        {"collection": "col_1"},
        {"collection": "col_6"},
        {"collection": "n" * 256},
        {"collection": "col_8"},
        {"collection": "second"},
        {"collection": "twin"},
        {"collection": "col_4"},
    ]


def test_system_collections_are_left_out() -> None:
    entry = applying()
    assert applied(live_flat(), collection("col_du", "_direct_upsert", entry)) is None
    assert applied(
        live_flat(),
        collection("_direct_upsert", "odd", entry),
        collection("col_p", "products", entry),
    ) == [{"collection": "products"}]


def test_a_taxonomy_no_collection_applies_gets_no_applied_to(tmp_path: Path) -> None:
    others = collection("col_p", "products", applying("tax_other"))
    assert applied(live_flat(), others) is None
    assert applied(live_flat(taxonomy_id=None), collection("col_p", "p", applying(None))) is None
    # Without the collections (or for a namespace they were not read for): none either.
    lives = {"design": [live_flat()]}
    (alone,) = plan_files(tmp_path, lives)
    (elsewhere,) = plan_files(tmp_path, lives, {"other": around(collection("c", "c", applying()))})
    assert "appliedTo" not in alone.text
    assert elsewhere.text == alone.text


def test_applied_to_is_written_after_the_config_in_the_order_a_person_writes(
    tmp_path: Path,
) -> None:
    (exported,) = plan_files(
        tmp_path,
        {"design": [live_tree()]},
        {"design": around(collection("col_w", "world", applying("tax_places", priority=3)))},
    )
    assert exported.text.endswith(
        "    parent_collection_id: col_world\n  appliedTo:\n  - collection: world\n    priority: 3\n"
    )


def test_exported_applied_to_loads_and_plans_no_attach_reconfigure_or_detach(
    tmp_path: Path,
) -> None:
    places = live_tree(metadata=MANAGED)
    products = live_flat()
    filters = {"OR": [{"field": "a", "operator": "eq", "value": 1}], "case_sensitive": True}
    neighbourhoods = {
        "design": around(
            collection(
                "col_1",
                "col_2",
                applying(execution_phase=3, scroll_filters=filters),
                applying("tax_places", hierarchical_enrichment_style="full_chain"),
            ),
            collection("col_2", "twin", applying(priority=0, execution_mode="materialize")),
            collection("col_3", "twin", applying("tax_places", target_collection_id="col_2")),
            collection("col_4", "idle"),
        )
    }
    live = {"design": [products, places]}
    write_files(plan_files(tmp_path, live, neighbourhoods), force=False)
    loaded = load_tree(tmp_path, {})
    assert {d.name: d.applied_to for d in loaded} == {
        "products": (
            {"collection": "col_1", "execution_phase": 3, "scroll_filters": filters},
            {"collection": "twin"},
        ),
        "places": (
            {"collection": "col_1", "hierarchical_enrichment_style": "full_chain"},
            {"collection": "col_3", "target_collection_id": "col_2"},
        ),
    }
    assert references.attachment_problems(loaded, neighbourhoods) == []
    missing = references.missing(loaded, neighbourhoods).values()
    assert [p for found in missing for p in found if p.path.startswith("spec.appliedTo")] == []
    assert planner.plan(loaded, live, PlanOptions(), neighbourhoods).changes == []


# --- references by name -----------------------------------------------------------------------


def test_references_are_written_by_name_where_the_name_is_unique(tmp_path: Path) -> None:
    places = live_tree()
    around_places = neighbourhood(
        [collection("col_world", "world"), collection("col_europe", "europe")],
        [{"retriever_id": "ret_clip_v1", "retriever_name": "clip"}],
    )
    (exported,) = plan_files(tmp_path, {"design": [places]}, {"design": around_places})
    assert "    - collection_id: {name: world}\n" in exported.text
    assert "      parent_collection_id: {name: world}\n" in exported.text
    write_files([exported], force=False)
    (loaded,) = load_tree(tmp_path, {})
    nodes = loaded.config["hierarchical_nodes"]
    assert [n["collection_id"] for n in nodes] == [{"name": "world"}, {"name": "europe"}]
    assert nodes[1]["parent_collection_id"] == {"name": "world"}


# Names that would end a comment, start a line, hide text or be read as a variable.
HOSTILE_NAMES = [
    'cat"\n# injected: true',
    "line\u2028separator\u2029para\x85next",
    "bidi\u202eevil",
    "cr\rlf",
    "${TAXSYNC_VAR_X} #",
    "n" * 300,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_shared_name_keeps_the_id_with_a_one_line_comment_whatever_the_name(
    tmp_path: Path, name: str
) -> None:
    live = live_flat()
    around_products = neighbourhood(
        [collection("col_products_v1", name), collection("col_twin", name)], []
    )
    (exported,) = plan_files(tmp_path, {"design": [live]}, {"design": around_products})
    (without,) = plan_files(tmp_path, {"design": [live]})
    # The comment adds no line, and the document reads as it would without it.
    assert exported.text.count("\n") == without.text.count("\n")
    assert yaml.safe_load(exported.text) == yaml.safe_load(without.text)
    (line,) = [x for x in exported.text.splitlines() if "collection_id: col_products_v1" in x]
    assert line.startswith('      collection_id: col_products_v1  # 2 collections are named "')
    assert line.endswith('": the id is kept')
    assert line.isprintable() and len(line) < 160
    write_files([exported], force=False)
    (loaded,) = load_tree(tmp_path, {})
    assert loaded.config["source_collection"]["collection_id"] == "col_products_v1"


def test_a_unique_name_with_a_control_character_keeps_the_id_with_a_comment(
    tmp_path: Path,
) -> None:
    around_products = neighbourhood([collection("col_products_v1", "bell\x07")], [])
    (exported,) = plan_files(tmp_path, {"design": [live_flat()]}, {"design": around_products})
    assert (
        '      collection_id: col_products_v1  # the name "bell\\u0007" holds a control character:'
        " the id is kept\n"
    ) in exported.text
    write_files([exported], force=False)
    assert load_tree(tmp_path, {})[0].config["source_collection"]["collection_id"] == (
        "col_products_v1"
    )


def test_a_name_with_dollar_braces_is_written_as_text(tmp_path: Path) -> None:
    name = "cost-${TAXSYNC_VAR_X}"
    around_products = neighbourhood([collection("col_products_v1", name)], [])
    config = manifest_for("design", live_flat(), around_products)["spec"]["config"]
    assert config["source_collection"]["collection_id"] == {"name": name}
    (exported,) = plan_files(tmp_path, {"design": [live_flat()]}, {"design": around_products})
    assert "collection_id: {name: 'cost-$${TAXSYNC_VAR_X}'}\n" in exported.text
    write_files([exported], force=False)
    (loaded,) = load_tree(tmp_path, {"TAXSYNC_VAR_X": "expanded"})
    assert loaded.config["source_collection"]["collection_id"] == {"name": name}
