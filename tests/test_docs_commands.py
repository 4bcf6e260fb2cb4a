"""Every command the README and docs/*.md show in a code block still works as shown.

A command of a Hydra program (``python -m searchr1``, ``searchr1-eval``, ``searchr1-sft``) composes and
validates as the CLI's precheck does, in-process; one with ``--help``, ``--cfg`` or ``--info`` runs through
the program's own ``main``, which prints and exits. A command of an argparse program (``searchr1-data``,
``searchr1-export``, ...) parses with the program's own parser. ``python -m searchr1.<module>`` names a
module that exists; ``python benchmarks/<script>.py`` a script that declares every flag it is given. A shown
error (``$ command`` in a text block, then ``program: config error: ...``) is the precheck's, word for word.

Nothing runs: no model loads, nothing is searched or downloaded, no cluster is asked, so commands meant for a
GPU cluster or the network are checked like the others and none is skipped. Placeholders are filled in:
``<run dir>`` becomes ``x``, ``[--out DIR]`` becomes ``--out DIR``, and ``...`` (more arguments, or a value
left to the reader) is dropped.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path
from typing import Optional

import pytest

from searchr1.entry import precheck
from tests.support.compose import REPO

DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}  # python, yaml, toml blocks hold no commands
HYDRA_PROGRAMS = {"searchr1", "searchr1-eval", "searchr1-sft"}
ARGPARSE_PROGRAMS = {
    "searchr1-data",
    "searchr1-export",
    "searchr1-report",
    "searchr1-retriever",
    "searchr1-verify-template",
}
PRINT_AND_EXIT = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i"}
PYTHONS = {"python", "python3"}
SEPARATORS = {"&&", "||", ";", "|"}

PLACEHOLDER = re.compile(r"<[^<>\n]*>")  # <run dir>, <dir>, http://<host>:30000
OPTIONAL = re.compile(r"\[(-[^\[\]]*)\]")  # usage brackets around flags: [--out DIR]
FENCE = re.compile(r"^\s*```\s*(\w*)")


@dataclass(frozen=True)
class Shown:
    """A command as a doc shows it: where, its words (the program first) and the error shown after it."""

    where: str
    argv: tuple[str, ...]
    error: Optional[str] = None


def programs() -> dict[str, str]:
    """Console script name -> ``module:function``, as installed from pyproject's ``[project.scripts]``."""
    return {e.name: e.value for e in distribution("searchr1").entry_points if e.group == "console_scripts"}


def code_blocks(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number of the first line, language, lines) of each fenced code block."""
    language: Optional[str] = None
    start, lines = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence and language is None:
            language, start, lines = fence.group(1), number + 1, []
        elif fence:
            yield start, language, lines
            language = None
        elif language is not None:
            lines.append(line)


def logical_lines(lines: list[str], start: int) -> Iterator[tuple[int, str]]:
    """Lines with their backslash continuations joined, each with its first line's number."""
    pending, first = "", start
    for number, line in enumerate(lines, start):
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""


def command_in(line: str, names: set[str]) -> Optional[tuple[str, ...]]:
    """The searchr1 command on a shell line, the program (or ``-m module``, or the script) first; None when
    the line runs none. Wrappers before it (``scripts/run``, ``/usr/bin/time -v``, ``setup.sh &&``) are not
    part of it."""
    filled = OPTIONAL.sub(r"\1", PLACEHOLDER.sub("x", line))
    words = [w for w in shlex.split(filled, comments=True) if w != "..." and not w.endswith("=...")]
    for i, word in enumerate(words):
        rest = words[i + 1 :]
        if word in names:
            found = (word, *rest)
        elif word in PYTHONS and rest[:1] == ["-m"] and len(rest) > 1 and rest[1].split(".")[0] == "searchr1":
            found = ("searchr1", *rest[2:]) if rest[1] == "searchr1" else ("-m " + rest[1], *rest[2:])
        elif word in PYTHONS and rest[:1] and rest[0].startswith("benchmarks/"):
            found = tuple(rest)
        else:
            continue
        end = next((k for k, w in enumerate(found) if w in SEPARATORS), len(found))
        return found[:end]
    return None


def shown_commands() -> list[Shown]:
    names = set(programs())
    shown = []
    for doc in DOCS:
        for start, language, lines in code_blocks(doc.read_text()):
            if language not in SHELL_BLOCKS:
                continue
            prompted = language == "text"  # a text block shows `$ command` lines among their output
            joined = list(logical_lines(lines, start))
            for k, (number, line) in enumerate(joined):
                if prompted and not line.startswith("$ "):
                    continue
                argv = command_in(line.removeprefix("$ "), names)
                if argv is None:
                    continue
                after = joined[k + 1][1] if prompted and k + 1 < len(joined) else ""
                error = after if after.startswith(f"{argv[0]}: config error: ") else None
                shown.append(Shown(f"{doc.relative_to(REPO)}:{number}", argv, error))
    return shown


def unique(commands: list[Shown]) -> list[Shown]:
    """One check per distinct command (and error); its first place names it."""
    first: dict[tuple, Shown] = {}
    for command in commands:
        first.setdefault((command.argv, command.error), command)
    return list(first.values())


SHOWN = unique(shown_commands())


class _ParsedError(Exception):
    """Raised in place of running an argparse program once its command line parsed."""


def parse_only(parse_args):
    def parse(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise _ParsedError

    return parse


def declared_flags(script: Path) -> set[str]:
    """The option strings a script's argparse declares (``add_argument("--out", ...)``)."""
    calls = (n for n in ast.walk(ast.parse(script.read_text())) if isinstance(n, ast.Call))
    return {
        arg.value
        for call in calls
        if isinstance(call.func, ast.Attribute) and call.func.attr == "add_argument"
        for arg in call.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-")
    }


def check_hydra(command: Shown, module: str, function: str, monkeypatch, capsys) -> None:
    program, args = command.argv[0], list(command.argv[1:])
    if PRINT_AND_EXIT & set(args):
        monkeypatch.setattr(sys, "argv", [program, *args])
        try:
            getattr(importlib.import_module(module), function)()
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr().err
        assert capsys.readouterr().out, f"{program} {' '.join(args)} printed nothing"
        return
    problem = precheck(args, calling_module=module).error
    got = None if problem is None else f"{program}: config error: {problem}"
    assert got == command.error, f"{command.where}: {' '.join(command.argv)}"


def check_argparse(command: Shown, module: str, function: str, monkeypatch) -> None:
    assert command.error is None, "a shown error of an argparse program: teach this test to run it"
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only(argparse.ArgumentParser.parse_args))
    with pytest.raises((_ParsedError, SystemExit)) as raised:
        getattr(importlib.import_module(module), function)(list(command.argv[1:]))
    assert raised.type is _ParsedError or raised.value.code == 0, f"{command.where}: {' '.join(command.argv)}"


@pytest.mark.parametrize("command", SHOWN, ids=[c.where for c in SHOWN])
def test_a_shown_command_works_as_shown(command, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # run dirs the precheck checks resolve here, not in the checkout
    (tmp_path / "my_conf").mkdir()  # the config dir configuration.md composes on top of ours
    head = command.argv[0]
    if head.startswith("-m "):
        assert importlib.util.find_spec(head[3:]) is not None, f"{command.where}: no module {head[3:]}"
    elif head.startswith("benchmarks/"):
        flags = {word.split("=")[0] for word in command.argv[1:] if word.startswith("-")}
        assert flags <= declared_flags(REPO / head), f"{command.where}: {head} has no {flags}"
    else:
        module, function = programs()[head].split(":")
        if head in HYDRA_PROGRAMS:
            check_hydra(command, module, function, monkeypatch, capsys)
        else:
            check_argparse(command, module, function, monkeypatch)


def test_every_program_is_checked_one_way_or_the_other():
    """A new console script is placed in HYDRA_PROGRAMS or ARGPARSE_PROGRAMS, so its commands are checked."""
    assert set(programs()) == HYDRA_PROGRAMS | ARGPARSE_PROGRAMS


def test_the_readme_shows_its_two_commands_and_three_errors():
    """The extraction itself: the README's setup lines, a wrapped (\\) command and the shown errors are found."""
    readme = [c for c in shown_commands() if c.where.startswith("README.md:")]
    assert readme[0].argv == ("searchr1",)  # bash scripts/setup.sh && scripts/run python3 -m searchr1
    assert sum(c.error is not None for c in readme) == 3
    assert any("trainer.shared_dir=/mnt/shared/searchr1" in c.argv for c in readme)
