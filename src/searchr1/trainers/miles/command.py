"""Compose the typed config into Miles' ``train.py`` argv.

The paper preset reproduces Miles' ``examples/experimental/search-r1/run_qwen2.5_3B.sh`` flag for flag
(model flags from ``scripts/models/qwen2.5-3B.py``), with our hooks in place of the example's and
TIS/W&B switched on. Each section below mirrors one of that script's flag groups, so a diff against
it reads naturally. Flags are emitted only when they carry a value Miles would not assume already,
except where the reference script spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from searchr1.config.checks import ConfigError
from searchr1.config.schema import MilesTrainerConfig, SearchR1Config
from searchr1.tracking import wandb_env

HOOKS = "searchr1.trainers.miles.hooks"
GENERATE_HOOK = f"{HOOKS}.generate"
REWARD_HOOK = f"{HOOKS}.reward"
TIS_HOOK = f"{HOOKS}.tis_weights"
ROLLOUT_LOG_HOOK = f"{HOOKS}.log_rollout"
EVAL_LOG_HOOK = f"{HOOKS}.log_eval"
REWARD_KEY = "total"
"""Key of the reward dict our reward hook returns that Miles trains on (RewardBreakdown.total)."""

# Search-R1 parquet columns (prompt messages, reward_model.ground_truth.target).
INPUT_KEY = "prompt"
LABEL_KEY = "reward_model"


@dataclass(frozen=True)
class MilesCommand:
    """``python3 <miles_root>/train.py <train_args>`` plus the environment its Ray job needs."""

    train_args: list[str]
    miles_root: str
    env: dict[str, str] = field(default_factory=dict)
    """Non-secret environment variables for the Ray runtime env."""

    @property
    def entrypoint(self) -> list[str]:
        return ["python3", f"{self.miles_root.rstrip('/')}/train.py", *self.train_args]


def build_command(
    cfg: SearchR1Config,
    *,
    run_dir: Path,
    run_name: str,
    custom_config_path: Path,
    python_path: list[str],
    eval_datasets: Optional[dict[str, str]] = None,
    train_data: Optional[str] = None,
) -> MilesCommand:
    trainer = MilesTrainerConfig.of(cfg)
    env = {
        "PYTHONPATH": ":".join([trainer.megatron_root, trainer.miles_root, *python_path]),
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",  # Megatron overlaps TP communication only with this
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        **wandb_env(cfg.logger.mode),  # Miles' W&B runs in its Ray actors: offline there too
        **trainer.env,
    }
    return MilesCommand(
        train_args=build_train_args(
            cfg,
            run_dir=run_dir,
            run_name=run_name,
            custom_config_path=custom_config_path,
            eval_datasets=eval_datasets,
            train_data=train_data,
        ),
        miles_root=trainer.miles_root,
        env=env,
    )


def build_train_args(
    cfg: SearchR1Config,
    *,
    run_dir: Path,
    run_name: str,
    custom_config_path: Path,
    eval_datasets: Optional[dict[str, str]] = None,
    train_data: Optional[str] = None,
) -> list[str]:
    """``eval_datasets`` (name -> parquet) default to the whole test split as one ``test`` set; ``train_data``
    (the training parquet with tool prompts, see launch.tool_prompt_data) to data.train_path."""
    trainer = MilesTrainerConfig.of(cfg)
    _check_batch_sizes(cfg, trainer)
    return [
        *cluster_args(trainer),
        *model_args(cfg.model.megatron_args),
        *checkpoint_args(cfg, trainer),
        *rollout_args(cfg, trainer, train_data or cfg.data.train_path),
        *eval_args(cfg, trainer, eval_datasets or {"test": cfg.data.test_path}),
        *optimizer_args(trainer),
        *grpo_args(cfg, trainer),
        *wandb_args(cfg, run_dir=run_dir, run_name=run_name),
        *perf_args(trainer),
        *sglang_args(trainer),
        *misc_args(trainer),
        *custom_args(cfg, trainer, custom_config_path),
        *trainer.extra_args,
    ]


def _check_batch_sizes(cfg: SearchR1Config, trainer: MilesTrainerConfig) -> None:
    """Miles' invariant: one rollout is a whole number of optimizer steps."""
    samples = trainer.rollout_batch_size * cfg.rollout.n_samples_per_prompt
    if samples % trainer.global_batch_size:
        raise ConfigError(
            f"trainer.rollout_batch_size x rollout.n_samples_per_prompt = {samples} is not a multiple of "
            f"trainer.global_batch_size={trainer.global_batch_size}; allowed: a divisor of {samples}"
        )


def flag(name: str, *values: Any) -> list[str]:
    return [f"--{name}", *(str(v) for v in values)]


def cluster_args(t: MilesTrainerConfig) -> list[str]:
    actor_gpus = t.num_nodes * t.gpus_per_node
    args = flag("actor-num-nodes", t.num_nodes) + flag("actor-num-gpus-per-node", t.gpus_per_node)
    if t.rollout_num_gpus is None:  # colocated: SGLang and Megatron share (and offload) the same GPUs
        args += flag("rollout-num-gpus", actor_gpus) + flag("colocate")
    else:
        args += flag("rollout-num-gpus", t.rollout_num_gpus)
    if t.node_gpus != 8:  # Miles assumes 8 GPUs per node for placement
        args += flag("num-gpus-per-node", t.node_gpus)
    return args


def model_args(megatron_args: dict[str, Any]) -> list[str]:
    """Architecture flags in the model file's order: ``true`` is a bare switch, ``false`` omits it."""
    args: list[str] = []
    for name, value in megatron_args.items():
        if value is True:
            args += flag(name)
        elif value is not False and value is not None:
            args += flag(name, value)
    return args


def checkpoint_args(cfg: SearchR1Config, t: MilesTrainerConfig) -> list[str]:
    model = cfg.model
    args = flag("hf-checkpoint", model.hf_checkpoint)
    if model.ref_load:
        args += flag("ref-load", model.ref_load)
    if model.load:
        args += flag("load", model.load)
    if model.save:
        args += flag("save", model.save) + flag("save-interval", t.save_interval)
    return args


def rollout_args(cfg: SearchR1Config, t: MilesTrainerConfig, train_data: str) -> list[str]:
    rollout = cfg.rollout
    args = flag("prompt-data", train_data) + flag("input-key", INPUT_KEY) + flag("label-key", LABEL_KEY)
    if rollout.action_format == "tags":  # tool_calls: the generate hook renders the messages with the tools
        args += flag("apply-chat-template")
    if cfg.data.shuffle:
        args += flag("rollout-shuffle")
    args += flag("rollout-seed", cfg.seed)
    args += flag("num-rollout", t.num_rollout) + flag("rollout-batch-size", t.rollout_batch_size)
    args += flag("n-samples-per-prompt", rollout.n_samples_per_prompt)
    # Miles caps each /generate call with this; our loop applies the same per-turn cap itself.
    args += flag("rollout-max-response-len", rollout.max_turn_tokens)
    args += flag("rollout-temperature", rollout.temperature)
    if rollout.top_p != 1.0:
        args += flag("rollout-top-p", rollout.top_p)
    args += flag("global-batch-size", t.global_batch_size)
    if t.balance_data:
        args += flag("balance-data")
    return args


def eval_args(cfg: SearchR1Config, t: MilesTrainerConfig, datasets: dict[str, str]) -> list[str]:
    if not t.eval_interval:
        return []
    # Miles logs eval/<name> per (name, path) pair: one pair per dataset gives the paper's columns.
    pairs = [item for name, path in datasets.items() for item in (name, path)]
    return [
        *flag("eval-interval", t.eval_interval),
        *flag("eval-prompt-data", *pairs),
        *flag("eval-input-key", INPUT_KEY),
        *flag("eval-label-key", LABEL_KEY),
        *flag("n-samples-per-eval-prompt", cfg.eval.pass_k),
        *flag("eval-temperature", cfg.eval.temperature),
        # an eval after a health stop is logged as skipped, not as 0 on every set (Miles logs the rest)
        *flag("custom-eval-rollout-log-function-path", EVAL_LOG_HOOK),
    ]


def optimizer_args(t: MilesTrainerConfig) -> list[str]:
    return [
        *flag("optimizer", "adam"),
        *flag("lr", t.lr),
        *flag("lr-decay-style", t.lr_decay_style),
        *flag("weight-decay", t.weight_decay),
        *flag("adam-beta1", t.adam_beta1),
        *flag("adam-beta2", t.adam_beta2),
    ]


def grpo_args(cfg: SearchR1Config, t: MilesTrainerConfig) -> list[str]:
    args, g = flag("advantage-estimator", "grpo"), cfg.grpo
    if g.kl_loss_coef > 0:
        args += flag("use-kl-loss") + flag("kl-loss-coef", g.kl_loss_coef) + flag("kl-loss-type", t.kl_loss_type)
    args += flag("entropy-coef", g.entropy_coef) + flag("eps-clip", g.eps_clip) + flag("eps-clip-high", g.eps_clip_high)
    if cfg.tis.enabled:
        args += flag("use-tis")
    return args


def wandb_args(cfg: SearchR1Config, *, run_dir: Path, run_name: str) -> list[str]:
    """W&B through Miles' own tracking. The key stays in the environment (--wandb-key would be logged)."""
    logger = cfg.logger
    if logger.mode == "disabled":
        return []
    # Miles names the run after the group; without its random suffix the run is named run_name.
    args = flag("use-wandb") + flag("wandb-mode", logger.mode) + flag("wandb-project", logger.project)
    if logger.entity:
        args += flag("wandb-team", logger.entity)
    args += flag("wandb-group", run_name) + flag("disable-wandb-random-suffix") + flag("wandb-dir", run_dir)
    return args


def perf_args(t: MilesTrainerConfig) -> list[str]:
    args = flag("tensor-model-parallel-size", t.tensor_model_parallel_size)
    if t.tensor_model_parallel_size > 1:
        args += flag("sequence-parallel")
    args += flag("pipeline-model-parallel-size", t.pipeline_model_parallel_size)
    args += flag("context-parallel-size", t.context_parallel_size)
    # Dense models: no expert parallelism (the reference script states it explicitly).
    args += flag("expert-model-parallel-size", 1) + flag("expert-tensor-parallel-size", 1)
    if t.recompute:
        args += flag("recompute-granularity", "full") + flag("recompute-method", "uniform")
        args += flag("recompute-num-layers", 1)
    args += flag("use-dynamic-batch-size") + flag("max-tokens-per-gpu", t.max_tokens_per_gpu)
    return args


def sglang_args(t: MilesTrainerConfig) -> list[str]:
    return flag("rollout-num-gpus-per-engine", t.rollout_num_gpus_per_engine) + flag(
        "sglang-mem-fraction-static", t.sglang_mem_fraction_static
    )


def misc_args(t: MilesTrainerConfig) -> list[str]:
    # RL fine-tuning runs without dropout; fp32 reductions keep small policy updates exact.
    return [
        *flag("attention-dropout", 0.0),
        *flag("hidden-dropout", 0.0),
        *flag("accumulate-allreduce-grads-in-fp32"),
        *flag("attention-softmax-in-fp32"),
        *flag("attention-backend", t.attention_backend),
    ]


def custom_args(cfg: SearchR1Config, t: MilesTrainerConfig, custom_config_path: Path) -> list[str]:
    args = flag("custom-generate-function-path", GENERATE_HOOK) + flag("custom-rm-path", REWARD_HOOK)
    if t.group_rm:
        args += flag("group-rm")
    args += flag("reward-key", REWARD_KEY)
    args += flag("custom-config-path", custom_config_path)
    args += flag("custom-tis-function-path", TIS_HOOK)
    if not cfg.tis.enabled:  # still run our TIS hook, for its mismatch and ESS metrics only
        args += flag("get-mismatch-metrics")
    args += flag("custom-rollout-log-function-path", ROLLOUT_LOG_HOOK)
    return args
