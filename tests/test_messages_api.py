"""Anthropic's Messages API over real HTTP, driven by the official `anthropic` SDK (and httpx for
what the SDK will not send): the embedded model answers."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx
import pytest

from breakingwind.api.app import create_app
from breakingwind.engine import Engine
from tests.conftest import LiveServer, another_app_settings

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
HELLO = [{"role": "user", "content": "Say hello."}]
ASKED = {"role": "user", "content": "What's the weather in Paris?"}
CALLED = {
    "role": "assistant",
    "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    ],
}


@pytest.fixture(scope="module")
def client(api_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api_server.url, api_key="anything", max_retries=0)


def anthropic_error(response: httpx.Response) -> dict:
    body = response.json()
    assert body["type"] == "error"
    assert {"type", "message"} <= set(body["error"])
    assert "Traceback" not in response.text
    return body["error"]


def test_message_answers_with_text_and_usage(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="claude-sonnet-x", max_tokens=16, messages=HELLO)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-x"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens > 5


def test_max_tokens_ends_with_stop_reason_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="claude", max_tokens=3, messages=HELLO)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_stream_sends_the_event_sequence_and_the_same_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-haiku-x", max_tokens=24, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.index("content_block_start") < kinds.index("content_block_delta")
    assert kinds.index("content_block_stop") > kinds.index("content_block_delta")
    assert final.content[0].type == "text" and final.content[0].text
    assert final.usage.output_tokens > 0
    assert final.stop_reason in ("end_turn", "max_tokens")


def test_forced_tool_is_a_tool_use_block(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[ASKED],
    )
    uses = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use"
    assert uses and uses[0].name == "get_weather"
    assert isinstance(uses[0].input["city"], str)


def test_streamed_tool_use_arrives_as_input_json_delta(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[ASKED],
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in deltas
    assert final.stop_reason == "tool_use"
    assert final.content[-1].type == "tool_use"
    assert set(final.content[-1].input) == {"city"}


def test_tool_result_continues_the_conversation(client: anthropic.Anthropic) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 C"}
    message = client.messages.create(
        model="claude",
        max_tokens=24,
        tools=[WEATHER],
        messages=[ASKED, CALLED, {"role": "user", "content": [result]}],
    )
    assert message.content and message.stop_reason in ("end_turn", "max_tokens", "tool_use")


def test_tool_result_for_an_unknown_id_is_a_400_naming_the_field(
    client: anthropic.Anthropic,
) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_nope", "content": "sunny"}
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(
            model="claude",
            max_tokens=8,
            messages=[ASKED, CALLED, {"role": "user", "content": [result]}],
        )
    error = exc.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[2].content[0].tool_use_id"
    assert "toolu_nope" in error["message"]


def test_system_blocks_and_stop_sequences_are_taken(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude",
        max_tokens=48,
        system=[{"type": "text", "text": "Count from 1 to 10, separated by commas."}],
        stop_sequences=["5"],
        extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "Count."}],
    )
    assert "5" not in message.content[0].text


def test_count_tokens_grows_with_the_prompt(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(model="claude", messages=HELLO)
    longer = client.messages.count_tokens(
        model="claude", system="You are terse.", messages=HELLO, tools=[WEATHER]
    )
    assert 0 < short.input_tokens < longer.input_tokens


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "claude", "messages": HELLO}, "max_tokens"),
        ({"model": "claude", "max_tokens": 8, "messages": []}, "messages"),
        (
            {
                "model": "claude",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            },
            "messages[0].content[0]",
        ),
        ({"model": "claude", "max_tokens": 8, "messages": HELLO, "temperature": 3}, "temperature"),
    ],
)
def test_malformed_body_gets_anthropic_error_envelope(
    api_server: LiveServer, body: dict, param: str
) -> None:
    response = httpx.post(f"{api_server.url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 400
    error = anthropic_error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_non_json_body_gets_anthropic_error_envelope(api_server: LiveServer) -> None:
    response = httpx.post(
        f"{api_server.url}/v1/messages",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert anthropic_error(response)["type"] == "invalid_request_error"


def test_query_string_of_claude_code_is_accepted(api_server: LiveServer) -> None:
    response = httpx.post(
        f"{api_server.url}/v1/messages?beta=true",
        json={"model": "claude-opus-x", "max_tokens": 4, "messages": HELLO},
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["type"] == "message"


def test_x_api_key_and_bearer_both_authenticate(engine: Engine, tmp_path: Path) -> None:
    settings = another_app_settings(engine, tmp_path)
    settings.server.api_key = "s3cret"
    with LiveServer(create_app(settings, engine)) as live:
        good = anthropic.Anthropic(base_url=live.url, api_key="s3cret", max_retries=0)
        assert good.messages.create(model="claude", max_tokens=2, messages=HELLO).content
        bearer = anthropic.Anthropic(base_url=live.url, auth_token="s3cret", max_retries=0)
        assert bearer.messages.create(model="claude", max_tokens=2, messages=HELLO).content
        bad = anthropic.Anthropic(base_url=live.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as exc:
            bad.messages.create(model="claude", max_tokens=2, messages=HELLO)
        assert exc.value.body == {
            "type": "error",
            "error": {
                "type": "authentication_error",
                "message": "missing or invalid API key",
                "param": None,
                "code": "invalid_api_key",
            },
        }


def test_stream_events_are_named_by_their_type(api_server: LiveServer) -> None:
    body = {"model": "claude", "max_tokens": 4, "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{api_server.url}/v1/messages", json=body, timeout=60) as response:
        text = response.read().decode()
    events = [block.split("\n")[0] for block in text.strip().split("\n\n")]
    assert events[0] == "event: message_start"
    assert events[-1] == "event: message_stop"
    data = [json.loads(block.split("data: ", 1)[1]) for block in text.strip().split("\n\n")]
    assert all(
        item["type"] == event.removeprefix("event: ")
        for item, event in zip(data, events, strict=True)
    )
