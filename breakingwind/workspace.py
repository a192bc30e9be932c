"""A task's isolated workspace: where the coder's diffs are applied and the tests run.

For a git project it is a `git worktree` at HEAD with the developer's uncommitted changes and
untracked files carried over; otherwise a copy of the folder. Either way a snapshot commit is
made inside it, so the task's result is always `git diff <snapshot>`, and the workspace can be
rebuilt exactly (reset to the snapshot, replay the applied diffs) after a crash. The developer's
tree is touched only by `apply_to_project`, which refuses if the tree changed since the task
started. All functions block (git, file copies): call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from breakingwind.errors import ProjectChanged, WorkspaceError
from breakingwind.gitcmd import EMPTY_TREE, SAFE_DIFF_FLAGS, HardenedGit

# Big, and not part of the change: linked into copies (a worktree finds the project's own
# interpreter through run_tests' lookup, or uses the daemon's).
LINKED = frozenset({".venv", "venv", "node_modules"})
SKIPPED = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_DIFF_PATHS = re.compile(r"^diff --git a/(.*) b/(.*)$", re.MULTILINE)
GIT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Workspace:
    path: Path
    project: Path
    snapshot: str
    worktree: bool  # a git worktree of the project (else a copy with its own repository)

    def git(self) -> HardenedGit:
        return HardenedGit(self.path, GIT_TIMEOUT_S, error=WorkspaceError)

    def diff(self) -> str:
        """Everything changed since the snapshot, new files included."""
        git = self.git()
        git.run(["add", "-A"])
        return git.run(["diff", "--cached", "--binary", *SAFE_DIFF_FLAGS, self.snapshot, "--"])

    def reset(self) -> None:
        """Back to the snapshot (before replaying the diffs recorded for the task)."""
        git = self.git()
        git.run(["reset", "-q", "--hard", self.snapshot])
        git.run(["clean", "-q", "-f", "-d"])


def create_workspace(
    project: Path, parent: Path, task_id: str, exclude: Path | None = None
) -> Workspace:
    """Make (or remake) the isolated workspace of `task_id` under `parent`.

    `exclude` (the data dir; default `parent`) may lie inside the project: it is never copied.
    """
    exclude = exclude or parent
    target = parent / task_id
    parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        remove_workspace(project, target)
    project_git = _project_git(project)
    if project_git is not None:
        head = project_git.head()
        project_git.run(["worktree", "add", "-q", "--detach", "--force", str(target), head])
        _carry_uncommitted(project_git, project, target, exclude)
        worktree = True
    else:
        _copy_tree(project, target, exclude)
        HardenedGit(target, GIT_TIMEOUT_S, error=WorkspaceError).run(["init", "-q"])
        # The linked folders belong to the project's environment, not to the change.
        (target / ".git" / "info").mkdir(parents=True, exist_ok=True)
        (target / ".git" / "info" / "exclude").write_text("".join(f"/{n}\n" for n in LINKED))
        worktree = False
    git = HardenedGit(target, GIT_TIMEOUT_S, error=WorkspaceError)
    git.run(["add", "-A"])
    git.run(["commit", "-q", "--allow-empty", "--no-verify", "-m", f"breakingwind {task_id}"])
    return Workspace(target, project, git.head(), worktree)


def remove_workspace(project: Path, path: Path) -> None:
    """Remove a task's workspace: the folder and, for a worktree, git's record of it."""
    project_git = _project_git(project)
    if project_git is not None:
        project_git.run(["worktree", "remove", "--force", str(path)], check=False)
        project_git.run(["worktree", "prune"], check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def remove_orphan(path: Path) -> None:
    """Remove a workspace whose task is unknown: a worktree's project is found through the
    `.git` file git wrote into it (`gitdir: <project>/.git/worktrees/<name>`)."""
    marker = path / ".git"
    project = None
    if marker.is_file():
        gitdir = Path(marker.read_text(errors="replace").removeprefix("gitdir:").strip())
        if gitdir.parent.name == "worktrees" and gitdir.parent.parent.name == ".git":
            project = gitdir.parent.parent.parent
    if project is not None and project.is_dir():
        remove_workspace(project, path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def project_fingerprint(project: Path, exclude: Path | None = None) -> str:
    """A hash of the project's current content, to notice changes made while a task ran.

    `exclude` (the data dir, when it lies inside the project) is left out."""
    digest = hashlib.sha256()
    git = _project_git(project)
    if git is not None:
        digest.update(git.head().encode())
        digest.update(git.run(["diff", "--binary", *SAFE_DIFF_FLAGS, "HEAD", "--"]).encode())
        untracked = git.run(["ls-files", "--others", "--exclude-standard", "-z"]).split("\0")
        for name in sorted(filter(None, untracked)):
            if _under(project / name, exclude):
                continue
            digest.update(name.encode())
            digest.update(_file_hash(project / name))
        return digest.hexdigest()
    for path in sorted(_walk(project, exclude)):
        digest.update(str(path.relative_to(project)).encode())
        digest.update(_file_hash(path))
    return digest.hexdigest()


def apply_to_project(
    project: Path, diff: str, expected_fingerprint: str, exclude: Path | None = None
) -> list[str]:
    """Apply the task's final diff to the developer's tree; refuse if the tree changed."""
    if project_fingerprint(project, exclude) != expected_fingerprint:
        raise ProjectChanged(
            f"{project} changed since the task started; the diff was not applied (re-run the"
            " task, or apply the diff by hand)"
        )
    paths = [p for pair in _DIFF_PATHS.findall(diff) for p in pair]
    for path in paths:
        parts = Path(path).parts
        if path.startswith("/") or ".." in parts or ".git" in parts:
            raise WorkspaceError(f"the diff touches {path!r}, which is refused")
    if not diff.strip():
        return []
    git = HardenedGit(project, GIT_TIMEOUT_S, error=WorkspaceError)
    git.run(["apply", "--check", "--binary", "--whitespace=nowarn", "-"], stdin=diff.encode())
    git.run(["apply", "--binary", "--whitespace=nowarn", "-"], stdin=diff.encode())
    return sorted(set(paths))


def _project_git(project: Path) -> HardenedGit | None:
    """Hardened git for `project` when it is the top of a repository with at least one commit."""
    if not (project / ".git").exists():
        return None
    git = HardenedGit(project, GIT_TIMEOUT_S, error=WorkspaceError)
    return git if git.head() != EMPTY_TREE else None


def _carry_uncommitted(git: HardenedGit, project: Path, target: Path, exclude: Path) -> None:
    patch = git.run(["diff", "--binary", *SAFE_DIFF_FLAGS, "HEAD", "--"])
    if patch.strip():
        HardenedGit(target, GIT_TIMEOUT_S, error=WorkspaceError).run(
            ["apply", "--binary", "--whitespace=nowarn", "-"], stdin=patch.encode()
        )
    untracked = git.run(["ls-files", "--others", "--exclude-standard", "-z"]).split("\0")
    for name in filter(None, untracked):
        source = project / name
        if source.is_symlink() or not source.is_file() or _under(source, exclude):
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def _copy_tree(project: Path, target: Path, exclude: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {
            n for n in names if n in SKIPPED or n in LINKED or _under(Path(folder) / n, exclude)
        }

    shutil.copytree(project, target, symlinks=True, ignore=ignore)
    for name in LINKED:
        if (project / name).is_dir():
            os.symlink(project / name, target / name)


def _walk(project: Path, exclude: Path | None) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(project):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED and d not in LINKED and not _under(Path(folder) / d, exclude)
        ]
        found += [Path(folder) / name for name in files]
    return found


def _under(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _file_hash(path: Path) -> bytes:
    if path.is_symlink() or not path.is_file():
        return b"-"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()
