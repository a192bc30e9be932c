"""`scripts/install.sh --dry-run` picks llama-cpp-python's backend by the device, not the compiler.

Each case runs the real script with stand-in `uname`, `nvcc` and `nvidia-smi` first on a PATH that
holds nothing else from this machine (the basic tools the script needs are linked one by one), so
a real toolkit or GPU here cannot change the answer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "scripts" / "install.sh"
TOOLS = ("bash", "dirname", "grep", "tr", "head", "cut", "sed", "cat", "make")
CPU_FLAGS = "-DGGML_CUDA=OFF -DGGML_METAL=OFF"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)
UNKNOWN_BACKEND = "is not a backend: use one of auto, cpu, cuda, metal"


@dataclass(frozen=True)
class DryRun:
    returncode: int
    backend: str
    cmake_args: str
    wheel: str
    stdout: str
    stderr: str


class Machine:
    """A PATH that shows the script a made-up machine."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.venv = root / "venv"
        self.wheels = root / "wheels"
        for tool in TOOLS:
            found = shutil.which(tool)
            if found:
                (self.bin / tool).symlink_to(found)
        self.stub("uname", 'echo "Linux x86_64"')

    def stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!{shutil.which('bash')}\n{body}\n")
        path.chmod(0o755)

    def add_toolkit(self) -> None:
        self.stub("nvcc", 'echo "Cuda compilation tools, release 13.0, V13.0.88"')

    def add_gpus(self, *compute_caps: str) -> None:
        lines = "\\n".join(compute_caps)
        self.stub(
            "nvidia-smi",
            f'case "$*" in *compute_cap*) printf "{lines}\\n";;'
            ' *) echo "GPU 0: NVIDIA H200";; esac',
        )

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": str(self.bin),
            "HOME": str(self.bin.parent),
            "PYTHON": sys.executable,
            "VENV": str(self.venv),
            "BREAKINGWIND_WHEEL_CACHE": str(self.wheels),
            "BREAKINGWIND_LIBCUDA": str(self.bin / "no-libcuda.so.1"),  # the driver probe fails
            **extra,
        }

    def dry_run(self, *args: str, **env: str) -> DryRun:
        proc = subprocess.run(
            [str(INSTALL), "--dry-run", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        said = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
        backend = said.get("llama-cpp-python backend", "").split(" — ")[0]
        return DryRun(
            proc.returncode,
            backend,
            said.get("cmake args", ""),
            said.get("wheel", ""),
            proc.stdout,
            proc.stderr,
        )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_no_toolkit_builds_for_cpu(machine: Machine) -> None:
    run = machine.dry_run()
    assert (run.returncode, run.backend, run.cmake_args) == (0, "cpu", CPU_FLAGS)
    assert "no NVIDIA GPU with a CUDA toolkit" in run.stdout


def test_toolkit_without_gpu_builds_for_cpu_and_says_why(machine: Machine) -> None:
    machine.add_toolkit()
    machine.stub("nvidia-smi", f'echo "{NO_DRIVER}"; exit 9')
    run = machine.dry_run()
    assert (run.returncode, run.backend, run.cmake_args) == (0, "cpu", CPU_FLAGS)
    assert "nvcc found but no NVIDIA GPU" in run.stdout
    assert "couldn't communicate with the NVIDIA driver" in run.stdout
    assert "set BREAKINGWIND_BACKEND=cuda to force" in run.stdout


def test_toolkit_without_nvidia_smi_or_driver_builds_for_cpu(machine: Machine) -> None:
    machine.add_toolkit()
    run = machine.dry_run()
    assert (run.backend, run.cmake_args) == ("cpu", CPU_FLAGS)
    assert "no-libcuda.so.1 does not load" in run.stdout


def test_toolkit_with_an_sm90_gpu_builds_cuda_for_that_gpu(machine: Machine) -> None:
    machine.add_toolkit()
    machine.add_gpus("9.0")
    run = machine.dry_run()
    assert (run.returncode, run.backend) == (0, "cuda")
    assert run.cmake_args == "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90"
    assert "native" not in run.cmake_args
    assert f"{machine.wheels}/cuda-sm90-x86_64" in run.wheel


def test_two_different_gpus_get_both_architectures(machine: Machine) -> None:
    machine.add_toolkit()
    machine.add_gpus("9.0", "8.6", "9.0")
    run = machine.dry_run()
    assert run.cmake_args == "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=86;90"


def test_gpu_without_toolkit_builds_for_cpu_and_names_the_fix(machine: Machine) -> None:
    machine.add_gpus("8.9")
    run = machine.dry_run()
    assert (run.backend, run.cmake_args) == ("cpu", CPU_FLAGS)
    assert "an NVIDIA GPU but no nvcc" in run.stdout


def test_macos_arm64_builds_metal(machine: Machine) -> None:
    machine.stub("uname", 'echo "Darwin arm64"')
    run = machine.dry_run()
    assert (run.returncode, run.backend, run.cmake_args) == (0, "metal", "-DGGML_METAL=ON")
    assert f"{machine.wheels}/metal-arm64" in run.wheel


def test_macos_intel_builds_for_cpu_without_metal(machine: Machine) -> None:
    machine.stub("uname", 'echo "Darwin x86_64"')
    run = machine.dry_run()
    assert (run.backend, run.cmake_args) == ("cpu", CPU_FLAGS)


def test_forced_cuda_without_gpu_builds_a_portable_cuda_wheel(machine: Machine) -> None:
    machine.add_toolkit()
    run = machine.dry_run(BREAKINGWIND_BACKEND="cuda")
    assert (run.returncode, run.backend) == (0, "cuda")
    assert run.cmake_args == "-DGGML_CUDA=ON -DGGML_NATIVE=OFF"
    assert f"{machine.wheels}/cuda-portable-x86_64" in run.wheel


def test_forced_cpu_on_a_gpu_machine_builds_for_cpu(machine: Machine) -> None:
    machine.add_toolkit()
    machine.add_gpus("9.0")
    run = machine.dry_run("--backend", "cpu")
    assert (run.returncode, run.backend, run.cmake_args) == (0, "cpu", CPU_FLAGS)
    assert "forced" in run.stdout


def test_raw_cmake_args_are_used_as_given(machine: Machine) -> None:
    machine.add_toolkit()
    machine.add_gpus("9.0")
    run = machine.dry_run(CMAKE_ARGS="-DGGML_CUDA=on  -DCMAKE_CUDA_ARCHITECTURES=80")
    assert (run.backend, run.cmake_args) == ("cuda", "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=80")
    assert f"{machine.wheels}/cuda-cmake" in run.wheel


def test_a_cached_cpu_wheel_is_not_used_for_a_cuda_build(machine: Machine) -> None:
    cpu_wheels = machine.wheels / "cpu-x86_64"
    cpu_wheels.mkdir(parents=True)
    wheel = cpu_wheels / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"  # as pip builds it
    wheel.write_bytes(b"")
    assert machine.dry_run().wheel == f"{wheel} (cached)"
    machine.add_toolkit()
    machine.add_gpus("9.0")
    assert machine.dry_run().wheel.startswith("none cached in ")


def test_a_backend_asked_for_earlier_is_kept(machine: Machine) -> None:
    machine.add_toolkit()
    machine.venv.mkdir()
    (machine.venv / ".backend-request").write_text("cuda\n")
    run = machine.dry_run()
    assert run.backend == "cuda"
    assert "backend asked for earlier: cuda" in run.stdout
    assert machine.dry_run(BREAKINGWIND_BACKEND="auto").backend == "cpu"


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"BREAKINGWIND_BACKEND": "gpu"}, (), UNKNOWN_BACKEND),
        ({}, ("--backend", "rocm"), UNKNOWN_BACKEND),
        ({"BREAKINGWIND_BACKEND": "metal"}, (), "needs macOS; this is Linux"),
        ({"BREAKINGWIND_BACKEND": "cuda"}, (), "nvcc is not on PATH"),
        ({"PYTHON": "python3.11-missing"}, (), "install Python 3.11 or newer"),
        ({}, ("--bogus",), "unknown option --bogus"),
    ],
)
def test_bad_input_is_one_line_with_the_fix(
    machine: Machine, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    run = machine.dry_run(*args, **env)
    assert run.returncode != 0
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith("error: ") and message in line


def test_too_old_python_is_refused_with_the_fix(machine: Machine) -> None:
    machine.stub("python3.9", 'case "$1" in --version) echo "Python 3.9.2";; *) exit 1;; esac')
    run = machine.dry_run(PYTHON="python3.9")
    assert run.returncode != 0
    assert run.stderr.strip() == (
        "error: BreakingWind needs Python 3.11 or newer, 'python3.9' is Python 3.9.2: "
        "install one, then run PYTHON=python3.11 make install"
    )


def test_make_install_with_an_unknown_backend_fails_and_creates_nothing(
    machine: Machine,
) -> None:
    if not (machine.bin / "make").exists():
        pytest.skip("make is not installed")
    proc = subprocess.run(
        ["make", "--no-print-directory", "install", f"VENV={machine.venv}"],
        cwd=ROOT,
        env=machine.env(BREAKINGWIND_BACKEND="gpu"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "error: BREAKINGWIND_BACKEND='gpu' is not a backend" in proc.stderr
    assert not machine.venv.exists()


def _make_would_install(machine: Machine, **env: str) -> bool:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "install", f"VENV={machine.venv}"],
        cwd=ROOT,
        env=machine.env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return "scripts/install.sh" in proc.stdout


def test_make_reinstalls_only_when_another_backend_is_asked_for(machine: Machine) -> None:
    if not (machine.bin / "make").exists():
        pytest.skip("make is not installed")
    machine.venv.mkdir()
    (machine.venv / ".backend-request").write_text("auto\n")
    (machine.venv / ".installed").touch()
    assert not _make_would_install(machine)
    assert not _make_would_install(machine, BREAKINGWIND_BACKEND="auto")
    assert _make_would_install(machine, BREAKINGWIND_BACKEND="cuda")
    assert _make_would_install(machine, CMAKE_ARGS="-DGGML_BLAS=ON")
    (machine.venv / ".backend-request").write_text("cuda\n")
    assert not _make_would_install(machine, BREAKINGWIND_BACKEND="cuda")
