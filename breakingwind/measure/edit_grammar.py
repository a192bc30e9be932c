"""What the coder's edit grammars cost per generated token, against unconstrained decoding.

The three constrained steps of a local coder's edit (agents/edits.py: the file, the line range,
the replacement after the forced original lines) are run on a 2,000-line file in a project of
300 files (fewer when the model's context cannot list them all), each with its grammar and then
without it for the same number of tokens (EOS ignored), interleaved; the ratio of decode
milliseconds per token is the grammar's cost.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from breakingwind.agents.coder import (
    RANGE_TOKENS,
    REPLACEMENT_TOKENS,
    TARGET_TOKENS,
    lines_within,
)
from breakingwind.agents.context import char_budget
from breakingwind.agents.edits import (
    UPDATED_MARK,
    file_lines,
    numbered,
    range_grammar,
    replacement_grammar,
    replacement_prefix,
    target_grammar,
)
from breakingwind.engine import Engine, GenerationRequest
from breakingwind.prompts import render_prompt

BIG_FILE = "src/shop/orders.py"
N_FILES = 300
N_LINES = 2000
TASK = "The total of an order ignores its discount. Fix order_total."


def project_paths(n_files: int = N_FILES) -> list[str]:
    """A project's editable files: the big one among packages of modules and their tests."""
    modules = (n_files - 1) * 9 // 10
    paths = [f"src/{('shop', 'api', 'util')[i % 3]}/mod_{i:03d}.py" for i in range(modules)]
    paths += [f"tests/test_mod_{i:03d}.py" for i in range(n_files - 1 - modules)]
    return sorted([*paths, BIG_FILE])


def big_file() -> str:
    """2,000 lines of plain Python: functions of ten lines each."""
    lines = []
    for i in range(N_LINES // 10):
        lines += [
            f"def order_step_{i}(order, rate={i % 7}):",
            f'    """Step {i} of pricing an order."""',
            "    total = 0",
            "    for item in order.items:",
            "        total += item.price * item.quantity",
            f"    if total > {100 + i}:",
            "        total -= rate",
            "    order.total = total",
            "    return total",
            "",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Step:
    name: str
    prompt: str
    grammar: str
    max_tokens: int
    prefix: str = ""


def edit_steps(n_ctx: int) -> list[Step]:
    """The three requests of one edit, as the coder makes them."""
    lines = file_lines(big_file())
    shown = lines_within(lines, char_budget(n_ctx, 0.25))
    start, end = 41, 49
    paths = project_paths(min(N_FILES, (n_ctx - 1024) // 12))  # ~10 tokens a listed path
    return [
        Step(
            f"file of {len(paths)}",
            render_prompt("coder_target.md", edits_made=0, paths=paths, refused=[]),
            target_grammar(paths, allow_done=False),
            TARGET_TOKENS,
        ),
        Step(
            "lines",
            render_prompt(
                "coder_range.md",
                path=BIG_FILE,
                text=numbered(lines[:shown]),
                shown=shown,
                total=len(lines),
            ),
            range_grammar(len(lines)),
            RANGE_TOKENS,
        ),
        Step(
            "replacement",
            render_prompt("coder_replace.md", path=BIG_FILE, start=start, end=end, created=False),
            replacement_grammar(),
            min(REPLACEMENT_TOKENS, 160),
            replacement_prefix(BIG_FILE, start, end, lines[start - 1 : end]),
        ),
    ]


async def _ms_per_token(
    engine: Engine, agent: str, step: Step, grammar: bool, tokens: int
) -> tuple[float, float, int]:
    """Decode and sampling milliseconds per generated token, and the tokens generated."""
    request = GenerationRequest(
        messages=[
            {"role": "system", "content": "You are a careful programmer editing a project."},
            {"role": "user", "content": f"{TASK}\n\n{step.prompt}"},
        ],
        grammar=step.grammar if grammar else None,
        max_tokens=tokens,
        temperature=0.0,
        assistant_prefix=step.prefix,
        stop=[UPDATED_MARK] if grammar else [],
        ignore_eos=not grammar,
        repeat_penalty=1.0,
    )
    worker = engine.worker(agent)
    before = worker.step_profile
    result = await engine.complete(agent, request)
    spent = worker.step_profile.since(before)
    generated = max(result.usage.completion_tokens, 1)
    return (
        result.timings.decode_s * 1e3 / generated,
        spent.sample_s * 1e3 / max(spent.sampled, 1),
        result.usage.completion_tokens,
    )


async def edit_grammar_cost(
    engine: Engine, agent: str, repeats: int, echo: Callable[[str], None]
) -> dict[str, float]:
    """Per step: median ms/token with its grammar and without; the ratio of the two."""
    figures: dict[str, float] = {}
    weighted = [0.0, 0.0]
    echo(f"edit grammars on a {N_LINES}-line file, ms per generated token (sampling: its part):")
    for step in edit_steps(engine.worker(agent).n_ctx):
        constrained, free, sampling = [], [], []
        # greedy: every constrained run makes the same tokens; this one (untimed) counts them
        n = (await _ms_per_token(engine, agent, step, True, step.max_tokens))[2]
        before = engine.worker(agent).step_profile
        for i in range(repeats):  # interleaved, in turn first, so drift affects both alike
            for grammar in (True, False) if i % 2 == 0 else (False, True):
                ms, sample_ms, _ = await _ms_per_token(engine, agent, step, grammar, max(n, 2))
                (constrained if grammar else free).append(ms)
                if grammar:
                    sampling.append(sample_ms)
        refused = engine.worker(agent).step_profile.since(before).refused
        c, f = statistics.median(constrained), statistics.median(free)
        figures[f"edit_{step.name.split()[0]}_grammar_ratio"] = c / f
        figures[f"edit_{step.name.split()[0]}_sample_ms"] = statistics.median(sampling)
        weighted[0] += c * n
        weighted[1] += f * n
        echo(
            f"  {step.name:<12} grammar {c:7.2f} (sampling {statistics.median(sampling):5.2f})"
            f"   none {f:7.2f}   ({n:3d} tokens, {refused / repeats:3.0f} picks refused)"
            f"   ratio grammar/none {c / f:.2f}"
        )
    figures["edit_grammar_ratio"] = weighted[0] / weighted[1]
    echo(
        f"  the whole edit, token-weighted{'':41}"
        f"ratio edit-grammar/none {figures['edit_grammar_ratio']:.2f}"
    )
    return figures
