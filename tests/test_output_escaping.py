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

import json
import re
import unicodedata

import pytest

from taxsync import render
from taxsync.history import History, VersionEntry
from taxsync.plan import ApplyResult, Change, ChangeResult, FieldChange, Plan, Summary

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
        assert "&#64;" not in line.replace("&amp;#64;", ""), "an entity would decode into @"
    return prose


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of each body row of the plan table (a ``\\|`` does not split a cell)."""
    prose, _ = markdown_structure(markdown)
    rows = [line for line in prose if line.startswith("| `")]
    return [re.split(r"(?<!\\)\|", row)[1:-1] for row in rows]


# --- plans with hostile strings in every field -----------------------------------------------


def hostile_change(action: str, tag: str) -> Change:
    return Change(
        action=action,  # type: ignore[arg-type]
        namespace=f"ns{tag}{HOSTILE}",
        name=f"name{tag}{HOSTILE}",
        taxonomy_id=None if action == "create" else f"tax{tag}{HOSTILE}",
        base_version=None if action == "create" else 2,
        taxonomy_type=f"flat{HOSTILE}",
        source=f"m/{HOSTILE}.yaml:4",
        rename_from=f"old{HOSTILE}" if action == "update" else None,
        diff=[
            FieldChange(path=f"metadata.{HOSTILE}", after=HOSTILE, before_present=False),
            FieldChange(path=f"config.input_mappings[{HOSTILE}]", before={HOSTILE: [HOSTILE]}),
            FieldChange(path="description", before=HOSTILE, after=f"``` {RLO} ```"),
            FieldChange(path=f"config.{HOSTILE}", before=1, after_present=False),
        ],
        notes=[f"live config has keys the API no longer declares (ignored): {HOSTILE}"],
    )


def hostile_plan() -> Plan:
    changes = [
        hostile_change(action, str(i))
        for i, action in enumerate(("create", "new_version", "update", "replace", "delete"))
    ]
    return Plan(namespaces=["production"], summary=Summary.of(changes, 1), changes=changes)


def hostile_result(plan: Plan) -> ApplyResult:
    statuses = ["applied", "failed", "stale", "not_started", "failed"]
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


def text_outputs() -> dict[str, str]:
    """Every line-oriented rendering, of hostile input."""
    plan = hostile_plan()
    result = hostile_result(plan)
    return {
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
    fields = sum(len(c.diff) + len(c.notes) + 1 for c in plan.changes)
    assert len(lines) == 2 + fields + 3, "one line per change, diff field and note"
    for line in lines[2:-3]:
        assert re.match(r"  ([+~±-] |    [+~-] |    note: )", line), line
    for r in hostile_result(plan).results:
        assert "\n" not in render.result_line(r, render.Style(False))
    history = render.history_text(hostile_history()).split("\n")
    assert len(history) == 6 and history[1].startswith("v1  ") and history[3].startswith("v2")


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
    assert [len(cells) for cells in table_rows(markdown)] == [3] * 5, "three cells a row"
    summaries = [line for line in prose if line.startswith("<details>")]
    assert len(summaries) == 5
    for line in summaries:
        assert re.fullmatch(r"<details><summary>[^<>]*</summary>", line), line
    assert "@&#8203;octocat" in markdown and "&amp;#64;hubot" in markdown


def test_apply_markdown_holds_no_structure_from_fields() -> None:
    markdown = render.apply_markdown(hostile_result(hostile_plan()))
    prose = assert_safe_markdown(markdown)
    assert len([line for line in prose if line.startswith("- ")]) == 5


def test_each_diff_sits_in_its_own_closed_code_block() -> None:
    markdown = render.plan_markdown(hostile_plan())
    _, fences = markdown_structure(markdown)
    # The values hold runs of three backticks: the fences outgrow them.
    assert fences == ["````diff", "````"] * 5
    blocks = re.findall(r"\n````diff\n(.*?)\n````\n</details>", markdown, re.S)
    assert len(blocks) == 5 and all(len(b.split("\n")) == 5 for b in blocks)


def test_a_fence_outgrows_the_backticks_inside() -> None:
    block = render.fenced("a\n````\n``````` `` b\n```", "text")
    assert block.startswith("````````text\n") and block.endswith("\n````````\n")
    _, fences = markdown_structure(block)
    assert len(fences) == 2
    assert render.fenced("no ticks", "diff") == "```diff\nno ticks\n```\n"
