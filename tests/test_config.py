"""Every shipped config composes and validates; schemas reject typos and out-of-range values."""

from __future__ import annotations

import itertools
import re

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from searchr1.config import ConfigError, to_typed
from searchr1.config.schema import LocalBackendConfig, LocalTrainerConfig, MilesTrainerConfig, SearchR1Config
from tests.support.compose import REPO, compose_config, shipped_yaml_files

BACKENDS = ("local", "google")
MODELS = ("qwen2.5-3B", "qwen2.5-7B", "smollm2-135m")
TIS = ("on", "off")
REWARDS = ("em", "em+format", "searchr1_qa_em_format")


@pytest.mark.parametrize("backend,model,tis,reward", list(itertools.product(BACKENDS, MODELS, TIS, REWARDS)))
def test_every_mission_group_combination_composes(backend, model, tis, reward):
    cfg = compose_config([f"backend={backend}", f"model={model}", f"tis={tis}", f"reward={reward}"])
    typed = to_typed(cfg)
    assert isinstance(typed, SearchR1Config)
    assert typed.backend.name == backend
    assert typed.model.name == model
    assert typed.tis.enabled is (tis == "on")


@pytest.mark.parametrize("trainer", ["local", "miles"])
@pytest.mark.parametrize("retriever", ["bm25", "dense"])
@pytest.mark.parametrize("data", ["synthetic", "nq_hotpotqa"])
def test_other_groups_compose(trainer, retriever, data):
    typed = to_typed(compose_config([f"trainer={trainer}", f"retriever={retriever}", f"data={data}"]))
    assert (typed.trainer.name, typed.retriever.kind, typed.data.name) == (trainer, retriever, data)


EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))


def _preset_file(name: str) -> tuple[dict[str, str], dict[str, object]]:
    """The group options a preset selects (``override /group: option``) and the leaf values it sets, by
    dotted key, read from its YAML: what the preset says it runs. A preset that builds on another one
    (a plain ``- other`` entry before ``_self_``) runs what that one sets, then its own values."""
    body = OmegaConf.to_container(OmegaConf.load(REPO / "experiments" / f"{name}.yaml"))
    assert isinstance(body, dict)
    groups: dict[str, str] = {}
    values: dict[str, object] = {}
    for entry in body.pop("defaults", []):
        if isinstance(entry, str):
            if entry != "_self_":
                base_groups, base_values = _preset_file(entry)
                groups.update(base_groups)
                values.update(base_values)
            continue
        groups.update({key.removeprefix("override /"): option for key, option in entry.items()})

    def leaves(node: object, prefix: str) -> dict[str, object]:
        if not isinstance(node, dict):
            return {prefix: node}
        return {k: v for key, child in node.items() for k, v in leaves(child, f"{prefix}{key}.").items()}

    values.update({key.rstrip("."): value for key, value in leaves(body, "").items()})
    return groups, values


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_to_what_its_file_sets(name):
    """Each group option and each value a preset names survives composition (no group file applied after
    it overwrites one) and validates."""
    groups, values = _preset_file(name)
    choices = compose_config([f"+experiment={name}"], hydra_node=True).hydra.runtime.choices
    assert {group: choices[group] for group in groups} == groups
    cfg = compose_config([f"+experiment={name}"])
    assert {key: OmegaConf.select(cfg, key) for key in values} == values
    to_typed(cfg)


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.startswith("cpu_")])
def test_cpu_presets_train_smollm2_with_the_embedded_trainer(name):
    typed = to_typed(compose_config([f"+experiment={name}"]))
    assert (typed.trainer.name, typed.model.name) == ("local", "smollm2-135m")
    assert typed.data.name == "synthetic" and typed.backend.name == "local"


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.startswith("grpo-")])
def test_gpu_presets_run_the_paper_recipe_on_miles(name):
    """Named grpo-<model>-<nodes>n<gpus>g[-...]: Miles trains that Qwen2.5 or Qwen3 size on NQ+HotpotQA with TIS
    on, the exact-match reward and the GPU count the name says."""
    family, size, gpus = re.fullmatch(r"grpo-(qwen2\.5|qwen3)-(\d+(?:\.\d+)?b)-1n(\d+)g(?:-.*)?", name).groups()
    typed = to_typed(compose_config([f"+experiment={name}"]))
    assert (typed.trainer.name, typed.model.name.lower(), typed.data.name) == (
        "miles",
        f"{family}-{size}",
        "nq_hotpotqa",
    )
    assert typed.tis.enabled and typed.reward.kind == "em"
    assert typed.trainer.node_gpus == int(gpus)
    assert typed.trainer.gpus_per_node <= typed.trainer.node_gpus


def test_one_gpu_preset_takes_one_optimizer_step_per_rollout():
    typed = to_typed(compose_config(["+experiment=grpo-qwen2.5-0.5b-1n1g-colocate"]))
    trainer = typed.trainer
    assert trainer.global_batch_size == trainer.rollout_batch_size * typed.rollout.n_samples_per_prompt
    assert trainer.gpus_per_node == trainer.node_gpus == 1


def test_parity_preset_is_the_original_search_r1():
    """docs/parity.md: the original's reward and loop, no TIS, N search turns plus one answer turn."""
    typed = to_typed(compose_config(["+experiment=parity"]))
    assert typed.reward.kind == "searchr1_qa_em_format" and not typed.tis.enabled
    assert typed.rollout.final_turn and not typed.rollout.stop_at_tags


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml")))
def test_every_sweep_composes(name):
    cfg = compose_config([f"+sweep={name}"], hydra_node=True)
    assert cfg.hydra.mode.name == "MULTIRUN", f"sweeps/{name}.yaml must set hydra.mode: MULTIRUN"
    assert cfg.hydra.sweeper.params, f"sweeps/{name}.yaml defines no sweep axes"
    assert to_typed(compose_config([f"+sweep={name}"])).sweep_name == name


def test_defaults_are_the_embedded_cpu_run():
    typed = to_typed(compose_config())
    assert typed.trainer.name == "local"
    assert typed.model.name == "smollm2-135m"
    assert typed.backend == LocalBackendConfig(urls=[])
    assert typed.data.name == "synthetic"
    assert typed.logger.mode == "offline"


def test_misspelled_key_fails_at_composition_with_the_key_named():
    with pytest.raises(ConfigCompositionException, match="Could not override 'rollout.max_turnz'"):
        compose_config(["rollout.max_turnz=3"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("search.topk=0", "search.topk=0 is out of range"),
        ("rollout.max_turns=0", "rollout.max_turns=0 is out of range"),
        ("search.concurrency=0", "search.concurrency=0 is out of range"),
        ("reward.format_score=1.5", "reward.format_score=1.5 is out of range"),
        ("tis.level=tokn", "did you mean 'token'"),
        ("logger.mode=onlin", "logger.mode='onlin' is not allowed"),
        ("data.questions=dates", "data.questions='dates' is not allowed"),
        ("data=nq_hotpotqa data.questions=years", "data.questions=years needs data.name=synthetic"),
        # Settings that contradict each other (each was accepted: a run whose every search failed, a run
        # whose every response was truncated, a deadline that left the timeout no use).
        ("search.topk=5 retriever.max_topk=3", "search.topk=5 is above retriever.max_topk=3"),
        (
            "rollout.max_turn_tokens=4096 rollout.max_response_len=64",
            "rollout.max_turn_tokens=4096 is above rollout.max_response_len=64",
        ),
        ("search.deadline_s=0.5 search.timeout_s=10", "search.deadline_s=0.5 is shorter than search.timeout_s=10"),
    ],
)
def test_out_of_range_values_fail_with_one_line(override, message):
    with pytest.raises(ConfigError) as info:
        to_typed(compose_config(override.split()))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_topk_above_our_retrievers_limit_is_only_refused_when_the_run_starts_that_retriever():
    # An external retriever (backend.urls) has its own limit; retriever.* configures only the one we start.
    assert to_typed(compose_config(["search.topk=5", "retriever.max_topk=3", "backend.urls=[http://h:8000]"]))


def test_secrets_are_names_not_values(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "sk-very-secret-value")
    cfg = compose_config(["backend=google"])
    assert "sk-very-secret-value" not in OmegaConf.to_yaml(cfg, resolve=True)
    assert to_typed(cfg).backend.api_key_env == "SERPER_API_KEY"


_KEY_LINE = re.compile(r"^\s*[\w.+\-/@]+:\s*\S")


@pytest.mark.parametrize("path", shipped_yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_yaml_field_has_a_comment(path):
    """Leaf fields (``key: value``) need a trailing comment saying what they are for."""
    in_block_scalar = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        indent = len(line) - len(line.lstrip())
        if in_block_scalar is not None and (not line.strip() or indent > in_block_scalar):
            continue
        in_block_scalar = None
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        if _KEY_LINE.match(line):
            assert "#" in line, f"{path.relative_to(REPO)}:{number} has no comment: {stripped}"
            if stripped.split("#")[0].rstrip().endswith(("|", "|-", ">")):
                in_block_scalar = indent


def test_grpo_objective_is_one_node_and_the_cpu_trainer_drops_the_kl_term():
    assert to_typed(compose_config(["trainer=miles"])).grpo.kl_loss_coef == 0.001
    assert to_typed(compose_config()).grpo.kl_loss_coef == 0.0
    assert to_typed(compose_config(["grpo.kl_loss_coef=0.01"])).grpo.kl_loss_coef == 0.01


def test_demo_prompts_are_refused_with_miles():
    with pytest.raises(ConfigError, match="data.prompt_style='demo' is not supported with trainer=miles"):
        to_typed(compose_config(["trainer=miles", "data.prompt_style=demo"]))
    assert to_typed(compose_config(["data.prompt_style=demo"])).data.prompt_style == "demo"


def test_train_sources_are_refused_with_miles():
    with pytest.raises(ConfigError, match="data.train_sources is not supported with trainer=miles"):
        to_typed(compose_config(["trainer=miles", "data.train_sources=[nq]"]))
    assert to_typed(compose_config(["data.train_sources=[nq]"])).data.train_sources == ["nq"]


def test_rollback_is_refused_with_miles():
    with pytest.raises(ConfigError, match="health.entropy.action=rollback is not supported with trainer=miles"):
        to_typed(compose_config(["trainer=miles", "health.entropy.action=rollback"]))
    assert to_typed(compose_config(["health.entropy.action=rollback"])).health.entropy.action == "rollback"


def test_the_trainer_node_is_typed_and_says_where_it_trains():
    assert SearchR1Config.__dataclass_fields__["trainer"].type == "TrainerConfig"
    local, miles = (to_typed(compose_config([f"trainer={name}"])).trainer for name in ("local", "miles"))
    assert isinstance(local, LocalTrainerConfig) and local.in_process
    assert isinstance(miles, MilesTrainerConfig) and not miles.in_process


def test_a_trainer_module_gets_its_own_node_or_one_line():
    cfg = to_typed(compose_config(["trainer=miles"]))
    assert MilesTrainerConfig.of(cfg) is cfg.trainer
    with pytest.raises(ConfigError, match=r"^trainer=miles is selected; this needs trainer=local$"):
        LocalTrainerConfig.of(cfg)


def test_no_module_switches_on_the_trainer_name():
    # The trainer node says what it is (in_process) and narrows itself (TrainerConfig.of); a name check or a
    # getattr would hide a trainer's node from mypy again.
    switches = re.compile(r"trainer\.name\s*[!=]=|getattr\([^)]*trainer")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in (REPO / "src").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if switches.search(line)
    ]
    assert not found
