"""Hooks against Miles' own code: its Sample, generate-function loader, MockSGLangServer and mis.py.

Skipped unless Miles is importable (e.g. ``PYTHONPATH=/path/to/miles``); each test needs only the
Miles modules it names, so a partial install runs what it can.
"""

from __future__ import annotations

import argparse
import itertools

import pytest
import torch

from searchr1.trainers.miles import hooks
from searchr1.trainers.miles import generate as miles_generate
from searchr1.trainers.miles import runtime as miles_runtime
from searchr1.trainers.miles import samples as miles_samples
from searchr1.trainers.miles.command import GENERATE_HOOK
from tests.support.miles_fakes import FakeState
from tests.support.scripted import search_then_answer_policy, smollm2_tokenizer
from tests.support.sglang_server import serve_fake_sglang
from tests.support.miles_hooks import chat_prompt, new_sample, write_args

pytestmark = pytest.mark.miles


@pytest.fixture
async def runtime_cleanup():
    yield
    await miles_runtime.close_runtimes()


async def test_real_sample_is_filled_and_validates(tmp_path, tokenizer, retriever, runtime_cleanup):
    types = pytest.importorskip("miles.utils.types")
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        args = write_args(tmp_path, retriever.url, fake.url)
        sample = await miles_generate.generate_sample(args, new_sample(tokenizer, types.Sample), tokenizer)
        failed = await miles_generate.generate_sample(
            argparse.Namespace(), new_sample(tokenizer, types.Sample), tokenizer
        )
    assert sample.status is types.Sample.Status.COMPLETED
    sample.validate()
    assert sample.effective_response_length < sample.response_length  # observations are masked
    assert failed.status is types.Sample.Status.FAILED
    failed.validate()
    assert (await hooks.reward(args, sample))["exact_match"] == 1.0
    # SGLang's meta info went through Miles' own Sample.update_from_meta_info; our status stayed
    assert sample.prefix_cache_info.total_prompt_tokens == sum(len(r["input_ids"]) for r in fake.requests)
    assert sample.prefix_cache_info.cached_tokens > 0  # the second turn shares the prompt


async def test_real_sample_failing_after_a_turn_trains_nothing(tmp_path, tokenizer, retriever, runtime_cleanup):
    types = pytest.importorskip("miles.utils.types")
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        fake.fail_status, fake.answer_first = 500, 1
        args = write_args(tmp_path, retriever.url, fake.url)
        sample = await miles_generate.generate_sample(args, new_sample(tokenizer, types.Sample), tokenizer)
    assert sample.status is types.Sample.Status.FAILED
    sample.validate()
    assert sample.effective_response_length == 0


def test_tis_metric_reduction_mirror_matches_miles_sum_of_sample_mean(monkeypatch):
    """The per-sample part of the mirror in test_miles_hooks, against Miles' own reducer (CP=1)."""
    cp_utils = pytest.importorskip("miles.backends.training_utils.cp_utils")
    from types import SimpleNamespace

    from tests.support.miles_hooks import call_tis, miles_reduced_tis_metrics, tis_args

    monkeypatch.setattr(cp_utils, "get_parallel_state", lambda: SimpleNamespace(cp=SimpleNamespace(size=1)))
    args = tis_args(global_batch_size=3)
    train, masks = [[1.0, 3.0], [0.25], [1.0]], [[1, 1], [1], [0]]
    _, _, metrics = call_tis(args, train, masks)
    mask_tensors = [torch.tensor(m, dtype=torch.float32) for m in masks]
    reducer = cp_utils.get_sum_of_sample_mean(
        [10 + len(t) for t in train],
        [len(t) for t in train],
        mask_tensors,
        False,
        "thd",
        None,
        denominators=[m.sum() for m in mask_tensors],
    )
    mirrored = miles_reduced_tis_metrics(args, [(train, masks)], per_token=False)
    for key, value in metrics.items():  # one micro-batch: Miles divides its sum by the 3 rollouts
        assert float(reducer(value)) / 3 == pytest.approx(mirrored[key])


async def test_new_form_generate_returns_miles_output(tmp_path, tokenizer, retriever, runtime_cleanup):
    types = pytest.importorskip("miles.utils.types")
    base_types = pytest.importorskip("miles.rollout.base_types")
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        args = write_args(tmp_path, retriever.url, fake.url)
        fn_input = base_types.GenerateFnInput(
            state=FakeState(args, tokenizer),
            sample=new_sample(tokenizer, types.Sample),
            sampling_params={"temperature": 1.0, "top_p": 1.0},
            evaluation=False,
        )
        output = await hooks.generate(fn_input)
    assert isinstance(output, base_types.GenerateFnOutput)
    assert output.samples.status is types.Sample.Status.COMPLETED


def test_miles_loads_generate_as_new_form_and_legacy_through_its_adapter():
    compat = pytest.importorskip("miles.rollout.inference_rollout.compatibility")
    assert compat.load_generate_function(GENERATE_HOOK) is hooks.generate
    legacy = compat.load_generate_function("searchr1.trainers.miles.hooks.generate_legacy")
    assert isinstance(legacy, compat.LegacyGenerateFnAdapter)


async def test_generate_against_miles_mock_sglang_server(tmp_path, tokenizer, retriever, runtime_cleanup):
    mock = pytest.importorskip("miles.utils.test_utils.mock_sglang_server")
    types = pytest.importorskip("miles.utils.types")
    model_dir = tmp_path / "tokenizer"
    smollm2_tokenizer().save_pretrained(model_dir)  # the mock loads its tokenizer from a path, offline

    def process(prompt: str):
        return mock.ProcessResult(text=search_then_answer_policy(prompt), finish_reason="stop")

    with mock.with_mock_server(model_name=str(model_dir), process_fn=process) as server:
        args = write_args(tmp_path, retriever.url, f"http://{server.host}:{server.port}")
        sample = await miles_generate.generate_sample(args, new_sample(tokenizer, types.Sample), tokenizer)
        requests = list(server.request_log)
    assert sample.status is types.Sample.Status.COMPLETED
    sample.validate()
    assert requests[0]["input_ids"] == tokenizer.encode(chat_prompt(tokenizer), add_special_tokens=False)
    assert sample.metadata[miles_samples.METADATA_KEY]["search_calls"] == 1


@pytest.mark.parametrize(
    "level,mode,normalize",
    [
        (level, mode, normalize)
        for level, mode, normalize in itertools.product(
            ("token", "sequence", "geometric"), ("truncate", "clip", "mask"), (False, True)
        )
        if not (normalize and level == "geometric")
    ],
)
def test_tis_hook_agrees_with_miles_mis_py(level, mode, normalize):
    mis = pytest.importorskip("examples.infra_features.train_infer_mismatch_helper.mis")
    gen = torch.Generator().manual_seed(0)
    lengths = [5, 3, 7, 1]
    train = [torch.randn(n, generator=gen) * 0.3 - 1.0 for n in lengths]
    rollout = [t + torch.randn(len(t), generator=gen) * 0.2 for t in train]
    masks = [(torch.rand(n, generator=gen) > 0.3).float() for n in lengths]
    args = argparse.Namespace(
        use_tis=True,
        use_rs=False,
        tis_level=level,
        rs_level=level,
        tis_mode=mode,
        tis_lower_bound=0.8,
        tis_upper_bound=1.25,
        rs_lower_bound=None,
        rs_upper_bound=None,
        rs_veto_threshold=None,
        tis_batch_normalize=normalize,
        global_batch_size=4,
        context_parallel_size=1,
    )
    kwargs = dict(
        pg_loss=torch.ones(sum(lengths)),
        train_log_probs=train,
        rollout_log_probs=rollout,
        loss_masks=masks,
        total_lengths=[n + 4 for n in lengths],
        response_lengths=lengths,
    )
    theirs_loss, theirs_masks, _ = mis.compute_mis_weights_fsdp(args, **kwargs)
    ours_loss, ours_masks, _ = hooks.tis_weights(args, **kwargs)
    mask = torch.cat(ours_masks)
    assert torch.allclose(ours_loss * mask, theirs_loss * torch.cat(theirs_masks), atol=1e-5)
    assert torch.equal(mask, torch.cat(theirs_masks))
