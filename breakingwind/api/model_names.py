"""Model ids, and the names clients send: which agent (or the pipeline) answers a model name.

`breakingwind` is the whole pipeline; `breakingwind-<agent>` (or the bare agent name) chats with
that agent's model. Clients that send their own names (Claude Code asks for its small model,
Codex for a GPT) are mapped by `[model_names]` in config.toml: shell-style alias patterns first,
then the default agent (the coder), unless that is switched off.
`/v1/models` lists every id with its context length, and the aliases with what they reach.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from breakingwind.config import PIPELINE_MODEL, ModelNamesSettings
from breakingwind.engine import Engine
from breakingwind.errors import ModelNotFound

OWNER = "breakingwind"
_EPOCH = datetime.fromtimestamp(0, UTC).isoformat().replace("+00:00", "Z")


def model_ids(engine: Engine) -> dict[str, str | None]:
    """Every model id we serve -> the agent it reaches (None: the whole pipeline)."""
    ids: dict[str, str | None] = {PIPELINE_MODEL: None}
    for agent in engine.agents:
        ids[f"{PIPELINE_MODEL}-{agent}"] = agent
    return ids


def agent_for_model(engine: Engine, names: ModelNamesSettings, model: str) -> str | None:
    """The agent that answers `model` (None: the pipeline); `ModelNotFound` when none does."""
    if model in engine.agents:
        return model
    ids = model_ids(engine)
    if model in ids:
        return ids[model]
    target = next(
        (target for pattern, target in names.aliases.items() if fnmatchcase(model, pattern)),
        names.default,
    )
    if target is None:
        raise ModelNotFound(
            f"model {model!r} does not exist; available: {', '.join(ids)}", param="model"
        )
    return None if target == PIPELINE_MODEL else target


def _card(engine: Engine, model_id: str, agent: str | None, **extra: Any) -> dict[str, Any]:
    # OpenAI's model object, plus Anthropic's fields (type, display_name, created_at), so both
    # SDKs' model listings read it.
    card: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": _EPOCH,
        "display_name": model_id,
        "owned_by": OWNER,
    }
    reaches = agent or "coder"  # the pipeline's window is the coder's, which sees the most
    if reaches in engine.agents:
        card["context_length"] = engine.worker(reaches).n_ctx
        card["max_model_len"] = card["context_length"]  # vLLM's name for it
    card["agent"] = agent if agent is not None else PIPELINE_MODEL
    card.update(extra)
    return card


async def list_models(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    names: ModelNamesSettings = request.app.state.settings.model_names
    project = {"project": str(request.app.state.settings.project.root)}
    data = [
        _card(engine, mid, agent, **(project if agent is None else {}))
        for mid, agent in model_ids(engine).items()
    ]
    for pattern, target in names.aliases.items():
        agent = None if target == PIPELINE_MODEL else target
        data.append(_card(engine, pattern, agent, alias=True))
    body: dict[str, Any] = {"object": "list", "data": data}
    body.update(first_id=data[0]["id"], last_id=data[-1]["id"], has_more=False)
    if names.default is not None:
        body["unknown_models_go_to"] = names.default
    return JSONResponse(body)


async def get_model(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    names: ModelNamesSettings = request.app.state.settings.model_names
    model_id = request.path_params["model_id"]
    agent = agent_for_model(engine, names, model_id)
    extra: dict[str, Any] = {"alias": model_id not in model_ids(engine)}
    if agent is None:  # the folder the pipeline's tasks work on when a request names none
        extra["project"] = str(request.app.state.settings.project.root)
    return JSONResponse(_card(engine, model_id, agent, **extra))
