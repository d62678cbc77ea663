"""The loader against hostile manifests: a pull request writes them, the plan job holds secrets.

Each section pins one rule: which variables are expanded (never a secret), which characters
names, keys and text may hold, which namespaces and names can travel in a URL and a header,
which paths are read (regular files inside the tree, every folder or an error), and how much
work YAML aliases may cause (counted, never timed).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taxsync import manifest
from taxsync.errors import ManifestError
from taxsync.manifest import (
    MAX_ALIAS_VALUES_PER_FILE,
    MAX_FILE_BYTES,
    aliases,
    load_tree,
)
from taxsync.manifest.document import Document
from taxsync.redact import SECRET_VARIABLES
from tests.helpers import flat, hierarchical, write

REPO_ROOT = Path(__file__).resolve().parent.parent


def problems(root: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_tree(root, environ or {})
    return [str(p) for p in caught.value.problems]


def only_problem(root: Path, environ: dict[str, str] | None = None) -> str:
    found = problems(root, environ)
    assert len(found) == 1, found
    return found[0]


# --- ${VAR}: only TAXSYNC_VAR_*, never a secret -----------------------------------------

SECRET = "sk_live_0123456789abcdef"


@pytest.mark.parametrize(
    "written",
    [
        "${MIXPEEK_API_KEY}",
        "${GITHUB_TOKEN}",
        "${TAXSYNC_GITHUB_TOKEN}",
        "${ACTIONS_RUNTIME_TOKEN}",
        "${HOME}",
        "${HOME:-fallback}",
        "${TAXSYNC_ENV}",  # the prefix is TAXSYNC_VAR_, not TAXSYNC_
        "${taxsync_var_team}",  # names are case-sensitive
    ],
)
def test_only_taxsync_var_variables_are_expanded(tmp_path: Path, written: str) -> None:
    name = written[2:-1].split(":-")[0]
    path = write(tmp_path, "a.yaml", flat().replace("by image similarity", f"from {written}"))
    environ = {variable: SECRET for variable in SECRET_VARIABLES} | {
        "HOME": SECRET,
        "TAXSYNC_ENV": SECRET,
        "taxsync_var_team": SECRET,
    }
    found = only_problem(tmp_path, environ)
    # Line 7 is `  description: Product categories from ${...}`: column of the `$`.
    column = len("  description: Product categories from ") + 1
    assert found == (
        f"{path}:7:{column}: spec.description: "
        f"${{{name}}}: only variables named TAXSYNC_VAR_* are expanded"
    )
    assert SECRET not in found


def test_taxsync_var_variables_defaults_and_literals(tmp_path: Path) -> None:
    text = flat().replace(
        "Product categories by image similarity",
        "${TAXSYNC_VAR_TEAM}/${TAXSYNC_VAR_EMPTY:-empty}/${TAXSYNC_VAR_UNSET:-unset}/$${HOME}",
    )
    write(tmp_path, "a.yaml", text)
    environ = {"TAXSYNC_VAR_TEAM": "search", "TAXSYNC_VAR_EMPTY": "", "HOME": "/root"}
    (desired,) = load_tree(tmp_path, environ)
    assert desired.description == "search/empty/unset/${HOME}"


def test_each_refused_variable_is_located_in_a_multi_line_value(tmp_path: Path) -> None:
    text = flat().replace(
        "  description: Product categories by image similarity\n",
        "  description: |\n    first ${TAXSYNC_VAR_OK}\n    then ${HOME} and ${USER}, ${HOME}\n",
    )
    path = write(tmp_path, "a.yaml", text)
    found = problems(tmp_path, {"TAXSYNC_VAR_OK": "ok"})
    rule = "only variables named TAXSYNC_VAR_* are expanded"
    assert found == [
        f"{path}:9:10: spec.description: ${{HOME}}: {rule}",
        f"{path}:9:22: spec.description: ${{USER}}: {rule}",
        f"{path}:9:31: spec.description: ${{HOME}}: {rule}",
    ]


@pytest.mark.parametrize("secret_variable", SECRET_VARIABLES)
@pytest.mark.parametrize("value", [SECRET, f"  {SECRET}\n", f"Bearer {SECRET}"])
def test_a_variable_holding_a_secret_is_refused_without_printing_it(
    tmp_path: Path, secret_variable: str, value: str
) -> None:
    path = write(tmp_path, "a.yaml", flat().replace("production", "${TAXSYNC_VAR_NS}"))
    found = only_problem(tmp_path, {secret_variable: SECRET, "TAXSYNC_VAR_NS": value})
    assert found == (
        f"{path}:5:14: metadata.namespace: ${{TAXSYNC_VAR_NS}}: its value is the value of "
        f"{secret_variable}, a secret; secrets are never expanded"
    )
    assert SECRET not in found


def test_a_secret_of_the_process_counts_even_if_not_in_the_given_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXPEEK_API_KEY", SECRET)
    write(tmp_path, "a.yaml", flat().replace("by image similarity", "${TAXSYNC_VAR_D}"))
    found = only_problem(tmp_path, {"TAXSYNC_VAR_D": SECRET})
    assert "its value is the value of MIXPEEK_API_KEY" in found and SECRET not in found


def test_a_short_secret_is_refused_only_as_a_whole_value(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat().replace("by image similarity", "${TAXSYNC_VAR_D}"))
    # A one-letter "secret" (a test double) must not make every value containing "a" a leak.
    (desired,) = load_tree(tmp_path, {"GITHUB_TOKEN": "a", "TAXSYNC_VAR_D": "a team"})
    assert desired.description == "Product categories a team"
    assert "GITHUB_TOKEN" in only_problem(tmp_path, {"GITHUB_TOKEN": "a", "TAXSYNC_VAR_D": "a"})


# --- characters ------------------------------------------------------------------------

# (where in flat()/hierarchical(), what it reads there, how to inject) for strings that name
# something: the value is written double-quoted, so YAML escapes put any character in it.
NAMED_FIELDS: list[tuple[str, str, str, str]] = [
    # (manifest, old text, new text with {c} for the character, the reported path)
    ("flat", "name: products", 'name: "prod{c}ucts"', "metadata.name"),
    ("flat", "namespace: production", 'namespace: "prod{c}uction"', "metadata.namespace"),
    (
        "flat",
        "  namespace: production\n",
        '  namespace: production\n  previousNames: ["old{c}"]\n',
        "metadata.previousNames[0]",
    ),
    ("flat", "input_key: image_vector", 'input_key: "image{c}"', "input_key"),
    ("flat", "field_path: metadata.tags", 'field_path: "tags{c}"', "field_path"),
    ("flat", "target_field: category", 'target_field: "cat{c}"', "target_field"),
    ("flat", "collection_id: col_products_v1", 'collection_id: "col_p{c}"', "collection_id"),
    ("flat", "retriever_id: ret_clip_v1", 'retriever_id: "ret_c{c}"', "retriever_id"),
    ("tree", "label: Employees}", 'label: "Emp{c}"}', "hierarchical_nodes[0].label"),
    (
        "tree",
        "parent_collection_id: col_employees",
        'parent_collection_id: "col_employees{c}"',
        "hierarchical_nodes[1].parent_collection_id",
    ),
]

# (YAML escape, code point, description)
NEVER_IN_NAMES = [
    ("\\e", 0x1B, "a control character"),
    ("\\0", 0x00, "a control character"),
    ("\\n", 0x0A, "a control character"),
    ("\\t", 0x09, "a control character"),
    ("\\r", 0x0D, "a control character"),
    ("\\x7f", 0x7F, "a control character"),
    ("\\x85", 0x85, "a control character"),
    ("\\x9b", 0x9B, "a control character"),
    ("\\u2028", 0x2028, "a line separator"),
    ("\\u202a", 0x202A, "an invisible bidirectional-text control"),
    ("\\u202e", 0x202E, "an invisible bidirectional-text control"),
    ("\\u2066", 0x2066, "an invisible bidirectional-text control"),
    ("\\u2069", 0x2069, "an invisible bidirectional-text control"),
    ("\\u200e", 0x200E, "an invisible bidirectional-text control"),
    ("\\u200f", 0x200F, "an invisible bidirectional-text control"),
    ("\\u061c", 0x061C, "an invisible bidirectional-text control"),
]


def _manifest(kind: str) -> str:
    return flat() if kind == "flat" else hierarchical()


@pytest.mark.parametrize(
    ("escape", "code", "kind"), NEVER_IN_NAMES, ids=[e[0] for e in NEVER_IN_NAMES]
)
@pytest.mark.parametrize(
    ("source", "old", "new", "where"), NAMED_FIELDS, ids=[f[3] for f in NAMED_FIELDS]
)
def test_names_ids_and_keyed_list_keys_refuse_control_and_bidi_characters(
    tmp_path: Path, source: str, old: str, new: str, where: str, escape: str, code: int, kind: str
) -> None:
    text = _manifest(source)
    assert old in text
    write(tmp_path, "a.yaml", text.replace(old, new.replace("{c}", escape), 1))
    found = problems(tmp_path)
    message = f"{where}: contains {kind} U+{code:04X}"
    assert any(p.endswith(message) for p in found), found
    assert all(p.isprintable() for p in found), found


@pytest.mark.parametrize(
    ("escape", "code", "kind"), NEVER_IN_NAMES, ids=[e[0] for e in NEVER_IN_NAMES]
)
@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("{team: search}", '{"te{c}am": search}', "spec.metadata"),
        ("{team: search}", '{team: {"nested{c}": 1}}', "spec.metadata.team"),
        ("    top_k: 1\n", '    "top{c}_k": 1\n', "spec.config"),
        ("kind: Taxonomy\n", 'kind: Taxonomy\n"x{c}": 1\n', ""),
    ],
    ids=["spec.metadata", "nested", "spec.config", "top"],
)
def test_no_mapping_key_anywhere_holds_control_or_bidi_characters(
    tmp_path: Path, old: str, new: str, where: str, escape: str, code: int, kind: str
) -> None:
    path = write(tmp_path, "a.yaml", flat().replace(old, new.replace("{c}", escape), 1))
    (found,) = problems(tmp_path)
    field = f"{where}: " if where else ""
    assert found.startswith(f"{path}:") and f": {field}key " in found, found
    assert found.endswith(f" contains {kind} U+{code:04X}"), found
    # The key is shown escaped: no message carries the character itself.
    assert found.isprintable(), found
    assert chr(code) not in found


def test_free_text_keeps_newlines_and_tabs(tmp_path: Path) -> None:
    text = flat().replace(
        "  description: Product categories by image similarity\n",
        '  description: "Product categories\\n\\tby image similarity"\n',
    )
    write(tmp_path, "a.yaml", text.replace("{team: search}", '{team: "a\\nb"}'))
    (desired,) = load_tree(tmp_path, {})
    assert desired.description == "Product categories\n\tby image similarity"
    assert desired.metadata == {"team": "a\nb"}


@pytest.mark.parametrize(
    ("escape", "code", "kind"),
    [
        ("\\e", 0x1B, "a control character"),
        ("\\r", 0x0D, "a control character"),
        ("\\x07", 0x07, "a control character"),
        ("\\x7f", 0x7F, "a control character"),
        ("\\x9b", 0x9B, "a control character"),
        ("\\u202e", 0x202E, "an invisible bidirectional-text control"),
        ("\\u2067", 0x2067, "an invisible bidirectional-text control"),
        ("\\u061c", 0x061C, "an invisible bidirectional-text control"),
    ],
)
@pytest.mark.parametrize(
    ("old", "new", "where", "at"),
    [
        ("description: Product", 'description: "Pro{c}duct', "spec.description", "7:16"),
        ("{team: search}", '{team: "se{c}arch"}', "spec.metadata.team", "8:20"),
        ("path: features.clip_vit_l_14", 'path: "f{c}"', "spec.config.input_mappings[0].path", ""),
    ],
    ids=["description", "metadata", "config"],
)
def test_free_text_refuses_escapes_c1_and_bidi_controls(
    tmp_path: Path, old: str, new: str, where: str, at: str, escape: str, code: int, kind: str
) -> None:
    text = flat().replace(old, new.replace("{c}", escape), 1)
    if new.startswith("description"):
        text = text.replace("image similarity\n", 'image similarity"\n', 1)
    path = write(tmp_path, "a.yaml", text)
    (found,) = problems(tmp_path)
    assert found.startswith(f"{path}:{at}") and found.endswith(
        f": {where}: contains {kind} U+{code:04X}"
    ), found


def test_raw_bidi_characters_in_the_file_are_refused_too(tmp_path: Path) -> None:
    # YAML allows these unescaped; a reviewer sees "image_vector" in the diff.
    path = write(tmp_path, "a.yaml", flat().replace("image_vector", "image\u2067_vector\u2069"))
    assert only_problem(tmp_path) == (
        f"{path}:14:21: spec.config.input_mappings[0].input_key: "
        "contains an invisible bidirectional-text control U+2067"
    )


def test_an_expanded_value_is_checked_like_a_written_one(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat().replace("production", "${TAXSYNC_VAR_NS}"))
    found = only_problem(tmp_path, {"TAXSYNC_VAR_NS": "prod\x1b[2Juction"})
    assert found.endswith("metadata.namespace: contains a control character U+001B")


# --- namespaces and names: URL path segments, an HTTP header ----------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "namespace: production",
            "namespace: producción",
            "5:3: metadata.namespace: must be ASCII (it is sent in an HTTP header): U+00F3",
        ),
        (
            "namespace: production",
            "namespace: team/production",
            "5:3: metadata.namespace: must not contain '/' (it is a URL path segment)",
        ),
        (
            "namespace: production",
            'namespace: ".."',
            "5:3: metadata.namespace: must not be '..' (it is a URL path segment)",
        ),
        (
            "namespace: production",
            "namespace: .",
            "5:3: metadata.namespace: must not be '.' (it is a URL path segment)",
        ),
        (
            "namespace: production",
            'namespace: " production"',
            "5:3: metadata.namespace: must not start or end with whitespace",
        ),
        (
            "name: products",
            'name: ".."',
            "4:3: metadata.name: must not be '..' (it is a URL path segment)",
        ),
        ("name: products", "name: .", "4:3: metadata.name: must not be '.'"),
        (
            "  namespace: production\n",
            "  namespace: production\n  previousNames: [old, ..]\n",
            "6:24: metadata.previousNames[1]: must not be '..' (it is a URL path segment)",
        ),
        (
            "  namespace: production\n",
            "  namespace: production\n  previousNames: ['']\n",
            "6:19: metadata.previousNames[0]: must not be empty",
        ),
    ],
)
def test_namespaces_and_names_must_be_safe_url_segments(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = write(tmp_path, "a.yaml", flat().replace(old, new, 1))
    found = only_problem(tmp_path)
    assert found.startswith(f"{path}:{message}"), found


def test_names_may_hold_slashes_and_unicode(tmp_path: Path) -> None:
    # The API sets no pattern on taxonomy names; `places/regions` exists in the wild.
    text = flat("places/regions").replace("  namespace: production\n", "")
    text = text.replace("metadata:\n", "metadata:\n  namespace: ns_abc123\n", 1)
    write(tmp_path, "a.yaml", text)
    write(tmp_path, "b.yaml", flat("catégories…", "team-a.prod_2"))
    names = sorted((d.namespace, d.name) for d in load_tree(tmp_path, {}))
    assert names == [("ns_abc123", "places/regions"), ("team-a.prod_2", "catégories…")]


# --- files that are not files, and folders that cannot be read ------------------------


def guard_fifo_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a FIFO so that it blocks (``os.open`` without O_NONBLOCK, or ``open()``,
    which always blocks) fails the test instead of hanging it."""
    real_os_open, real_open, real_stat = os.open, builtins.open, os.stat

    def is_fifo(path: Any) -> bool:
        try:
            return isinstance(path, str | bytes | os.PathLike) and stat.S_ISFIFO(
                real_stat(path).st_mode
            )
        except (OSError, ValueError):
            return False

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if not flags & os.O_NONBLOCK and is_fifo(path):
            raise AssertionError(f"{path} is a FIFO opened for blocking: this would hang")
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
        if is_fifo(file):
            raise AssertionError(f"{file} is a FIFO opened with open(): this would hang")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


@pytest.fixture
def never_blocking_open(monkeypatch: pytest.MonkeyPatch) -> None:
    guard_fifo_opens(monkeypatch)


@pytest.mark.usefixtures("never_blocking_open")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", flat("a"))
    fifo = tmp_path / "b.yaml"
    os.mkfifo(fifo)
    assert problems(tmp_path) == [f"{fifo}:1:1: not a regular file (a FIFO)"]
    # Named directly, too.
    assert problems(fifo) == [f"{fifo}:1:1: not a regular file (a FIFO)"]


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        assert problems(tmp_path) == [f"{path}:1:1: not a regular file (a socket)"]


def test_a_device_in_the_tree_is_refused_unread(tmp_path: Path) -> None:
    device = tmp_path / "zero.yaml"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("creating a device needs root (CI runs as root)")
    assert problems(tmp_path) == [f"{device}:1:1: not a regular file (a character device)"]


def test_a_device_named_directly_is_refused_unread() -> None:
    """The counterpart of the test above, which needs root to make a device: this one runs
    whoever runs the suite (/dev/zero would never end if it were read)."""
    assert problems(Path("/dev/zero")) == ["/dev/zero:1:1: not a regular file (a character device)"]


def test_the_read_is_bounded_whatever_the_file_size_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = write(tmp_path, "big.yaml", flat())
    with big.open("a", encoding="utf-8") as out:
        out.write(("#" * 1023 + "\n") * (MAX_FILE_BYTES // 1024 + 2))
    real_fstat, real_read = os.fstat, os.read
    read: list[int] = []

    def lying_fstat(fd: int) -> os.stat_result:  # as /proc files do: st_size 0
        values = list(real_fstat(fd))
        values[stat.ST_SIZE] = 0
        return os.stat_result(values)

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "fstat", lying_fstat)
    monkeypatch.setattr(os, "read", counting_read)
    assert problems(tmp_path) == [f"{big}:1:1: file is larger than 8 MiB"]
    assert sum(read) == MAX_FILE_BYTES + 1  # not one byte more than it takes to know


def test_the_type_is_checked_on_the_opened_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, never_blocking_open: None
) -> None:
    """A path checked, then swapped for a FIFO before the open, is still refused."""
    fifo = tmp_path / "a.yaml"
    os.mkfifo(fifo)
    real_stat = os.stat

    def regular_looking_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_stat(path, *args, **kwargs)
        if str(path) != str(fifo):
            return result
        values = list(result)
        values[stat.ST_MODE] = stat.S_IFREG | 0o644
        return os.stat_result(values)

    monkeypatch.setattr(os, "stat", regular_looking_stat)
    assert problems(tmp_path) == [f"{fifo}:1:1: not a regular file (a FIFO)"]


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("zero.yaml", "/dev/zero"),  # would read forever past the size check
        ("passwd.yaml", "/etc/passwd"),
        ("elsewhere.yaml", "{outside}/real.yaml"),  # a valid manifest, but not in the tree
        ("shared", "{outside}"),  # a folder
        ("gone", "{outside}/missing"),  # leads nowhere, outside
    ],
)
def test_a_symlink_leading_outside_the_tree_is_refused(
    tmp_path: Path, name: str, target: str
) -> None:
    outside = tmp_path / "outside"
    write(outside, "real.yaml", flat("elsewhere"))
    tree = tmp_path / "tree"
    write(tree, "a.yaml", flat("a"))
    link = tree / name
    link.symlink_to(target.format(outside=outside))
    assert problems(tree) == [f"{link}: is a symlink leading outside the manifest tree"]


def test_a_link_out_of_the_tree_to_a_file_that_is_not_a_manifest_is_ignored(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    write(tree, "a.yaml", flat("a"))
    (tree / "README.md").symlink_to(REPO_ROOT / "README.md")
    assert [d.name for d in load_tree(tree, {})] == ["a"]


def test_symlinks_inside_the_tree_are_followed_and_each_file_read_once(tmp_path: Path) -> None:
    write(tmp_path, ".versions/v2/a.yaml", flat("a"))  # hidden: only reached by the links
    write(tmp_path, "b.yaml", flat("b"))
    (tmp_path / "current").symlink_to(".versions/v2")
    (tmp_path / "also-b.yaml").symlink_to("b.yaml")  # b.yaml once, not a duplicate
    (tmp_path / "loop").symlink_to(".")  # the tree again: read once, the walk ends
    desired = load_tree(tmp_path, {})
    assert sorted((d.name, Path(d.source.file).name) for d in desired) == [
        ("a", "a.yaml"),
        ("b", "also-b.yaml"),
    ]


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("dangling.yaml", lambda link: link.symlink_to("missing.yaml"), "No such file"),
        ("dangling", lambda link: link.symlink_to("missing"), "No such file"),
        ("self.yaml", lambda link: link.symlink_to("self.yaml"), "Too many levels"),
    ],
)
def test_a_symlink_that_leads_nowhere_is_an_error(
    tmp_path: Path, name: str, make: Callable[[Path], None], reason: str
) -> None:
    write(tmp_path, "a.yaml", flat("a"))
    make(tmp_path / name)
    (found,) = problems(tmp_path)
    assert found.startswith(f"{tmp_path / name}: cannot read: {reason}"), found


@pytest.mark.parametrize(
    ("relative", "shown"),
    [
        ("b\x1b[8m.yaml", "b\\u001b[8m.yaml"),
        ("evil\u202egpj.yaml", "evil\\u202egpj.yaml"),
        ("team\n/b.yaml", "team\\u000a"),  # a folder
    ],
)
def test_a_file_or_folder_name_with_control_characters_is_refused_escaped(
    tmp_path: Path, relative: str, shown: str
) -> None:
    write(tmp_path, "a.yaml", flat("a"))
    write(tmp_path, relative, flat("b"))
    (found,) = problems(tmp_path)
    assert found.startswith(f"{tmp_path}/{shown}"), found
    assert "the name contains " in found and found.isprintable(), found


@pytest.fixture
def vanishing(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``vanishing(folder)``: the folder disappears between being listed and being read
    (as root, no permission bit makes a folder unreadable; this is a real ENOENT)."""
    real_scandir = os.scandir
    doomed: set[str] = set()

    def scandir(path: Any) -> Any:
        if str(path) in doomed:
            doomed.discard(str(path))
            shutil.rmtree(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return lambda folder: doomed.add(str(folder))


def test_a_folder_that_cannot_be_read_is_an_error(
    tmp_path: Path, vanishing: Callable[[Path], None]
) -> None:
    write(tmp_path, "a/one.yaml", flat("one"))
    write(tmp_path, "b/two.yaml", flat("two"))
    vanishing(tmp_path / "b")
    assert problems(tmp_path) == [
        f"{tmp_path / 'b'}: cannot read folder: No such file or directory"
    ]


def test_a_stat_error_on_a_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a/one.yaml", flat("one"))
    real_stat = os.stat
    broken = str(tmp_path / "a")

    def stat_(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path) == broken:
            raise OSError(errno.EIO, os.strerror(errno.EIO), broken)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_)
    assert problems(tmp_path) == [f"{broken}: cannot read folder: Input/output error"]


def _run_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """``taxsync ARGS`` in a child that file permissions apply to: as root (CI), with the
    capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXPEEK_", "TAXSYNC_"))}
    env["PYTHONPATH"] = str(Path(manifest.__file__).parents[2])
    command = [sys.executable, "-m", "taxsync", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        dropped = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={dropped}", f"--bounding-set={dropped}", "--", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("what", ["folder", "file"])
def test_unreadable_paths_fail_the_run_for_real(tmp_path: Path, what: str) -> None:
    write(tmp_path, "a/one.yaml", flat("one"))
    write(tmp_path, "b/two.yaml", flat("two"))
    locked = tmp_path / "b" if what == "folder" else tmp_path / "b" / "two.yaml"
    locked.chmod(0)
    try:
        result = _run_unprivileged("validate", str(tmp_path))
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result
    where = f"{locked}: cannot read folder:" if what == "folder" else f"{locked}:1:1: cannot read:"
    assert result.stderr.startswith(f"Error: {where} Permission denied"), result.stderr


def test_a_manifest_path_symlinked_out_of_the_working_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    outside = tmp_path / "outside"
    write(outside, "a.yaml", flat("a"))
    write(checkout, "inside/a.yaml", flat("a"))
    (checkout / "taxonomies").symlink_to(outside)  # the pull request made it a link
    (checkout / "config").symlink_to(tmp_path)  # or a folder above it
    (checkout / "linked").symlink_to("inside")  # a link within the checkout is fine
    monkeypatch.chdir(checkout)
    message = "leads outside the working directory through a symlink"
    assert problems(Path("taxonomies")) == [f"taxonomies: {message}"]
    assert problems(Path("config/outside")) == [f"config/outside: {message}"]
    assert problems(checkout / "taxonomies") == [f"{checkout / 'taxonomies'}: {message}"]
    assert [d.name for d in load_tree(Path("linked"), {})] == ["a"]
    # A path outside the working directory was spelled out by whoever runs taxsync.
    assert [d.name for d in load_tree(outside, {})] == ["a"]


# --- YAML aliases: a budget per file and per run, measured before expanding ---------------


def _bomb(levels: int, name: str = "products") -> str:
    """A manifest whose metadata holds 9**levels values through aliases."""
    lines = ["    l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return flat(name).replace(
        "  metadata: {team: search}\n", "  metadata:\n" + "\n".join(lines) + "\n"
    )


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts values converted; more than a bound of work fails the test (instead of
    letting a planted bug run for minutes)."""
    count = [0]
    real = Document.convert
    bound = 2 * MAX_ALIAS_VALUES_PER_FILE

    def convert(self: Any, node: Any, path: Any = ()) -> Any:
        count[0] += 1
        if count[0] > bound:
            raise AssertionError(f"converted more than {bound} values")
        return real(self, node, path)

    monkeypatch.setattr(Document, "convert", convert)
    return count


def test_small_alias_bombs_add_up_per_file(tmp_path: Path, conversions: list[int]) -> None:
    # Each document expands to ~75,000 values, under the limit; twenty of them are not.
    text = "---\n".join(_bomb(5, f"t{i}") for i in range(20))
    assert len(text.encode()) < 20 * 1024  # a small file
    path = write(tmp_path, "bombs.yaml", text)
    (found,) = problems(tmp_path)
    # Two documents fit; the third's l4 entry (line 13 of a document) goes past.
    line = 2 * (_bomb(5).count("\n") + 1) + 13
    assert found == (
        f"{path}:{line}:5: spec.metadata.l4: "
        f"YAML aliases expand this file by more than {MAX_ALIAS_VALUES_PER_FILE} values"
    )
    # Two documents were converted; the third, and the rest of the file, never were.
    assert conversions[0] < 2 * 80_000


def test_a_bomb_is_refused_before_any_value_is_converted(
    tmp_path: Path, conversions: list[int]
) -> None:
    write(tmp_path, "a.yaml", _bomb(12))  # 9**12: 282 billion values
    (found,) = problems(tmp_path)
    assert "spec.metadata.l11: YAML aliases expand this file by more than" in found
    assert conversions[0] == 0


def test_alias_bombs_add_up_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversions: list[int]
) -> None:
    monkeypatch.setattr(aliases, "MAX_ALIAS_VALUES_PER_RUN", 150_000)
    for i in range(4):  # ~75,000 each: every file is under its own limit
        write(tmp_path, f"{i}.yaml", _bomb(5, f"t{i}"))
    (found,) = problems(tmp_path)
    assert found == (
        f"{tmp_path / '2.yaml'}:13:5: spec.metadata.l4: "
        "YAML aliases expand the manifests by more than 150000 values"
    )
    assert conversions[0] < 2 * 80_000


@pytest.mark.parametrize(
    ("metadata", "line_col"),
    [("&a [*a, *a]", "8:13"), ("&m {k: *m, j: *m}", "8:17"), ("{a: &x [[*x]]}", "8:21")],
)
def test_a_value_that_contains_itself_is_refused_unexpanded(
    tmp_path: Path, conversions: list[int], metadata: str, line_col: str
) -> None:
    path = write(tmp_path, "a.yaml", flat().replace("{team: search}", metadata))
    (found,) = problems(tmp_path)
    assert found == f"{path}:{line_col}: recursive YAML alias: a value contains itself"
    assert conversions[0] == 0


def test_ordinary_aliases_are_fine(tmp_path: Path) -> None:
    text = (
        hierarchical().replace(
            "    input_mappings: [{input_key: face_vec, source_type: vector, path: features.face}]",
            "    input_mappings: &mappings [{input_key: face_vec, source_type: vector, path: f}]",
        )
        + "  metadata: {copied: *mappings}\n"
    )
    write(tmp_path, "a.yaml", text)
    (desired,) = load_tree(tmp_path, {})
    assert desired.metadata["copied"] == desired.config["input_mappings"]
