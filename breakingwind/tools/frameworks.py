"""Which frameworks a project uses, from its manifests and its imports (a table, not branches)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

# dependency or import name -> framework shown to the user
KNOWN: dict[str, str] = {
    "pytest": "pytest", "django": "Django", "flask": "Flask", "fastapi": "FastAPI",
    "starlette": "Starlette", "pydantic": "pydantic", "sqlalchemy": "SQLAlchemy",
    "numpy": "NumPy", "pandas": "pandas", "torch": "PyTorch", "click": "Click",
    "typer": "Typer", "aiohttp": "aiohttp", "celery": "Celery", "hypothesis": "Hypothesis",
    "react": "React", "vue": "Vue", "svelte": "Svelte", "next": "Next.js",
    "@angular/core": "Angular", "express": "Express", "fastify": "Fastify", "jest": "Jest",
    "mocha": "Mocha", "vitest": "Vitest", "typescript": "TypeScript", "vite": "Vite",
    "github.com/gin-gonic/gin": "Gin", "github.com/labstack/echo/v4": "Echo",
    "github.com/stretchr/testify": "testify", "tokio": "Tokio", "actix-web": "Actix Web",
    "axum": "Axum", "serde": "Serde", "rocket": "Rocket", "clap": "clap",
}  # fmt: skip
# manifest file -> the ecosystem it declares
MANIFESTS: dict[str, str] = {
    "pyproject.toml": "python", "setup.py": "python", "requirements.txt": "python",
    "package.json": "node", "go.mod": "go", "Cargo.toml": "rust",
}  # fmt: skip


class Framework(BaseModel):
    name: str
    evidence: list[str] = Field(description="Where it was seen: a manifest or 'imports'.")


def detect_frameworks(root: Path, imported: Iterable[str]) -> list[Framework]:
    """Frameworks named by the root's manifests or imported by the code."""
    found: dict[str, set[str]] = {}
    for manifest in MANIFESTS:
        path = root / manifest
        if path.is_file():
            for name in _dependencies(path):
                if name in KNOWN:
                    found.setdefault(KNOWN[name], set()).add(manifest)
    for module in imported:
        top = module.split(".")[0]
        if top in KNOWN and not module.startswith("."):
            found.setdefault(KNOWN[top], set()).add("imports")
    if (root / "conftest.py").is_file() or (root / "pytest.ini").is_file():
        found.setdefault("pytest", set()).add("pytest config")
    return [Framework(name=name, evidence=sorted(found[name])) for name in sorted(found)]


def ecosystems(root: Path) -> list[str]:
    """The ecosystems whose manifest is at the root (python, node, go, rust)."""
    return sorted({kind for name, kind in MANIFESTS.items() if (root / name).is_file()})


def _dependencies(path: Path) -> set[str]:
    try:
        text = path.read_text(errors="replace")
        reader = _READERS.get(path.name, _requirement_names)
        return reader(text)
    except (OSError, ValueError, tomllib.TOMLDecodeError):
        return set()


def _requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)", line)
        if match and not line.lstrip().startswith(("#", "-")):
            names.add(match.group(1).lower().replace("_", "-"))
    return names


def _pyproject_names(text: str) -> set[str]:
    data = tomllib.loads(text)
    project = data.get("project", {})
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    names = _requirement_names("\n".join(requirements))
    tool = data.get("tool", {})
    names |= {name.lower() for name in tool.get("poetry", {}).get("dependencies", {})}
    if "pytest" in tool:
        names.add("pytest")
    return names


def _package_json_names(text: str) -> set[str]:
    data = json.loads(text)
    names: set[str] = set()
    for key in ("dependencies", "devDependencies", "peerDependencies"):
        names |= set(data.get(key, {}))
    return names


def _go_mod_names(text: str) -> set[str]:
    return set(re.findall(r"^\s*(?:require\s+)?([a-z0-9.\-]+\.[a-z]+/[^\s]+)\s+v", text, re.M))


def _cargo_names(text: str) -> set[str]:
    data = tomllib.loads(text)
    names: set[str] = set()
    for key in ("dependencies", "dev-dependencies"):
        names |= set(data.get(key, {}))
    return names


_READERS = {
    "pyproject.toml": _pyproject_names,
    "package.json": _package_json_names,
    "go.mod": _go_mod_names,
    "Cargo.toml": _cargo_names,
}
