"""What a doctor check gets (`Context`) and gives back (`Result`: OK, WARN or FAIL with the fix).

The context computes the expensive things once, on first use, and shares them between checks:
the resolved models, each GGUF's header, the hardware, the compiled backend, the daemon's /health.
A check whose precondition is missing raises `Skipped` (reported with the reason, not a failure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from breakingwind.backend_choice import Machine, probe_machine
from breakingwind.config import Settings
from breakingwind.daemon_client import DaemonClient
from breakingwind.engine.gguf_file import GGUFInfo, inspect_gguf
from breakingwind.errors import DaemonError, InvalidModelFile
from breakingwind.hardware import Hardware, detect_hardware
from breakingwind.modelfiles.manifest import (
    Manifest,
    ResolvedModel,
    load_manifest,
    resolve_agent_models,
)

if TYPE_CHECKING:
    from breakingwind.checks.install import InstalledBuild
    from breakingwind.tools.registry import ToolRegistry

GIB = 1024**3


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


class Result(BaseModel):
    """One line of the report; `fix` is what to run or change (None when OK)."""

    check: str = ""
    status: Status
    detail: str
    fix: str | None = None


def ok(detail: str) -> Result:
    return Result(status=Status.OK, detail=detail)


def warn(detail: str, fix: str) -> Result:
    return Result(status=Status.WARN, detail=detail, fix=fix)


def fail(detail: str, fix: str) -> Result:
    return Result(status=Status.FAIL, detail=detail, fix=fix)


class Skipped(Exception):
    """Raised by a check that cannot run here (its reason is reported); not a failure."""


@dataclass
class Context:
    """What the checks look at; the expensive parts are computed once, on first use."""

    settings: Settings
    url: str
    verify: bool = False
    home: Path = field(default_factory=Path.home)
    _probes: dict[str, dict[str, Any] | DaemonError] = field(
        default_factory=dict, init=False, repr=False
    )
    # GGUF headers by path, parsed once per run; a caller that checks several configurations of
    # the same files (the tests) may share one cache.
    gguf_cache: dict[Path, GGUFInfo | InvalidModelFile] = field(default_factory=dict, repr=False)

    @cached_property
    def manifest(self) -> Manifest:
        return load_manifest()

    @cached_property
    def models(self) -> dict[str, ResolvedModel]:
        return resolve_agent_models(self.settings, self.manifest)

    @cached_property
    def hardware(self) -> Hardware:
        return detect_hardware()

    @cached_property
    def backend(self) -> str:
        from breakingwind.engine.worker import compiled_backend  # imports llama_cpp

        return compiled_backend()

    @cached_property
    def installed_build(self) -> InstalledBuild | None:
        """What scripts/install.sh recorded in this venv (None after any other install)."""
        from breakingwind.checks.install import installed_build

        return installed_build()

    @cached_property
    def build_machine(self) -> Machine:
        """What the installer's backend choice sees here (uname, nvcc, nvidia-smi, libcuda)."""
        return probe_machine()

    @cached_property
    def tools(self) -> ToolRegistry:
        """The tool registry for these settings (raises when the project root is unusable)."""
        from breakingwind.tools.registry import build_registry

        return build_registry(self.settings)

    def client(self, url: str | None = None) -> DaemonClient:
        return DaemonClient(url or self.url, self.settings.server.api_key)

    def gguf(self, path: Path) -> GGUFInfo | InvalidModelFile:
        """`inspect_gguf(path)`, or the reason it is not a usable model, cached by path."""
        if path not in self.gguf_cache:
            try:
                self.gguf_cache[path] = inspect_gguf(path)
            except InvalidModelFile as exc:
                self.gguf_cache[path] = exc
        return self.gguf_cache[path]

    def probe(self, url: str | None = None) -> dict[str, Any] | DaemonError:
        """The /health document of the daemon at `url`, or why there is none; cached by URL."""
        url = url or self.url
        if url not in self._probes:
            try:
                self._probes[url] = self.client(url).health()
            except DaemonError as exc:
                self._probes[url] = exc
        return self._probes[url]

    def require_daemon(self) -> dict[str, Any]:
        health = self.probe()
        if isinstance(health, DaemonError):
            raise Skipped(f"no BreakingWind daemon answers at {self.url}")
        return health
