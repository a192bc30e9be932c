"""The OpenAI-compatible API over real HTTP, driven by the official `openai` SDK and raw httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from breakingwind.api.app import create_app
from breakingwind.engine import Engine
from tests.conftest import TEST_N_CTX, LiveServer, another_app_settings, make_settings

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _weather_call(n: int, city: str) -> dict:
    arguments = json.dumps({"city": city})
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"c{n}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": arguments},
            }
        ],
    }


# Two earlier turns in which the assistant called the tool: even the tiny embedded model then
# chooses to call it again on its own (tool_choice "auto").
WEATHER_HISTORY = [
    {"role": "user", "content": "What's the weather in Paris?"},
    _weather_call(1, "Paris"),
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    {"role": "assistant", "content": "It is sunny in Paris."},
    {"role": "user", "content": "What's the weather in Rome?"},
    _weather_call(2, "Rome"),
    {"role": "tool", "tool_call_id": "c2", "content": "rainy"},
    {"role": "assistant", "content": "It is rainy in Rome."},
    {"role": "user", "content": "What's the weather in Berlin?"},
]
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[LiveServer]:
    with LiveServer(create_app(engine.settings, engine)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="anything", max_retries=0)


def post(server: LiveServer, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=60, **kwargs)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return body["error"]


# --- models ----------------------------------------------------------------------------------


def test_models_list_has_the_pipeline_and_every_agent(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {
        "breakingwind",
        "breakingwind-preprocessor",
        "breakingwind-planner",
        "breakingwind-coder",
        "breakingwind-reviewer",
    }
    assert models["breakingwind-coder"].model_extra["context_length"] == 8192 or (
        models["breakingwind-coder"].model_extra["context_length"] >= TEST_N_CTX
    )


@pytest.fixture(scope="module")
def strict_names(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that refuses model names it does not know (`[model_names] default = ""`)."""
    settings = another_app_settings(engine, tmp_path_factory.mktemp("strict"))
    settings.model_names.default = None
    with LiveServer(create_app(settings, engine)) as live:
        yield live


def test_model_retrieve_and_unknown_model(strict_names: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{strict_names.url}/v1", api_key="x", max_retries=0)
    assert client.models.retrieve("breakingwind-planner").id == "breakingwind-planner"
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("gpt-17")
    assert exc.value.body["code"] == "model_not_found"


def test_unknown_model_names_reach_the_default_agent(client: openai.OpenAI) -> None:
    card = client.models.retrieve("gpt-5-codex")
    assert card.model_extra["agent"] == "coder" and card.model_extra["alias"] is True
    reply = client.chat.completions.create(model="gpt-5-codex", messages=HELLO, max_tokens=4)
    assert reply.model == "gpt-5-codex" and reply.choices[0].message.content


def test_model_aliases_map_names_by_pattern(engine: Engine, tmp_path: Path) -> None:
    settings = another_app_settings(engine, tmp_path)
    settings.model_names.aliases = {"claude-*haiku*": "preprocessor", "bw-pipe": "breakingwind"}
    with LiveServer(create_app(settings, engine)) as live:
        listed = {m["id"]: m for m in httpx.get(f"{live.url}/v1/models").json()["data"]}
        assert listed["claude-*haiku*"]["agent"] == "preprocessor"
        assert listed["bw-pipe"]["agent"] == "breakingwind"
        assert listed["claude-*haiku*"]["context_length"] >= TEST_N_CTX
        card = httpx.get(f"{live.url}/v1/models/claude-3-haiku-x").json()
        assert card["agent"] == "preprocessor"


# --- chat ------------------------------------------------------------------------------------


def test_chat_non_stream(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="breakingwind-coder", messages=HELLO, max_tokens=16
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_with_include_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="breakingwind-coder",
            messages=HELLO,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and chunks.index(finish[0]) == len(chunks) - 2
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens > 0


def test_stream_is_plain_data_lines_ending_with_done(server: LiveServer) -> None:
    body = {"model": "breakingwind-coder", "messages": HELLO, "max_tokens": 8, "stream": True}
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert "event:" not in raw
    events = [block for block in raw.split("\n\n") if block]
    assert all(e.startswith("data: ") or e.startswith(": ") for e in events)
    assert events[-1] == "data: [DONE]"
    for event in events[:-1]:
        if event.startswith("data: "):
            assert json.loads(event[6:])["object"] == "chat.completion.chunk"


def test_silence_is_kept_alive_with_comment_lines(tmp_path: Path) -> None:
    # one slot, so the second request waits in the queue while the first generates
    one_slot = {"BREAKINGWIND_ENGINE__PARALLEL": "1", "BREAKINGWIND_SERVER__KEEPALIVE_S": "0.05"}
    settings = make_settings(tmp_path, environ=one_slot)
    with LiveServer(create_app(settings)) as live:
        busy = {
            "model": "breakingwind-coder",
            "max_tokens": 200,
            "stream": True,
            "messages": [{"role": "user", "content": "Write a long story."}],
        }
        waiting = {
            "model": "breakingwind-coder",
            "messages": HELLO,
            "max_tokens": 4,
            "stream": True,
        }
        with httpx.stream(
            "POST", f"{live.url}/v1/chat/completions", json=busy, timeout=60
        ) as first:
            lines = first.iter_lines()
            next(lines)  # the first request is now generating
            second = httpx.post(f"{live.url}/v1/chat/completions", json=waiting, timeout=60)
    assert ": ping" in second.text  # it waited in the queue and was kept alive
    assert "event:" not in second.text
    assert second.text.rstrip().endswith("data: [DONE]")


def test_streaming_tool_call_with_tool_choice_auto(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="breakingwind-coder",
            messages=WEATHER_HISTORY,
            tools=[WEATHER_TOOL],
            tool_choice="auto",
            stream=True,
            temperature=0,
            max_tokens=64,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas, "the model called no tool"
    first = deltas[0]
    assert first.index == 0 and isinstance(first.id, str) and first.type == "function"
    assert first.function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.index == 0)
    assert json.loads(arguments) == {"city": "Berlin"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_required_forces_a_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="breakingwind-coder",
        messages=[{"role": "user", "content": "Hi there!"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=64,
        temperature=0,
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    assert reply.choices[0].finish_reason == "tool_calls"


def test_named_tool_choice_calls_that_function(client: openai.OpenAI) -> None:
    other = {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {
                "type": "object",
                # bounded, so the forced call ends within max_tokens whatever the model writes
                # (a fresh build's numerics once made it ramble inside the string)
                "properties": {"zone": {"type": "string", "maxLength": 24}},
                "required": ["zone"],
            },
        },
    }
    reply = client.chat.completions.create(
        model="breakingwind-coder",
        messages=HELLO,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        max_tokens=64,
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    assert "zone" in json.loads(calls[0].function.arguments)


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="breakingwind-coder",
        messages=WEATHER_HISTORY,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        max_tokens=24,
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "tags"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="breakingwind-coder",
        max_tokens=200,
        temperature=0,
        messages=[{"role": "user", "content": "Describe a project as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "project", "schema": schema, "strict": True},
        },
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_json_object_response_format(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="breakingwind-coder",
        max_tokens=200,
        temperature=0,
        messages=[{"role": "user", "content": "Reply with a JSON object with the key animal."}],
        response_format={"type": "json_object"},
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_content_parts_are_accepted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="breakingwind-coder",
        max_tokens=8,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Say "}, {"type": "text", "text": "hello."}],
            }
        ],
    )
    assert reply.choices[0].message.content


def test_unknown_fields_are_accepted_and_limits_honoured(server: LiveServer) -> None:
    response = post(
        server,
        "/v1/chat/completions",
        {
            "model": "breakingwind-coder",
            "messages": HELLO,
            "max_completion_tokens": 3,
            "reasoning_effort": "low",
            "user": "me",
            "seed": 7,
            "logprobs": False,
            "metadata": {"a": "b"},
            "frequency_penalty": 0,
            "store": False,
            "n": 1,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["usage"]["completion_tokens"] <= 3
    assert body["choices"][0]["finish_reason"] in ("length", "stop")


def test_stop_sequence_is_honoured(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    full = client.chat.completions.create(
        model="breakingwind-coder", messages=messages, max_tokens=40, temperature=0
    )
    text = full.choices[0].message.content
    assert len(text) > 6
    stop = text[3:6]
    cut = client.chat.completions.create(
        model="breakingwind-coder", messages=messages, max_tokens=40, temperature=0, stop=[stop]
    )
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


# --- completions -----------------------------------------------------------------------------


def test_completions_non_stream_and_echo(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="breakingwind-coder", prompt="def add(a, b):", max_tokens=8, echo=True
    )
    assert reply.choices[0].text.startswith("def add(a, b):")
    assert reply.usage.completion_tokens > 0


def test_completions_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="breakingwind-coder",
            prompt="import os\n",
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens > 0


# --- errors ----------------------------------------------------------------------------------


def test_malformed_json_is_a_400(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "breakingwind-coder"}, "messages"),
        ({"model": "breakingwind-coder", "messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"model": "breakingwind-coder", "messages": HELLO, "n": 2}, "n"),
        (
            {"model": "breakingwind-coder", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "breakingwind-coder", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        (
            {
                "model": "breakingwind-coder",
                "messages": HELLO,
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice",
        ),
    ],
)
def test_invalid_fields_are_named(server: LiveServer, body: dict, param: str) -> None:
    response = post(server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param


def test_image_part_is_refused_until_media_support(server: LiveServer) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        }
    ]
    response = post(
        server, "/v1/chat/completions", {"model": "breakingwind-coder", "messages": messages}
    )
    assert response.status_code == 400
    assert error_of(response)["param"] == "messages[0].content[0]"


def test_unknown_model_is_a_404(strict_names: LiveServer) -> None:
    response = post(strict_names, "/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"


def test_body_too_large_is_a_413(server: LiveServer) -> None:
    huge = "x" * (33 * 1024 * 1024)
    response = post(
        server,
        "/v1/chat/completions",
        {"model": "breakingwind-coder", "messages": [{"role": "user", "content": huge}]},
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_context_overflow_names_both_counts(server: LiveServer, engine: Engine) -> None:
    n_ctx = engine.worker("coder").n_ctx
    long_text = "word " * (n_ctx + 100)
    response = post(
        server,
        "/v1/chat/completions",
        {"model": "breakingwind-coder", "messages": [{"role": "user", "content": long_text}]},
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "context_length_exceeded"
    assert f"context window is {n_ctx} tokens" in error["message"]
    assert error["prompt_tokens"] > n_ctx


def test_wrong_content_type_is_refused(server: LiveServer) -> None:
    body = json.dumps({"model": "breakingwind-coder", "messages": HELLO})
    response = httpx.post(
        f"{server.url}/v1/chat/completions", content=body, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


def test_mid_stream_failure_sends_an_error_chunk(server: LiveServer) -> None:
    # The grammar cannot express `minimum`, so the model writes a small number; the output check
    # at the end of the stream fails and the client gets an error chunk instead of [DONE].
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 10**15}},
        "required": ["n"],
    }
    body = {
        "model": "breakingwind-coder",
        "stream": True,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "Give a small number as JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    }
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    last = json.loads(events[-1][6:])
    assert last["error"]["code"] == "invalid_model_output"
    assert "data: [DONE]" not in events


def test_client_disconnect_stops_generation(server: LiveServer, engine: Engine) -> None:
    body = {
        "model": "breakingwind-coder",
        "stream": True,
        "max_tokens": 1500,
        "messages": [{"role": "user", "content": "Write a very long story."}],
    }
    before = engine.worker("coder").tokens_generated
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)
    started = time.monotonic()
    reply = post(
        server,
        "/v1/chat/completions",
        {"model": "breakingwind-planner", "messages": HELLO, "max_tokens": 4},
    )
    assert reply.status_code == 200
    assert (
        time.monotonic() - started < 30.0
    )  # generous: shared CI machines; the token bound below is the real check
    # The abandoned request stopped long before its 1500 tokens.
    assert engine.worker("coder").tokens_generated - before < 400


# --- guards ----------------------------------------------------------------------------------


def test_foreign_host_is_refused(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/models", headers={"host": "evil.example"})
    assert response.status_code == 421


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://localhost.evil.com"])
def test_foreign_origin_is_refused(server: LiveServer, origin: str) -> None:
    response = httpx.get(f"{server.url}/v1/models", headers={"origin": origin})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_local_origin_is_allowed(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/models", headers={"origin": "http://localhost:3000"})
    assert response.status_code == 200


def test_configured_cors_origin_gets_cors_headers(engine: Engine, tmp_path: Path) -> None:
    settings = another_app_settings(engine, tmp_path)
    settings.server.cors_origins = ["https://app.example"]
    with LiveServer(create_app(settings, engine)) as live:
        preflight = httpx.options(
            f"{live.url}/v1/chat/completions",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        other = httpx.get(f"{live.url}/v1/models", headers={"origin": "https://other.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert other.status_code == 403


def test_api_key_is_required_when_configured(engine: Engine, tmp_path: Path) -> None:
    settings = another_app_settings(engine, tmp_path)
    settings.server.api_key = "s3cret"
    with LiveServer(create_app(settings, engine)) as live:
        missing = httpx.get(f"{live.url}/v1/models")
        wrong = httpx.get(f"{live.url}/v1/models", headers={"authorization": "Bearer nope"})
        health = httpx.get(f"{live.url}/health")
        good = openai.OpenAI(base_url=f"{live.url}/v1", api_key="s3cret").models.list()
    assert missing.status_code == 401 and wrong.status_code == 401
    assert error_of(missing)["code"] == "invalid_api_key"
    assert health.status_code == 200
    assert len(list(good)) == 5


def test_full_queue_is_a_503_with_retry_after(tmp_path: Path) -> None:
    one_slot = {"BREAKINGWIND_ENGINE__MAX_QUEUE": "1", "BREAKINGWIND_ENGINE__PARALLEL": "1"}
    settings = make_settings(tmp_path, environ=one_slot)
    with LiveServer(create_app(settings)) as live:
        busy = {
            "model": "breakingwind-coder",
            "max_tokens": 400,
            "ignore_eos": True,  # busy for all 400 tokens, whatever the story's length
            "stream": True,
            "messages": [{"role": "user", "content": "Write a long story."}],
        }
        with httpx.stream(
            "POST", f"{live.url}/v1/chat/completions", json=busy, timeout=60
        ) as first:
            # the role chunk is sent before the model takes the request; after its first token
            # the first request holds the only slot and the queue is empty. (Keep the iterator:
            # a dropped one closes the stream, and the daemon then cancels the generation.)
            lines = first.iter_lines()
            for line in lines:
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                    "content"
                ):
                    break
            with httpx.stream(
                "POST", f"{live.url}/v1/chat/completions", json=busy, timeout=60
            ) as second:
                queued = second.iter_lines()
                next(queued)  # queued behind the first
                third = httpx.post(
                    f"{live.url}/v1/chat/completions",
                    timeout=60,
                    json={"model": "breakingwind-coder", "messages": HELLO},
                )
    assert third.status_code == 503
    assert third.headers["retry-after"] == "1"
    assert error_of(third)["code"] == "queue_full"


def test_metrics_expose_requests_and_model_state(server: LiveServer) -> None:
    post(
        server,
        "/v1/chat/completions",
        {"model": "breakingwind-coder", "messages": HELLO, "max_tokens": 2},
    )
    text = httpx.get(f"{server.url}/metrics").text
    assert 'breakingwind_http_requests_total{path="/v1/chat/completions",status="200"}' in text
    assert 'breakingwind_model_state{agent="coder",state="ready"} 1.0' in text
    assert "breakingwind_model_queue_depth" in text
    assert "breakingwind_model_decode_tokens_per_second" in text


def test_connect_and_drop_cycles_leak_nothing(server: LiveServer, engine: Engine) -> None:
    import threading

    import psutil

    body = {
        "model": "breakingwind-coder",
        "stream": True,
        "max_tokens": 200,
        "ignore_eos": True,
        "messages": [{"role": "user", "content": "Write a story."}],
    }

    def cycle(client: httpx.Client) -> None:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            data = (line for line in response.iter_lines() if line.startswith("data: "))
            first, second = next(data), next(data, "")
            assert '"role"' in first and '"content"' in second, (response.status_code, second)
            # a token arrived; now hang up

    process = psutil.Process()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(20):  # warm up allocator and caches
            cycle(client)
        threads, rss = threading.active_count(), process.memory_info().rss
        before = engine.worker("coder").tokens_generated
        for _ in range(200):
            cycle(client)
        reply = client.post(
            "/v1/chat/completions",
            json={"model": "breakingwind-coder", "messages": HELLO, "max_tokens": 2},
        )
    assert reply.status_code == 200
    assert threading.active_count() <= threads
    assert process.memory_info().rss - rss < 64 * 1024 * 1024
    # each dropped stream stopped within a few tokens, not at its 200
    assert engine.worker("coder").tokens_generated - before < 200 * 20
    deadline = time.monotonic() + 5  # the worker marks itself idle just after its last reply
    while engine.status()["coder"].busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status()["coder"].queue_depth == 0 and not engine.status()["coder"].busy
