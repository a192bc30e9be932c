"""Hostile JSON schemas (response_format, tool parameters) against a live daemon process.

Before the bounds, one schema with a large maxLength/maxItems or a large repetition in `pattern`
segfaulted llama.cpp's grammar parser and took the whole daemon down; a huge minLength or enum
stalled the event loop for seconds to minutes. Each is now a typed 400 naming the bound, built on
a worker thread, and the daemon keeps serving.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakingwind.api.app import create_app
from breakingwind.config import AGENT_NAMES, GrammarLimits
from breakingwind.engine import Engine
from breakingwind.engine.grammars import (
    check_grammar_limits,
    grammar_nesting,
    json_schema_grammar,
    pattern_expansion,
)
from breakingwind.engine.scripted import ScriptedModel
from breakingwind.errors import GrammarLimitExceeded
from tests.conftest import DaemonProcess, LiveServer, make_settings

MODEL = "breakingwind-coder"
HELLO = [{"role": "user", "content": "Reply in JSON."}]


def _nested_items(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


# schema -> the bound it breaks. The first three crashed the process on main; the next two took
# seconds (minLength: 5.6 s and 5.6 GB) to minutes (the enum: 119 s) on the event loop.
HOSTILE = {
    "max_length": ({"type": "string", "maxLength": 100_000}, "max_repeat"),
    "max_items": (
        {"type": "array", "items": {"type": "integer"}, "maxItems": 100_000},
        "max_repeat",
    ),
    "pattern_repeat": ({"type": "string", "pattern": "^[a-z]{0,100000}$"}, "max_repeat"),
    "min_length": ({"type": "string", "minLength": 100_000}, "max_repeat"),
    "enum": ({"enum": [f"v{i}" for i in range(100_000)]}, "max_enum"),
    "nested_pattern": (
        {"type": "string", "pattern": "^((ab){0,300}){0,300}$"},
        "max_pattern_expansion",
    ),
    "deep": (_nested_items(40), "max_depth"),
    "properties": (
        {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}},
        "max_properties",
    ),
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path_factory.mktemp("grammar-daemon")) as live:
        yield live


def chat(daemon: DaemonProcess, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": HELLO, "max_tokens": 8, **body}
    return httpx.post(f"{daemon.url}/v1/chat/completions", json=payload, timeout=120)


def _response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


def _tool(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "act", "parameters": schema}}


def _assert_refused(response: httpx.Response, limit: str, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "schema_too_large"
    assert error["limit"] == f"engine.grammar.{limit}"
    assert error["param"].startswith(param)
    assert f"engine.grammar.{limit}" in error["message"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_response_format_is_a_400_and_the_daemon_lives(
    daemon: DaemonProcess, case: str
) -> None:
    schema, limit = HOSTILE[case]
    started = time.monotonic()
    response = chat(daemon, response_format=_response_format(schema))
    took = time.monotonic() - started
    _assert_refused(response, limit, "response_format")
    assert took < 10, f"refusing took {took:.1f}s"
    daemon.assert_alive()


def test_a_schema_nested_past_the_recursion_limit_is_a_400(daemon: DaemonProcess) -> None:
    response = chat(daemon, response_format=_response_format(_nested_items(400)))
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["error"]["message"]
    daemon.assert_alive()


def test_a_pattern_python_cannot_compile_is_a_400(daemon: DaemonProcess) -> None:
    # found by the fuzzer below: Python's re overflows on the count while checking the schema
    schema = {"type": "string", "pattern": "a{1000000000000}"}
    response = chat(daemon, response_format=_response_format(schema))
    assert response.status_code == 400, response.text
    assert "invalid JSON schema" in response.json()["error"]["message"]
    daemon.assert_alive()


@pytest.mark.parametrize("case", ["min_length", "enum", "deep", "properties"])
def test_hostile_tool_parameters_are_a_400_and_the_daemon_lives(
    daemon: DaemonProcess, case: str
) -> None:
    schema, limit = HOSTILE[case]
    tools = [_tool({"type": "object", "properties": {"x": {"type": "string"}}}), _tool(schema)]
    response = chat(daemon, tools=tools, tool_choice="required")
    _assert_refused(response, limit, "tools[1].function")
    daemon.assert_alive()


@pytest.mark.parametrize("case", ["max_length", "max_items", "pattern_repeat", "nested_pattern"])
def test_tool_parameters_upper_bounds_are_left_to_the_token_cap(
    daemon: DaemonProcess, case: str
) -> None:
    """A tool's maxLength/maxItems/pattern over the grammar limits is left out of the grammar
    (coding clients declare such sanity bounds: Claude Code's tools say maxLength 524288)
    instead of refusing the request; the grammar that reaches llama.cpp stays bounded."""
    schema, _ = HOSTILE[case]
    parameters = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    response = chat(daemon, tools=[_tool(parameters)], tool_choice="required")
    assert response.status_code == 200, response.text
    daemon.assert_alive()


def test_relaxed_tool_schema_keeps_what_the_grammar_can_hold() -> None:
    from breakingwind.engine.grammars import relaxed_tool_schema

    limits = GrammarLimits()
    schema = {
        "type": "object",
        "properties": {
            "content": {"type": "string", "maxLength": 524_288},
            "name": {"type": "string", "maxLength": 40, "pattern": "^[a-z]+$"},
            "kind": {"enum": ["a", "maxLength"]},
        },
    }
    relaxed = relaxed_tool_schema(schema, limits)
    assert relaxed["properties"]["content"] == {"type": "string"}
    assert relaxed["properties"]["name"] == schema["properties"]["name"]
    assert relaxed["properties"]["kind"] == schema["properties"]["kind"]
    json_schema_grammar(relaxed, limits=limits)  # within every bound now


def test_schema_at_the_bounds_still_constrains_output(daemon: DaemonProcess) -> None:
    """The bounds refuse only what is over them: a schema using each bound fully still works."""
    limits = GrammarLimits()
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string", "maxLength": limits.max_repeat},
            "a": {"type": "array", "items": {"type": "integer"}, "maxItems": limits.max_repeat},
            "e": {"enum": [f"v{i}" for i in range(limits.max_enum)]},
        },
        "required": ["s"],
    }
    response = chat(daemon, response_format=_response_format(schema), max_tokens=4)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("{")


def test_grammar_limits_are_configurable(tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path, "[engine.grammar]\nmax_repeat = 10\n")
    engine = Engine(settings_)
    for agent in AGENT_NAMES:  # the refusal comes before any model is asked
        engine.replace_model(agent, ScriptedModel(agent))
    schema = {"type": "string", "maxLength": 11}
    body = {"model": MODEL, "messages": HELLO, "response_format": _response_format(schema)}
    with LiveServer(create_app(settings_, engine)) as live:
        response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30)
    _assert_refused(response, "max_repeat", "response_format")


def test_deep_grammar_text_never_reaches_llama_cpp() -> None:
    """The last line of defence checks the grammar text itself, whatever built it."""
    deep = "root ::= " + '("a" ' * 20_000 + ")?" * 20_000
    assert grammar_nesting(deep) == 20_000
    with pytest.raises(GrammarLimitExceeded) as refused:
        check_grammar_limits(deep, GrammarLimits())
    assert refused.value.limit == "engine.grammar.max_grammar_nesting"
    assert grammar_nesting('root ::= "((((" [(] ("a")') == 1  # quoted and class parens do not count


def test_pattern_expansion_multiplies_nested_counts() -> None:
    assert pattern_expansion("^a{3}$") == 5  # ^ a a a $
    assert pattern_expansion("(ab){10}") == 20
    assert pattern_expansion("((a){10}){10}") == 100
    assert pattern_expansion(r"[a-z\]]{4}") == 4
    assert pattern_expansion("(a|b|c){5}") == 15


def test_a_property_named_like_a_keyword_is_still_checked() -> None:
    schema = {"type": "object", "properties": {"enum": {"type": "string", "maxLength": 10**6}}}
    with pytest.raises(GrammarLimitExceeded):
        json_schema_grammar(schema)


# --- fuzz ----------------------------------------------------------------------------------

BIG = st.sampled_from([0, 1, 5, 499, 500, 501, 1000, 2**31, 10**6, 10**12])
PATTERN_PIECE = st.sampled_from(["a", "[a-z]", "(ab|c)", r"\d", ".", "x?", "(y)*"])
PATTERN = st.lists(
    st.tuples(PATTERN_PIECE, st.sampled_from(["", "{%d}", "{0,%d}", "{%d,}"]), BIG),
    min_size=1,
    max_size=3,
).map(lambda parts: "".join(p + (q % n if q else "") for p, q, n in parts))
LEAF = st.one_of(
    st.builds(lambda n, m: {"type": "string", "minLength": n, "maxLength": m}, BIG, BIG),
    st.builds(lambda p: {"type": "string", "pattern": p}, PATTERN),
    st.builds(
        lambda n: {"enum": [f"v{i}" for i in range(n)]}, st.sampled_from([1, 3, 600, 20_000])
    ),
    st.sampled_from([{"type": "integer"}, {"type": "boolean"}, {"type": "string"}, {}]),
)
SCHEMA = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.builds(lambda i, n: {"type": "array", "items": i, "maxItems": n}, inner, BIG),
        st.builds(
            lambda props: {"type": "object", "properties": props, "required": list(props)[:1]},
            st.dictionaries(st.sampled_from(["a", "b", "enum", "pattern"]), inner, max_size=3),
        ),
        st.builds(lambda alts: {"anyOf": alts}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
ARGUMENTS = st.one_of(
    st.text(max_size=30),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3).map(
        json.dumps
    ),
)


def _acceptable(response: httpx.Response) -> None:
    """A success, or a typed client error; a 500 only for output that failed its own schema."""
    assert "Traceback" not in response.text
    if response.status_code == 200:
        return
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert response.status_code < 500 or error["code"] == "invalid_model_output", response.text


FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_fuzzed_schemas_never_take_the_daemon_down(daemon: DaemonProcess) -> None:
    @FUZZ
    @given(schema=SCHEMA, as_tool=st.booleans())
    def run(schema: dict[str, Any], as_tool: bool) -> None:
        if as_tool:
            tools = [_tool({"type": "object", "properties": {"v": schema}})]
            response = chat(daemon, tools=tools, tool_choice="required", max_tokens=2)
        else:
            response = chat(daemon, response_format=_response_format(schema), max_tokens=2)
        _acceptable(response)
        assert daemon.proc.poll() is None, daemon.output()

    run()
    daemon.assert_alive()


def test_fuzzed_tool_call_arguments_never_take_the_daemon_down(daemon: DaemonProcess) -> None:
    @settings(FUZZ, max_examples=12)
    @given(arguments=ARGUMENTS, name=st.sampled_from(["act", "read_file", ""]))
    def run(arguments: str, name: str) -> None:
        call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
        messages = [
            *HELLO,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
        _acceptable(chat(daemon, messages=messages, max_tokens=1))
        rest = {"name": name or "read_file", "arguments": arguments}
        _acceptable(httpx.post(f"{daemon.url}/api/mcp/tool", json=rest, timeout=60))
        assert daemon.proc.poll() is None, daemon.output()

    run()
    daemon.assert_alive()
