"""The engine's sampler chain with the real embedded model: penalties, top-k, min-p, logit bias
and seed, per request and per agent, with requests still batched together."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from breakingwind.engine import Engine, GenerationRequest, GenerationResult
from breakingwind.errors import SamplingError
from tests.conftest import LiveServer

LOOP = "Write the word 'la' one hundred times, separated by spaces."


def chat(text: str, **fields: object) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}], **fields)  # type: ignore[arg-type]


def text_of(engine: Engine, request: GenerationRequest) -> str:
    """The answer, from a cold cache: a reused prefix rounds differently and can flip a
    near-tie token (docs/benchmarks.md), which would hide what sampling did."""

    async def fresh() -> str:
        await engine.worker("coder").clear_cache()
        return (await engine.complete("coder", request)).text

    return asyncio.run(fresh())


def token_id(engine: Engine, text: str) -> int:
    tokens = asyncio.run(
        engine.worker("coder").call_with_model(
            lambda llm: llm.tokenize(text.encode(), add_bos=False, special=False)
        )
    )
    assert len(tokens) == 1
    return tokens[0]


def first_token(engine: Engine, text: str) -> int:
    tokens = asyncio.run(
        engine.worker("coder").call_with_model(
            lambda llm: llm.tokenize(text.encode(), add_bos=False, special=False)
        )
    )
    return tokens[0]


def test_logit_bias_forces_a_token(engine: Engine) -> None:
    zebra = token_id(engine, " zebra")
    biased = chat("Say hello.", temperature=0, max_tokens=4, repeat_penalty=1.0)
    biased.logit_bias = {zebra: 100.0}
    assert text_of(engine, biased) == " zebra" * 4


def test_negative_logit_bias_bans_a_token(engine: Engine) -> None:
    plain = text_of(engine, chat("Say hello.", temperature=0, max_tokens=8))
    first = first_token(engine, plain)
    banned = chat("Say hello.", temperature=0, max_tokens=8)
    banned.logit_bias = {first: -100.0}
    assert first_token(engine, text_of(engine, banned)) != first


def test_top_k_one_is_greedy(engine: Engine) -> None:
    greedy = text_of(engine, chat("Name three fruits.", temperature=0, max_tokens=24))
    top_1 = text_of(engine, chat("Name three fruits.", temperature=1.5, top_k=1, max_tokens=24))
    assert top_1 == greedy


def test_min_p_one_is_greedy(engine: Engine) -> None:
    greedy = text_of(engine, chat("Name three fruits.", temperature=0, max_tokens=24))
    min_p = text_of(engine, chat("Name three fruits.", temperature=1.5, min_p=1.0, max_tokens=24))
    assert min_p == greedy


def test_a_seed_repeats_a_sample(engine: Engine) -> None:
    def sample(seed: int) -> str:
        return text_of(engine, chat("Tell a story.", temperature=1.2, seed=seed, max_tokens=24))

    assert sample(42) == sample(42)
    assert len({sample(seed) for seed in (1, 2, 3)}) > 1


def test_repeat_penalty_stops_a_loop(engine: Engine) -> None:
    # The embedded model, greedy, repeats "LAL" until the length limit (the loop aider hit);
    # the default penalty of 1.1 lets it end its answer.
    def answer(penalty: float) -> GenerationResult:
        async def fresh() -> GenerationResult:
            await engine.worker("coder").clear_cache()
            request = chat(LOOP, temperature=0, max_tokens=60, repeat_penalty=penalty)
            return await engine.complete("coder", request)

        return asyncio.run(fresh())

    looping, penalised = answer(1.0), answer(1.1)
    assert looping.finish_reason == "length" and looping.usage.completion_tokens == 60
    assert penalised.finish_reason == "stop" and penalised.usage.completion_tokens < 30


def test_frequency_and_presence_penalties_change_the_answer(engine: Engine) -> None:
    plain = text_of(engine, chat(LOOP, temperature=0, max_tokens=30, repeat_penalty=1.0))
    for penalty in ({"frequency_penalty": 1.5}, {"presence_penalty": 1.5}):
        penalised = chat(LOOP, temperature=0, max_tokens=30, repeat_penalty=1.0, **penalty)
        assert text_of(engine, penalised) != plain


def test_agent_defaults_apply_when_the_request_leaves_them_unset(engine: Engine) -> None:
    # The agents' default repeat_penalty (1.1) is on: an unset request equals an explicit 1.1.
    assert engine.settings.coder.repeat_penalty == 1.1
    unset = text_of(engine, chat(LOOP, temperature=0, max_tokens=40))
    explicit = text_of(engine, chat(LOOP, temperature=0, max_tokens=40, repeat_penalty=1.1))
    off = text_of(engine, chat(LOOP, temperature=0, max_tokens=40, repeat_penalty=1.0))
    assert unset == explicit != off


def test_batched_requests_keep_their_own_samplers(engine: Engine) -> None:
    # Decoded in one batch, each request samples with its own chain: the bias of one does not
    # reach the other. (Their text may differ from a run alone: a batch rounds differently.)
    zebra = token_id(engine, " zebra")
    forced = chat("Say hello.", temperature=0, max_tokens=6, repeat_penalty=1.0)
    forced.logit_bias = {zebra: 100.0}
    plain = chat("Name three fruits.", temperature=0, max_tokens=24)

    async def together() -> list[str]:
        await engine.worker("coder").clear_cache()
        both = [engine.complete("coder", forced), engine.complete("coder", plain)]
        return [result.text for result in await asyncio.gather(*both)]

    forced_text, plain_text = asyncio.run(together())
    assert forced_text == " zebra" * 6
    assert "zebra" not in plain_text and plain_text.strip()


def test_logit_bias_outside_the_vocabulary_is_refused(engine: Engine) -> None:
    request = chat("Say hello.", max_tokens=2)
    request.logit_bias = {10_000_000: 5.0}
    with pytest.raises(SamplingError) as exc:
        text_of(engine, request)
    assert exc.value.param == "logit_bias"


def test_sampling_options_reach_the_engine_over_http(api_server: LiveServer) -> None:
    body = {
        "model": "breakingwind-coder",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 3,
        "temperature": 0,
        "repeat_penalty": 1.0,
        "logit_bias": {"10000000": 5},
    }
    response = httpx.post(f"{api_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logit_bias"
    body["logit_bias"] = {"1": 200}
    response = httpx.post(f"{api_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logit_bias"
