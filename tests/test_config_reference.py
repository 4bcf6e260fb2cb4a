"""docs/config-reference.md is what searchr1.config.reference writes from the schemas and conf/ now."""

from __future__ import annotations

import dataclasses
import re

import pytest
from omegaconf import DictConfig, OmegaConf

from searchr1.config import reference
from searchr1.config.schema import TisConfig
from tests.support.compose import REPO, compose_config

DOC = REPO / "docs" / "config-reference.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return reference.render()


def test_the_committed_reference_is_current(rendered):
    assert DOC.read_text() == rendered, f"docs/config-reference.md is stale; regenerate it: {reference.REGENERATE}"


def _keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items_ex(resolve=False):
        full = f"{prefix}{key}"
        is_node = isinstance(value, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(value))
        keys += _keys(value, f"{full}.") if is_node else [full]
    return keys


@pytest.mark.parametrize("overrides", [[], ["trainer=miles", "backend=google"]])
def test_every_composed_key_is_in_the_reference(rendered, overrides):
    missing = []
    for key in _keys(compose_config(overrides)):
        parts = key.split(".")
        generic = ".".join([parts[0], "<name>", *parts[2:]]) if len(parts) > 2 else key  # health.<name>.action
        if f"`{key}`" not in rendered and f"`{generic}`" not in rendered:
            missing.append(key)
    assert not missing


def test_every_key_has_a_type_a_default_and_a_doc_line(rendered):
    rows = [line for line in rendered.splitlines() if line.startswith("| `")]
    assert len(rows) > 200
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]  # \| is a | in a cell
    assert all(len(row) == 4 and all(row[:3]) for row in cells)
    undocumented = [key for key, _, _, doc in cells if not doc]
    assert not undocumented, f"fields without a docstring under them: {undocumented}"


def test_an_option_shows_what_it_sets_and_the_schema_default_it_replaces(rendered):
    assert "`retriever=dense`: Dense index" in rendered
    assert "**Sets** `retriever.kind=dense`, `retriever.max_batch_size=64`, `retriever.search_workers=2`." in rendered
    assert (
        "| `retriever.max_batch_size` | `int` | `256` | Micro-batching: most queries searched together. |" in rendered
    )
    assert "`trainer=local` (default)" in rendered and "`grpo.kl_loss_coef=0.0`" in rendered  # a _global_ file
    assert "## `calculator` (tool: selected by naming it in `tools`)" in rendered  # a registered tool's node


def test_a_changed_docstring_makes_the_reference_stale(monkeypatch, rendered):
    docs = dict(reference.field_docs(TisConfig), upper_bound="Weights above this are kept.")
    original = reference.field_docs
    monkeypatch.setattr(reference, "field_docs", lambda cls: docs if cls is TisConfig else original(cls))
    assert reference.render() != rendered
    assert "| `tis.upper_bound` | `float` | `2.0` | Weights above this are kept. |" in reference.render()
