"""What this machine has to run models on: Apple Silicon, NVIDIA GPUs, RAM and VRAM.

Read-only probes (platform, psutil, `nvidia-smi`, `/proc/driver/nvidia`); nothing is loaded.
A probe that cannot run (no `nvidia-smi`, a driver that does not answer) reports "none found"
rather than raising, so callers can always describe the machine.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

NVIDIA_PROC = Path("/proc/driver/nvidia/version")
NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=name,memory.total",
    "--format=csv,noheader,nounits",
]
MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int


@dataclass(frozen=True)
class Hardware:
    apple_silicon: bool
    nvidia_driver: bool
    gpus: tuple[Gpu, ...]
    ram_bytes: int

    @property
    def has_nvidia_gpu(self) -> bool:
        return self.nvidia_driver or bool(self.gpus)

    @property
    def vram_bytes(self) -> int:
        return sum(gpu.memory_bytes for gpu in self.gpus)

    def describe(self) -> str:
        if self.apple_silicon:
            kind = "Apple Silicon (unified memory)"
        elif self.gpus:
            kind = ", ".join(f"{gpu.name} ({gpu.memory_bytes / GIB:.0f} GiB)" for gpu in self.gpus)
        elif self.nvidia_driver:
            kind = "an NVIDIA driver (nvidia-smi did not list a GPU)"
        else:
            kind = "no GPU"
        return f"{kind}, {self.ram_bytes / GIB:.1f} GiB RAM"


def detect_hardware() -> Hardware:
    """Probe this machine (about 0.1 s; `nvidia-smi` only when it is installed)."""
    return Hardware(
        apple_silicon=sys.platform == "darwin" and platform.machine() == "arm64",
        nvidia_driver=NVIDIA_PROC.exists(),
        gpus=nvidia_gpus(),
        ram_bytes=psutil.virtual_memory().total,
    )


def nvidia_gpus() -> tuple[Gpu, ...]:
    """The GPUs `nvidia-smi` lists, with their memory; none when it is absent or fails."""
    if shutil.which(NVIDIA_SMI_QUERY[0]) is None:
        return ()
    try:
        proc = subprocess.run(
            NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if proc.returncode != 0:
        return ()
    return tuple(_gpu(line) for line in proc.stdout.splitlines() if "," in line)


def _gpu(line: str) -> Gpu:
    name, _, memory = line.rpartition(",")
    try:
        return Gpu(name.strip(), int(float(memory.strip()) * MIB))
    except ValueError:  # "[N/A]" on some virtualised GPUs
        return Gpu(name.strip(), 0)
