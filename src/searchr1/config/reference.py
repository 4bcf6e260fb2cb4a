"""The configuration reference: every key's type, default and doc line, and what each group option sets.

Written from the schemas (their field docstrings) and the group options under ``conf/``::

    python -m searchr1.config.reference docs/config-reference.md

``tests/test_config_reference.py`` fails when the committed file differs from what this renders.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import textwrap
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import MISSING, OmegaConf

from searchr1.config.schema import ToolConfig
from searchr1.config.store import GROUP_SCHEMAS, root_schema

REGENERATE = "python -m searchr1.config.reference docs/config-reference.md"
"""The command that rewrites the committed reference (the staleness test prints it)."""


@dataclasses.dataclass(frozen=True)
class GroupOption:
    """One ``conf/<group>/<name>.yaml``: the schema it extends and the values it sets over that schema."""

    group: str
    name: str
    schema: type
    values: dict[str, Any]
    """What the file sets inside its group's node, by field name (interpolations unresolved)."""
    elsewhere: dict[str, Any]
    """What it sets outside its node (a ``@package _global_`` file), by dotted key."""
    summary: str
    """The file's header comment."""


def conf_dir() -> Path:
    """The shipped config tree (``conf/`` in a checkout, ``searchr1/conf`` in the wheel)."""
    return Path(str(files("searchr1.conf")))


def group_options(group: str, conf: Path | None = None) -> list[GroupOption]:
    """Every option of ``group`` in ``conf`` (default: the shipped tree), by name."""
    return [read_option(path, group) for path in sorted((conf or conf_dir()).joinpath(group).glob("*.yaml"))]


def read_option(path: Path, group: str) -> GroupOption:
    raw = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    (entry,) = [d for d in raw.pop("defaults", []) if isinstance(d, str) and d.startswith("/schema/")]
    schema_path, _, package = entry.partition("@")  # /schema/<group>/<name>@<package>
    schema = GROUP_SCHEMAS[group][schema_path.split("/")[3]]
    node = raw if package == "_here_" else raw.pop(package)
    elsewhere = {} if package == "_here_" else {f"{top}.{k}": v for top, sub in raw.items() for k, v in sub.items()}
    return GroupOption(group, path.stem, schema, node, elsewhere, _header(path))


def _header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line[1:].strip())
    return " ".join(lines)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string under it), on one line; a subclass's wins over its base's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # object, or a class made at run time (the root with its tool nodes)
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for stmt, after in zip(body.body, body.body[1:]):
            text = _text(after)
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and text is not None:
                docs[stmt.target.id] = " ".join(inspect.cleandoc(text).split())
    return docs


def _text(stmt: ast.stmt) -> str | None:
    """The string of a bare string statement (a docstring), else None."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
        return stmt.value.value
    return None


def class_doc(cls: type) -> str:
    return " ".join(inspect.cleandoc(cls.__doc__ or "").split())


def default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def show(value: Any) -> str:
    """A value as YAML writes it on one line (what ``key=value`` takes); ``required`` for no default."""
    if value is MISSING or value is dataclasses.MISSING:
        return "required"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value)  # YAML's double-quoted style, on one line
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000, sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")  # a scalar ends with a document end marker


def type_name(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(prefix: str, cls: type, only: set[str] | None = None) -> list[str]:
    """One row per field of ``cls`` (keys under ``prefix``), then one table per type of nested node."""
    docs = field_docs(cls)
    rows = ["| key | type | default | what it does |", "|---|---|---|---|"]
    nested: list[type] = []
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        value = default_of(f)
        if dataclasses.is_dataclass(value) and type(value) not in nested:
            nested.append(type(value))
        rows.append(
            f"| `{prefix}{f.name}` | `{type_name(f)}` | `{_cell(show(value))}` | {_cell(docs.get(f.name, ''))} |"
        )
    for node in nested:
        rows += ["", f"Each `{node.__name__}` key above (`{prefix}<name>`) holds: {class_doc(node)}", ""]
        rows += _table(f"{prefix}<name>.", node)
    return rows


def _group_section(group: str, default: str) -> list[str]:
    options = group_options(group)
    names = ", ".join(f"`{o.name}`" + (" (default)" if o.name == default else "") for o in options)
    lines = [f"## `{group}` (group: `{group}=<option>`)", "", f"Options: {names}.", ""]
    by_schema: dict[type, list[GroupOption]] = {}
    for option in options:
        by_schema.setdefault(option.schema, []).append(option)
    for schema, extending in by_schema.items():
        if len(by_schema) > 1:
            lines += [f"### {schema.__name__} ({', '.join(f'{group}={o.name}' for o in extending)})", ""]
        lines += [class_doc(schema), "", *_table(f"{group}.", schema), ""]
        lines += [f"- {_option_line(o, default)}" for o in extending]
        lines.append("")
    return lines


def _option_line(option: GroupOption, default: str) -> str:
    sets = {f"{option.group}.{k}": v for k, v in option.values.items()} | option.elsewhere
    said = ", ".join(f"`{key}={show(value)}`" for key, value in sets.items()) or "nothing: the schema's defaults"
    mark = " (default)" if option.name == default else ""
    return f"`{option.group}={option.name}`{mark}: {option.summary} **Sets** {said}."


def _node_section(name: str, cls: type) -> list[str]:
    kind = " (tool: selected by naming it in `tools`)" if issubclass(cls, ToolConfig) else ""
    return [f"## `{name}`{kind}", "", class_doc(cls), "", *_table(f"{name}.", cls), ""]


def _default_options() -> dict[str, str]:
    primary = OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml"), resolve=False)
    assert isinstance(primary, dict)
    return {k: str(v) for d in primary["defaults"] if isinstance(d, dict) for k, v in d.items()}


def render() -> str:
    root = root_schema()
    defaults = _default_options()
    plain = {f.name for f in dataclasses.fields(root) if f.name not in GROUP_SCHEMAS and not _is_node(f)}
    sections = ["## Top level", "", *_table("", root, only=plain), ""]
    for f in dataclasses.fields(root):
        if f.name in GROUP_SCHEMAS:
            sections += _group_section(f.name, defaults[f.name])
        elif _is_node(f):
            sections += _node_section(f.name, type(default_of(f)))
    return "\n".join([*_preamble(), *sections]).rstrip() + "\n"


def _is_node(f: dataclasses.Field) -> bool:
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)


def _preamble() -> Iterator[str]:
    yield "# Configuration reference"
    yield ""
    yield f"<!-- Generated by `{REGENERATE}` from the schemas and conf/; edit those, not this file. -->"
    yield ""
    yield (
        "Every key of a run's config with its type, its default (the schema's: `src/searchr1/config/schema.py`, "
        "and each tool's config class) and what it does; under each config group, what each of its options "
        "(`conf/<group>/<option>.yaml`) sets over those defaults. Set a key with `key=value` and pick an option "
        "with `group=option` on the command line; `python -m searchr1 --cfg job` prints the composed config. "
        "*required*: no default, the group's option sets it."
    )
    yield ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m searchr1.config.reference", description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="file to write (default: print)")
    args = parser.parse_args(argv)
    text = render()
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
