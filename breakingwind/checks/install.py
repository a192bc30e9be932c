"""The install: Python, the pinned packages, and llama-cpp-python's backend vs the hardware."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from pydantic import BaseModel

from breakingwind.backend_choice import BadRequest, choose
from breakingwind.checks.context import Context, Result, Status, fail, ok, warn
from breakingwind.hardware import Hardware

PACKAGE = "breakingwind"
REINSTALL = "./scripts/install.sh"
BUILD_RECORD = "breakingwind-backend.json"  # written by scripts/install.sh


def check_config(ctx: Context) -> Iterator[Result]:
    """Which config file the settings came from; none is legal but worth saying."""
    path = ctx.settings.config_file
    if path is not None:
        yield ok(f"read {path}")
        return
    yield warn(
        "no config file was read (./config.toml is absent here and BREAKINGWIND_CONFIG is"
        " unset): built-in defaults and BREAKINGWIND_* variables only",
        "pass --config PATH, set BREAKINGWIND_CONFIG, or run from the folder holding config.toml",
    )


def check_python(ctx: Context) -> Iterator[Result]:
    current = platform.python_version()
    try:
        required = metadata.metadata(PACKAGE)["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        yield warn(f"Python {current}; breakingwind is not installed as a package", "make install")
        return
    if SpecifierSet(required).contains(current):
        yield ok(f"Python {current} ({sys.executable}) satisfies {required}")
    else:
        yield fail(
            f"Python {current} ({sys.executable}) does not satisfy {required}",
            f"make clean-venv && PYTHON=python3.11 make install (any Python {required})",
        )


def check_packages(ctx: Context) -> Iterator[Result]:
    """llama-cpp-python against its pin (its hazards are version-specific), then every other pin."""
    try:
        pins = [Requirement(line) for line in metadata.requires(PACKAGE) or []]
    except metadata.PackageNotFoundError:
        yield warn("breakingwind is not installed as a package: pins unknown", "make install")
        return
    pins = [pin for pin in pins if pin.marker is None or pin.marker.evaluate({"extra": ""})]
    wrong = {pin.name: _pin_problem(pin) for pin in pins}
    llama = wrong.pop("llama-cpp-python", "not pinned")
    if llama is None:
        yield ok(f"llama-cpp-python {metadata.version('llama-cpp-python')} as pinned")
    elif llama.startswith("not installed"):
        yield fail(f"llama-cpp-python is {llama}", REINSTALL)
    else:
        yield warn(f"llama-cpp-python {llama}", REINSTALL)
    problems = [f"{name} {problem}" for name, problem in wrong.items() if problem]
    if not problems:
        yield ok(f"{len(wrong)} other pinned packages match pyproject.toml")
    else:
        missing = any("not installed" in problem for problem in problems)
        make = fail if missing else warn
        detail = f"{len(problems)} packages differ from their pins: {'; '.join(problems)}"
        yield make(detail, REINSTALL)


def _pin_problem(pin: Requirement) -> str | None:
    try:
        installed = metadata.version(pin.name)
    except metadata.PackageNotFoundError:
        return f"not installed (pinned {pin.specifier})"
    if pin.specifier.contains(installed, prereleases=True):
        return None
    return f"{installed} is installed, pyproject.toml pins {pin.specifier}"


class InstalledBuild(BaseModel):
    """What `scripts/install.sh` built and why, as it wrote it into the venv."""

    backend: str
    cmake_args: str
    wheel_key: str
    reason: str
    requested: str
    wheel: str


def installed_build(prefix: Path | None = None) -> InstalledBuild | None:
    """The record `scripts/install.sh` left in the venv at `prefix`; None for another install."""
    path = Path(prefix or sys.prefix) / BUILD_RECORD
    try:
        return InstalledBuild.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _switch(backend: str) -> str:
    return f"make install BREAKINGWIND_BACKEND={backend}"


@dataclass(frozen=True)
class BackendRule:
    """A compiled backend that does not suit the hardware; the first rule that applies wins."""

    applies: Callable[[Hardware, str], bool]
    status: Status
    detail: str  # formatted with backend= and hardware=
    fix: str


BACKEND_RULES: tuple[BackendRule, ...] = (
    BackendRule(
        lambda hw, backend: hw.apple_silicon and backend != "Metal",
        Status.WARN,
        "llama-cpp-python is a {backend} build on {hardware}: without Metal the GPU sits idle",
        _switch("metal"),
    ),
    BackendRule(
        lambda hw, backend: hw.has_nvidia_gpu and backend == "CPU",
        Status.WARN,
        "llama-cpp-python is a CPU build but this machine has an NVIDIA GPU: {hardware}",
        f"put the CUDA toolkit's nvcc on PATH, then: {_switch('cuda')}",
    ),
    BackendRule(
        lambda hw, backend: backend == "CUDA" and not hw.has_nvidia_gpu,
        Status.WARN,
        "llama-cpp-python is a CUDA build but no NVIDIA GPU or driver was found ({hardware})",
        f"install the NVIDIA driver, or build for the CPU: {_switch('cpu')}",
    ),
)


def check_backend(ctx: Context) -> Iterator[Result]:
    """The backend the installed wheel was compiled for, against the GPU this machine shows."""
    hardware, backend = ctx.hardware, ctx.backend
    build = ctx.installed_build
    built = f" (wheel {build.wheel_key}: {build.reason})" if build else ""
    for rule in BACKEND_RULES:
        if rule.applies(hardware, backend):
            detail = rule.detail.format(backend=backend, hardware=hardware.describe()) + built
            yield Result(status=rule.status, detail=detail, fix=rule.fix)
            return
    stale = _stale_build(ctx, build) if build else None
    if stale is not None:
        yield stale
        return
    machine = hardware.describe()
    yield ok(f"llama-cpp-python is a {backend} build{built}; this machine has {machine}")


def _stale_build(ctx: Context, build: InstalledBuild) -> Result | None:
    """A WARN when the installer would pick another wheel today (a new GPU, toolkit or driver)."""
    if build.requested == "cmake_args":  # the user's own flags: nothing to compare with
        return None
    try:
        today = choose(ctx.build_machine, build.requested)
    except BadRequest as exc:
        return warn(f"llama-cpp-python is the {build.wheel_key} build, but now: {exc}", REINSTALL)
    if today.wheel_key == build.wheel_key:
        return None
    return warn(
        f"llama-cpp-python is the {build.wheel_key} build ({build.reason}), but the installer "
        f"would now build {today.wheel_key}: {today.reason}",
        f"make install BREAKINGWIND_BACKEND={build.requested}",
    )
