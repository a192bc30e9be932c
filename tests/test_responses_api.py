"""OpenAI's Responses API over real HTTP, driven by the official `openai` SDK: the embedded model
answers; Codex CLI and the Agents SDK speak this protocol."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import LiveServer

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL = {
    "type": "function_call",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": json.dumps({"city": "Paris"}),
}


@pytest.fixture(scope="module")
def client(api_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_server.url}/v1", api_key="anything", max_retries=0)


def test_response_has_output_text_and_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-5-codex", instructions="Be brief.", input="Say hello.", max_output_tokens=24
    )
    assert response.object == "response" and response.model == "gpt-5-codex"
    assert response.status in ("completed", "incomplete")
    assert response.output[0].type == "message" and response.output_text
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="x", input="Tell a long story.", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 3


def test_stream_sends_the_event_sequence_clients_parse(client: openai.OpenAI) -> None:
    with client.responses.stream(model="x", input="Say hello.", max_output_tokens=200) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.output_text.delta"):
        assert kind in kinds
    assert kinds.index("response.output_item.done") > kinds.index("response.output_text.delta")
    assert final.output_text and final.usage.output_tokens > 0


def test_forced_function_call_is_a_function_call_item(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="x", input="Weather in Paris?", tools=[WEATHER], tool_choice="required"
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id
    assert set(json.loads(calls[0].arguments)) == {"city"}


def test_streamed_function_call_arrives_as_argument_deltas(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="x",
        input="Weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert final.output[-1].type == "function_call"
    assert "city" in json.loads(final.output[-1].arguments)


def test_function_call_output_continues_the_conversation(client: openai.OpenAI) -> None:
    items = [
        {"role": "user", "content": "Weather in Paris?"},
        CALL,
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    response = client.responses.create(
        model="x", input=items, tools=[WEATHER], max_output_tokens=16
    )
    assert response.output and response.usage.input_tokens > 20


def test_output_for_an_unknown_call_id_is_a_400_naming_the_field(client: openai.OpenAI) -> None:
    items = [
        {"role": "user", "content": "Weather in Paris?"},
        CALL,
        {"type": "function_call_output", "call_id": "call_nope", "output": "sunny"},
    ]
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="x", input=items, tools=[WEATHER])
    assert exc.value.body["param"] == "input[2].call_id"
    assert "call_nope" in exc.value.body["message"]


def test_previous_response_id_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="x", input="Go on.", previous_response_id="resp_1")
    assert exc.value.body["param"] == "previous_response_id"


def test_json_schema_text_format_is_followed(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"greeting": {"type": "string", "maxLength": 40}},
        "required": ["greeting"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model="x",
        input="Greet me.",
        text={"format": {"type": "json_schema", "name": "greeting", "schema": schema}},
        max_output_tokens=64,
    )
    assert set(json.loads(response.output_text)) == {"greeting"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "x"}, "input"),
        ({"model": "x", "input": [{"type": "local_shell_call"}]}, "input[0].type"),
        ({"model": "x", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"model": "x", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_malformed_bodies_are_openai_shaped_400s(
    api_server: LiveServer, body: dict, param: str
) -> None:
    response = httpx.post(f"{api_server.url}/v1/responses", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
