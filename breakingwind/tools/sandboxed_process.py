"""Run an untrusted command (a test suite) with limits, and kill its whole tree on timeout.

- Resource limits are set with `resource.setrlimit` in the child before exec (CPU seconds,
  address space, largest file written, process count, no core files).
- Root ignores RLIMIT_NPROC and may raise any limit, so a daemon running as root runs the command
  as an unprivileged user (`setpriv`). The command keeps no capability at all (bounding,
  ambient, inheritable, permitted and effective sets empty) and runs with no_new_privs, so no
  setuid or file-capability binary gives one back. The caller hands the scratch folder to that
  user. An interpreter the user cannot reach (one under /root) is made reachable inside the
  mount namespace only (`Visibility.reach`), never by a capability.
- The child leads a new session; on timeout or cancellation the process group is killed, and
  any descendant that left the group is found through psutil and killed too.
- Where Linux namespaces are available (`unshare --net --mount --pid`, plus `--user` unless
  root), the command runs with no network (only a loopback interface), in its own PID namespace
  (when its first process dies, the kernel kills the rest) and with the read-only paths
  bind-mounted read-only, and the hidden paths (`Visibility.hide`: secrets files, `.git`, the
  daemon's data dir) covered: a file by /dev/null, a folder by an empty tmpfs. Elsewhere it runs
  without that layer and `Isolation` says so.
- Output (stdout and stderr together) is bounded: the head and the tail are kept.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pydantic import BaseModel, Field

from breakingwind.config import RunTestsSettings
from breakingwind.errors import ToolFailed

_UNSHARE = ("unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc")
# Unprivileged users need a user namespace to unshare; root does not, and dropping to another
# user needs root's own capabilities, which a user namespace would take away.
_USER_NAMESPACE = ("--user", "--map-root-user")
# Every capability set emptied; --no-new-privs stops setuid binaries from giving any back.
_NO_CAPS = ("--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs")
_PR_SET_NO_NEW_PRIVS = 38
# Inside the namespaces (paths one a line): make each read-only path read-only; make each reach
# path reachable (stash it, cover its closed ancestor with an open tmpfs, bind it back); cover
# each hidden path; bring loopback up; run the command.
_PRELUDE = """
IFS='
'
for p in $BW_READ_ONLY; do mount --bind "$p" "$p" && mount -o remount,bind,ro "$p" || exit 97; done
i=0
for r in $BW_REACH; do
  i=$((i+1)); mkdir -p "$BW_STASH/$i" && mount --rbind "${r#*:}" "$BW_STASH/$i" || exit 96
done
for r in $BW_REACH; do
  mountpoint -q "${r%%:*}" && [ "$(stat -c %T -f "${r%%:*}")" = tmpfs ] && continue
  mount -t tmpfs -o mode=0755 bw-reach "${r%%:*}" || exit 96
done
i=0
for r in $BW_REACH; do
  i=$((i+1)); mkdir -p "${r#*:}" && mount --rbind "$BW_STASH/$i" "${r#*:}" || exit 96
done
for p in $BW_HIDE; do
  if [ -d "$p" ]; then mount -t tmpfs -o mode=0700,size=4k bw-hidden "$p" || exit 95
  elif [ -e "$p" ]; then mount --bind /dev/null "$p" || exit 95; fi
done
unset BW_READ_ONLY BW_REACH BW_HIDE BW_STASH IFS
ip link set lo up 2>/dev/null
exec "$@"
"""
_PROBE = "mount --bind / / 2>/dev/null; true"


class Isolation(BaseModel):
    network_blocked: bool = Field(description="The run had no network (Linux namespaces).")
    project_read_only: bool = Field(description="The real project was mounted read-only.")
    scratch_copy: bool = Field(description="Tests ran in a scratch copy of the project.")
    limits: dict[str, int] = Field(description="rlimits applied to every test process.")
    user: str = Field(
        description="The user the tests ran as. Were it root, RLIMIT_NPROC would not apply and "
        "a test could raise its own limits."
    )


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user a root daemon runs test commands as."""

    name: str
    uid: int
    gid: int


@dataclass
class ProcessResult:
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    output_truncated: bool


class NamespaceProbe:
    """Whether `unshare` works here (with a user namespace or without); probed once per
    registry."""

    def __init__(self) -> None:
        self.available: dict[bool, bool] = {}

    def check(self, user_namespace: bool) -> bool:
        if user_namespace not in self.available:
            self.available[user_namespace] = _unshare_works(user_namespace)
        return self.available[user_namespace]


def _unshare_works(user_namespace: bool) -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run(
            [*_unshare(user_namespace), "--", "/bin/sh", "-c", _PROBE],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _unshare(user_namespace: bool) -> list[str]:
    return [*_UNSHARE, *(_USER_NAMESPACE if user_namespace else ())]


def run_as_for(settings: RunTestsSettings) -> RunAs | None:
    """The user to drop to: only when the daemon is root on Linux with `setpriv`, and
    `run_as_user` is set. Raises `ToolFailed` when that user does not exist."""
    if os.geteuid() != 0 or settings.run_as_user is None:
        return None
    if not sys.platform.startswith("linux") or shutil.which("setpriv") is None:
        return None
    try:
        entry = pwd.getpwnam(settings.run_as_user)
    except KeyError:
        raise ToolFailed(
            f"tools.run_tests.run_as_user {settings.run_as_user!r} is not a user on this machine"
        ) from None
    if entry.pw_uid == 0:
        return None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def user_name(run_as: RunAs | None) -> str:
    """Who the tests run as, for `Isolation.user`."""
    if run_as is not None:
        return run_as.name
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def hand_over(folder: Path, run_as: RunAs | None) -> None:
    """Make `folder` and everything in it (links, not their targets) belong to `run_as`."""
    if run_as is None:
        return
    os.chown(folder, run_as.uid, run_as.gid)
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            os.chown(Path(parent, name), run_as.uid, run_as.gid, follow_symlinks=False)


def limits_for(settings: RunTestsSettings, run_as: RunAs | None) -> dict[str, int]:
    """The rlimits applied in the child (name -> value)."""
    uid = run_as.uid if run_as is not None else os.getuid()
    limits = {
        "RLIMIT_CPU": settings.cpu_seconds,
        "RLIMIT_FSIZE": settings.max_file_mb * 1024 * 1024,
        "RLIMIT_NPROC": _user_task_count(uid) + settings.max_processes,
        "RLIMIT_CORE": 0,
    }
    if settings.memory_mb:
        limits["RLIMIT_AS"] = settings.memory_mb * 1024 * 1024
    return limits


def _user_task_count(uid: int) -> int:
    # RLIMIT_NPROC counts every task (thread) of the user, so the budget is added to today's count.
    count = 0
    for process in psutil.process_iter(["uids", "num_threads"]):
        uids = process.info.get("uids")
        if uids is not None and uids.real == uid:
            count += process.info.get("num_threads") or 1
    return count


def _drop_privileges(run_as: RunAs | None, user_namespace: bool) -> list[str]:
    """The `setpriv` prefix that empties every capability set (and drops to `run_as`); empty
    for an unprivileged daemon outside a namespace, which holds no capability to drop."""
    if os.geteuid() != 0 and not user_namespace:
        return []
    if shutil.which("setpriv") is None:
        raise ToolFailed("setpriv (util-linux) is needed to drop the test run's capabilities")
    user = [f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups"] if run_as else []
    return ["setpriv", *user, *_NO_CAPS, "--"]


def _apply_limits(limits: dict[str, int]) -> Callable[[], None]:
    pairs = [(getattr(resource, name), value) for name, value in limits.items()]
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:  # runs in the child between fork and exec: keep it to syscalls
        for which, value in pairs:
            soft, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, cap))
        # From here on no exec can gain a privilege (setuid bits, file capabilities).
        if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(94)

    return preexec


@dataclass
class Visibility:
    """What the command may see of this machine, applied inside the mount namespace."""

    hide: list[Path] = field(default_factory=list)
    reach: list[tuple[Path, Path]] = field(default_factory=list)  # (closed ancestor, path)


def unreachable_ancestor(path: Path, run_as: RunAs | None) -> Path | None:
    """The topmost folder above `path` that `run_as` cannot search (None: it can reach it)."""
    if run_as is None:
        return None
    for folder in reversed(Path(os.path.realpath(path)).parents):
        if folder == folder.parent:
            continue
        try:
            info = folder.stat()
        except OSError:
            return folder
        if info.st_uid == run_as.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == run_as.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def readable_by(path: Path, run_as: RunAs | None) -> bool:
    """Whether the user the tests run as could read `path` (its folders searched, its bits)."""
    if run_as is None:
        return os.access(path, os.R_OK)
    if unreachable_ancestor(path, run_as) is not None:
        return False
    try:
        info = path.stat()
    except OSError:
        return False
    if info.st_uid == run_as.uid:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid == run_as.gid:
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


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
    run_as: RunAs | None = None,
    visibility: Visibility | None = None,
    stash: Path | None = None,
) -> ProcessResult:
    """Run `argv` (as `run_as` when given) with no capability; never raises for the command's
    own failure (see `exit_code`/`timed_out`). `visibility` needs `isolate` and a `stash`
    folder (for the reach mounts)."""
    user_namespace = isolate and run_as is None and os.geteuid() != 0
    command = [*_drop_privileges(run_as, user_namespace), *argv]
    if isolate:
        seen = visibility or Visibility()
        env = {
            **env,
            "BW_READ_ONLY": "\n".join(str(p) for p in read_only),
            "BW_REACH": "\n".join(f"{a}:{p}" for a, p in seen.reach),
            "BW_HIDE": "\n".join(str(p) for p in seen.hide),
            "BW_STASH": str(stash or "/nonexistent"),
        }
        # The mounts need root (real, or of a user namespace); the drop comes after them.
        unshare = _unshare(user_namespace=run_as is None)
        command = [*unshare, "--", "/bin/sh", "-c", _PRELUDE, "sh", *command]
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
