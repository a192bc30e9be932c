"""Edits that apply by construction: targets, step grammars, and diffs made from edits."""

from __future__ import annotations

import random
from pathlib import Path

import llama_cpp
import pytest

from breakingwind.agents.edits import (
    Edit,
    apply_edit,
    edit_diff,
    edit_targets,
    parse_range,
    parse_replacement,
    range_grammar,
    replacement_grammar,
    target_grammar,
)
from breakingwind.config import ToolsSettings
from breakingwind.diffs import apply_file_changes
from breakingwind.tools.sandbox import Sandbox


def sandbox_at(root: Path) -> Sandbox:
    return Sandbox.create(root, ToolsSettings())


def random_text(rng: random.Random) -> str:
    lines = [rng.choice(["", "x = 1", "  pass", "}", "def f():", "# c", "y"]) for _ in range(20)]
    lines = lines[: rng.randrange(0, 20)]
    return "\n".join(lines) + rng.choice(["", "\n"]) if lines else rng.choice(["", "\n"])


def random_edit(rng: random.Random, text: str) -> Edit:
    n = len(text.removesuffix("\n").split("\n")) if text else 0
    start = rng.randint(1, max(n, 1))
    end = rng.randint(start - 1, n) if n else 0
    new = [rng.choice(["", "z = 2", "  return 3", "{", "y"]) for _ in range(rng.randrange(4))]
    return Edit("f.txt", start, end, new)


def test_diffs_made_from_random_edits_apply_exactly(tmp_path: Path) -> None:
    rng = random.Random(17)
    for case in range(400):
        root = tmp_path / str(case)
        root.mkdir()
        before = random_text(rng)
        (root / "f.txt").write_text(before)
        after = before
        for _ in range(rng.randint(1, 3)):
            after = apply_edit(after, random_edit(rng, after))
        diff = edit_diff("f.txt", before, after)
        if not diff:
            assert after == before
            continue
        apply_file_changes(sandbox_at(root), [("f.txt", diff)])
        assert (root / "f.txt").read_text() == after, (before, after, diff)


def test_new_file_diff_creates_the_file(tmp_path: Path) -> None:
    diff = edit_diff("pkg/new.py", None, "a = 1\nb = 2\n")
    apply_file_changes(sandbox_at(tmp_path), [("pkg/new.py", diff)])
    assert (tmp_path / "pkg" / "new.py").read_text() == "a = 1\nb = 2\n"


def test_binary_oversized_and_secret_files_are_not_offered(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\x00\x00data")
    (tmp_path / "big.json").write_text("[" + "1," * 200_000 + "1]")
    (tmp_path / ".env").write_text("TOKEN=1\n")
    targets = edit_targets(sandbox_at(tmp_path), preferred=[])
    assert targets.paths == ["ok.py"]
    assert targets.refused["logo.png"] == "binary"
    assert targets.refused["big.json"].startswith("oversized")
    assert ".env" not in targets.paths and ".env" not in targets.refused


def test_preferred_files_come_first(tmp_path: Path) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text("pass\n")
    assert edit_targets(sandbox_at(tmp_path), ["c.py", "missing.py"]).paths == [
        "c.py",
        "a.py",
        "b.py",
    ]


def test_ranges_are_clamped_into_the_file() -> None:
    assert parse_range("7-3", 10) == (7, 7)
    assert parse_range("0-99", 10) == (1, 10)
    assert parse_range("12-14", 10) == (10, 10)
    assert parse_range("2-4", 0) == (1, 0)


def test_replacement_drops_an_unfinished_last_line() -> None:
    assert parse_replacement("a\nb\n>>>>>>> UPDATED", complete=True) == ["a", "b"]
    assert parse_replacement("a\nb\nhalf a li", complete=False) == ["a", "b"]
    assert parse_replacement("", complete=True) == []


def test_a_looping_replacement_keeps_one_copy_of_the_loop() -> None:
    looped = "def mean(v):\n    pass\n======\nx\n======\nx\n======\nx\n==="
    assert parse_replacement(looped, complete=False, looped=True) == [
        "def mean(v):",
        "    pass",
        "======",
        "x",
    ]


def test_a_counting_loop_keeps_its_first_block() -> None:
    blocks = "".join(
        f"# {n}\ndef test_{n}():\n    assert count({n}) == {n}\n\n" for n in range(3, 9)
    )
    kept = parse_replacement("import count\n\n" + blocks + "# 9", False, looped=True)
    assert kept == ["import count", "", "# 3", "def test_3():", "    assert count(3) == 3", ""]


@pytest.mark.parametrize(
    "grammar",
    [
        target_grammar(["calc.py", "src/a b.js", 'we"ird.py'], allow_done=True),
        target_grammar(["x.py"], allow_done=False),
        range_grammar(2000),
        range_grammar(1),
        replacement_grammar(),
    ],
)
def test_step_grammars_parse_in_llama_cpp(grammar: str, engine) -> None:
    worker = engine.worker("coder")
    sampler = llama_cpp.llama_sampler_init_grammar(
        worker._llm._model.vocab, grammar.encode(), b"root"
    )
    assert sampler, grammar
    llama_cpp.llama_sampler_free(sampler)
