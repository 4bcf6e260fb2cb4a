import asyncio

import pytest
from aiohttp import web

from searchr1.engines.base import SamplingParams
from searchr1.engines.sglang import SGLangEngine, parse_response, response_meta
from tests.support.scripted import fake_logprob, smollm2_tokenizer
from tests.support.search_servers import refused_url, serve
from tests.support.sglang_server import serve_fake_sglang

PLAN = "<think>Look.</think>\n<search>capital of France</search>\n\n<information>invented</information>"


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def params(max_new_tokens=64, stop=("</search>", "</answer>")):
    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.9, stop=stop)


async def test_request_is_sglang_native_with_token_ids(tok, http_session):
    async with serve_fake_sglang(tok, lambda _ctx: PLAN) as fake:
        await SGLangEngine(fake.url, http_session, timeout_s=10).generate([1, 2, 3], params())
    (payload,) = fake.requests
    assert payload["input_ids"] == [1, 2, 3] and "text" not in payload
    assert payload["return_logprob"] is True
    assert payload["sampling_params"] == {
        "max_new_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "stop": ["</search>", "</answer>"],
        "no_stop_trim": True,
        "skip_special_tokens": False,
    }


async def test_stop_string_ends_the_output_and_is_kept(tok, http_session):
    async with serve_fake_sglang(tok, lambda _ctx: PLAN) as fake:
        out = await SGLangEngine(fake.url, http_session, timeout_s=10).generate([1, 2, 3], params())
    assert out.finish_reason == "stop"
    assert tok.decode(out.token_ids) == "<think>Look.</think>\n<search>capital of France</search>"
    assert out.logprobs == [fake_logprob(3 + i, t) for i, t in enumerate(out.token_ids)]


async def test_length_finish(tok, http_session):
    async with serve_fake_sglang(tok, lambda _ctx: PLAN) as fake:
        out = await SGLangEngine(fake.url, http_session, timeout_s=10).generate([1], params(max_new_tokens=3))
    assert out.finish_reason == "length" and len(out.token_ids) == 3 == len(out.logprobs)


async def test_eos_is_returned_as_a_token(tok, http_session):
    async with serve_fake_sglang(tok, lambda _ctx: "done<|im_end|>ignored") as fake:
        out = await SGLangEngine(fake.url, http_session, timeout_s=10).generate([1], params())
    assert out.finish_reason == "stop" and out.token_ids[-1] == tok.eos_token_id


async def test_http_error_is_an_abort_not_an_exception(tok, http_session):
    async with serve_fake_sglang(tok, lambda _ctx: PLAN) as fake:
        fake.fail_status = 503
        out = await SGLangEngine(fake.url, http_session, timeout_s=10).generate([1], params())
    assert (out.token_ids, out.finish_reason) == ([], "abort")


async def test_unreachable_server_is_an_abort(http_session):
    out = await SGLangEngine(refused_url(), http_session, timeout_s=5).generate([1], params())
    assert out.finish_reason == "abort"


async def test_timeout_is_an_abort(http_session):
    async def slow(_request):
        await asyncio.sleep(0.5)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/generate", slow)
    async with serve(app) as url:
        started = asyncio.get_running_loop().time()
        out = await SGLangEngine(url, http_session, timeout_s=0.1).generate([1], params())
        assert out.finish_reason == "abort"
        assert asyncio.get_running_loop().time() - started < 0.4


def entries(ids):
    return [[-0.5, i, None] for i in ids]


def test_parse_reads_ids_and_logprobs_from_output_token_logprobs():
    body = {
        "text": "x",
        "meta_info": {
            "output_token_logprobs": [[-0.1, 5, "a"], [-0.2, 6, "b"]],
            "finish_reason": {"type": "length", "length": 2},
        },
    }
    out = parse_response(body)
    assert (out.token_ids, out.logprobs, out.finish_reason) == ([5, 6], [-0.1, -0.2], "length")


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x"},  # no meta_info
        {"output_ids": [5], "meta_info": {"finish_reason": {"type": "stop"}}},  # tokens without logprobs
        {
            "output_ids": [5, 7],
            "meta_info": {"output_token_logprobs": entries([5, 6]), "finish_reason": {"type": "stop"}},
        },
        {"meta_info": {"output_token_logprobs": entries([5]), "finish_reason": None}},  # unfinished
        {"meta_info": {"output_token_logprobs": entries([5]), "finish_reason": {"type": "abort", "message": "x"}}},
        {"meta_info": {"output_token_logprobs": [[-0.1]], "finish_reason": {"type": "stop"}}},  # no token id
        ["not", "a", "dict"],
    ],
)
def test_parse_treats_malformed_or_aborted_responses_as_abort(body):
    assert parse_response(body).finish_reason == "abort"


def test_parse_keeps_partial_tokens_of_an_aborted_request():
    body = {"meta_info": {"output_token_logprobs": entries([5, 6]), "finish_reason": {"type": "abort"}}}
    assert parse_response(body).token_ids == [5, 6]


def test_response_meta_keeps_scalars_and_drops_token_lists():
    body = {
        "meta_info": {
            "output_token_logprobs": [[-0.1, 5, None]],
            "input_token_logprobs": [],
            "cached_tokens": 12,
            "prompt_tokens": 30,
            "weight_version": "4",
            "finish_reason": {"type": "stop"},
        }
    }
    assert response_meta(body) == {
        "cached_tokens": 12,
        "prompt_tokens": 30,
        "weight_version": "4",
        "finish_reason": {"type": "stop"},
    }
    assert response_meta({"text": "x"}) == {} and response_meta({"meta_info": {"finish_reason": None}}) == {}
