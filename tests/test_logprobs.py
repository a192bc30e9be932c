"""Token log probabilities on the real embedded model: the engine, chat completions (whole and
streamed, through the `openai` SDK), legacy completions and the Responses API."""

from __future__ import annotations

import asyncio
import math

import httpx
import openai
import pytest

from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.types import TokenLogprob
from tests.conftest import LiveServer

PROMPT = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(api_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_server.url}/v1", api_key="anything", max_retries=0)


def greedy(engine: Engine, top: int | None, max_tokens: int = 12):
    request = GenerationRequest(
        messages=PROMPT, max_tokens=max_tokens, temperature=0, repeat_penalty=1.0, logprobs=top
    )
    return asyncio.run(engine.complete("coder", request))


def assert_greedy_entries(entries: list[TokenLogprob], top: int) -> None:
    for entry in entries:
        assert entry.logprob <= 0
        assert len(entry.top) == top
        alternatives = [alt.logprob for alt in entry.top]
        assert alternatives == sorted(alternatives, reverse=True)
        assert sum(math.exp(value) for value in alternatives) <= 1 + 1e-6
        # greedy picks the likeliest token: it heads the alternatives with the same logprob
        assert entry.top[0].token == entry.token
        assert entry.top[0].logprob == pytest.approx(entry.logprob)


def test_each_generated_token_has_its_logprob_and_alternatives(engine: Engine) -> None:
    result = greedy(engine, 3)
    assert result.logprobs is not None
    assert len(result.logprobs) == result.usage.completion_tokens
    assert b"".join(bytes(e.bytes) for e in result.logprobs).decode() == result.text
    assert_greedy_entries(result.logprobs, 3)


def test_logprobs_are_off_unless_asked_and_do_not_change_the_answer(engine: Engine) -> None:
    plain = greedy(engine, None)
    assert plain.logprobs is None
    assert greedy(engine, 0).text == plain.text


def ask(client: openai.OpenAI, **options: object):
    """A greedy chat completion of PROMPT from the coder."""
    return client.chat.completions.create(
        model="breakingwind-coder",
        messages=PROMPT,  # type: ignore[arg-type]
        temperature=0,
        **options,  # type: ignore[arg-type]
    )


def test_chat_completion_returns_logprobs(client: openai.OpenAI) -> None:
    answer = ask(client, max_tokens=8, logprobs=True, top_logprobs=2)
    content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
    assert len(content) == answer.usage.completion_tokens  # type: ignore[union-attr]
    assert "".join(entry.token for entry in content) == answer.choices[0].message.content
    assert all(len(entry.top_logprobs) == 2 for entry in content)
    assert ask(client, max_tokens=2).choices[0].logprobs is None


def test_streamed_chat_carries_logprobs_with_its_text(client: openai.OpenAI) -> None:
    stream = ask(
        client,
        max_tokens=10,
        logprobs=True,
        top_logprobs=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    tokens, text, usage = [], [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.logprobs and choice.logprobs.content:
                tokens += choice.logprobs.content
    assert usage is not None and len(tokens) == usage.completion_tokens
    assert "".join(t.token for t in tokens) == "".join(text)


def test_top_logprobs_without_logprobs_is_a_400(api_server: LiveServer) -> None:
    body = {"model": "breakingwind-coder", "messages": PROMPT, "top_logprobs": 2}
    response = httpx.post(f"{api_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "top_logprobs"
    body.update(logprobs=True, top_logprobs=21)
    response = httpx.post(f"{api_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "top_logprobs"


def test_legacy_completion_logprobs(client: openai.OpenAI) -> None:
    answer = client.completions.create(
        model="breakingwind-coder", prompt="The sky is", max_tokens=5, temperature=0, logprobs=2
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert "".join(logprobs.tokens) == answer.choices[0].text
    assert len(logprobs.token_logprobs or []) == len(logprobs.tokens)
    assert all(len(top) <= 2 for top in logprobs.top_logprobs or [])
    offsets = logprobs.text_offset or []
    assert offsets[0] == 0 and offsets == sorted(offsets)


def test_responses_api_includes_logprobs_when_asked(client: openai.OpenAI) -> None:
    asked = {
        "model": "breakingwind-coder",
        "input": "Name three colours.",
        "max_output_tokens": 8,
        "temperature": 0,
        "include": ["message.output_text.logprobs"],
    }
    response = client.responses.create(**asked, top_logprobs=2)  # type: ignore[call-overload]
    part = response.output[0].content[0]  # type: ignore[union-attr]
    assert part.logprobs and "".join(lp.token for lp in part.logprobs) == part.text
    assert all(len(lp.top_logprobs) == 2 for lp in part.logprobs)
    streamed = client.responses.create(**asked, stream=True)  # type: ignore[call-overload]
    deltas = [e for e in streamed if e.type == "response.output_text.delta"]
    tokens = [lp.token for e in deltas for lp in e.logprobs]
    assert tokens and "".join(tokens) == "".join(e.delta for e in deltas)
