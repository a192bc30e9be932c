"""git_diff: working tree vs HEAD, the staged changes, or two refs; optionally only some paths.

Git runs with an argv list, never a shell, with `--end-of-options` / `--` before anything the
caller chose, and with refs that look like options refused. The repository's own config must
never run code: fsmonitor, hooks, external diff drivers, textconv and clean/smudge filters are
forced off on the command line (which outranks the repository's config), system and global
config are not read, and discovery stops at the project root (`GIT_CEILING_DIRECTORIES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from breakingwind.errors import ToolFailed, ToolInputRejected
from breakingwind.gitcmd import SAFE_DIFF_FLAGS, HardenedGit
from breakingwind.tools.registry import PathArgument, ToolContext

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
    secrets_omitted: int = Field(
        0, description="Changed secrets files left out of files and diff (tools.secret_patterns)."
    )


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
    if not (ctx.sandbox.root / ".git").exists():
        raise ToolInputRejected("the project root is not a git repository")
    git = HardenedGit(ctx.sandbox.root, ctx.settings.git_timeout_s, error=ToolFailed)
    base_sha = git.commit(base, "base") if base is not None else git.head()
    target_sha = git.commit(target, "target") if target is not None else None
    revisions = ["--cached", base_sha] if staged else [base_sha, *filter(None, [target_sha])]
    requested = pathspecs = ["--", *(ctx.sandbox.relative(p) for p in paths)]
    common = ["diff", *SAFE_DIFF_FLAGS, "-M", *revisions]
    changed = git.run([*common, "--name-only", "--no-renames", "-z", *requested]).split("\0")
    # The one secret rule for the output too: when a secrets file changed, the diff names the
    # other changed files exactly (pathspecs are literal here), so its content never leaves git.
    secrets = sorted({p for p in changed if p and ctx.sandbox.is_secret(p)})
    if secrets:
        kept = sorted({p for p in changed if p and not ctx.sandbox.is_secret(p)})
        pathspecs = ["--", *kept] if kept else ["--", ":nothing-but-secrets-changed:"]
    files = _changed_files(
        git.run([*common, "--numstat", "-z", *pathspecs]),
        git.run([*common, "--name-status", "-z", *pathspecs]),
    )
    patch, size = git.run_bounded([*common, f"-U{context_lines}", *pathspecs], max_bytes)
    untracked = []
    if not staged and target is None:
        listed = git.run(["ls-files", "--others", "--exclude-standard", "-z", *requested])
        untracked = [p for p in listed.split("\0") if p and not ctx.sandbox.is_secret(p)]
    return GitDiffResult(
        base=base_sha,
        target="index" if staged else (target_sha or "working tree"),
        files=files,
        untracked=untracked[:1000],
        diff=patch,
        truncated=size > len(patch.encode()),
        size_bytes=size,
        secrets_omitted=len(secrets),
    )


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
