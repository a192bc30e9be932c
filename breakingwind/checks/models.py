"""The models: each agent's file (present, valid GGUF, as locked) and whether they fit in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from breakingwind.checks.context import (
    GIB,
    Context,
    Result,
    Skipped,
    fail,
    ok,
    warn,
)
from breakingwind.engine.gguf_file import GGUFInfo
from breakingwind.errors import BreakingWindError, InvalidModelFile
from breakingwind.hardware import Hardware
from breakingwind.modelfiles.lock import LockEntry, load_lock, lock_path, verify_file
from breakingwind.modelfiles.manifest import ResolvedModel

MEMORY_WARN_FRACTION = 0.9  # over this share of the machine's memory, the OS starts swapping


def check_models(ctx: Context) -> Iterator[Result]:
    """Each agent's file: present (or the embedded fallback), a valid GGUF, as the lock says."""
    try:
        models = ctx.models
    except BreakingWindError as exc:
        yield fail(str(exc), "make install")
        return
    try:
        lock = load_lock(lock_path(ctx.settings)).models
    except BreakingWindError as exc:
        yield fail(
            f"{lock_path(ctx.settings)} is unreadable: {exc}",
            f"delete {lock_path(ctx.settings)}, then `breakingwind models pull` records the files",
        )
        lock = {}
    for agent, model in models.items():
        yield _model_result(ctx, model, lock.get(agent))


def _model_result(ctx: Context, model: ResolvedModel, entry: LockEntry | None) -> Result:
    agent = model.agent
    info = ctx.gguf(model.path)
    if isinstance(info, InvalidModelFile):
        return fail(f"{agent}: {info}", _refetch(ctx, model))
    if model.fallback:
        return warn(
            f"{agent}: {model.configured} is missing; running the embedded default"
            f" {ctx.manifest.embedded.name} (n_ctx {model.n_ctx}), too small to code well",
            _fetch(ctx, agent, model.configured),
        )
    problem, note = _lock_status(model, entry, ctx.verify)
    if problem:
        return fail(f"{agent}: {model.path}: {problem}", _refetch(ctx, model))
    return ok(
        f"{agent}: {model.path} ({info.file_bytes / GIB:.2f} GiB, {info.architecture},"
        f" {info.n_layers} layers, n_ctx {model.n_ctx}; {note})"
    )


def _lock_status(model: ResolvedModel, entry: LockEntry | None, verify: bool) -> tuple[str, str]:
    """(problem, note): the file against its lock entry; size only unless `verify`."""
    if entry is None or entry.path != model.path:
        return "", "not recorded in manifest.lock, sha256 unknown"
    if not verify:
        size = model.path.stat().st_size
        if size != entry.size_bytes:
            return f"size is {size} bytes, manifest.lock records {entry.size_bytes}", ""
        return "", "size matches manifest.lock; `--verify` checks the sha256"
    checked = verify_file(model.agent, model.path, entry)
    return "; ".join(checked.problems), "sha256 matches manifest.lock"


def _fetch(ctx: Context, agent: str, path: Path) -> str:
    if agent in ctx.manifest.models:
        return f"breakingwind models pull {agent}"
    return f"put the model at {path}, or change [{agent}] model in config.toml"


def _refetch(ctx: Context, model: ResolvedModel) -> str:
    if model.fallback:
        return "make clean-venv && make install (reinstalls the embedded default)"
    if model.agent in ctx.manifest.models:
        return f"breakingwind models pull {model.agent} --force"
    return f"replace {model.path} with a valid GGUF file, or change [{model.agent}] model"


@dataclass(frozen=True)
class PlannedLoad:
    """One distinct model file as the engine will load it: the largest context its agents ask."""

    info: GGUFInfo
    agents: tuple[str, ...]
    n_ctx: int

    @property
    def needed_bytes(self) -> int:
        return self.info.estimated_bytes(self.n_ctx)

    def describe(self) -> str:
        return (
            f"{self.info.path.name} for {', '.join(self.agents)}: about"
            f" {self.needed_bytes / GIB:.2f} GiB (weights {self.info.file_bytes / GIB:.2f}"
            f" + KV cache {self.info.kv_cache_bytes(self.n_ctx) / GIB:.2f} at n_ctx {self.n_ctx})"
        )


def planned_loads(ctx: Context) -> list[PlannedLoad]:
    """The engine's load plan (one per distinct file; broken files left out: `models` says so)."""
    sharing: dict[Path, list[str]] = {}
    for agent, model in ctx.models.items():
        sharing.setdefault(model.path, []).append(agent)
    loads = []
    for path, agents in sharing.items():
        info = ctx.gguf(path)
        if isinstance(info, GGUFInfo):
            n_ctx = max(ctx.models[agent].n_ctx for agent in agents)
            loads.append(PlannedLoad(info, tuple(agents), n_ctx))
    return loads


# Where the weights and KV cache live, by compiled backend: VRAM for CUDA, else RAM.
MEMORY_POOLS: dict[str, tuple[str, Callable[[Hardware], int]]] = {
    "CUDA": ("VRAM", lambda hw: hw.vram_bytes or hw.ram_bytes),
    "Metal": ("unified memory", lambda hw: hw.ram_bytes),
}
DEFAULT_POOL: tuple[str, Callable[[Hardware], int]] = ("RAM", lambda hw: hw.ram_bytes)


def check_memory(ctx: Context) -> Iterator[Result]:
    """Weights + KV cache per distinct file, and in total against the budget and the machine."""
    try:
        loads = planned_loads(ctx)
    except BreakingWindError:
        raise Skipped("the models could not be resolved (see `models`)") from None
    for load in loads:
        yield ok(load.describe())
    yield from _budget_results(ctx, loads)
    total = sum(load.needed_bytes for load in loads)
    pool, capacity_of = MEMORY_POOLS.get(ctx.backend, DEFAULT_POOL)
    capacity = capacity_of(ctx.hardware)
    summary = f"the models need about {total / GIB:.2f} GiB; this machine has"
    summary += f" {capacity / GIB:.1f} GiB of {pool}"
    if total > capacity:
        yield fail(f"{summary}: they do not fit", _shrink_fix(loads))
    elif total > MEMORY_WARN_FRACTION * capacity:
        yield warn(f"{summary}: little is left for anything else", _shrink_fix(loads))
    else:
        yield ok(f"{summary}: they fit")


def _budget_results(ctx: Context, loads: list[PlannedLoad]) -> Iterator[Result]:
    """What Engine.start() will refuse under engine.memory_budget_gb (same order, same sum)."""
    budget = ctx.settings.engine.memory_budget_gb
    if budget is None:
        return
    planned, refused = 0, []
    for load in loads:
        if planned + load.needed_bytes > budget * GIB:
            refused.append(load)
        else:
            planned += load.needed_bytes
    if not refused:
        yield ok(f"within engine.memory_budget_gb = {budget:g} GiB ({planned / GIB:.2f} planned)")
        return
    names = "; ".join(
        f"{load.info.path.name} ({', '.join(load.agents)}, {load.needed_bytes / GIB:.2f} GiB)"
        for load in refused
    )
    total = sum(load.needed_bytes for load in loads) / GIB
    yield fail(
        f"engine.memory_budget_gb = {budget:g} GiB is too small: the daemon would refuse {names}",
        f"raise engine.memory_budget_gb to at least {total:.2f}, or {_shrink_fix(loads)}",
    )


def _shrink_fix(loads: list[PlannedLoad]) -> str:
    biggest = max(loads, key=lambda load: load.info.kv_cache_bytes(load.n_ctx))
    agent = biggest.agents[0]
    return (
        f"lower n_ctx (e.g. [{agent}] n_ctx = {max(biggest.n_ctx // 4, 256)}, or"
        f" BREAKINGWIND_{agent.upper()}__N_CTX), let agents share a file, or use smaller"
        " quantizations"
    )
