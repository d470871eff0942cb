"""The documentation's links, commands and config settings work as shown.

README.md and docs/*.md: every relative link reaches a file, and every anchor a heading of it
(GitHub's slug rules); every `python -m deploy ...` shown parses with the operator CLI's own
argparse parser (its subcommand's `--help` runs, each flag shown is one of the subcommand's,
and a concrete command parses whole); every `pulumi config set` shown names a key the config
definitions know, and its value passes the program's own readers (`load_config`), the settings
of one code block applied in order.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError
from components.config.definitions import CREDENTIAL_KEYS, find
from deploy import cli
from tests.config_load import load

PROJECT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [PROJECT / "README.md", PROJECT / "policies" / "README.md", *(PROJECT / "docs").glob("*.md")]
)

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


@dataclass(frozen=True)
class Shown:
    """A command as a page shows it: the page, the code block (or span) it is in, its text."""

    page: Path
    block: int
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(PROJECT)}: {self.text}"


def _prose_and_blocks(text: str) -> tuple[list[str], list[list[str]]]:
    """The lines outside fenced code blocks, and each block's lines."""
    prose: list[str] = []
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: links become their text, then lower case, every
    character but letters, digits, spaces, `-` and `_` dropped, spaces become `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    kept = "".join(ch for ch in text.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated one gets `-1`, `-2`, … as on GitHub."""
    prose, _ = _prose_and_blocks(page.read_text())
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[str]:
    """The targets of the page's Markdown links, outside code blocks and code spans."""
    prose, _ = _prose_and_blocks(page.read_text())
    text = _CODE_SPAN.sub("", "\n".join(prose))
    for match in _LINK.finditer(text):
        yield match.group(1)


def dead_links(page: Path) -> list[str]:
    dead: list[str] = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            dead.append(f"{target} (no such file)")
            continue
        if anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            dead.append(f"{target} (no such heading)")
    return dead


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert dead_links(page) == []


def test_the_readme_links_every_page() -> None:
    linked = {
        (PROJECT / target.partition("#")[0]).resolve()
        for target in links(PROJECT / "README.md")
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
    }
    assert set(PAGES) - {PROJECT / "README.md"} <= linked


def test_the_slug_rules_are_githubs() -> None:
    # Headings of these pages, with the anchors GitHub gives them.
    assert slug('`up`: through "Out of host capacity"') == "up-through-out-of-host-capacity"
    assert slug("Restoring a `pg_dump`") == "restoring-a-pg_dump"
    assert slug("The operator CLI: `python -m deploy`") == "the-operator-cli-python--m-deploy"
    assert slug("`ai-swarm:services.<service>.image`") == "ai-swarmservicesserviceimage"


def test_a_dead_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n\n```sh\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading) [gone](missing.md) [no anchor](other.md#not-a-heading)\n"
        "[here](#top) `[in code](nowhere.md)`\n\n# Top\n"
    )
    assert dead_links(page) == [
        "missing.md (no such file)",
        "other.md#not-a-heading (no such heading)",
    ]


# --- the commands shown ------------------------------------------------------------------------


def _commands(prefix: str) -> Iterator[Shown]:
    """Each command starting with `prefix` in a code block (continued lines joined) or in a
    code span of the prose. The commands of one block are one sequence, and so are the spans
    of one section (a runbook's steps), each sequence with a number of its own."""
    number = 0
    for page in PAGES:
        prose, blocks = _prose_and_blocks(page.read_text())
        for block in blocks:
            number += 1
            joined = "\n".join(block).replace("\\\n", " ")
            # A synopsis goes on in indented lines of `[--option]`s.
            joined = re.sub(r"\n\s+(?=\[)", " ", joined)
            for line in joined.splitlines():
                if line.strip().startswith(prefix):
                    yield Shown(page, number, line.strip())
        for section in re.split(r"\n(?=#{1,6} )", "\n".join(prose)):
            number += 1
            for span in _CODE_SPAN.finditer(" ".join(section.splitlines())):
                if span.group(2).strip().startswith(prefix):
                    yield Shown(page, number, span.group(2).strip())


def _words(shown: Shown) -> list[str]:
    """The command's words, up to a shell operator (`> file`, `&& next`, `| pager`)."""
    lexer = shlex.shlex(shown.text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(itertools.takewhile(lambda word: word.strip("();<>|&") != "", lexer))


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


DEPLOY_COMMANDS = list(_commands("python -m deploy"))


def test_the_docs_show_deploy_commands() -> None:
    shown = {_words(s)[3] for s in DEPLOY_COMMANDS if len(_words(s)) > 3}
    assert {"up", "status", "idle-check", "images", "restore-dump"} <= shown


@pytest.mark.parametrize("shown", DEPLOY_COMMANDS, ids=str)
def test_each_deploy_command_shown_parses(shown: Shown, capsys: pytest.CaptureFixture[str]) -> None:
    check_deploy_command(_words(shown)[3:])
    capsys.readouterr()


def check_deploy_command(args: list[str]) -> None:
    """The subcommand's --help runs; every flag shown is one of its options; a concrete command
    (no `[optional]` synopsis) parses whole. Fails the test otherwise."""
    parser = cli.build_parser()
    words = [w for w in args if not w.startswith("-")]
    subcommand = words[0] if words and words[0] in _subparsers(parser) else None
    if args and not args[0].startswith("-") and subcommand is None:
        pytest.fail(f"python -m deploy has no command {args[0]!r}")
    with pytest.raises(SystemExit) as helped:
        parser.parse_args([*([subcommand] if subcommand else []), "--help"])
    assert helped.value.code == 0
    sub = _subparsers(parser)[subcommand] if subcommand else parser
    options = {option for action in sub._actions for option in action.option_strings}
    for word in args:
        flag = word.strip("[]").split("=", 1)[0]
        if flag.startswith("--"):
            assert flag in options, f"python -m deploy {subcommand}: no option {flag}"
    if args and not any(word.startswith("[") for word in args):  # not the name alone
        try:
            parser.parse_args(args)
        except SystemExit as error:
            pytest.fail(f"python -m deploy {' '.join(args)} does not parse (exit {error.code})")


CONFIG_COMMANDS = list(_commands("pulumi config set"))
_CREDENTIALS = {key for key, _ in CREDENTIAL_KEYS}


def test_the_docs_show_config_commands() -> None:
    assert len(CONFIG_COMMANDS) > 30  # every key's example, and the README's deploy


def _set_path(document: Any, path: list[str], value: Any) -> Any:
    """`value` at `path` (`name`, `name[0]`) inside `document`, as `--path` writes it."""
    if not path:
        return value
    name, _, index = path[0].partition("[")
    container = dict(document) if isinstance(document, dict) else {}
    if index:
        items = list(container.get(name) or [])
        position = int(index.rstrip("]"))
        items[position : position + 1] = [_set_path(None, path[1:], value)]
        container[name] = items
    else:
        container[name] = _set_path(container.get(name), path[1:], value)
    return container


def apply_config_command(
    words: list[str], plain: dict[str, str], secret: dict[str, str]
) -> str | None:
    """Apply one `pulumi config set` to the config so far; the key's definition, or a failure.
    Returns the key when its value can be checked (not a `$(...)` or `<placeholder>`)."""
    flags = {w for w in words[3:] if w.startswith("--") and w != "--"}
    assert flags <= {"--path", "--secret"}, f"unknown flags {flags}"
    operands = [w for w in words[3:] if not w.startswith("--")]
    if not operands:  # the command's name alone, in prose
        return None
    key, value = operands[0], (operands[1] if len(operands) > 1 else None)
    if key in _CREDENTIALS:
        return None
    definition = find(key)
    assert definition is not None, f"{key}: no such key (components/config/definitions.py)"
    if value is None or "$(" in value or re.search(r"<[^>]*>", value):
        return None
    target = secret if "--secret" in flags else plain
    namespace, _, path = key.partition(":")
    if "--path" in flags:
        top = re.split(r"[.\[]", path, maxsplit=1)[0]
        full = f"{namespace}:{top}"
        current = json.loads(plain.get(full) or secret.get(full) or "{}")
        steps = re.findall(r"[^.\[]+(?:\[\d+\])?", path)
        document = _set_path({top: current} if current else {}, steps, value)
        plain.pop(full, None)
        target[full] = json.dumps(document[top])
    else:
        target[key] = value
    return key


@pytest.mark.parametrize(
    "block", sorted({s.block for s in CONFIG_COMMANDS}), ids=lambda b: f"block-{b}"
)
def test_each_config_setting_shown_is_a_key_and_value_the_program_takes(block: int) -> None:
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for shown in (s for s in CONFIG_COMMANDS if s.block == block):
        try:
            checked = apply_config_command(_words(shown), plain, secret)
            if checked is not None:
                load(plain, secret)
        except (AssertionError, ConfigError) as error:
            pytest.fail(f"{shown}: {error}")


def test_a_misspelt_key_and_a_refused_value_fail() -> None:
    with pytest.raises(AssertionError, match="no such key"):
        apply_config_command(shlex.split("pulumi config set ai-swarm:hostname a"), {}, {})
    plain: dict[str, str] = {}
    apply_config_command(shlex.split("pulumi config set --path ai-swarm:backups.keep 6"), plain, {})
    with pytest.raises(ConfigError) as refused:
        load(plain)
    assert refused.value.key == "ai-swarm:backups.keep"
    with pytest.raises(AssertionError, match="no option --dead-line"):
        check_deploy_command(["up", "--dead-line", "1h"])


def test_the_readme_installs_and_tests_as_ci_does() -> None:
    """The README's set-up is what .ci/run runs: the one install script, then pytest in venv."""
    readme = (PROJECT / "README.md").read_text()
    setup = readme.partition("## Try it without an Oracle account")[2].partition("```sh\n")[2]
    first, second = [shlex.split(line, comments=True) for line in setup.splitlines()[:2]]
    ci = [
        shlex.split(line, comments=True)
        for line in (PROJECT / ".ci" / "run").read_text().splitlines()
    ]
    assert first == ["scripts/install-dev"] and first in ci
    assert second == [".", "venv/bin/activate", "&&", "pytest"]
    assert [".", "venv/bin/activate"] in ci and ["python", "-m", "pytest"] in ci


def test_the_readme_stays_a_front_door() -> None:
    """At most 250 lines: the rest belongs on the pages it links."""
    assert len((PROJECT / "README.md").read_text().splitlines()) <= 250
