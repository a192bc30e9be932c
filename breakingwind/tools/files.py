"""The project's files as the tools see them: .gitignore honoured, secrets and escapes left out.

Shared by analyze_codebase, search_docs and find_references, so all three agree on what "the
project" is. Symlinks are not followed into folders; a file symlink is kept only when it
resolves inside the root; devices, FIFOs and sockets are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from breakingwind.tools.sandbox import Sandbox

ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache"})


@dataclass(frozen=True)
class ProjectFile:
    path: Path
    relative: str
    size: int
    mtime_ns: int


def project_files(sandbox: Sandbox, start: Path) -> Iterator[ProjectFile]:
    """Every regular, non-ignored, non-secret file under `start` (a folder inside the root)."""
    specs = _ancestor_specs(sandbox.root, start)
    for folder, dirnames, filenames in os.walk(start):
        here = Path(folder)
        rel_dir = sandbox.relative(here)
        _add_spec(specs, sandbox.root, here)
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name not in ALWAYS_SKIPPED
            and not (here / name).is_symlink()
            and not _ignored(specs, _join(rel_dir, name), is_dir=True)
            and not sandbox.is_secret(_join(rel_dir, name) + "/")
        )
        for name in sorted(filenames):
            relative = _join(rel_dir, name)
            if _ignored(specs, relative, is_dir=False) or sandbox.is_secret(relative):
                continue
            found = _regular_file(sandbox, here / name, relative)
            if found is not None:
                yield found


def _regular_file(sandbox: Sandbox, path: Path, relative: str) -> ProjectFile | None:
    try:
        if path.is_symlink() and not sandbox.contains(path):
            return None
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return ProjectFile(path, relative, info.st_size, info.st_mtime_ns)


def _join(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}"


def _ancestor_specs(root: Path, start: Path) -> dict[str, list[pathspec.PathSpec]]:
    """`.git/info/exclude` and the .gitignore files from the root down to `start`'s parent."""
    specs: dict[str, list[pathspec.PathSpec]] = {}
    exclude = root / ".git" / "info" / "exclude"
    if exclude.is_file():
        specs["."] = [pathspec.GitIgnoreSpec.from_lines(_spec_lines(exclude))]
    folder = root
    for part in start.relative_to(root).parts:
        _add_spec(specs, root, folder)
        folder = folder / part
    return specs


def _add_spec(specs: dict[str, list[pathspec.PathSpec]], root: Path, folder: Path) -> None:
    spec = _gitignore_spec(folder)
    if spec is not None:
        specs.setdefault(Path(os.path.relpath(folder, root)).as_posix(), []).append(spec)


def _spec_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _gitignore_spec(folder: Path) -> pathspec.PathSpec | None:
    path = folder / ".gitignore"
    if not path.is_file():
        return None
    return pathspec.GitIgnoreSpec.from_lines(_spec_lines(path))


def _ignored(specs: dict[str, list[pathspec.PathSpec]], relative: str, is_dir: bool) -> bool:
    """Whether the .gitignore files above the path ignore it (the nearest one decides)."""
    ignored = False
    for base, folder_specs in specs.items():
        if base == ".":
            inner = relative
        elif relative.startswith(base + "/"):
            inner = relative[len(base) + 1 :]
        else:
            continue
        for spec in folder_specs:
            result = spec.check_file(inner + "/" if is_dir else inner)
            if result.include is not None:
                ignored = result.include
    return ignored
