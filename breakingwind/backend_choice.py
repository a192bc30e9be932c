"""Which llama.cpp backend to compile llama-cpp-python for on this machine: by the device, not
the compiler.

`scripts/install.sh` runs this file with the system Python *before* anything is installed, so it
imports the standard library only. `breakingwind doctor` imports it to say what the install
should have been. What decides:

- CUDA only when a usable NVIDIA GPU answers (`nvidia-smi` lists one, or the driver library
  `libcuda` initialises and counts one) and `nvcc` is on PATH; the build targets the GPUs' own
  compute capabilities, so CMake's "native" detection is never needed.
- Metal on macOS arm64.
- CPU otherwise, with one line saying why.

`BREAKINGWIND_BACKEND=cpu|cuda|metal|auto` forces a backend; a raw `CMAKE_ARGS` is used as given.
The OS and machine come from `uname` and the tools from PATH, as the shell sees them, so the
tests put stand-in `uname`, `nvcc` and `nvidia-smi` first on PATH.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

AUTO = "auto"
LIBCUDA_ENV = "BREAKINGWIND_LIBCUDA"  # the driver library to probe; empty skips the probe
# CUDA driver API attribute numbers (cuda.h: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR/MINOR)
_CC_MAJOR, _CC_MINOR = 75, 76


class BadRequest(Exception):
    """A backend was asked for that is unknown or cannot be built here; the message is the fix."""


@dataclass(frozen=True)
class Machine:
    """What the probes saw."""

    system: str  # `uname -s`: Linux, Darwin
    arch: str  # `uname -m`: x86_64, arm64, aarch64
    nvcc: str | None  # its path, when on PATH
    compute_caps: tuple[str, ...]  # one per NVIDIA GPU that answered, e.g. ("9.0",)
    gpu_note: str  # how the GPUs were seen, or why none was

    @property
    def apple_silicon(self) -> bool:
        return self.system == "Darwin" and self.arch == "arm64"


@dataclass(frozen=True)
class Choice:
    """What to build: the backend, its CMake flags, the wheel-cache key, and why."""

    backend: str
    cmake_args: str
    wheel_key: str
    reason: str
    requested: str  # "auto", a forced backend, or "cmake_args"


def probe_machine() -> Machine:
    """Ask `uname`, PATH, `nvidia-smi` and (when that finds nothing) libcuda; ~0.1 s."""
    system, arch = _uname()
    caps, note = _nvidia_smi_caps()
    if not caps and os.environ.get(LIBCUDA_ENV, "libcuda.so.1") and system == "Linux":
        caps, libcuda_note = _libcuda_caps(os.environ.get(LIBCUDA_ENV, "libcuda.so.1"))
        note = libcuda_note if caps else f"{note}; {libcuda_note}"
    return Machine(system, arch, shutil.which("nvcc"), caps, note)


def _uname() -> tuple[str, str]:
    proc = subprocess.run(["uname", "-s", "-m"], capture_output=True, text=True, check=True)
    system, _, arch = proc.stdout.strip().partition(" ")
    return system, arch


def _nvidia_smi_caps() -> tuple[tuple[str, ...], str]:
    if shutil.which("nvidia-smi") is None:
        return (), "no nvidia-smi on PATH"
    query = ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"]
    try:
        proc = subprocess.run(query, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (), f"nvidia-smi did not answer ({exc})"
    caps = tuple(line.strip() for line in proc.stdout.splitlines() if _is_cap(line.strip()))
    if proc.returncode != 0 or not caps:
        said = (proc.stdout + proc.stderr).strip().splitlines()
        return (), f"nvidia-smi listed no GPU ({said[0] if said else f'exit {proc.returncode}'})"
    return caps, f"nvidia-smi lists {len(caps)} GPU(s)"


def _is_cap(text: str) -> bool:
    major, dot, minor = text.partition(".")
    return bool(dot) and major.isdigit() and minor.isdigit()


def _libcuda_caps(library: str) -> tuple[tuple[str, ...], str]:
    """The compute capabilities the CUDA driver reports; loading alone proves nothing (the
    toolkit ships a stub libcuda), so the driver must initialise and count a device."""
    try:
        cuda = ctypes.CDLL(library)
    except OSError:
        return (), f"{library} does not load (no NVIDIA driver)"
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or not count.value:
        return (), f"{library} loads but finds no GPU"
    caps = []
    for ordinal in range(count.value):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        cuda.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device)
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device)
        caps.append(f"{major.value}.{minor.value}")
    return tuple(caps), f"{library} counts {count.value} GPU(s)"


def cuda_architectures(caps: tuple[str, ...]) -> str:
    """CMAKE_CUDA_ARCHITECTURES for these GPUs: "9.0" -> "90", several distinct ones joined."""
    return ";".join(sorted({cap.replace(".", "") for cap in caps}, key=int))


@dataclass(frozen=True)
class _Build:
    backend: str
    flags: str
    variant: str  # the wheel-cache key's part between backend and machine: "sm90", "portable"
    why: str


def _cpu(why: str) -> _Build:
    return _Build("cpu", "-DGGML_CUDA=OFF -DGGML_METAL=OFF", "", why)


def _metal(why: str) -> _Build:
    return _Build("metal", "-DGGML_METAL=ON", "", why)


def _cuda(machine: Machine) -> _Build:
    """For the GPUs that answered; without one (forced), llama.cpp's portable architecture list."""
    if not machine.compute_caps:
        why = f"CUDA as forced, for llama.cpp's portable architecture list ({machine.gpu_note})"
        return _Build("cuda", "-DGGML_CUDA=ON -DGGML_NATIVE=OFF", "portable", why)
    archs = cuda_architectures(machine.compute_caps)
    seen = f"{machine.gpu_note}, compute capability {', '.join(machine.compute_caps)}"
    return _Build(
        "cuda",
        f"-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES={archs}",
        f"sm{archs.replace(';', '-')}",
        f"CUDA ({seen}; nvcc {machine.nvcc})",
    )


def _auto(machine: Machine) -> _Build:
    if machine.apple_silicon:
        return _metal("Metal (macOS on Apple Silicon)")
    if machine.compute_caps and machine.nvcc:
        return _cuda(machine)
    if machine.compute_caps:
        return _cpu(
            f"an NVIDIA GPU but no nvcc ({machine.gpu_note}): building for CPU; install the "
            "CUDA toolkit, then make install BREAKINGWIND_BACKEND=cuda"
        )
    if machine.nvcc:
        return _cpu(
            f"nvcc found but no NVIDIA GPU ({machine.gpu_note}): building for CPU; "
            "set BREAKINGWIND_BACKEND=cuda to force"
        )
    return _cpu("CPU (no NVIDIA GPU with a CUDA toolkit, not Apple Silicon)")


def _forced_cuda(machine: Machine) -> _Build:
    if machine.nvcc is None:
        raise BadRequest(
            "BREAKINGWIND_BACKEND=cuda needs the CUDA toolkit, but nvcc is not on PATH: "
            "install it (or add its bin folder, e.g. /usr/local/cuda/bin, to PATH)"
        )
    return _cuda(machine)


def _forced_metal(machine: Machine) -> _Build:
    if machine.system != "Darwin":
        raise BadRequest(
            f"BREAKINGWIND_BACKEND=metal needs macOS; this is {machine.system}: "
            "use cpu, cuda or auto"
        )
    return _metal("Metal, as forced by BREAKINGWIND_BACKEND")


PICKS: dict[str, Callable[[Machine], _Build]] = {
    AUTO: _auto,
    "cpu": lambda machine: _cpu("CPU, as forced by BREAKINGWIND_BACKEND"),
    "cuda": _forced_cuda,
    "metal": _forced_metal,
}


def _backend_in(cmake_args: str) -> str:
    flags = cmake_args.upper().replace(" ", "")
    for backend, flag in (("cuda", "-DGGML_CUDA=ON"), ("metal", "-DGGML_METAL=ON")):
        if flag in flags:
            return backend
    return "cpu"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def choose(machine: Machine, requested: str = AUTO, cmake_args: str = "") -> Choice:
    """The backend to build for `machine`; raises `BadRequest` for an unknown or impossible ask."""
    requested = requested.strip().lower() or AUTO
    if requested not in PICKS:
        raise BadRequest(
            f"BREAKINGWIND_BACKEND={requested!r} is not a backend: use one of {', '.join(PICKS)}"
        )
    cmake_args = " ".join(cmake_args.split())
    if cmake_args and requested == AUTO:
        backend = _backend_in(cmake_args)
        key = f"{backend}-cmake{_digest(cmake_args)}-{machine.arch}"
        return Choice(backend, cmake_args, key, f"CMAKE_ARGS as given: {cmake_args}", "cmake_args")
    build = PICKS[requested](machine)
    flags, variant = build.flags, build.variant
    if cmake_args:  # a forced backend plus flags of the user's own
        flags, variant = f"{flags} {cmake_args}", f"{variant}cmake{_digest(cmake_args)}"
    key = "-".join(part for part in (build.backend, variant, machine.arch) if part)
    return Choice(build.backend, flags, key, build.why, requested)


FORMATS: dict[str, Callable[[Choice], str]] = {
    "json": lambda choice: json.dumps(asdict(choice)),
    "shell": lambda choice: "\n".join(
        f"CHOSEN_{name.upper()}={shlex.quote(value)}" for name, value in asdict(choice).items()
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("BREAKINGWIND_BACKEND", AUTO))
    parser.add_argument("--cmake-args", default=os.environ.get("CMAKE_ARGS", ""))
    parser.add_argument("--format", choices=sorted(FORMATS), default="json")
    args = parser.parse_args(argv)
    try:
        choice = choose(probe_machine(), args.backend, args.cmake_args)
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(FORMATS[args.format](choice))
    return 0


if __name__ == "__main__":
    sys.exit(main())
