"""The lock file: which model files `models pull` put on this machine, and checking them again.

`<engine.models_dir>/manifest.lock` (JSON) records, per agent, the file that was downloaded: the
Hub repository, file and commit it came from, its size and the sha256 the Hub's LFS metadata gave
for it (checked at download time). It describes this machine's disk, so it is git-ignored like the
weights themselves. `verify_models()` re-checks each file against its entry without any network:
size, sha256, and the GGUF header check that runs before llama.cpp opens a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from breakingwind.config import Settings
from breakingwind.engine.gguf_file import inspect_gguf
from breakingwind.errors import ConfigError, InvalidModelFile

LOCK_NAME = "manifest.lock"
LOCK_VERSION = 1
_HASH_CHUNK = 8 * 1024 * 1024


class LockEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Hugging Face repository id.")
    file: str = Field(description="File name inside the repository.")
    commit: str = Field(description="The repository commit the file was downloaded from.")
    path: Path = Field(description="Where the file was saved.")
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$", description="From the Hub's LFS metadata.")
    downloaded_at: datetime


class ModelLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = LOCK_VERSION
    models: dict[str, LockEntry] = Field(default_factory=dict, description="By agent name.")


class Verification(BaseModel):
    """The result of checking one agent's file."""

    agent: str
    path: Path
    ok: bool
    problems: list[str] = Field(default_factory=list)
    sha256: str | None = None
    size_bytes: int | None = None


def lock_path(settings: Settings) -> Path:
    return settings.engine.models_dir / LOCK_NAME


def load_lock(path: Path) -> ModelLock:
    """Read the lock file; a missing file is an empty lock, a broken one a `ConfigError`."""
    try:
        return ModelLock.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return ModelLock()
    except ValidationError as exc:
        problems = [(".".join(map(str, e["loc"])) or "lock", e["msg"]) for e in exc.errors()]
        raise ConfigError(problems, source=str(path)) from None


def save_lock(lock: ModelLock, path: Path) -> None:
    """Write the lock atomically (a crash leaves the old or the new file, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(lock.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)


def sha256_file(path: Path, label: str | None = None) -> str:
    """The file's sha256, with a progress bar on a terminal (huggingface_hub's tqdm, so
    HF_HUB_DISABLE_PROGRESS_BARS hides it like the download bars)."""
    from huggingface_hub.utils import tqdm

    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        path.open("rb") as handle,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=f"sha256 {label or path.name}", disable=None
        ) as bar,
    ):
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify_models(settings: Settings, agents: list[str]) -> list[Verification]:
    """Check each agent's configured file against its lock entry (see the module docstring)."""
    lock = load_lock(lock_path(settings))
    return [
        verify_file(agent, settings.model_path(agent), lock.models.get(agent)) for agent in agents
    ]


def verify_file(agent: str, path: Path, entry: LockEntry | None) -> Verification:
    """Size, sha256 and GGUF header of `path`; without a lock entry only the header is checked."""
    if not path.is_file():
        missing = (
            "file is missing: the embedded default model (SmolLM2-135M) runs this agent instead"
            f" until `breakingwind models pull {agent}` downloads it"
        )
        return Verification(agent=agent, path=path, ok=False, problems=[missing])
    problems = []
    size = path.stat().st_size
    if entry is None:
        problems.append(
            "not in the lock file, so its sha256 is unknown"
            f" (`breakingwind models pull {agent}` checks it against the Hub and records it)"
        )
    elif entry.path != path:
        problems.append(f"the lock file records {entry.path}, not this file")
        entry = None
    digest = None
    if entry is not None and size != entry.size_bytes:
        problems.append(f"size is {size} bytes, the Hub's is {entry.size_bytes}")
    elif entry is not None:
        digest = sha256_file(path, label=agent)
        if digest != entry.sha256:
            problems.append(f"sha256 is {digest}, the Hub's is {entry.sha256}")
    try:
        inspect_gguf(path)
    except InvalidModelFile as exc:
        problems.append(f"GGUF check failed: {exc}")
    return Verification(
        agent=agent,
        path=path,
        ok=not problems,
        problems=problems,
        sha256=digest,
        size_bytes=size,
    )
