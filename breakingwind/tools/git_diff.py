"""git_diff: working tree vs HEAD, the staged changes, or two refs; optionally only some paths.

Git runs with an argv list, never a shell, with `--end-of-options` / `--` before anything the
caller chose, and with refs that look like options refused. The repository's own config must
never run code: fsmonitor, hooks, external diff drivers, textconv and clean/smudge filters are
forced off on the command line (which outranks the repository's config), system and global
config are not read, and discovery stops at the project root (`GIT_CEILING_DIRECTORIES`).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from breakingwind.errors import ToolFailed, ToolInputRejected
from breakingwind.tools.registry import PathArgument, ToolContext

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./@{}~^+-]{0,254}$")
_HARDENING = (
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
)  # fmt: skip
_SAFE_FLAGS = ("--no-ext-diff", "--no-textconv", "--no-color")
_FILTER_KEY = re.compile(r"^filter\.(.+)\.(clean|smudge|process)$")


Status = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed", "other"]


class ChangedFile(BaseModel):
    path: str
    old_path: str | None = Field(None, description="The path before a rename or copy.")
    status: Status
    additions: int | None = Field(description="Lines added (None for binary files).")
    deletions: int | None = Field(description="Lines deleted (None for binary files).")


class GitDiffResult(BaseModel):
    base: str = Field(description="What the diff starts from: a commit SHA, or 'index'.")
    target: str = Field(description="What it ends at: a commit SHA, 'index' or 'working tree'.")
    files: list[ChangedFile]
    untracked: list[str] = Field(description="New files git does not track yet (working mode).")
    diff: str = Field(description="The unified diff (bounded).")
    truncated: bool
    size_bytes: int = Field(description="Size of the whole diff, even when truncated.")


def git_diff(
    ctx: ToolContext,
    base: Annotated[
        str | None,
        Field(max_length=255, description="Ref to diff from (default HEAD). A branch, tag or SHA."),
    ] = None,
    target: Annotated[
        str | None,
        Field(max_length=255, description="Ref to diff to (default: the working tree)."),
    ] = None,
    staged: Annotated[
        bool, Field(description="Diff the staged changes (index) against base instead.")
    ] = False,
    paths: Annotated[
        list[Path],
        PathArgument(must_exist=False),
        Field(max_length=100, description="Only these files or folders."),
    ] = [],  # noqa: B006 - pydantic copies defaults
    context_lines: Annotated[int, Field(ge=0, le=100, description="Lines of context.")] = 3,
    max_bytes: Annotated[
        int, Field(ge=1000, le=1_000_000, description="Most bytes of diff text returned.")
    ] = 200_000,
) -> GitDiffResult:
    """Show a git diff of the project: the working tree against HEAD (default), the staged
    changes (`staged`), or between two refs (`base`, `target`); optionally only some paths.
    Lists the changed files with their line counts and, in working-tree mode, untracked files.
    """
    if staged and target is not None:
        raise ToolInputRejected("staged compares the index with base; do not pass target")
    git = _Git(ctx)
    base_sha = git.commit(base, "base") if base is not None else git.head()
    target_sha = git.commit(target, "target") if target is not None else None
    revisions = ["--cached", base_sha] if staged else [base_sha, *filter(None, [target_sha])]
    pathspecs = ["--", *(ctx.sandbox.relative(p) for p in paths)]
    common = ["diff", *_SAFE_FLAGS, "-M", *revisions]
    files = _changed_files(
        git.run([*common, "--numstat", "-z", *pathspecs]),
        git.run([*common, "--name-status", "-z", *pathspecs]),
    )
    patch, size = git.run_bounded([*common, f"-U{context_lines}", *pathspecs], max_bytes)
    untracked = []
    if not staged and target is None:
        listed = git.run(["ls-files", "--others", "--exclude-standard", "-z", *pathspecs])
        untracked = [p for p in listed.split("\0") if p and not ctx.sandbox.is_secret(p)]
    return GitDiffResult(
        base=base_sha,
        target="index" if staged else (target_sha or "working tree"),
        files=files,
        untracked=untracked[:1000],
        diff=patch,
        truncated=size > len(patch.encode()),
        size_bytes=size,
    )


class _Git:
    """Runs hardened git commands in the project root."""

    def __init__(self, ctx: ToolContext) -> None:
        self.root = ctx.sandbox.root
        self.timeout = ctx.settings.git_timeout_s
        self.home = tempfile.gettempdir()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CEILING_DIRECTORIES": str(self.root.parent),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_LITERAL_PATHSPECS": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_PAGER": "cat",
        }
        if not (self.root / ".git").exists():
            raise ToolInputRejected("the project root is not a git repository")
        self.options = [*_HARDENING, *self._filter_overrides()]

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
        if not _REF.match(ref):
            raise ToolInputRejected(
                f"{argument}={ref!r} is not a plain ref (options, '..' ranges and odd "
                "characters are refused)"
            )
        verify = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
        sha = self.run(verify, check=False).strip()
        if not sha:
            raise ToolInputRejected(f"{argument}={ref!r} is not a commit in this repository")
        return sha

    def run(self, args: list[str], check: bool = True) -> str:
        return self._exec([*self.options, *args], check=check)

    def run_bounded(self, args: list[str], limit: int) -> tuple[str, int]:
        """Stdout cut at `limit` bytes (on a line boundary), and its full size."""
        output = self.run(args).encode()
        if len(output) <= limit:
            return output.decode(), len(output)
        cut = output[:limit]
        cut = cut[: cut.rfind(b"\n") + 1] or cut
        return cut.decode(errors="ignore"), len(output)

    def _exec(self, args: list[str], check: bool = True) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"git {args[-1]!r} took longer than {self.timeout}s") from None
        except FileNotFoundError:
            raise ToolFailed("git is not installed") from None
        if check and done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise ToolFailed(f"git failed: {message[-1] if message else done.returncode}")
        return done.stdout.decode(errors="replace")


_STATUS: dict[str, Status] = {
    "A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied",
    "T": "type_changed",
}  # fmt: skip


def _changed_files(numstat: str, name_status: str) -> list[ChangedFile]:
    counts: dict[str, tuple[int | None, int | None]] = {}
    fields = numstat.split("\0")
    index = 0
    while index < len(fields) - 1:
        added, deleted, path = fields[index].split("\t", 2)
        if path == "":  # rename: the next two fields are the old and new paths
            path, index = fields[index + 2], index + 3
        else:
            index += 1
        counts[path] = (_count(added), _count(deleted))
    files = []
    fields = name_status.split("\0")
    index = 0
    while index < len(fields) - 1:
        code = fields[index]
        if code[:1] in ("R", "C"):
            old, path, index = fields[index + 1], fields[index + 2], index + 3
        else:
            old, path, index = None, fields[index + 1], index + 2
        added, deleted = counts.get(path, (None, None))
        files.append(
            ChangedFile(
                path=path,
                old_path=old,
                status=_STATUS.get(code[:1], "other"),
                additions=added,
                deletions=deleted,
            )
        )
    return files


def _count(field: str) -> int | None:
    return None if field == "-" else int(field)
