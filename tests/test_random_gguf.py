"""The GPU measurement kit on CPU: scripts/random_gguf.py writes the four model shapes (tiny here),
and the engine loads and runs them like any other model file."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import pytest

from breakingwind.config import AGENT_NAMES
from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.gguf_file import inspect_gguf, read_gguf_header
from scripts import random_gguf
from tests.conftest import header_read_by_gguf_reader, make_settings

ROOT = Path(__file__).resolve().parent.parent
# The kit is copied into .gpu/ for the GPU run (docs/gpu-run.md); beside a worktree it is shared.
KIT_FOLDERS = (ROOT / ".gpu", ROOT.parent / "shared" / "gpu")


@pytest.fixture(scope="module")
def vocab_dir() -> Path:
    for folder in KIT_FOLDERS:
        if all((folder / v.file).is_file() for v in random_gguf.VOCABULARIES.values()):
            return folder
    pytest.skip("no vocabulary GGUFs in .gpu/ or ../shared/gpu (see docs/gpu-run.md)")


@pytest.fixture(scope="module")
def tiny_models(vocab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-gguf")
    with contextlib.redirect_stdout(io.StringIO()):
        status = random_gguf.main(
            ["--scale", "tiny", "--out", str(out), "--vocab-dir", str(vocab_dir)]
        )
    assert status == 0
    return out


def test_full_shapes_have_the_size_of_the_published_q6_k_files(vocab_dir: Path) -> None:
    for agent in random_gguf.SHAPES:
        plan = random_gguf.ModelFile(agent, "full", vocab_dir, Path("unused")).plan()
        published = random_gguf.published_bytes(agent)
        assert published is not None
        assert plan.file_bytes == pytest.approx(published, rel=0.005), agent


def test_tiny_files_have_the_planned_size_and_pass_inspection(
    tiny_models: Path, vocab_dir: Path
) -> None:
    for agent, shape in random_gguf.SHAPES.items():
        model = random_gguf.ModelFile(agent, "tiny", vocab_dir, tiny_models)
        assert model.path.stat().st_size == model.plan().file_bytes
        info = inspect_gguf(model.path)
        assert (info.architecture, info.n_layers) == (shape.arch, 2)
        assert (info.n_head, info.n_head_kv) == (shape.n_head, shape.n_head_kv)
        assert info.has_chat_template


def test_tiny_file_header_matches_the_gguf_package_reader(tiny_models: Path) -> None:
    # Gemma-2's: the largest vocabulary (256k tokens); the reference reader takes ~10 s on it.
    path = tiny_models / random_gguf.file_name("preprocessor", "tiny")
    assert read_gguf_header(path) == header_read_by_gguf_reader(path)


def test_engine_generates_from_a_tiny_shape(tiny_models: Path, tmp_path: Path) -> None:
    path = tiny_models / random_gguf.file_name("planner", "tiny")
    models = {f"BREAKINGWIND_{agent.upper()}__MODEL": str(path) for agent in AGENT_NAMES}
    settings = make_settings(tmp_path, environ=models)
    engine = Engine(settings)
    engine.start()
    request = GenerationRequest(
        messages=[{"role": "user", "content": "Plan a refactor."}],
        max_tokens=6,
        temperature=0,
        ignore_eos=True,
    )
    try:
        result = asyncio.run(engine.complete("planner", request))
        status = engine.status()["planner"]
    finally:
        engine.close()
    assert not status.fallback and status.report is not None
    assert status.report.chat_template == "gguf"
    assert result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens > 5
