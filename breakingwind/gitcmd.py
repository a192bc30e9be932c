"""Git, run so that a repository's own config can never run code.

Git runs with an argv list, never a shell, with `--end-of-options` / `--` before anything a caller
chose, and refs that look like options refused. fsmonitor, hooks, the pager, external diff drivers,
textconv and clean/smudge/process filters are forced off on the command line (which outranks the
repository's config); system and global config are not read; discovery stops at the root.
Used by the git_diff tool and by task workspaces.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from breakingwind.errors import BreakingWindError, ToolFailed, ToolInputRejected

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
PLAIN_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./@{}~^+-]{0,254}$")
HARDENING = (
    "-c", "core.fsmonitor=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.pager=cat",
    "-c", "core.untrackedCache=false",
    "-c", "core.quotePath=false",
    "-c", "diff.noprefix=false",
    "-c", "diff.relative=false",
    "-c", "color.ui=never",
    "-c", "protocol.allow=never",
    "-c", "credential.helper=",
    "-c", "commit.gpgSign=false",
    "-c", "user.name=BreakingWind",
    "-c", "user.email=breakingwind@localhost",
)  # fmt: skip
SAFE_DIFF_FLAGS = ("--no-ext-diff", "--no-textconv", "--no-color")
_FILTER_KEY = re.compile(r"^filter\.(.+)\.(clean|smudge|process)$")


class HardenedGit:
    """Runs hardened git commands in `root`; failures raise `error` (a BreakingWindError)."""

    def __init__(
        self, root: Path, timeout_s: float, error: type[BreakingWindError] = ToolFailed
    ) -> None:
        self.root = root
        self.timeout = timeout_s
        self.error = error
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tempfile.gettempdir(),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CEILING_DIRECTORIES": str(root.parent),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_LITERAL_PATHSPECS": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_PAGER": "cat",
        }
        self.options = [*HARDENING, *self._filter_overrides()]

    def _filter_overrides(self) -> list[str]:
        """`-c filter.<name>.clean=` etc. for every filter the repository's config defines."""
        listed = self._exec(["config", "--name-only", "--get-regexp", r"^filter\."], check=False)
        names = {m.group(1) for key in listed.split() if (m := _FILTER_KEY.match(key))}
        overrides: list[str] = []
        for name in sorted(names):
            for key in ("clean", "smudge", "process"):
                overrides += ["-c", f"filter.{name}.{key}="]
            overrides += ["-c", f"filter.{name}.required=false"]
        return overrides

    def head(self) -> str:
        sha = self._exec(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], check=False)
        return sha.strip() or EMPTY_TREE

    def commit(self, ref: str, argument: str) -> str:
        if not PLAIN_REF.match(ref):
            raise ToolInputRejected(
                f"{argument}={ref!r} is not a plain ref (options, '..' ranges and odd "
                "characters are refused)"
            )
        verify = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
        sha = self.run(verify, check=False).strip()
        if not sha:
            raise ToolInputRejected(f"{argument}={ref!r} is not a commit in this repository")
        return sha

    def run(self, args: list[str], check: bool = True, stdin: bytes | None = None) -> str:
        return self._exec([*self.options, *args], check=check, stdin=stdin)

    def run_bounded(self, args: list[str], limit: int) -> tuple[str, int]:
        """Stdout cut at `limit` bytes (on a line boundary), and its full size."""
        output = self.run(args).encode()
        if len(output) <= limit:
            return output.decode(), len(output)
        cut = output[:limit]
        cut = cut[: cut.rfind(b"\n") + 1] or cut
        return cut.decode(errors="ignore"), len(output)

    def _exec(self, args: list[str], check: bool = True, stdin: bytes | None = None) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.root,
                env=self.env,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise self.error(f"git {args[-1]!r} took longer than {self.timeout}s") from None
        except FileNotFoundError:
            # the same exception for a missing program and a missing working directory
            if not Path(self.root).is_dir():
                raise self.error("its working folder does not exist (removed?)") from None
            raise self.error("git is not installed") from None
        if check and done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise self.error(f"git failed: {message[-1] if message else done.returncode}")
        return done.stdout.decode(errors="replace")
