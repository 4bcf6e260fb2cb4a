"""Every default lives in one place: a group option's YAML may restate its schema's defaults (for
reading), but a different value must be a real per-option value, listed below with why."""

from __future__ import annotations

import dataclasses
import fnmatch
import subprocess
import sys
from typing import Any

import pytest
from omegaconf import MISSING, OmegaConf

from hydra_plugins.searchr1_ray_jobs.config import RayJobsLauncherConf
from searchr1.config import ConfigError, to_typed
from searchr1.config.schema import LOCAL_TRAINER_ALSO_SETS, RetrieverConfig, SearchR1Config
from searchr1.config.store import _GROUP_SCHEMAS
from searchr1.retriever.cli import _parser as retriever_parser
from searchr1.retriever.flags import config_from
from tests.support.compose import REPO, compose_config

CONF = REPO / "conf"
# Presets change values by design (they are deltas); Hydra's own plugins bring their own schemas.
NOT_DEFAULTS = {"experiment": "presets: deltas over the defaults", "sweep": "presets: deltas over the defaults"}
FOREIGN_SCHEMA = {"hydra/launcher/slurm.yaml": "hydra-submitit-launcher's schema, sized for our GPU nodes"}

# Values an option sets differently from its schema: each one must differ from the schema, and some
# sibling option of the same schema must keep the schema's value (else the value belongs in the schema).
PER_OPTION_VALUES = {
    "retriever/dense.yaml": {"kind", "max_batch_size", "search_workers"},  # CPU encoder: small batches, 2 workers
    "retriever/e5.yaml": {"kind", "index_dir", "encoder", "query_prefix", "passage_prefix"},  # Search-R1's index
    "reward/em+format.yaml": {"kind", "format_score"},
    "reward/searchr1_qa_em_format.yaml": {"kind"},
    "tis/on.yaml": {"enabled"},
    "model/*.yaml": {"ref_load", "load", "save", "megatron_args"},  # each model's Megatron checkpoints and shape
    "model/smollm2-135m.yaml": {"warm_start"},  # the only model searchr1 ships a warm start for
    "data/synthetic_years.yaml": {"questions"},  # the arithmetic questions over the same book
}
# Values no hand-built schema object could hold: an interpolation into the rest of the config.
INTERPOLATED = {
    "logger/wandb.yaml": {"group"},  # the W&B group follows sweep_name
    "trainer/local.yaml": {"init_from"},  # the embedded trainer starts from the model's shipped warm start
}


def _default(cls: type, name: str) -> Any:
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    if found.default is not dataclasses.MISSING:
        return found.default
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return MISSING


def _schema_of(defaults: list) -> tuple[type, str]:
    """The schema a group file extends (``/schema/<group>/<name>@<package>``) and where it lands."""
    (entry,) = [d for d in defaults if isinstance(d, str) and d.startswith("/schema/")]
    path, _, package = entry.partition("@")
    group, name = path.split("/")[2:4]
    return _GROUP_SCHEMAS[group][name], package


def _option_files() -> list[str]:
    files = sorted(str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml"))
    return [f for f in files if f.split("/")[0] not in NOT_DEFAULTS and f not in FOREIGN_SCHEMA]


def _values(rel: str) -> tuple[type, dict[str, Any], dict[str, Any]]:
    """(schema, the schema node's values, keys the file sets outside that node as dotted paths)."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / rel), resolve=False)
    defaults = raw.pop("defaults", [])
    if rel == "config.yaml":
        raw.pop("hydra")
        return SearchR1Config, raw, {}
    if rel == "hydra/launcher/ray_jobs.yaml":
        return RayJobsLauncherConf, raw, {}
    schema, package = _schema_of(defaults)
    if package == "_here_":
        return schema, raw, {}
    node = raw.pop(package)
    elsewhere = {f"{top}.{key}": value for top, sub in raw.items() for key, value in sub.items()}
    return schema, node, elsewhere


def _differing(rel: str) -> set[str]:
    schema, node, _ = _values(rel)
    return {
        key for key, value in node.items() if _default(schema, key) is not MISSING and value != _default(schema, key)
    }


def test_every_conf_file_is_either_checked_or_listed_with_a_reason():
    groups = {p.parent.relative_to(CONF).parts[0] for p in CONF.rglob("*.yaml") if p.parent != CONF}
    assert groups - set(NOT_DEFAULTS) >= {
        "backend",
        "data",
        "logger",
        "model",
        "retriever",
        "reward",
        "tis",
        "trainer",
        "hydra",
    }
    assert "trainer/local.yaml" in _option_files() and "config.yaml" in _option_files()


def _allowed(listing: dict[str, set[str]], rel: str) -> set[str]:
    return set().union(*(keys for pattern, keys in listing.items() if fnmatch.fnmatch(rel, pattern)))


@pytest.mark.parametrize("rel", _option_files())
def test_group_files_restate_schema_defaults_only_with_the_same_value(rel):
    allowed = _allowed(PER_OPTION_VALUES, rel) | _allowed(INTERPOLATED, rel)
    unexpected = _differing(rel) - allowed
    assert not unexpected, (
        f"conf/{rel} sets {sorted(unexpected)} to other values than its schema's defaults: change the schema's "
        "default (one place), or list a real per-option value in PER_OPTION_VALUES"
    )


@pytest.mark.parametrize("pattern", sorted(PER_OPTION_VALUES))
def test_per_option_values_differ_from_the_schema_which_a_sibling_option_keeps(pattern):
    matching = [rel for rel in _option_files() if fnmatch.fnmatch(rel, pattern)]
    listed = PER_OPTION_VALUES[pattern]
    differing = set().union(*(_differing(rel) for rel in matching))
    assert listed <= differing, f"stale PER_OPTION_VALUES entries for {pattern}: {sorted(listed - differing)}"
    group = pattern.split("/")[0]
    group_files = [rel for rel in _option_files() if rel.startswith(f"{group}/")]
    for key in listed:
        keeping = [rel for rel in group_files if key not in _differing(rel)]
        assert keeping, f"no {group} option keeps the schema's {key}: it belongs in the schema"


def test_interpolated_values_are_interpolations():
    for rel, keys in INTERPOLATED.items():
        _, node, _ = _values(rel)
        assert all(str(node[key]).startswith("${") for key in keys)


def test_the_local_trainer_schema_holds_the_values_the_default_run_uses():
    # The example: schema and conf/trainer/local.yaml disagreed on these.
    trainer = to_typed(compose_config()).trainer
    assert (trainer.lr, trainer.micro_batch_size, trainer.lora_rank, trainer.threads) == (1e-4, 8, 16, 1)
    assert _differing("trainer/local.yaml") == set(INTERPOLATED["trainer/local.yaml"])


def test_trainer_local_also_sets_lists_exactly_the_keys_its_file_sets_outside_trainer():
    _, _, elsewhere = _values("trainer/local.yaml")
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


def test_the_lists_name_existing_files():
    assert all(list(CONF.glob(rel)) for rel in [*PER_OPTION_VALUES, *INTERPOLATED, *FOREIGN_SCHEMA])
