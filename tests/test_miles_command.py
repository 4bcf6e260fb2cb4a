"""The Miles train.py command: golden parity with Miles' run_qwen2.5_3B.sh, flag validity, snapshots."""

from __future__ import annotations

import importlib
import itertools
import os
from pathlib import Path

import pytest

from searchr1.config import ConfigError, to_typed
from searchr1.trainers.miles.command import (
    EVAL_LOG_HOOK,
    GENERATE_HOOK,
    REWARD_HOOK,
    ROLLOUT_LOG_HOOK,
    TIS_HOOK,
    build_command,
    build_train_args,
    model_args,
)
from searchr1.trainers.miles.flags import miles_flags
from tests.support.compose import REPO, compose_config, miles_presets

PAPER = "grpo-qwen2.5-3b-1n8g-paper"
RUN_DIR = Path("/runs/RUN")
CUSTOM_CONFIG = RUN_DIR / "miles_custom_config.yaml"
SNAPSHOTS = REPO / "tests" / "snapshots" / "miles"
UPDATE = os.environ.get("SEARCHR1_UPDATE_SNAPSHOTS") == "1"

# radixark/miles@31f1ca961a94cb860cec3b2dea34ec332bfa8f76
# examples/experimental/search-r1/run_qwen2.5_3B.sh with its TIS and W&B lines enabled (minus
# --wandb-key) and the model flags of scripts/models/qwen2.5-3B.py: flag -> values.
REFERENCE = {
    "--actor-num-nodes": ["1"],
    "--actor-num-gpus-per-node": ["4"],
    "--rollout-num-gpus": ["4"],
    "--colocate": [],
    "--swiglu": [],
    "--num-layers": ["36"],
    "--hidden-size": ["2048"],
    "--ffn-hidden-size": ["11008"],
    "--num-attention-heads": ["16"],
    "--use-rotary-position-embeddings": [],
    "--disable-bias-linear": [],
    "--add-qkv-bias": [],
    "--normalization": ["RMSNorm"],
    "--norm-epsilon": ["1e-6"],
    "--rotary-base": ["1000000"],
    "--group-query-attention": [],
    "--num-query-groups": ["2"],
    "--vocab-size": ["151936"],
    "--hf-checkpoint": ["/root/Qwen2.5-3B/"],
    "--ref-load": ["/root/Qwen2.5-3B_torch_dist/"],
    "--prompt-data": ["/root/Search-R1/data/nq_hotpotqa_train/train.parquet"],
    "--input-key": ["prompt"],
    "--label-key": ["reward_model"],
    "--apply-chat-template": [],
    "--rollout-shuffle": [],
    "--num-rollout": ["3000"],
    "--rollout-batch-size": ["32"],
    "--n-samples-per-prompt": ["8"],
    "--rollout-max-response-len": ["512"],
    "--rollout-temperature": ["1"],
    "--global-batch-size": ["256"],
    "--balance-data": [],
    "--optimizer": ["adam"],
    "--lr": ["1e-6"],
    "--lr-decay-style": ["constant"],
    "--weight-decay": ["0.01"],
    "--adam-beta1": ["0.9"],
    "--adam-beta2": ["0.98"],
    "--advantage-estimator": ["grpo"],
    "--use-kl-loss": [],
    "--kl-loss-coef": ["0.001"],
    "--kl-loss-type": ["low_var_kl"],
    "--entropy-coef": ["0.00"],
    "--eps-clip": ["0.2"],
    "--eps-clip-high": ["0.28"],
    "--use-tis": [],
    "--use-wandb": [],
    "--wandb-project": ["miles-dev"],
    "--wandb-group": ["search-r1_qwen2.5-3B-test"],
    "--tensor-model-parallel-size": ["2"],
    "--sequence-parallel": [],
    "--pipeline-model-parallel-size": ["1"],
    "--context-parallel-size": ["1"],
    "--expert-model-parallel-size": ["1"],
    "--expert-tensor-parallel-size": ["1"],
    "--recompute-granularity": ["full"],
    "--recompute-method": ["uniform"],
    "--recompute-num-layers": ["1"],
    "--use-dynamic-batch-size": [],
    "--max-tokens-per-gpu": ["9216"],
    "--rollout-num-gpus-per-engine": ["2"],
    "--sglang-mem-fraction-static": ["0.7"],
    "--attention-dropout": ["0.0"],
    "--hidden-dropout": ["0.0"],
    "--accumulate-allreduce-grads-in-fp32": [],
    "--attention-softmax-in-fp32": [],
    "--attention-backend": ["flash"],
    "--custom-generate-function-path": ["generate_with_search.generate"],
    "--custom-rm-path": ["generate_with_search.reward_func"],
    "--custom-config-path": ["examples/infra_features/train_infer_mismatch_helper/mis.yaml"],
    "--custom-tis-function-path": [
        "examples.infra_features.train_infer_mismatch_helper.mis.compute_mis_weights_with_cp"
    ],
}
# Values that are ours by design: our data and W&B project, and our hooks in place of the example's.
OURS_BY_DESIGN = {
    "--prompt-data": ["/data/nq_hotpotqa/train.parquet"],
    "--wandb-project": ["searchr1"],
    "--wandb-group": ["RUN"],
    "--custom-generate-function-path": [GENERATE_HOOK],
    "--custom-rm-path": [REWARD_HOOK],
    "--custom-config-path": [str(CUSTOM_CONFIG)],
    "--custom-tis-function-path": [TIS_HOOK],
}
# What we add to the reference, and why (each is documented in docs/miles.md).
EXTRAS = {
    "--rollout-seed",  # our global seed drives Miles' data order
    "--load",
    "--save",
    "--save-interval",  # the reference has these commented out; the model config sets them
    "--wandb-mode",
    "--wandb-dir",  # offline by default, files inside the run dir
    "--disable-wandb-random-suffix",  # the W&B run is named after our run
    "--reward-key",  # our reward returns total/exact_match/format
    "--custom-rollout-log-function-path",  # our rollout metrics
}


@pytest.fixture(autouse=True)
def _fixed_paths(monkeypatch):
    monkeypatch.setenv("SEARCHR1_DATA", "/data")
    monkeypatch.setenv("SEARCHR1_CACHE", "/cache")


def argv(overrides):
    cfg = to_typed(compose_config(list(overrides)))
    return build_train_args(cfg, run_dir=RUN_DIR, run_name="RUN", custom_config_path=CUSTOM_CONFIG)


def parse(args: list[str]) -> dict[str, list[str]]:
    """flag -> values; a repeated flag keeps its last occurrence, as argparse does."""
    parsed: dict[str, list[str]] = {}
    current = None
    for arg in args:
        if arg.startswith("--"):
            current = arg
            parsed[current] = []
        else:
            parsed[current].append(arg)
    return parsed


def same(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a.rstrip("/") == b.rstrip("/")


def test_paper_preset_matches_the_miles_search_r1_script():
    ours = parse(argv([f"+experiment={PAPER}"]))
    missing = sorted(set(REFERENCE) - set(ours))
    assert not missing, f"flags of run_qwen2.5_3B.sh we do not emit: {missing}"
    expected = {**REFERENCE, **OURS_BY_DESIGN}
    differ = {
        f: (ours[f], v)
        for f, v in expected.items()
        if len(ours[f]) != len(v) or not all(same(a, b) for a, b in zip(ours[f], v))
    }
    assert not differ, f"values differ from the reference (ours, reference): {differ}"
    extra = sorted(set(ours) - set(REFERENCE) - EXTRAS)
    assert not extra, f"undocumented flags beyond the reference: {extra}"


def test_model_flags_keep_the_model_file_order():
    args = argv([f"+experiment={PAPER}"])
    start = args.index("--swiglu")
    assert args[start : start + 3] == ["--swiglu", "--num-layers", "36"]
    assert "--untie-embeddings-and-output-weights" not in args  # 3B ties its embeddings
    assert "--untie-embeddings-and-output-weights" in argv([f"+experiment={PAPER}", "model=qwen2.5-7B"])


# The flags each Miles model file returns (scripts/models/<file>.py, model_args(), radixark/miles@31f1ca9, the
# commit miles_flags.txt records; rotary base at its default), by our model option. The Instruct checkpoints
# have their base model's shape, so they share its file.
QWEN3 = "--swiglu --num-layers {} --hidden-size {} --ffn-hidden-size {} --num-attention-heads {} "
QWEN3 += "--group-query-attention --num-query-groups 8 --use-rotary-position-embeddings --disable-bias-linear "
QWEN3 += "--normalization RMSNorm --norm-epsilon 1e-6 --rotary-base 1000000 --vocab-size 151936 --kv-channels 128 "
QWEN3 += "--qk-layernorm"
QWEN25_SMALL = "--swiglu --num-layers {} --hidden-size {} --ffn-hidden-size {} --num-attention-heads {} "
QWEN25_SMALL += "--use-rotary-position-embeddings --disable-bias-linear --add-qkv-bias --normalization RMSNorm "
QWEN25_SMALL += (
    "--norm-epsilon 1e-6 --rotary-base 1000000 --group-query-attention --num-query-groups 2 --vocab-size 151936"
)
QWEN25_7B = "--swiglu --num-layers 28 --hidden-size 3584 --ffn-hidden-size 18944 --num-attention-heads 28 "
QWEN25_7B += "--group-query-attention --num-query-groups 4 --use-rotary-position-embeddings --disable-bias-linear "
QWEN25_7B += "--add-qkv-bias --normalization RMSNorm --norm-epsilon 1e-06 --rotary-base 1000000 --vocab-size 152064 "
QWEN25_7B += "--untie-embeddings-and-output-weights"
MILES_MODEL_FILES = {
    "qwen2.5-0.5B": ("qwen2.5-0.5B.py", QWEN25_SMALL.format(24, 896, 4864, 14)),
    "qwen2.5-3B": ("qwen2.5-3B.py", QWEN25_SMALL.format(36, 2048, 11008, 16)),
    "qwen2.5-3B-instruct": ("qwen2.5-3B.py", QWEN25_SMALL.format(36, 2048, 11008, 16)),
    "qwen2.5-7B": ("qwen2.5-7B.py", QWEN25_7B),
    "qwen2.5-7B-instruct": ("qwen2.5-7B.py", QWEN25_7B),
    "qwen3-0.6B": ("qwen3-0.6B.py", QWEN3.format(28, 1024, 3072, 16)),
    "qwen3-1.7B": ("qwen3-1.7B.py", QWEN3.format(28, 2048, 6144, 16)),
    "qwen3-4B": ("qwen3-4B.py", QWEN3.format(36, 2560, 9728, 32)),
    "qwen3-8B": ("qwen3-8B.py", QWEN3.format(36, 4096, 12288, 32) + " --untie-embeddings-and-output-weights"),
}
MODEL_OPTIONS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


def test_every_megatron_model_option_is_checked_against_a_miles_model_file():
    megatron = [m for m in MODEL_OPTIONS if to_typed(compose_config([f"model={m}"])).model.megatron_args]
    assert sorted(MILES_MODEL_FILES) == megatron


@pytest.mark.parametrize("model", sorted(MILES_MODEL_FILES))
def test_model_flags_are_the_miles_model_files_in_its_order(model):
    args = model_args(to_typed(compose_config([f"model={model}"])).model.megatron_args)
    ours, theirs = parse(args), parse(MILES_MODEL_FILES[model][1].split())
    assert list(ours) == list(theirs), f"flags or order differ from Miles' scripts/models/{MILES_MODEL_FILES[model][0]}"
    differ = {
        f: (v, theirs[f]) for f, v in ours.items() if len(v) != len(theirs[f]) or not all(map(same, v, theirs[f]))
    }
    assert not differ, f"model={model} differs from Miles' scripts/models/{MILES_MODEL_FILES[model][0]}: {differ}"
    assert not miles_flags().unknown(args)


def test_never_passes_a_wandb_key(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret-wandb-key-123")
    args = argv([f"+experiment={PAPER}", "logger.mode=online"])
    assert "--wandb-key" not in args
    assert "secret-wandb-key-123" not in " ".join(args)


def test_tis_off_keeps_our_hook_for_metrics_only():
    args = parse(argv([f"+experiment={PAPER}", "tis=off"]))
    assert "--use-tis" not in args
    assert "--get-mismatch-metrics" in args
    assert args["--custom-tis-function-path"] == [TIS_HOOK]


def test_all_hooks_are_dotted_paths_into_our_package():
    args = parse(argv([f"+experiment={PAPER}"]))
    assert args["--custom-rollout-log-function-path"] == [ROLLOUT_LOG_HOOK]
    for hook in (GENERATE_HOOK, REWARD_HOOK, TIS_HOOK, ROLLOUT_LOG_HOOK, EVAL_LOG_HOOK):
        assert ":" not in hook and hook.startswith("searchr1.trainers.miles.hooks.")
        module, name = hook.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name))


def test_separate_rollout_gpus_drop_colocate():
    args = parse(argv([f"+experiment={PAPER}", "trainer.rollout_num_gpus=4", "trainer.node_gpus=4"]))
    assert "--colocate" not in args
    assert args["--rollout-num-gpus"] == ["4"]
    assert args["--num-gpus-per-node"] == ["4"]


def test_logger_disabled_emits_no_wandb_flags():
    assert not [
        a
        for a in argv([f"+experiment={PAPER}", "logger.mode=disabled"])
        if a.startswith("--wandb") or a == "--use-wandb"
    ]


@pytest.mark.parametrize("mode, telemetry", [("offline", "false"), ("disabled", "false"), ("online", None)])
def test_the_job_env_turns_wandb_telemetry_off_unless_online(mode, telemetry):
    cfg = to_typed(compose_config([f"+experiment={PAPER}", f"logger.mode={mode}"]))
    command = build_command(cfg, run_dir=RUN_DIR, run_name="RUN", custom_config_path=CUSTOM_CONFIG, python_path=[])
    assert command.env.get("WANDB_ERROR_REPORTING") == telemetry


def test_extra_args_come_last_so_they_win():
    args = argv([f"+experiment={PAPER}", "trainer.extra_args=[--lr,'2e-6']"])
    assert args[-2:] == ["--lr", "2e-6"]


def test_batch_sizes_must_give_whole_optimizer_steps():
    with pytest.raises(ConfigError, match="global_batch_size"):
        argv([f"+experiment={PAPER}", "trainer.global_batch_size=100"])


def test_kl_off_drops_the_reference_flags():
    args = parse(argv([f"+experiment={PAPER}", "grpo.kl_loss_coef=0"]))
    assert "--use-kl-loss" not in args and "--kl-loss-type" not in args


def test_eval_interval_adds_the_test_split():
    args = parse(argv([f"+experiment={PAPER}", "trainer.eval_interval=25"]))
    assert args["--eval-interval"] == ["25"]
    assert args["--eval-prompt-data"] == ["test", "/data/nq_hotpotqa/test.parquet"]
    assert args["--custom-eval-rollout-log-function-path"] == [EVAL_LOG_HOOK]  # skips evals after a health stop


COMBINATIONS = list(
    itertools.product(
        ("local", "google"),
        ("qwen2.5-3B", "qwen2.5-7B", "smollm2-135m"),
        ("on", "off"),
        ("em", "em+format", "searchr1_qa_em_format"),
    )
)
VARIANTS = (
    [
        "trainer.rollout_num_gpus=4",
        "trainer.node_gpus=4",
        "trainer.gpus_per_node=4",
        "trainer.group_rm=true",
        "rollout.top_p=0.9",
        "logger.entity=team",
        "trainer.recompute=false",
        "trainer.tensor_model_parallel_size=1",
    ],
    ["trainer.eval_interval=10", "logger.mode=disabled", "tis.level=sequence", "tis.batch_normalize=true"],
    ["grpo.kl_loss_coef=0", "model.save=null", "model.load=null", "data.shuffle=false", "trainer.balance_data=false"],
)


@pytest.mark.parametrize("backend,model,tis,reward", COMBINATIONS)
def test_every_emitted_flag_exists_in_miles(backend, model, tis, reward):
    overrides = [
        "trainer=miles",
        f"backend={backend}",
        f"model={model}",
        f"tis={tis}",
        f"reward={reward}",
        "rollout.n_samples_per_prompt=8",
    ]
    assert not miles_flags().unknown(argv(overrides))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_emitted_flag_of_each_trainer_variant_exists_in_miles(variant):
    assert not miles_flags().unknown(argv([f"+experiment={PAPER}", *variant]))


ONE_GPU = "grpo-qwen2.5-0.5b-1n1g-colocate"


def test_one_gpu_preset_trains_and_generates_on_one_gpu():
    args = argv([f"+experiment={ONE_GPU}"])
    assert not miles_flags().unknown(args)  # every flag passes the recorded train.py parser
    ours = parse(args)
    one = {
        "--actor-num-nodes": ["1"],
        "--actor-num-gpus-per-node": ["1"],
        "--rollout-num-gpus": ["1"],
        "--colocate": [],
        "--num-gpus-per-node": ["1"],
        "--rollout-num-gpus-per-engine": ["1"],
        "--tensor-model-parallel-size": ["1"],
        "--pipeline-model-parallel-size": ["1"],
        "--context-parallel-size": ["1"],
    }
    assert {flag: ours.get(flag) for flag in one} == one
    assert "--sequence-parallel" not in ours and "--balance-data" not in ours
    # Miles' scripts/models/qwen2.5-0.5B.py, and whole optimizer steps per rollout
    assert (ours["--num-layers"], ours["--hidden-size"], ours["--ffn-hidden-size"]) == (["24"], ["896"], ["4864"])
    assert (ours["--num-attention-heads"], ours["--num-query-groups"]) == (["14"], ["2"])
    assert int(ours["--rollout-batch-size"][0]) * int(ours["--n-samples-per-prompt"][0]) == int(
        ours["--global-batch-size"][0]
    )
    # a micro-batch holds a whole trajectory: the response budget plus a search-r1 prompt (~300 tokens)
    rollout = to_typed(compose_config([f"+experiment={ONE_GPU}"])).rollout
    assert int(ours["--max-tokens-per-gpu"][0]) >= rollout.max_response_len + 512
    # the paper's algorithm otherwise
    paper = parse(argv([f"+experiment={PAPER}"]))
    for flag in ("--lr", "--kl-loss-coef", "--eps-clip", "--eps-clip-high", "--use-tis", "--rollout-max-response-len"):
        assert ours[flag] == paper[flag]


QWEN3_4B = "grpo-qwen3-4b-1n8g"
QWEN3_ONE_GPU = "grpo-qwen3-0.6b-1n1g-colocate"
MODEL_FLAGS = {"--hf-checkpoint", "--ref-load", "--load", "--save"}


def _without_model(args: dict[str, list[str]], model: str) -> dict[str, list[str]]:
    """The argv minus the model's architecture flags and checkpoint dirs."""
    own = set(parse(MILES_MODEL_FILES[model][1].split())) | MODEL_FLAGS
    return {f: v for f, v in args.items() if f not in own}


def test_qwen3_4b_preset_is_the_paper_recipe_on_eight_gpus_with_miles_qwen3_4b_parallelism():
    args = argv([f"+experiment={QWEN3_4B}"])
    assert not miles_flags().unknown(args)  # every flag passes the recorded train.py parser
    ours = parse(args)
    eight = {
        "--actor-num-nodes": ["1"],
        "--actor-num-gpus-per-node": ["8"],
        "--rollout-num-gpus": ["8"],
        "--colocate": [],
        "--tensor-model-parallel-size": ["2"],  # Miles' scripts/run_qwen3_4b.py: TP 2 for Qwen3-4B
        "--sequence-parallel": [],
        "--rollout-num-gpus-per-engine": ["1"],  # and one SGLang engine per GPU
        "--hf-checkpoint": ["/root/Qwen3-4B"],
    }
    assert {flag: ours.get(flag) for flag in eight} == eight
    # the paper recipe otherwise: only the GPU count, the engine size and the model differ
    paper = _without_model(parse(argv([f"+experiment={PAPER}"])), "qwen2.5-3B")
    changed = {"--actor-num-gpus-per-node", "--rollout-num-gpus", "--rollout-num-gpus-per-engine"}
    assert {f: v for f, v in _without_model(ours, "qwen3-4B").items() if f not in changed} == {
        f: v for f, v in paper.items() if f not in changed
    }


def test_qwen3_one_gpu_preset_is_the_one_gpu_recipe_with_qwen3_0_6b():
    args = argv([f"+experiment={QWEN3_ONE_GPU}"])
    assert not miles_flags().unknown(args)
    ours = parse(args)
    assert ours["--hf-checkpoint"] == ["/root/Qwen3-0.6B"] and "--qk-layernorm" in ours
    assert _without_model(ours, "qwen3-0.6B") == _without_model(parse(argv([f"+experiment={ONE_GPU}"])), "qwen2.5-0.5B")


def test_flag_list_records_its_commits():
    commits = miles_flags().commits
    assert commits["miles"].startswith("radixark/miles@31f1ca9")
    assert commits["megatron"].startswith("radixark/Megatron-LM@")
    assert {"--custom-tis-function-path", "--num-layers", "--sglang-mem-fraction-static"} <= miles_flags().flags


def render(args: list[str]) -> str:
    """One flag per line with its values, for readable snapshot diffs."""
    lines: list[str] = []
    for arg in args:
        if arg.startswith("--") or not lines:
            lines.append(arg)
        else:
            lines[-1] += f" {arg}"
    return "\n".join(lines) + "\n"


PRESETS = miles_presets()


@pytest.mark.parametrize("preset", PRESETS)
def test_snapshot_of_each_miles_preset(preset):
    text = render(argv([f"+experiment={preset}"]))
    path = SNAPSHOTS / f"{preset}.txt"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no snapshot for {preset}; run with SEARCHR1_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), (
        f"Miles argv of {preset} changed; review and rerun with SEARCHR1_UPDATE_SNAPSHOTS=1"
    )
