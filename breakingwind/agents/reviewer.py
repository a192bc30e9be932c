"""The reviewer: plan + combined diff + the REAL test results -> a Review.

The test counts in a Review come from running the tests, never from the model: the model writes a
`ReviewDraft` without them and the pipeline fills them in.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from breakingwind.agents.context import char_budget
from breakingwind.agents.tool_loop import OnDelta
from breakingwind.engine import Engine, generate_structured
from breakingwind.engine.structured import ATTEMPTS
from breakingwind.prompts import render_prompt
from breakingwind.tasks import ReviewDraft

AGENT = "reviewer"
COMMENT_CHARS = 200
NEXT_CHARS = 300
ANSWER_TOKENS = 500  # above what a ReviewAnswer at its bounds takes in typical tokens
REVIEW_BUDGET = ATTEMPTS * ANSWER_TOKENS  # the review stage's token budget
Comment = Annotated[str, Field(max_length=COMMENT_CHARS)]


class ReviewAnswer(ReviewDraft):
    """What the model writes: a ReviewDraft bounded for the job."""

    issues_found: list[Comment] = Field(default_factory=list, max_length=4)
    recommendations: list[Comment] = Field(default_factory=list, max_length=3)
    next_iteration: str = Field("", max_length=NEXT_CHARS)


async def review_changes(
    engine: Engine,
    task: str,
    plan_json: str,
    diff: str,
    tests_report: str,
    on_delta: OnDelta | None = None,
) -> ReviewDraft:
    n_ctx = engine.worker(AGENT).n_ctx
    budget = char_budget(n_ctx, 0.4)
    messages = [
        {"role": "system", "content": render_prompt("reviewer.md")},
        {
            "role": "user",
            "content": render_prompt(
                "reviewer_task.md",
                task=task,
                plan=plan_json,
                diff=diff if len(diff) <= budget else diff[:budget] + "\n…(diff truncated)",
                tests=tests_report,
            ),
        },
    ]
    answer = await generate_structured(
        engine,
        AGENT,
        messages,
        ReviewAnswer,
        max_tokens=ANSWER_TOKENS,
        temperature=0.0,
        on_delta=on_delta,
    )
    return ReviewDraft.model_validate(answer.model_dump())
