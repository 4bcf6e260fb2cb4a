"""Every default lives in one place, its schema: a group option's YAML sets only what differs from it
(docs/config-reference.md lists both, tests/test_config_reference.py keeps it current)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest
from omegaconf import OmegaConf

from hydra_plugins.searchr1_ray_jobs.config import RayJobsLauncherConf
from searchr1.config import ConfigError, to_typed
from searchr1.config.reference import GroupOption, default_of, group_options, read_option
from searchr1.config.schema import LOCAL_TRAINER_ALSO_SETS, RetrieverConfig, SearchR1Config
from searchr1.config.store import GROUP_SCHEMAS
from searchr1.retriever.cli import _parser as retriever_parser
from searchr1.retriever.flags import config_from
from tests.support.compose import REPO, compose_config

CONF = REPO / "conf"


def _default(cls: type, name: str) -> Any:
    return default_of({f.name: f for f in dataclasses.fields(cls)}[name])


def _restated(schema: type, values: dict[str, Any]) -> list[str]:
    return sorted(key for key, value in values.items() if value == _default(schema, key))


def _all_options() -> list[GroupOption]:
    return [option for group in GROUP_SCHEMAS for option in group_options(group, CONF)]


@pytest.mark.parametrize("option", _all_options(), ids=lambda o: f"{o.group}={o.name}")
def test_a_group_option_sets_only_what_differs_from_its_schema(option):
    restated = _restated(option.schema, option.values)
    assert not restated, (
        f"conf/{option.group}/{option.name}.yaml restates {restated} with the schema's default "
        f"({option.schema.__name__}): drop them, the schema is their one home"
    )


def test_the_other_config_files_restate_no_default_either():
    primary = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"), resolve=False)
    assert _restated(SearchR1Config, {k: v for k, v in primary.items() if k not in ("defaults", "hydra")}) == []
    launcher = OmegaConf.to_container(OmegaConf.load(CONF / "hydra/launcher/ray_jobs.yaml"), resolve=False)
    assert _restated(RayJobsLauncherConf, {k: v for k, v in launcher.items() if k != "defaults"}) == []


def test_a_restated_default_is_found(tmp_path):
    (tmp_path / "tis").mkdir()
    copy = tmp_path / "tis" / "on.yaml"
    copy.write_text((CONF / "tis/on.yaml").read_text() + "upper_bound: 2.0  # the schema's\n")
    option = read_option(copy, "tis")
    assert _restated(option.schema, option.values) == ["upper_bound"]


def test_a_value_every_option_of_a_schema_sets_alike_belongs_in_the_schema():
    by_schema: dict[type, list[GroupOption]] = {}
    for option in _all_options():
        by_schema.setdefault(option.schema, []).append(option)
    for schema, options in by_schema.items():
        if len(options) < 2:
            continue
        shared = set.intersection(*({(k, repr(v)) for k, v in o.values.items()} for o in options))
        assert not shared, f"every {schema.__name__} option sets {sorted(shared)}: make it the schema's default"


def test_every_group_option_file_is_read():
    read = {f"{o.group}/{o.name}.yaml" for o in _all_options()}
    grouped = {str(p.relative_to(CONF)) for group in GROUP_SCHEMAS for p in CONF.glob(f"{group}/*.yaml")}
    assert read == grouped and {"trainer/local.yaml", "retriever/e5.yaml", "backend/google.yaml"} <= read


def test_trainer_local_also_sets_lists_exactly_the_keys_its_file_sets_outside_trainer():
    elsewhere = read_option(CONF / "trainer/local.yaml", "trainer").elsewhere
    assert sorted(elsewhere) == sorted(LOCAL_TRAINER_ALSO_SETS)
    cfg = to_typed(compose_config())
    miles = to_typed(compose_config(["trainer=miles"]))
    for dotted, value in elsewhere.items():
        top, key = dotted.split(".")
        assert getattr(getattr(cfg, top), key) == value
        assert getattr(getattr(miles, top), key) == _default(type(getattr(miles, top)), key)
    assert cfg.trainer.also_sets == LOCAL_TRAINER_ALSO_SETS


def test_help_and_the_file_header_name_what_trainer_local_also_sets(tmp_path):
    help_text = subprocess.run(
        [sys.executable, "-m", "searchr1", "--help"],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    header = "".join(
        line for line in (CONF / "trainer/local.yaml").read_text().splitlines(keepends=True) if line.startswith("#")
    )
    sentence = " ".join(help_text.split("trainer=local (the default) also sets", 1)[1].split("\n\n")[0].split())
    for key in LOCAL_TRAINER_ALSO_SETS:
        assert key in sentence
        assert key in header.split("defaults:")[0]


def test_trainer_local_also_sets_is_a_record_not_a_setting():
    with pytest.raises(ConfigError, match=r"trainer.also_sets=\[\] is a record"):
        to_typed(compose_config(["trainer.also_sets=[]"]))


@pytest.mark.parametrize("argv,option", [([], "bm25"), (["--kind", "bm25"], "bm25"), (["--kind", "dense"], "dense")])
def test_a_hand_started_retriever_takes_the_configured_options_values(argv, option):
    flags = retriever_parser().parse_args(["serve", "--corpus=c.jsonl", *argv])
    assert config_from(flags) == to_typed(compose_config([f"retriever={option}"])).retriever


def test_the_retriever_schema_defaults_are_the_bm25_options_so_flag_help_can_show_them():
    assert to_typed(compose_config(["retriever=bm25"])).retriever == RetrieverConfig()


def test_retriever_flags_given_win_over_the_kinds_values():
    flags = retriever_parser().parse_args(
        ["serve", "--corpus=c.jsonl", "--kind", "dense", "--max-batch-size", "8", "--no-faiss-gpu"]
    )
    cfg = config_from(flags)
    assert (cfg.kind, cfg.max_batch_size, cfg.faiss_gpu, cfg.search_workers) == ("dense", 8, False, 2)
