"""The one path check: every path a tool touches is resolved here and must stay in the project.

`Sandbox.resolve_inside_project()` is called by the registry's dispatch for every argument typed
`ProjectPath`; tools never see a path that has not passed it. The rules, each named in the
`SandboxViolation` it raises:

- `nul_byte`          the path contains a NUL byte
- `too_long`          longer than `tools.max_path_chars`, or a component over 255 bytes
- `absolute_outside`  an absolute path that is not under the project root (a sibling folder
                      sharing the root's prefix, `/proj-evil` next to `/proj`, is outside)
- `parent_escape`     a relative path whose `..` parts climb out of the root
- `symlink_escape`    the path is inside, but a symlink on the way resolves outside the root
- `special_file`      a device, FIFO or socket (only regular files and folders are served)
- `git_internals`     inside a `.git` folder (any case: macOS and Windows file systems ignore
                      it), where remotes carry tokens and hooks carry code
- `secret_file`       matches `tools.secret_patterns` (`.env*`, keys...) unless allowed; the
                      match ignores case, for the same reason

`is_secret()` is the one secret rule for what tools return, too: listings, the scratch copy the
tests run in and git_diff's output leave out every path it names.

The root itself is resolved once, so a project reached through a symlink works.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pathspec

from breakingwind.config import ToolsSettings
from breakingwind.errors import SandboxViolation, ToolInputRejected

SANDBOX_RULES: tuple[str, ...] = (
    "nul_byte",
    "too_long",
    "absolute_outside",
    "parent_escape",
    "symlink_escape",
    "special_file",
    "git_internals",
    "secret_file",
)
PathKind = Literal["file", "dir", "any"]
_MAX_COMPONENT_BYTES = 255


@dataclass(frozen=True)
class Sandbox:
    """The project root and the rules; immutable, so safe to share between threads."""

    root: Path
    secrets: pathspec.PathSpec
    allow_secrets: bool
    max_path_chars: int

    @classmethod
    def create(cls, root: Path, settings: ToolsSettings) -> Sandbox:
        """A sandbox around `root` (resolved now); the root must be an existing folder."""
        resolved = Path(os.path.realpath(root))
        if not resolved.is_dir():
            raise ToolInputRejected(f"project root {root} is not a folder")
        return cls(
            root=resolved,
            secrets=pathspec.GitIgnoreSpec.from_lines(p.lower() for p in settings.secret_patterns),
            allow_secrets=settings.allow_secrets,
            max_path_chars=settings.max_path_chars,
        )

    def resolve_inside_project(
        self,
        path: str | os.PathLike[str],
        *,
        argument: str = "path",
        kind: PathKind = "any",
        must_exist: bool = True,
    ) -> Path:
        """The absolute, symlink-free path of `path` (relative paths start at the root).

        Raises `SandboxViolation` naming the rule it breaks, or `ToolInputRejected` when the path
        is allowed but missing or of the wrong kind.
        """
        text = os.fspath(path)
        self._check_shape(text, argument)
        given = Path(text)
        lexical = Path(os.path.normpath(given if given.is_absolute() else self.root / given))
        if given.is_absolute():
            if not self._lexically_inside(lexical):
                raise SandboxViolation(
                    "absolute_outside", argument, text, "absolute path outside the project root"
                )
        elif not lexical.is_relative_to(self.root):
            raise SandboxViolation(
                "parent_escape", argument, text, "'..' climbs out of the project root"
            )
        real = Path(os.path.realpath(lexical))
        if not real.is_relative_to(self.root):
            raise SandboxViolation(
                "symlink_escape", argument, text, "a symlink resolves outside the project root"
            )
        self._check_secret(text, argument, lexical, real)
        return self._check_kind(text, argument, real, kind, must_exist)

    def contains(self, path: Path) -> bool:
        """Whether `path` (already absolute) resolves inside the root."""
        return Path(os.path.realpath(path)).is_relative_to(self.root)

    def relative(self, path: Path) -> str:
        """`path` relative to the root, POSIX style ('.' for the root itself)."""
        return Path(os.path.relpath(path, self.root)).as_posix()

    def is_secret(self, relative: str) -> bool:
        """Whether a root-relative POSIX path is never shown: inside `.git`, or a secrets file."""
        if relative in ("", "."):
            return False
        if is_git_internal(relative):
            return True
        return not self.allow_secrets and self.secrets.match_file(relative.lower())

    def _check_shape(self, text: str, argument: str) -> None:
        if "\x00" in text:
            raise SandboxViolation("nul_byte", argument, text, "paths may not contain NUL bytes")
        if not text:
            raise ToolInputRejected(f"{argument} is empty")
        if not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text):
            # a lone surrogate (JSON "\ud800") names no file on any file system
            raise ToolInputRejected(f"{argument} contains a lone UTF-16 surrogate")
        if len(text) > self.max_path_chars:
            raise SandboxViolation(
                "too_long",
                argument,
                text[:64] + "...",
                f"{len(text)} characters; the limit is {self.max_path_chars}",
            )
        longest = max(len(part.encode("utf-8", "surrogateescape")) for part in text.split("/"))
        if longest > _MAX_COMPONENT_BYTES:
            raise SandboxViolation(
                "too_long",
                argument,
                text[:64] + "...",
                f"a path component is {longest} bytes; the limit is {_MAX_COMPONENT_BYTES}",
            )

    def _lexically_inside(self, lexical: Path) -> bool:
        # An absolute path may name the root through a symlink (/tmp vs /private/tmp): resolve
        # only the part that exists above the final component to compare.
        if lexical.is_relative_to(self.root):
            return True
        return (Path(os.path.realpath(lexical.parent)) / lexical.name).is_relative_to(self.root)

    def _check_secret(self, text: str, argument: str, lexical: Path, real: Path) -> None:
        for candidate in (lexical, real):
            if not candidate.is_relative_to(self.root):
                continue
            relative = self.relative(candidate)
            if is_git_internal(relative):
                raise SandboxViolation(
                    "git_internals", argument, text, "the .git folder is never served"
                )
            if self.is_secret(relative):
                raise SandboxViolation(
                    "secret_file", argument, text, "secrets files are refused (tools.allow_secrets)"
                )

    def _check_kind(
        self, text: str, argument: str, real: Path, kind: PathKind, must_exist: bool
    ) -> Path:
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            if must_exist:
                raise ToolInputRejected(f"{argument}={text!r} does not exist") from None
            return real
        except OSError as exc:
            raise ToolInputRejected(f"{argument}={text!r} cannot be read: {exc.strerror}") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise SandboxViolation(
                "special_file", argument, text, "not a regular file or folder (device, FIFO...)"
            )
        if kind == "file" and not stat.S_ISREG(mode):
            raise ToolInputRejected(f"{argument}={text!r} is a folder, not a file")
        if kind == "dir" and not stat.S_ISDIR(mode):
            raise ToolInputRejected(f"{argument}={text!r} is a file, not a folder")
        return real


def is_git_internal(relative: str) -> bool:
    """Whether a root-relative path lies in (or is) a `.git` folder, whatever its case."""
    return any(part.casefold() == ".git" for part in relative.split("/"))
