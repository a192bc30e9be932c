"""The repetition guard and stage token budgets, on the real embedded model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.budget import token_budget
from breakingwind.engine.repetition import (
    MIN_SPAN,
    NEAR_EVERY,
    NEAR_MIN_SPAN,
    LineTail,
    loop_period,
    near_loop_period,
    shapes_loop_period,
)
from breakingwind.errors import TokenBudgetExhausted

LOOP = [{"role": "user", "content": "Write the word 'ha' 300 times, separated by spaces."}]
STARTED = "ha " * 20  # the reply begins looping...


def loop_bias(engine: Engine) -> dict[int, float]:
    """...and a bias on " ha" keeps it looping whatever this build's greedy choice would be."""
    tokens = asyncio.run(
        engine.worker("coder").call_with_model(
            lambda llm: llm.tokenize(b" ha", add_bos=False, special=False)
        )
    )
    assert len(tokens) == 1
    return {tokens[0]: 100.0}


def line_loop_periods(text: str) -> list[int]:
    """The line check's answer after each complete line of `text`, streamed in as a generation's
    text is (the guard's own path)."""
    tail = LineTail()
    return [
        shapes_loop_period(tail.shapes) if tail.feed(line + "\n") else 0
        for line in text.split("\n")[:-1]
    ]


def line_loop_period(text: str) -> int:
    """The line check's answer once `text` has streamed in."""
    return (line_loop_periods(text) or [0])[-1]


def test_loop_period_finds_repeating_tails_only() -> None:
    assert loop_period([1, 2, 3] * 20) == 3
    assert loop_period(list(range(200))) == 0
    assert loop_period([7] * (MIN_SPAN - 1)) == 0
    assert loop_period([9, 9] + list(range(40)) * 4, start=2) == 40


def test_a_counting_loop_is_a_near_loop(engine: Engine) -> None:
    # What the embedded model wrote into a replacement until its token limit (issue 17's eval).
    text = "".join(f'======\n        "{n}.0.0.0",\n' for n in range(1, 30))
    tokens = engine.worker("coder").tokenize(text)
    assert loop_period(tokens) == 0  # never exactly the same twice
    assert near_loop_period(tokens) > 0


def test_alternating_numbered_blocks_are_a_line_loop() -> None:
    # Also written into a replacement until the limit: two functions, over and over, numbered.
    blocks = [
        f"# {n}\ndef test_{'add' if n % 2 else 'remove'}_words(count):\n"
        f"    count {'+' if n % 2 else '-'}= {n}\n\n"
        for n in range(1, 9)
    ]
    text = "".join(blocks)
    assert line_loop_period(text) == 8
    assert line_loop_period("".join(blocks[:3])) == 0  # not yet three times round


def test_real_source_files_are_never_near_loops(engine: Engine) -> None:
    # Regular code (tables, dict literals, imports, test cases) must not look like a loop: every
    # prefix of these files, checked as the guard checks a generation.
    root = Path(__file__).parents[1]
    files = [
        *sorted((root / "breakingwind" / "engine").glob("*.py")),
        root / "breakingwind" / "web" / "app.js",
        root / "breakingwind" / "measure" / "data" / "edit_sample.py.txt",
        root / "tests" / "test_hostile_inputs.py",
        root / "docs" / "benchmarks.md",
    ]
    worker = engine.worker("coder")
    for path in files:
        tokens = worker.tokenize(path.read_text())
        loops = [
            end
            for end in range(NEAR_MIN_SPAN, len(tokens), NEAR_EVERY)
            if near_loop_period(tokens[:end])
        ]
        assert not loops, (path.name, worker_text(engine, tokens[: loops[0]][-200:]))
        text = path.read_text()
        ends = [at + 1 for at, char in enumerate(text) if char == "\n"]
        line_loops = [
            end for end, period in zip(ends, line_loop_periods(text), strict=True) if period
        ]
        assert not line_loops, (path.name, text[: line_loops[0]][-300:])


def worker_text(engine: Engine, tokens: list[int]) -> str:
    return b"".join(engine.worker("coder")._piece(t) for t in tokens).decode(errors="replace")


def generate(engine: Engine, guard: bool | None, max_tokens: int = 300):
    request = GenerationRequest(
        messages=LOOP,
        assistant_prefix=STARTED,
        max_tokens=max_tokens,
        temperature=0,
        ignore_eos=True,
        repetition_guard=guard,
        logit_bias=loop_bias(engine),
    )
    return asyncio.run(engine.complete("coder", request))


def test_the_guard_stops_a_looping_generation(engine: Engine) -> None:
    unguarded = generate(engine, False)
    assert not unguarded.looped and unguarded.usage.completion_tokens == 300
    guarded = generate(engine, True)
    assert guarded.looped and guarded.finish_reason == "stop"
    assert guarded.usage.completion_tokens < 300
    assert guarded.text.rstrip().endswith("ha ha ha")  # cut inside the loop


def test_the_guard_is_off_by_default_outside_a_pipeline_stage(engine: Engine) -> None:
    assert not generate(engine, None).looped


def test_a_stage_budget_caps_and_then_refuses_generation(engine: Engine) -> None:
    async def stage() -> tuple[int, int]:
        with token_budget(40, repetition_guard=False) as budget:
            request = GenerationRequest(messages=LOOP, max_tokens=300, ignore_eos=True)
            first = await engine.complete("coder", request)
            with pytest.raises(TokenBudgetExhausted):
                await engine.complete("coder", request)
            return first.usage.completion_tokens, budget.used

    generated, used = asyncio.run(stage())
    assert generated == used == 40


def test_inside_a_stage_the_guard_is_on(engine: Engine) -> None:
    bias = loop_bias(engine)

    async def stage() -> bool:
        with token_budget(1000):
            request = GenerationRequest(
                messages=LOOP,
                assistant_prefix=STARTED,
                max_tokens=300,
                ignore_eos=True,
                logit_bias=bias,
            )
            return (await engine.complete("coder", request)).looped

    assert asyncio.run(stage())
