"""The one rule for which folders may be a project: every entry point that takes a project folder
(a workflow's `project`, `options.apply`, media paths, the tools over MCP and REST, spec-kit, the
CLI) calls `allowed_project()` and works on the folder it returns.

A project is `project.root` or a folder inside it or inside one of `project.allowed_roots`; never a
system folder (`/`, `/etc`, `/proc`, `/usr`...), a folder that holds the home folder (the home
folder itself included), or the data dir or a folder inside it. Paths are compared after
resolving symlinks, so `/proc/self`, `/private/etc` or a link to `/` are caught.
"""

from __future__ import annotations

import os
from pathlib import Path

from breakingwind.config import Settings
from breakingwind.errors import InvalidRequest, ProjectRefused

# Never a project, nor anything inside them.
SYSTEM_TREES: tuple[str, ...] = (
    "/etc", "/proc", "/sys", "/dev", "/boot", "/run", "/bin", "/sbin", "/lib", "/lib32",
    "/lib64", "/libx32", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64",
    "/usr/libexec", "/usr/include", "/usr/share", "/var/lib", "/var/log", "/var/run",
    "/var/spool", "/var/cache", "/var/db", "/private/etc", "/private/var/db", "/System",
    "/Library", "/cores", "/snap",
)  # fmt: skip
# Never a project themselves (they hold many users' or programs' folders); inside is fine.
SYSTEM_FOLDERS: tuple[str, ...] = (
    "/", "/usr", "/usr/local", "/var", "/opt", "/srv", "/mnt", "/media", "/tmp", "/var/tmp",
    "/home", "/Users", "/Volumes", "/Applications", "/private", "/private/var",
    "/private/tmp", "/nix", "/root",
)  # fmt: skip


def allowed_project(path: Path | str | None, settings: Settings, param: str = "project") -> Path:
    """The resolved project folder for `path` (None: `project.root`; relative: inside it).

    Raises `InvalidRequest` when it is not a folder, `ProjectRefused` (naming the rule and what to
    do) when it may not be a project."""
    given = settings.project.root if path is None else Path(path).expanduser()
    if not given.is_absolute():
        given = settings.project.root / given
    try:
        real = _real(given)
    except ValueError:  # a NUL byte
        raise InvalidRequest("project may not contain NUL bytes", param=param) from None
    refusal = _refusal(real, settings)
    if refusal is not None:
        raise ProjectRefused(f"project {given} is refused: {refusal}", param=param)
    if not os.path.isdir(real):
        raise InvalidRequest(f"project {given} is not a folder", param=param)
    return real


def _refusal(real: Path, settings: Settings) -> str | None:
    home = _real(Path.home())
    if home.is_relative_to(real):
        return "it is the home folder, or holds it; name the project folder itself"
    for tree in SYSTEM_TREES:
        if real.is_relative_to(tree) or real.is_relative_to(_real(Path(tree))):
            return f"it is inside the system folder {tree}"
    if real in {Path(p) for p in SYSTEM_FOLDERS} | {_real(Path(p)) for p in SYSTEM_FOLDERS}:
        return "it is a system folder"
    data = _real(settings.storage.data_dir)
    if real.is_relative_to(data) or real == data:
        return "it is BreakingWind's data dir (storage.data_dir) or inside it"
    roots = [_real(settings.project.root), *(_real(p) for p in settings.project.allowed_roots)]
    if not any(real.is_relative_to(root) for root in roots):
        return (
            "it is neither project.root nor inside project.allowed_roots; add it (or a folder"
            " above it) to project.allowed_roots in config.toml"
        )
    return None


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except OSError:  # a magic link it may not follow (/proc/1/root): judge the path as written
        return Path(os.path.normpath(path))


def allowing(settings: Settings, folder: Path) -> Settings:
    """`settings` with `folder` added to `project.allowed_roots`: for a harness of our own (eval,
    the pipeline bench) whose projects are scratch copies it made there."""
    project = settings.project.model_copy(
        update={"allowed_roots": [*settings.project.allowed_roots, folder]}
    )
    return settings.model_copy(update={"project": project})
