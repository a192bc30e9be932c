"""Every sandbox rule as a concrete attack, and how each tool carries a path argument."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# tool -> (arguments without the path, the argument that carries it, whether it is a list)
PATH_ARGUMENTS: dict[str, tuple[dict[str, Any], str, bool]] = {
    "read_file": ({}, "path", False),
    "analyze_codebase": ({}, "path", False),
    "search_docs": ({"query": "wheel"}, "path", False),
    "find_references": ({"symbol": "helper"}, "path", False),
    "git_diff": ({}, "paths", True),
    "run_tests": ({}, "workspace", False),
}


def plant_attacks(project: Path) -> dict[str, list[str]]:
    """Create what the attacks need next to and inside `project`; rule -> attacking paths."""
    outside = project.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "stolen.txt").write_text("secret outside the project\n")
    evil = project.parent / (project.name + "-evil")  # shares the root's prefix
    evil.mkdir(exist_ok=True)
    (evil / "x.txt").write_text("sibling\n")
    (project / "link_out").symlink_to(outside, target_is_directory=True)
    (project / "file_link").symlink_to(outside / "stolen.txt")
    (project / "env_link.txt").symlink_to(project / ".env")
    (project / "git_link").symlink_to(project / ".git" / "config")
    os.mkfifo(project / "pipe")
    return {
        "nul_byte": ["pkg/core.py\x00.txt"],
        "too_long": ["a/" * 3000 + "b", "x" * 300],
        "absolute_outside": ["/etc/passwd", str(evil / "x.txt"), str(evil)],
        "parent_escape": ["../outside/stolen.txt", "pkg/../../outside"],
        "symlink_escape": ["link_out/stolen.txt", "file_link", "link_out"],
        "special_file": ["pipe"],
        "git_internals": [".git/config", ".GIT/config", "pkg/../.Git/HEAD", "git_link"],
        "secret_file": [
            ".env",
            ".env.production",
            "keys/id_rsa",
            "env_link.txt",
            ".ENV",
            "KEYS/ID_RSA",
        ],  # fmt: skip
    }


def attack_arguments(tool: str, path: str) -> dict[str, Any]:
    base, argument, is_list = PATH_ARGUMENTS[tool]
    return {**base, argument: [path] if is_list else path}
