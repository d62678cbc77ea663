"""Untrusted text in every output: the terminal, the step log, the step summary, the PR comment.

Names, namespaces, ids, metadata keys, keyed-list keys, descriptions, notes, API error
messages and manifest file names all come from a pull request or from the API. Whatever
they hold, no rendering may

* carry a control, format or separator character (ESC, CSI U+009B, OSC, U+202E, U+2028, …)
  to a terminal or a page: it is shown as an escape such as ``\\u001b``;
* start a new line, or spell a GitHub Actions workflow command in the step log (``::`` at
  a line's start, ``##[`` anywhere in a line);
* open or close markdown or HTML structure in markdown (a table cell, ``<details>``, a code
  fence, an HTML comment) or mention anyone (``@user``).

The checks here parse the outputs independently of taxsync's own helpers, so a bug in
those helpers cannot hide itself.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest

from taxsync import github, planner, render
from taxsync.emulator.store import Store
from taxsync.errors import ManifestError, ManifestProblem, TaxsyncError
from taxsync.history import History, VersionEntry
from taxsync.model import DesiredTaxonomy, SourceLocation
from taxsync.plan import (
    AnyChange,
    ApplyResult,
    AttachmentChange,
    ChangeResult,
    FieldChange,
    Plan,
    Summary,
    TaxonomyChange,
)
from taxsync.render.fields import leaf_changes
from taxsync.wire import CreateTaxonomyRequest, TaxonomyResponse
from tests.helpers import flat, run_cli, seed_local, write

# --- hostile strings -----------------------------------------------------------------------

ESC = "\x1b"
CSI = "\x9b"  # the one-character C1 control sequence introducer
OSC_TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
RLO = "\u202e"  # right-to-left override: "txt.exe" reads as "exe.txt"
LRI = "\u2066"  # left-to-right isolate
ZWSP = "\u200b"
LINE_SEPARATOR = "\u2028"
TAG_A = "\U000e0041"  # an invisible tag character, outside the BMP
DEL = "\x7f"

TERMINAL = f"{ESC}[31mred{ESC}[0m {OSC_TITLE} {CSI}2J {RLO}gpj.exe {LRI}x{DEL}{ZWSP}{TAG_A}"
COMMANDS = (
    "\n::error file=x,line=1::forged\n::add-mask::secret\n::stop-commands::tok\n"
    "##[error]legacy ##[set-output name=changes;]false"
)
MARKDOWN = (
    "\n```\n</details>\n<!-- hide the rest\n| a | b |\n<details><summary>x</summary>\n"
    "@octocat @acme/owners &#64;hubot [link](https://example.invalid) `tick`"
)
HOSTILE = TERMINAL + COMMANDS + MARKDOWN + LINE_SEPARATOR + "\r\nend"

MARKER_RE = re.compile(r"<!-- taxsync-plan( [^\n>]*)? -->")


def hidden_characters(text: str) -> list[str]:
    """Characters no output may hold raw (line breaks other than LF included)."""
    return sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")
        }
    )


def assert_no_hidden(text: str, where: str) -> None:
    assert hidden_characters(text) == [], f"raw hidden characters in {where}"


def command_lines(text: str) -> list[str]:
    """Lines of a log the Actions runner would take for workflow commands."""
    return [
        line
        for line in text.split("\n")
        if line.lstrip().startswith("::") or "##[" in line or "\r" in line
    ]


# --- markdown, read independently ---------------------------------------------------------

_OPEN_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})([^`]*)")


def markdown_structure(markdown: str) -> tuple[list[str], list[str]]:
    """Lines outside code blocks, and the fence lines, as CommonMark reads them.

    Asserts every code block is closed.
    """
    prose: list[str] = []
    fences: list[str] = []
    fence = ""
    for line in markdown.split("\n"):
        if fence:
            closing = re.fullmatch(r" {0,3}(`{3,}|~{3,})[ \t]*", line)
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence):
                fences.append(line)
                fence = ""
            continue
        opening = _OPEN_FENCE.fullmatch(line)
        if opening:
            fence = opening[1]
            fences.append(line)
            continue
        prose.append(line)
    assert not fence, "a code block is left open"
    assert len(fences) % 2 == 0
    return prose, fences


def without_code_spans(line: str) -> str:
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line)


MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")


def assert_safe_markdown(markdown: str, *, marker: bool = False) -> list[str]:
    """Balanced HTML, closed code, no HTML comment (but the marker), no mention; the prose."""
    assert_no_hidden(markdown, "markdown")
    prose, _ = markdown_structure(markdown)
    if marker:
        assert MARKER_RE.fullmatch(prose[0]), prose[0]
        prose = prose[1:]
    text = "\n".join(prose)
    assert "<!--" not in text, "an HTML comment would hide what follows"
    for tag in ("details", "summary"):
        opened, closed = text.count(f"<{tag}>"), text.count(f"</{tag}>")
        assert opened == closed, f"<{tag}> {opened} times, </{tag}> {closed} times"
    # Every tag in prose is one of taxsync's own; anything else arrives as an entity.
    assert set(re.findall(r"</?([A-Za-z]+)", text)) <= {"details", "summary", "sub", "code"}
    for line in prose:
        assert not MENTION.search(without_code_spans(line)), f"a mention would notify: {line!r}"
        # The only code spans in prose are taxsync's own symbols (the plan table, the
        # node tree's legend).
        assert "`" not in re.sub(r"`[+~±>-]`", "", line), f"a code span from a field: {line!r}"
        assert "&#64;" not in line.replace("&amp;#64;", ""), "an entity would decode into @"
    return prose


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of each body row of the plan table (a ``\\|`` does not split a cell)."""
    prose, _ = markdown_structure(markdown)
    rows = [line for line in prose if line.startswith("| `")]
    return [re.split(r"(?<!\\)\|", row)[1:-1] for row in rows]


# --- plans with hostile strings in every field -----------------------------------------------


def hostile_change(action: str, tag: str) -> AnyChange:
    common: dict[str, Any] = {
        "action": action,
        "namespace": f"ns{tag}{HOSTILE}",
        "name": f"name{tag}{HOSTILE}",
        "taxonomy_id": None if action == "create" else f"tax{tag}{HOSTILE}",
        "taxonomy_type": f"flat{HOSTILE}",
        "source": f"m/{HOSTILE}.yaml:4",
        "diff": [
            FieldChange(path=f"metadata.{HOSTILE}", after=HOSTILE, before_present=False),
            FieldChange(path=f"config.input_mappings[{HOSTILE}]", before={HOSTILE: [HOSTILE]}),
            FieldChange(path="description", before=HOSTILE, after=f"``` {RLO} ```"),
            FieldChange(path=f"config.{HOSTILE}", before=1, after_present=False),
        ],
        "notes": [f"live config has keys the API no longer declares (ignored): {HOSTILE}"],
    }
    if action not in ATTACHMENTS:
        return TaxonomyChange(
            **common,
            base_version=None if action == "create" else 2,
            rename_from=f"old{HOSTILE}" if action == "update" else None,
        )
    # Attachment changes: the collection's name and id come from the API.
    return AttachmentChange(
        **common,
        collection_id=f"col{tag}{HOSTILE}",
        collection_name=f"coll{tag}{HOSTILE}",
        application={} if action != "detach" else None,
        live_application={} if action != "attach" else None,
        backfills=[f"col{tag}{HOSTILE}"] if action == "attach" else [],
    )


ATTACHMENTS = ("attach", "reconfigure", "detach")
CHANGES = 8  # one of each action


def hostile_plan() -> Plan:
    actions = ("create", "new_version", "update", "replace", "delete", *ATTACHMENTS)
    changes = [hostile_change(action, str(i)) for i, action in enumerate(actions)]
    return Plan(namespaces=["production"], summary=Summary.of(changes, 1), changes=changes)


def hostile_result(plan: Plan) -> ApplyResult:
    statuses = ["applied", "failed", "stale", "not_started", "failed", "applied", "stale", "failed"]
    return ApplyResult(
        [
            ChangeResult(
                c,
                s,
                message=f"HTTP 422: {HOSTILE}" if s != "applied" else "",  # type: ignore[arg-type]
                taxonomy_id=f"tax{HOSTILE}",
                version=3,
            )
            for c, s in zip(plan.changes, statuses, strict=True)
        ]
    )


def hostile_history() -> History:
    return History(
        namespace=f"{COMMANDS.lstrip()}{HOSTILE}",
        name=HOSTILE,
        taxonomy_id=HOSTILE,
        versions=[
            VersionEntry(version=1, created_at=HOSTILE),
            VersionEntry(
                version=2, created_at=HOSTILE, diff=[FieldChange(path=HOSTILE, before=HOSTILE)]
            ),
        ],
    )


# Text aimed at Mermaid, each short enough to be drawn whole (the picture cuts labels at
# 40 characters): ending a quoted label and adding an edge and a click handler, a
# comment, a class, a markdown string, HTML, entities (Mermaid's and HTML's), brackets,
# a statement separator, and what a terminal or the step log would obey.
MERMAID_ATTACKS = (
    '"] --> n0; click n0 call alert(1)',
    "%% hides the rest",
    "x:::added",
    "`**markdown**`",
    "<img src=x onerror=alert(1)>",
    "#quot; #35; &amp; &#60; #9829;",
    '\\" ]) }} |x| ---> a-.->b ; end',
    f"{ESC}[31m{RLO}\n::error::x ##[warning]",
)
MERMAID = "".join(MERMAID_ATTACKS)
TREE_HOSTILE = MERMAID + HOSTILE


def hostile_tree_change() -> TaxonomyChange:
    """A new version of a hierarchical taxonomy whose node ids and labels are all hostile:
    live ones (from the API, never validated) and desired ones alike."""
    root, kid, moved, gone, new = (f"col_{n}{TREE_HOSTILE}" for n in ("r", "k", "m", "g", "n"))

    def config(*nodes: dict[str, Any]) -> dict[str, Any]:
        return {"taxonomy_type": "hierarchical", "hierarchical_nodes": list(nodes)}

    live = config(
        {"collection_id": root, "label": f"root{TREE_HOSTILE}"},
        {"collection_id": kid, "parent_collection_id": root, "label": f"old{TREE_HOSTILE}"},
        {"collection_id": moved, "parent_collection_id": kid},
        {"collection_id": gone, "parent_collection_id": root, "label": f"gone{TREE_HOSTILE}"},
    )
    wanted = config(
        {"collection_id": root, "label": f"root{TREE_HOSTILE}"},
        {"collection_id": kid, "parent_collection_id": root, "label": f"new{TREE_HOSTILE}"},
        {"collection_id": moved, "parent_collection_id": root},
        {"collection_id": new, "parent_collection_id": moved},
        *(
            {"collection_id": f"col_{i}{attack}", "parent_collection_id": root, "label": attack}
            for i, attack in enumerate(MERMAID_ATTACKS)
        ),
    )
    desired = DesiredTaxonomy(
        namespace="production",
        name="teams",
        description=None,
        metadata={},
        config=wanted,
        source=SourceLocation(f"m/{HOSTILE}.yaml", 4, 3),
    )
    response = TaxonomyResponse(
        taxonomy_id="tax_t", taxonomy_name="teams", config=live, metadata={"managed_by": "taxsync"}
    )
    change = planner.compare(desired, response, None)
    assert change is not None and change.action == "new_version"
    return change


def hostile_tree_plan() -> Plan:
    changes = [hostile_tree_change()]
    return Plan(namespaces=["production"], summary=Summary.of(changes, 0), changes=changes)


def text_outputs() -> dict[str, str]:
    """Every line-oriented rendering, of hostile input."""
    plan = hostile_plan()
    result = hostile_result(plan)
    trees = hostile_tree_plan()
    return {
        "tree_text": render.plan_text(trees, render.Style(False)),
        "tree_markdown": render.plan_markdown(trees),
        "plan_text": render.plan_text(plan, render.Style(False)),
        "result_line": "\n".join(
            render.result_line(r, render.Style(False)) for r in result.results
        ),
        "history_text": render.history_text(hostile_history()),
        "apply_json": render.apply_json(result),
        "plan_json": render.plan_json(plan),
        "plan_markdown": render.plan_markdown(plan),
        "apply_markdown": render.apply_markdown(result),
    }


# --- 1. terminal: hidden characters become visible escapes ----------------------------------


@pytest.mark.parametrize("name", list(text_outputs()))
def test_no_hidden_character_reaches_any_rendering(name: str) -> None:
    assert_no_hidden(text_outputs()[name], name)


def test_hidden_characters_are_shown_not_dropped() -> None:
    shown = render.visible(TERMINAL)
    assert shown == (
        "\\u001b[31mred\\u001b[0m \\u001b]0;pwned\\u0007 \\u009b2J \\u202egpj.exe "
        "\\u2066x\\u007f\\u200b\\U000e0041"
    )
    assert render.visible(f"a\nb\rc\td{LINE_SEPARATOR}\u0085") == (
        "a\\u000ab\\u000dc\\u0009d\\u2028\\u0085"
    )
    assert render.visible("\ud800 lone surrogate") == "\\ud800 lone surrogate"
    # Printable text, from any script, is left alone.
    benign = "Catégories — 製品 ✓ (v4 → v5) ± a:b #1 <x> `y` @z"
    assert render.visible(benign) == benign


def test_text_plan_shows_each_field_escaped() -> None:
    text = text_outputs()["plan_text"]
    assert "\\u202egpj.exe" in text and "\\u001b]0;pwned\\u0007" in text
    assert "new version ns1" in text and "(rename old" in text


# --- 2. line-oriented outputs: one field never makes two lines ------------------------------


def test_a_field_never_starts_a_line() -> None:
    plan = hostile_plan()
    text = render.plan_text(plan, render.Style(False))
    lines = text.split("\n")
    # The attach's backfill is a line of its own too.
    fields = sum(
        len(list(leaf_changes(c.diff))) + len(c.notes) + len(c.backfills) + 1 for c in plan.changes
    )
    assert len(lines) == 2 + fields + 3, "one line per change, diff field and note"
    for line in lines[2:-3]:
        assert re.match(r"  ([+~±-] |    [+~-] |    note: |    backfill after apply: )", line), line
    for r in hostile_result(plan).results:
        assert "\n" not in render.result_line(r, render.Style(False))
    history = render.history_text(hostile_history()).split("\n")
    assert len(history) == 7 and history[1].startswith("created ") and history[2] == "v1"
    assert history[4] == "v2"


# --- 3. the step log: no workflow command but taxsync's own ---------------------------------


@pytest.mark.parametrize("name", list(text_outputs()))
def test_no_rendering_spells_a_workflow_command(name: str) -> None:
    assert command_lines(text_outputs()[name]) == []


def test_history_names_at_a_line_start_cannot_be_commands() -> None:
    first = render.history_text(hostile_history()).split("\n")[0]
    assert first.startswith(":\\u003aerror file=x,line=1:\\u003aforged")


# --- 4. JSON: same data, no hidden character, no command ------------------------------------


def test_diff_values_are_json_with_hidden_characters_escaped() -> None:
    shown = render.value({"k": f"{RLO}{CSI}{DEL}{LINE_SEPARATOR}{TAG_A}##[x\n"})
    assert shown == '{"k": "\\u202e\\u009b\\u007f\\u2028\\udb40\\udc41##\\u005bx\\n"}'
    assert json.loads(shown) == {"k": f"{RLO}{CSI}{DEL}{LINE_SEPARATOR}{TAG_A}##[x\n"}
    assert render.value("Catégorie ✓") == '"Catégorie ✓"', "readable non-ASCII stays"


def test_json_renderings_keep_the_data() -> None:
    plan = hostile_plan()
    assert json.loads(render.plan_json(plan)) == json.loads(plan.to_json())
    result = hostile_result(plan)
    assert json.loads(render.apply_json(result))["results"][1]["message"] == f"HTTP 422: {HOSTILE}"


# --- 5. markdown: no structure, no comment, no mention from a field -------------------------


def test_plan_markdown_holds_no_structure_from_fields() -> None:
    markdown = render.plan_markdown(hostile_plan())
    prose = assert_safe_markdown(markdown)
    assert [len(cells) for cells in table_rows(markdown)] == [4] * CHANGES, "four cells a row"
    summaries = [line for line in prose if line.startswith("<details>")]
    assert len(summaries) == CHANGES
    for line in summaries:
        assert re.fullmatch(r"<details><summary>[^<>]*</summary>", line), line
    assert "@&#8203;octocat" in markdown and "&amp;#64;hubot" in markdown


def test_apply_markdown_holds_no_structure_from_fields() -> None:
    markdown = render.apply_markdown(hostile_result(hostile_plan()))
    prose = assert_safe_markdown(markdown)
    assert len([line for line in prose if line.startswith("- ")]) == CHANGES


# --- 5b. the node tree: one line a node in text, inert Mermaid in markdown ----------------

# Every line Mermaid may read in taxsync's picture, read independently of render.py: a
# label is quoted, holding letters, digits, `` _-.,/()`` and entity codes only.
_LABEL = r'"(?:[^"#%:`<>&\\\[\]{}|;=*!?@$^~+\x00-\x1f\x7f]|#[0-9]+;)*"'
_MERMAID_LINE = re.compile(
    rf"flowchart TD"
    rf"|  classDef (added|removed|changed|moved) [a-z]+:#[0-9a-f]{{6}}(,[a-z-]+:[#0-9a-f ]+)*"
    rf"|  n[0-9]+\[{_LABEL}\]"
    rf"|  n[0-9]+ (-->|-\.->) n[0-9]+"
    rf"|  linkStyle [0-9]+ stroke:#[0-9a-f]{{6}},stroke-dasharray:[0-9]+ [0-9]+"
    rf"|  class n[0-9]+(,n[0-9]+)* (added|removed|changed|moved)"
)


def mermaid_blocks(markdown: str) -> list[list[str]]:
    """The lines of each ``mermaid`` code block (the fence, as CommonMark reads it)."""
    return [
        block.split("\n") for block in re.findall(r"\n```mermaid\n(.*?)\n```\n", markdown, re.S)
    ]


def mermaid_labels(lines: list[str]) -> dict[str, str]:
    """Each node's label, with Mermaid's entity codes decoded."""
    labels = {}
    for line in lines:
        found = re.fullmatch(r'  (n[0-9]+)\["(.*)"\]', line)
        if found:
            labels[found[1]] = re.sub(r"#([0-9]+);", lambda m: chr(int(m[1])), found[2])
    return labels


def assert_safe_mermaid(lines: list[str]) -> None:
    for line in lines:
        assert _MERMAID_LINE.fullmatch(line), f"not taxsync's own Mermaid: {line!r}"
    defined = {line.split("[", 1)[0].strip() for line in lines if re.match(r"  n[0-9]+\[", line)}
    used = set(re.findall(r"\bn[0-9]+\b", "\n".join(lines)))
    assert used == defined, "every node id is one taxsync defined"


def test_the_node_tree_is_one_line_a_node() -> None:
    text = render.plan_text(hostile_tree_plan(), render.Style(False))
    lines = text.split("\n")
    start = lines.index("      node tree (+ added, - removed, ~ changed, > moved):")
    rows = lines[start + 1 : lines.index("", start)]
    assert len(rows) == 5 + len(MERMAID_ATTACKS), "one line a node"
    for row in rows:
        assert re.match(r"        [+~> -] ", row), row
    assert "root" + render.plain(TREE_HOSTILE) in text
    assert f"label was {render.value('old' + TREE_HOSTILE)}" in text


def test_the_node_picture_is_inert_mermaid() -> None:
    markdown = render.plan_markdown(hostile_tree_plan())
    assert_safe_markdown(markdown)
    [block] = mermaid_blocks(markdown)
    assert_safe_mermaid(block)
    chart = "\n".join(block)
    for sequence in ("%%", ":::", "`", "<", ">", "&", '\\"', "\\"):
        assert sequence not in chart.replace("--> n", "").replace("-.-> n", ""), sequence
    assert not [line for line in block if line.split()[0] in ("click", "style", "%%")]
    assert "col_" not in re.sub(r'"[^"]*"', "", chart), "a collection id is only ever a label"
    # Read back, each label is what the reviewer should see: the text, visible, cut short.
    labels = sorted(mermaid_labels(block).values())
    cut = render.MERMAID_LABEL_CHARS - 1
    assert labels == sorted(
        [
            render.visible(f"root{TREE_HOSTILE}"[:cut] + "…"),
            render.visible(f"~ new{TREE_HOSTILE}"[: cut + 2] + "… (was ")
            + render.visible(f"old{TREE_HOSTILE}"[:cut] + "…)"),
            render.visible("> " + f"col_m{TREE_HOSTILE}"[:cut] + "…"),
            render.visible("+ " + f"col_n{TREE_HOSTILE}"[:cut] + "…"),
            render.visible("- " + f"gone{TREE_HOSTILE}"[:cut] + "…"),
            *(render.visible(f"+ {attack}") for attack in MERMAID_ATTACKS),
        ]
    )


def test_each_diff_sits_in_its_own_closed_code_block() -> None:
    markdown = render.plan_markdown(hostile_plan())
    _, fences = markdown_structure(markdown)
    # The values hold runs of three backticks: the fences outgrow them.
    assert fences == ["````diff", "````"] * CHANGES
    blocks = re.findall(r"\n````diff\n(.*?)\n````\n", markdown, re.S)
    # Four fields; the two changed values (an input mapping, the description) are a "-"
    # line and a "+" line each.
    assert [len(b.split("\n")) for b in blocks] == [6] * CHANGES
    # The notes follow each block as a list, where they wrap; the attach also says which
    # backfill follows.
    notes = re.findall(r"\n````\n\n((?:- .*\n)+)\n</details>", markdown)
    assert [len(n.splitlines()) for n in notes] == [1] * 5 + [2, 1, 1]


def test_a_fence_outgrows_the_backticks_inside() -> None:
    block = render.fenced("a\n````\n``````` `` b\n```", "text")
    assert block.startswith("````````text\n") and block.endswith("\n````````\n")
    _, fences = markdown_structure(block)
    assert len(fences) == 2
    assert render.fenced("no ticks", "diff") == "```diff\nno ticks\n```\n"


# --- 6. workflow commands: one line, every part escaped -------------------------------------


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """A ``::command k=v,…::data`` line as the Actions runner parses it (TryParseV2)."""
    assert "\n" not in line and "\r" not in line
    assert line.startswith("::")
    end = line.index("::", 2)
    info, data = line[2:end], line[end + 2 :]
    name, _, props = info.partition(" ")
    properties: dict[str, str] = {}
    for pair in filter(None, props.split(",")):
        key, _, value = pair.partition("=")
        properties[key] = _unescape(value, {"%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","})
    return name, properties, _unescape(data, {"%0D": "\r", "%0A": "\n"})


def _unescape(text: str, mapping: dict[str, str]) -> str:
    for escaped, char in {**mapping, "%25": "%"}.items():
        text = text.replace(escaped, char)
    return text


def test_a_workflow_command_stays_one_command() -> None:
    line = github.workflow_command(
        "error",
        f"msg {TERMINAL}::stop-commands::x\r\n::add-mask::y%0A",
        file=f"m/a,b:c{ESC}.yaml",
        line=3,
        title=f"t::{RLO},x=y\n",
    )
    assert_no_hidden(line, "the command")
    name, properties, data = parse_command(line)
    assert name == "error"
    assert properties == {
        "file": "m/a,b:c\\u001b.yaml",
        "line": "3",
        "title": "t::\\u202e,x=y\n",
    }
    assert data == f"msg {render.visible(TERMINAL)}::stop-commands::x\r\n::add-mask::y%0A"


def test_manifest_annotations_are_escaped(tmp_path: Path) -> None:
    error = ManifestError(
        [ManifestProblem(str(tmp_path / f"{RLO},x.yaml"), 1, 2, f"metadata.{ESC}", HOSTILE)]
    )
    [line] = github.manifest_annotations(error, tmp_path)
    assert_no_hidden(line, "the annotation")
    name, properties, data = parse_command(line)
    assert (name, properties["file"], properties["title"]) == (
        "error",
        "\\u202e,x.yaml",
        "taxsync: invalid manifest",
    )
    assert data.startswith("metadata.\\u001b: ")


# --- 7. the comment and the step summary ----------------------------------------------------


def markdown_with_structure(sections: int) -> str:
    """Plan-like markdown whose code holds lookalikes of every structure it has."""
    parts = ["### taxsync plan\n"]
    for i in range(sections):
        body = "\n".join(
            [f'+ x{i} = "```"', "```", "<details>", "</details>", "<!-- x", "~~~~"] * 3
        )
        parts.append(f"\n<details><summary>s{i}</summary>\n\n" + render.fenced(body, "diff"))
        parts.append("</details>\n")
    return "".join(parts)


def test_trimming_never_leaves_a_block_open() -> None:
    markdown = markdown_with_structure(6)
    assert "````diff" in markdown, "the fence outgrew the backticks in the code"
    note = "\n> trimmed\n"
    for limit in range(200, len(markdown), 7):
        trimmed = github.trim_markdown(markdown, limit, note, len)
        assert len(trimmed) <= limit, limit
        assert trimmed.endswith(note)
        assert_safe_markdown(trimmed[: -len(note)])
        prose, _ = markdown_structure(trimmed)
        assert "<!-- x" not in "\n".join(prose)


def test_the_marker_is_the_first_line_and_content_cannot_forge_it(tmp_path: Path) -> None:
    ctx = context(tmp_path, TAXSYNC_COMMENT_KEY=f"prod\n{github.MARKER}\n-->{RLO}`@octocat`")
    body = github.compose_comment(ctx, render.plan_markdown(hostile_plan()))
    first, rest = body.split("\n", 1)
    assert first == github.comment_marker(ctx.comment_key)
    assert MARKER_RE.fullmatch(first)
    assert_safe_markdown(body, marker=True)
    footer = body.rstrip("\n").rsplit("\n", 1)[-1]
    assert footer.startswith(
        "<sub>manifests <code>prod\\u000a&lt;!-- taxsync-plan --&gt;\\u000a--&gt;"
        "\\u202e&#96;@&#8203;octocat&#96;</code> · commit abcdef1 · [workflow run]("
    )
    # Benign keys read as they always did.
    assert github.comment_marker("prod") == "<!-- taxsync-plan prod -->"


def test_the_failed_plan_report_keeps_its_fence(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    error = TaxsyncError(f"HTTP 500: {HOSTILE}", ["````", f"{ESC}[2J</details><!--"])
    github.report_plan_error(ctx, error, comment=False)
    summary = (tmp_path / "summary").read_text(encoding="utf-8")
    prose = assert_safe_markdown(summary)
    assert prose[-1] == "" and "The plan failed." in summary
    _, fences = markdown_structure(summary)
    assert fences == ["`````text", "`````"]


# --- 8. end to end: GitHub mode on hostile input -------------------------------------------

BOT = "github-actions[bot]"
REPO = "acme/taxonomies"
TOKEN = "ghs_escapingTESTtoken0123456789"


class FakeGitHub:
    """Just the comment routes of the GitHub REST API, in process."""

    def __init__(self) -> None:
        self.comments: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/user":
            return httpx.Response(403, json={"message": "Resource not accessible by integration"})
        if request.method == "GET" and path.endswith("/comments"):
            return httpx.Response(200, json=self.comments)
        body = json.loads(request.content)["body"]
        if request.method == "POST":
            comment = {"id": len(self.comments) + 1, "body": body, "user": {"login": BOT}}
            self.comments.append(comment)
            return httpx.Response(201, json=comment)
        comment = self.comments[int(path.rsplit("/", 1)[1]) - 1]
        comment["body"] = body
        return httpx.Response(200, json=comment)


def github_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "number": 7,
                "pull_request": {
                    "number": 7,
                    "head": {"sha": "abcdef1234567890", "repo": {"full_name": REPO}},
                    # The base commit differs from the head: links must use the head.
                    "base": {"sha": "0123456789fedcba", "repo": {"full_name": REPO}},
                },
                "repository": {"full_name": REPO, "default_branch": "main"},
            }
        ),
        encoding="utf-8",
    )
    for name in ("output", "summary"):
        (tmp_path / name).touch()
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": "https://api.github.test",
        "GITHUB_SERVER_URL": "https://github.test",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_WORKSPACE": str(tmp_path),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "RUNNER_TEMP": str(tmp_path),
        "TAXSYNC_GITHUB_TOKEN": TOKEN,
        **overrides,
    }


def context(tmp_path: Path, **overrides: str) -> github.GitHubContext:
    return github.GitHubContext.from_env(github_env(tmp_path, **overrides))


@pytest.fixture
def fake_github(monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    fake = FakeGitHub()
    transport = httpx.MockTransport(fake)
    monkeypatch.setattr(
        github.comment, "GitHubApi", functools.partial(github.GitHubApi, transport=transport)
    )
    return fake


def assert_safe_reports(tmp_path: Path, out: str, fake: FakeGitHub | None) -> None:
    """The step log, outputs, summary and comment of a run, checked against every rule."""
    for line in command_lines(out):
        name, properties, _ = parse_command(line)  # taxsync's own, well formed
        assert name in ("error", "warning", "notice") and properties.get("title") in (
            "taxsync",
            "taxsync: invalid manifest",
        ), line
    assert_no_hidden(out, "the step log")
    assert_no_hidden((tmp_path / "output").read_text(encoding="utf-8"), "the outputs")
    assert_safe_markdown((tmp_path / "summary").read_text(encoding="utf-8"))
    if fake is not None:
        [comment] = fake.comments
        assert_safe_markdown(comment["body"], marker=True)


def test_github_plan_and_apply_reports_of_a_hostile_plan(
    tmp_path: Path, fake_github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = hostile_plan()
    ctx = context(tmp_path, TAXSYNC_COMMENT_KEY=f"k{HOSTILE}")
    assert github.report_plan(ctx, plan, tmp_path / "plan.json", comment=True) == "created"
    print(render.plan_text(plan, render.Style(False)), end="")  # as the CLI does
    assert_safe_reports(tmp_path, capsys.readouterr().out, fake_github)

    apply_ctx = context(tmp_path, GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/main")
    result = hostile_result(plan)
    for r in result.results:
        print(render.result_line(r, render.Style(False)))
    github.report_apply(apply_ctx, result, plan)
    out = capsys.readouterr().out
    assert "::error title=taxsync::taxsync apply: 6 change(s) did not apply" in out
    assert_safe_reports(tmp_path, out, fake_github)

    error = ManifestError(
        [ManifestProblem(str(tmp_path / f"{HOSTILE}.yaml"), 1, 1, HOSTILE, HOSTILE)]
    )
    github.report_plan_error(ctx, error, comment=True)
    out = capsys.readouterr().out
    assert out.startswith("::error file=") and len(command_lines(out)) == 1
    assert_safe_reports(tmp_path, out, fake_github)
    assert "The plan failed." in fake_github.comments[0]["body"]


def seed_hostile_live_state(state: Path) -> None:
    """Live taxonomies with hostile names, keys and descriptions, as an API could return."""
    store = Store(state)
    store.ensure_namespace("production")
    seed_local(state, "production")  # what the manifests name
    config = {
        "taxonomy_type": "flat",
        "retriever_id": "ret_clip_v1",
        "input_mappings": [
            {
                "input_key": "image_vector",
                "source_type": "vector",
                "path": "features.clip_vit_l_14",
            },
            {"input_key": f"k{COMMANDS}{TERMINAL}", "source_type": "vector", "path": "f.x"},
        ],
        "source_collection": {
            "collection_id": "col_products_v1",
            "enrichment_fields": [
                {"field_path": "metadata.tags", "merge_mode": "append"},
                {"field_path": "label", "target_field": "category", "merge_mode": "replace"},
                {"field_path": f"p{MARKDOWN}", "merge_mode": "append"},
            ],
        },
    }
    store.create_taxonomy(
        "production",
        CreateTaxonomyRequest.model_validate(
            {
                "taxonomy_name": "products",
                "description": HOSTILE,
                "config": config,
                "metadata": {
                    "team": "search",
                    "managed_by": "taxsync",
                    HOSTILE: HOSTILE,
                    f"{MARKDOWN}{RLO}": 1,
                },
            }
        ),
    )
    store.create_taxonomy(
        "production",
        CreateTaxonomyRequest.model_validate(
            {
                "taxonomy_name": f"retired{HOSTILE}",
                "config": {**config, "input_mappings": config["input_mappings"][:1]},
                "metadata": {"managed_by": "taxsync"},
            }
        ),
    )


def test_github_plan_end_to_end_on_hostile_live_state(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    state = tmp_path / "state.json"
    seed_hostile_live_state(state)
    # The manifests: benign names (the loader refuses control characters there), but a
    # file name and a description a reviewer must still see as they are.
    tree = tmp_path / "taxonomies"
    write(tree, "prod/products.yaml", flat())
    write(
        tree,
        "prod/##[error]boom <!-- `@octocat` |.yaml",
        flat("extra").replace(
            "description: Product categories by image similarity",
            "description: '@octocat ``` </details> <!-- ##[warning]x'",
        ),
    )
    env = github_env(tmp_path)
    result = run_cli(
        "plan", "--local", "--local-state", str(state), "--github", "--prune", str(tree), env=env
    )
    assert result.code == 0, result.output
    out = result.out
    # The hostile live data did reach the plan (escaped), so the checks below mean something.
    assert "delete production/retired\\u001b[31mred" in out
    assert "- metadata.\\u001b[31mred" in out
    assert "##\\u005berror]boom <!-- `@octocat` |.yaml:4" in out
    assert "1 to create, 1 new version, 0 to update, 0 to replace, 1 to delete" in out
    assert_safe_reports(tmp_path, out, fake_github)
    assert_no_hidden(result.err, "stderr")
    assert command_lines(result.err) == []
    body = fake_github.comments[0]["body"]
    assert "@&#8203;octocat" in body and "&lt;!-- " in body
    # The hostile file name links to its line, every character of it percent-encoded.
    link = (
        "](https://github.test/acme/taxonomies/blob/abcdef1234567890/taxonomies/prod/"
        "%23%23%5Berror%5Dboom%20%3C%21--%20%60%40octocat%60%20%7C.yaml#L4)"
    )
    assert body.count(link) == 1


def test_trimming_cuts_lines_where_markdown_does() -> None:
    # U+2028 (or VT, FF, …) ends a line for str.splitlines, not for markdown: "x\u2028```"
    # is one line of prose, and trimming must not close a fence it never opened.
    # Nor is a backtick line whose info string holds a backtick a fence.
    for first in ("x\u2028```", "```not`a fence"):
        markdown = f"{first}\n" + "line\n" * 100
        trimmed = github.trim_markdown(markdown, 60, "\n> trimmed\n", len)
        assert trimmed.startswith(f"{first}\nline\n") and trimmed.endswith("line\n\n> trimmed\n")


def test_cli_json_plan_and_error_lines_are_inert(tmp_path: Path) -> None:
    """``plan --format json`` on stdout and ``Error:`` lines on stderr escape hidden text too."""
    state = tmp_path / "state.json"
    seed_hostile_live_state(state)
    tree = tmp_path / "taxonomies"
    write(tree, "prod/products.yaml", flat())
    base = ("plan", "--local", "--local-state", str(state), "--prune", str(tree))
    result = run_cli(*base, "--format", "json")
    assert result.code == 0, result.output
    assert_no_hidden(result.out, "stdout")
    assert command_lines(result.out) == []
    assert json.loads(result.out)["summary"]["delete"] == 1  # the data is all there
    # An error quoting the hostile name: a saved plan whose namespace was edited.
    plan_file = tmp_path / "plan.json"
    assert run_cli(*base, "--out", str(plan_file)).code == 0
    data = json.loads(plan_file.read_text(encoding="utf-8"))
    data["changes"][-1]["namespace"] = f"elsewhere{TERMINAL}{COMMANDS}"
    plan_file.write_text(json.dumps(data), encoding="utf-8")
    refused = run_cli("apply", "--local", "--local-state", str(state), "--plan", str(plan_file))
    assert refused.code == 1 and "not a taxsync plan" in refused.err, refused.err
    assert_no_hidden(refused.err, "stderr")
    assert command_lines(refused.err) == []
