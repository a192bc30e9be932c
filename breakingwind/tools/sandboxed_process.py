"""Run an untrusted command (a test suite) with limits, and kill its whole tree on timeout.

- Resource limits are set with `resource.setrlimit` in the child before exec (CPU seconds,
  address space, largest file written, process count, no core files).
- The child leads a new session; on timeout or cancellation the process group is killed, and
  any descendant that left the group is found through psutil and killed too.
- Where Linux namespaces are available (`unshare --user --net --mount --pid`), the command runs
  with no network (only a loopback interface), in its own PID namespace (when its first process
  dies, the kernel kills the rest) and with the read-only paths bind-mounted read-only.
  Elsewhere it runs without that layer and `Isolation` says so.
- Output (stdout and stderr together) is bounded: the head and the tail are kept.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from pydantic import BaseModel, Field

from breakingwind.config import RunTestsSettings

_UNSHARE = ("unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork",
            "--kill-child", "--mount-proc")  # fmt: skip
# Inside the namespaces: make each read-only path read-only, bring loopback up, run the command.
_PRELUDE = """
for p in $BW_READ_ONLY; do mount --bind "$p" "$p" && mount -o remount,bind,ro "$p" || exit 97; done
unset BW_READ_ONLY
ip link set lo up 2>/dev/null
exec "$@"
"""


class Isolation(BaseModel):
    network_blocked: bool = Field(description="The run had no network (Linux namespaces).")
    project_read_only: bool = Field(description="The real project was mounted read-only.")
    scratch_copy: bool = Field(description="Tests ran in a scratch copy of the project.")
    limits: dict[str, int] = Field(description="rlimits applied to every test process.")


@dataclass
class ProcessResult:
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    output_truncated: bool


class NamespaceProbe:
    """Whether `unshare` works here; probed once per registry."""

    def __init__(self) -> None:
        self.available: bool | None = None

    def check(self) -> bool:
        if self.available is None:
            self.available = _unshare_works()
        return self.available


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run(
            [*_UNSHARE, "--", "/bin/sh", "-c", "mount --bind / / 2>/dev/null; true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def limits_for(settings: RunTestsSettings) -> dict[str, int]:
    """The rlimits applied in the child (name -> value)."""
    limits = {
        "RLIMIT_CPU": settings.cpu_seconds,
        "RLIMIT_FSIZE": settings.max_file_mb * 1024 * 1024,
        "RLIMIT_NPROC": _user_process_count() + settings.max_processes,
        "RLIMIT_CORE": 0,
    }
    if settings.memory_mb:
        limits["RLIMIT_AS"] = settings.memory_mb * 1024 * 1024
    return limits


def _user_process_count() -> int:
    # RLIMIT_NPROC counts every process of the user, so the budget is added to today's count.
    uid = os.getuid()
    count = 0
    for process in psutil.process_iter(["uids"]):
        uids = process.info.get("uids")
        if uids is not None and uids.real == uid:
            count += 1
    return count


def _apply_limits(limits: dict[str, int]) -> Callable[[], None]:
    pairs = [(getattr(resource, name), value) for name, value in limits.items()]

    def preexec() -> None:  # runs in the child between fork and exec: keep it to syscalls
        for which, value in pairs:
            soft, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, cap))

    return preexec


async def run_sandboxed(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    limits: dict[str, int],
    timeout_s: float,
    max_output_bytes: int,
    isolate: bool,
    read_only: list[Path],
) -> ProcessResult:
    """Run `argv`; never raises for the command's own failure (see `exit_code`/`timed_out`)."""
    command = list(argv)
    if isolate:
        env = {**env, "BW_READ_ONLY": " ".join(str(p) for p in read_only)}
        command = [*_UNSHARE, "--", "/bin/sh", "-c", _PRELUDE, "sh", *argv]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_apply_limits(limits),
    )
    output = _BoundedOutput(max_output_bytes)
    reader = asyncio.create_task(output.drain(process.stdout))
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:
            _kill_tree(process.pid)
            await process.wait()
    try:
        await asyncio.wait_for(reader, 5)
    except TimeoutError:
        reader.cancel()  # a descendant that escaped still holds the pipe open
    return ProcessResult(
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        output=output.text(),
        output_truncated=output.truncated,
    )


def _kill_tree(pid: int) -> None:
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in descendants:
        try:
            child.kill()
        except psutil.Error:
            pass


class _BoundedOutput:
    """Keeps the first quarter of the budget and a rolling tail of the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 4
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    @property
    def truncated(self) -> bool:
        return self.total > self.head_limit + self.tail_limit

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self.total += len(chunk)
            room = self.head_limit - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        if not self.truncated:
            return (self.head + self.tail).decode(errors="replace")
        skipped = self.total - len(self.head) - len(self.tail)
        marker = f"\n[... {skipped} bytes of output omitted ...]\n".encode()
        return (self.head + marker + self.tail).decode(errors="replace")
