"""Settings: `config.toml` plus environment overrides, validated into one pydantic object.

`load_settings()` is the only function that reads the config file or the environment. Relative
paths in the file are relative to the file's folder; relative paths in environment variables are
relative to the current directory. Environment variables:

- `BREAKINGWIND_CONFIG`        the config file (default `./config.toml` when present)
- `BREAKINGWIND_HOME`          the data dir (`storage.data_dir`, default `~/.breakingwind`)
- `BREAKINGWIND_PROJECT_ROOT`  the project the tools may touch (`project.root`)
- `BREAKINGWIND_<SECTION>__<KEY>` any other key, e.g. `BREAKINGWIND_SERVER__PORT=9000`,
  `BREAKINGWIND_CODER__N_CTX=32768`.

An unknown key, section or `BREAKINGWIND_*` variable is an error, so a typo never passes silently;
the installer's own variables (`INSTALL_VARIABLES`: `BREAKINGWIND_BACKEND`, ...) are left alone.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from breakingwind.errors import ConfigError

AGENT_NAMES: tuple[str, ...] = ("preprocessor", "planner", "coder", "reviewer")
# The full profile (models/manifest.toml); a partial agent table only overrides what it names.
AGENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "preprocessor": {"model": "gemma-2-2b-it-Q6_K.gguf", "n_ctx": 8192},
    "planner": {"model": "nvidia_Llama-3.1-Nemotron-Nano-8B-v1-Q6_K.gguf", "n_ctx": 131072},
    "coder": {"model": "Devstral-Small-2507-Q6_K.gguf", "n_ctx": 131072},
    "reviewer": {"model": "Qwen3-Coder-30B-A3B-Instruct-Q6_K.gguf", "n_ctx": 262144},
}
ENV_PREFIX = "BREAKINGWIND_"
MAX_TOOL_RESULT_BYTES = 450_000  # twice this, JSON-escaped once, stays under MCP's 1 MiB
_ENV_SHORTCUTS = {
    "BREAKINGWIND_HOME": ("storage", "data_dir"),
    "BREAKINGWIND_PROJECT_ROOT": ("project", "root"),
}
_ENV_CONFIG = "BREAKINGWIND_CONFIG"
# Read by scripts/install.sh (and breakingwind/backend_choice.py), not settings: `make run
# BREAKINGWIND_BACKEND=cuda` hands them to the daemon too.
INSTALL_VARIABLES = frozenset(
    {"BREAKINGWIND_BACKEND", "BREAKINGWIND_WHEEL_CACHE", "BREAKINGWIND_LIBCUDA"}
)


def _default_data_dir() -> Path:
    return Path("~/.breakingwind").expanduser()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="after")
    @classmethod
    def _resolve_relative_paths(cls, value: Any, info: ValidationInfo) -> Any:
        """Anchor relative paths at the config file's folder (passed in the validation context)."""
        base = (info.context or {}).get("base_dir")
        if isinstance(value, list):
            return [_anchored(item, base) if isinstance(item, Path) else item for item in value]
        return _anchored(value, base) if isinstance(value, Path) else value


def _anchored(value: Path, base: str | Path | None) -> Path:
    value = value.expanduser()
    return Path(base) / value if base is not None and not value.is_absolute() else value


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Interface to bind; keep it on loopback.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the HTTP API.")
    api_key: str | None = Field(
        None, min_length=1, description="When set, clients must send it as a Bearer token."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity of the daemon."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header names to accept besides localhost (DNS-rebinding guard).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (CORS); none by default.",
    )
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 beyond); images travel base64 in JSON.",
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) accepted; 431 beyond.",
    )
    max_headers: int = Field(100, ge=10, description="Most request headers accepted; 431 beyond.")
    header_timeout_s: float = Field(
        20.0,
        gt=0,
        description="A connection that has not sent a whole request head this long after it "
        "opened, or after its last response, is closed (idle and slow-loris clients).",
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="A request body must arrive whole within this many seconds of its head; "
        "else 408 and the connection is closed (slow-loris bodies).",
    )
    keepalive_s: float = Field(
        10.0, gt=0, description="Send an SSE comment after this many seconds of silence."
    )
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="On SIGTERM/SIGINT, how long in-flight requests may run before they are cut.",
    )
    mcp_session_idle_s: float = Field(
        900.0,
        gt=0,
        le=86400,
        description="An MCP session with no request in flight for this long is closed (its id"
        " then answers 404 and the client initializes again).",
    )
    mcp_max_sessions: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Most open MCP sessions; past it, initialize gets 503 until one expires.",
    )

    @property
    def url(self) -> str:
        """Where clients reach this server (a wildcard bind is reached over loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


class StorageSettings(_Section):
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Folder for the database, logs and caches (BREAKINGWIND_HOME).",
    )
    database: str = Field(
        "breakingwind.sqlite3", min_length=1, description="SQLite file name inside data_dir."
    )

    @property
    def database_path(self) -> Path:
        return self.data_dir / self.database


class ProjectSettings(_Section):
    root: Path = Field(
        Path("."), description="The project the tools may touch (BREAKINGWIND_PROJECT_ROOT)."
    )
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Other folders whose subfolders a task may name as its project (and apply"
        " its diff to). A system folder, the home folder itself and the data dir are refused"
        " whatever this says.",
    )


class PipelineSettings(_Section):
    max_review_cycles: int = Field(3, ge=1, le=20, description="Coder/reviewer cycles per plan.")
    cancel_chat_on_disconnect: bool = Field(
        True,
        description="Cancel the task behind a `breakingwind` chat completion when its client"
        " hangs up (false: the task runs on and stays on /api/tasks).",
    )
    stage_timeout_s: float = Field(300.0, gt=0, description="Time limit of one pipeline stage.")
    planner_max_tool_calls: int = Field(
        6, ge=0, le=50, description="Read-only tool calls the planner may make per plan."
    )
    coder_max_tool_calls: int = Field(
        4, ge=0, le=50, description="read_file calls the coder may make per iteration."
    )
    repetition_guard: bool = Field(
        True, description="Stop an agent's generation when it starts looping (fed back as error)."
    )
    keep_workspaces: bool = Field(
        False,
        description="Keep each finished task's workspace under data_dir/workspaces to inspect it"
        " (by default it is removed, git worktree included, when the task ends; the diff stays"
        " in the task for apply).",
    )


class GrammarLimits(_Section):
    """Bounds on a client's JSON schema (response_format, tool parameters) and on the grammar
    built from it. llama.cpp's grammar parser recurses once per nested repetition and overflows
    the stack (a crash, not an error) on a schema such as maxLength 100000, and huge enums or
    lengths take seconds to minutes to build: a schema over any bound is refused with a 400
    naming the bound, before anything is built."""

    max_repeat: int = Field(
        500,
        ge=1,
        le=1000,  # llama.cpp refuses grammars nested deeper than ~1000 and crashes past ~10000
        description="Largest minLength/maxLength/minItems/maxItems, and largest count in a"
        " pattern's {n,m}.",
    )
    max_pattern_expansion: int = Field(
        4096, ge=1, description="Most characters a `pattern` expands to (nested counts multiply)."
    )
    max_pattern_chars: int = Field(1000, ge=1, description="Longest `pattern` regex accepted.")
    max_enum: int = Field(512, ge=1, description="Most values in one `enum`.")
    max_properties: int = Field(256, ge=1, description="Most properties in one object schema.")
    max_depth: int = Field(32, ge=1, le=200, description="Deepest nesting of schema objects.")
    max_nodes: int = Field(4096, ge=1, description="Most schema objects in one schema.")
    max_grammar_bytes: int = Field(
        512 * 1024, ge=1024, description="Largest grammar text handed to llama.cpp."
    )
    max_grammar_nesting: int = Field(
        1024,
        ge=8,
        le=2000,  # the parser's recursion crashes the process somewhere past ~10000
        description="Deepest parenthesis nesting in a grammar handed to llama.cpp.",
    )


class EngineSettings(_Section):
    models_dir: Path = Field(Path("models"), description="Where relative model files live.")
    memory_budget_gb: float | None = Field(
        None, gt=0, description="Refuse to load models past this many GiB in total (unset: no cap)."
    )
    max_queue: int = Field(
        32, ge=1, description="Requests waiting per model before new ones get QueueFull."
    )
    parallel: int = Field(
        4,
        ge=1,
        le=256,
        description="Requests one model generates at the same time, sharing each decode"
        " (continuous batching); they share the model's n_ctx KV cells. Per agent: n_parallel.",
    )
    repetition_guard: bool = Field(
        False,
        description="Stop /v1 generations whose output starts looping (the same n-gram over and"
        " over). Pipeline agents follow pipeline.repetition_guard.",
    )
    max_tokens_limit: int = Field(
        8192,
        ge=1,
        description="Most tokens one request may generate: a larger max_tokens is cut to this"
        " (the answer ends with finish_reason 'length'), so no client holds a model for long.",
    )
    queue_wait_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="How long an API request waits for a free slot and KV room before it gets"
        " 503 with Retry-After (pipeline stages wait within their stage time limit instead).",
    )
    grammar: GrammarLimits = Field(default_factory=GrammarLimits)


PIPELINE_MODEL = "breakingwind"  # the model id of the whole pipeline


class ModelNamesSettings(_Section):
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Model names clients send (shell-style patterns such as 'claude-*haiku*')"
        " -> the agent that answers, or 'breakingwind' for the pipeline; first match wins.",
    )
    default: str | None = Field(
        "coder",
        description="The agent that answers any other model name (Claude Code and Codex send"
        " their own); unset or '' refuses unknown names with 404.",
    )

    @field_validator("aliases")
    @classmethod
    def _alias_targets_exist(cls, aliases: dict[str, str]) -> dict[str, str]:
        for pattern, target in aliases.items():
            if target not in (*AGENT_NAMES, PIPELINE_MODEL):
                raise ValueError(
                    f"{pattern!r} maps to {target!r}; use an agent"
                    f" ({', '.join(AGENT_NAMES)}) or {PIPELINE_MODEL!r}"
                )
        return aliases

    @field_validator("default")
    @classmethod
    def _default_is_an_agent(cls, default: str | None) -> str | None:
        if not default:
            return None
        if default not in (*AGENT_NAMES, PIPELINE_MODEL):
            raise ValueError(f"use an agent ({', '.join(AGENT_NAMES)}) or {PIPELINE_MODEL!r}")
        return default


class DownloadSettings(_Section):
    retries: int = Field(
        5, ge=0, le=100, description="Retries of a failed transfer (each resumes where it stopped)."
    )
    backoff_s: float = Field(
        2.0, gt=0, le=600, description="Wait before the first retry; it doubles on each retry."
    )


Backend = Literal["local", "openai"]
FlashAttention = Literal["auto"] | bool
# Keys that only mean something for one kind of backend; setting one for the other is an error.
LOCAL_ONLY_KEYS = ("n_gpu_layers", "n_batch", "chat_format", "threads", "flash_attn")
CREDENTIALS_IN_URL = "url_with_credentials"
REMOTE_ONLY_KEYS = (
    "base_url",
    "api_key_env",
    "connect_timeout_s",
    "read_timeout_s",
    "max_concurrent",
    "retries",
    "max_retry_wait_s",
    "structured_output",
)


class AgentSettings(_Section):
    backend: Backend = Field(
        "local",
        description="Where the model runs: 'local' (llama-cpp-python in this process) or 'openai'"
        " (an OpenAI-compatible server at base_url: vLLM, llama-server, Ollama, another"
        " BreakingWind). A remote agent never falls back to the embedded model.",
    )
    model: str = Field(
        min_length=1,
        description="local: the GGUF file (relative names are looked up in models_dir);"
        " openai: the model id the server serves.",
    )
    n_ctx: int = Field(
        8192,
        ge=256,
        description="Context window in tokens (openai: unset takes the server's context_length"
        " or max_model_len from /v1/models when it offers one).",
    )
    n_gpu_layers: int = Field(-1, ge=-1, description="Layers to offload; -1 = all when supported.")
    n_batch: int = Field(512, ge=1, description="Prompt tokens decoded per llama_decode call.")
    chat_format: str | None = Field(
        None, description="Override the GGUF's chat template (e.g. 'chatml', 'llama-3', 'gemma')."
    )
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(0, ge=0, description="Keep only the k likeliest tokens (0: off).")
    min_p: float = Field(
        0.0, ge=0.0, le=1.0, description="Drop tokens below min_p x the likeliest (0: off)."
    )
    repeat_penalty: float = Field(
        1.1,
        gt=0.0,
        le=2.0,
        description="Divide the logits of tokens among the last repeat_last_n generated ones"
        " (1: off). 1.1, as Ollama and llama-cpp-python's server default, stops small models"
        " from looping on a line until the length limit.",
    )
    repeat_last_n: int = Field(
        64, ge=-1, description="Generated tokens the penalties look back on (0: off, -1: all)."
    )
    frequency_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="Subtract this x a token's count so far (0: off)."
    )
    presence_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="Subtract this from every token used so far (0: off)."
    )
    max_tokens: int = Field(2048, ge=1, description="Default cap on generated tokens.")
    threads: int | None = Field(None, ge=1, description="CPU threads (unset: llama.cpp's default).")
    flash_attn: FlashAttention = Field(
        "auto",
        description="Flash attention: 'auto' turns it on wherever the build supports it for the"
        " model (GPU: faster prefill and decode at long contexts, a smaller compute buffer;"
        " CPU: other sequences' cached cells stop slowing each step); true or false force it."
        " Agents sharing a model file get the first one's.",
    )
    base_url: str | None = Field(
        None,
        description="openai: the server's API root, e.g. http://gpu-box:8000/v1 (no credentials"
        " in it: use api_key_env).",
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="openai: the NAME of the environment variable holding the API key, sent as a"
        " Bearer token (the key itself never goes in this file). Unset: no key is sent.",
    )

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if "@" in parts.netloc:
            # Not echoed back: the input holds a credential.
            raise PydanticCustomError(
                CREDENTIALS_IN_URL, "must not hold credentials; name the key in api_key_env"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("must be an http(s) URL such as http://gpu-box:8000/v1")
        return url.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _not_a_settings_variable(cls, name: str | None) -> str | None:
        if name is not None and name.startswith(ENV_PREFIX):
            raise ValueError(f"{ENV_PREFIX}* variables are settings overrides; name another one")
        return name

    connect_timeout_s: float = Field(
        5.0, gt=0, le=600, description="openai: time allowed to open a connection."
    )
    read_timeout_s: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="openai: longest silence allowed from the server (prefill of a long prompt"
        " happens before the first byte).",
    )
    max_concurrent: int = Field(
        4, ge=1, le=1024, description="openai: requests in flight at once; more wait in line."
    )
    retries: int = Field(
        2, ge=0, le=10, description="openai: retries of a request the server answers 429/503."
    )
    max_retry_wait_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="openai: longest wait between retries; a longer Retry-After fails at once.",
    )
    structured_output: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema",
        description="openai: how a JSON schema is sent: response_format json_schema (OpenAI,"
        " vLLM, llama-server, Ollama), json_object with a schema (llama-cpp-python's server), or"
        " not at all. The output is validated here either way.",
    )
    _api_key: SecretStr | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _keys_fit_the_backend(self) -> AgentSettings:
        if self.backend == "openai" and self.base_url is None:
            raise ValueError("base_url is required when backend = 'openai'")
        unused = LOCAL_ONLY_KEYS if self.is_remote else REMOTE_ONLY_KEYS
        wrong = sorted(self.model_fields_set.intersection(unused))
        if wrong:
            raise ValueError(f"{', '.join(wrong)} cannot be used with backend = {self.backend!r}")
        return self

    @property
    def is_remote(self) -> bool:
        return self.backend != "local"

    def api_key(self) -> str | None:
        """The key read from `api_key_env` by `load_settings` (never stored, logged or dumped)."""
        return self._api_key.get_secret_value() if self._api_key else None

    n_parallel: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Requests this agent's model generates together (unset: engine.parallel);"
        " agents sharing a model file get the largest.",
    )
    draft_tokens: int = Field(
        0,
        ge=0,
        le=64,
        description="Speculative decoding by prompt lookup: up to this many tokens copied from"
        " the prompt/output are verified per step (0: off). Greedy output is unchanged.",
    )
    draft_ngram: int = Field(
        3, ge=1, le=8, description="Longest n-gram matched when looking up a draft."
    )


VisionHandler = Literal[
    "mtmd",
    "llava-1-5",
    "llava-1-6",
    "moondream",
    "nanollava",
    "llama-3-vision-alpha",
    "minicpm-v-2.6",
    "qwen2.5-vl",
    "gemma4",
]


class MediaSettings(_Section):
    whisper_model: str = Field(
        "tiny.en",
        min_length=1,
        description="Whisper model: a CTranslate2 model folder (relative names are looked up in"
        " models_dir) or a faster-whisper size name (base.en, small, large-v3, ...) already in the"
        " local Hugging Face cache. Nothing is downloaded: a name that is not found falls back to"
        " the embedded tiny.en with one log line.",
    )
    whisper_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where Whisper runs (CTranslate2 device)."
    )
    whisper_compute_type: str = Field(
        "int8",
        min_length=1,
        description="CTranslate2 compute type: int8, int8_float16, float16, float32 or auto.",
    )
    whisper_threads: int = Field(0, ge=0, description="CPU threads for Whisper (0: its default).")
    beam_size: int = Field(5, ge=1, le=16, description="Whisper beam width.")
    vad: bool = Field(True, description="Skip silence with faster-whisper's bundled Silero VAD.")
    max_audio_seconds: float = Field(
        1800.0, gt=0, description="Longest audio accepted, checked from the file header first."
    )
    max_audio_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Largest audio file accepted, in bytes."
    )
    max_image_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest image file accepted, in bytes."
    )
    max_image_pixels: int = Field(
        40_000_000,
        ge=10_000,
        description="Most pixels (width x height, read from the header) an image may declare.",
    )
    ocr_threads: int | None = Field(
        None, ge=1, description="CPU threads for OCR (unset: onnxruntime's default)."
    )
    idle_unload_s: float = Field(
        600.0, ge=0, description="Unload a media model after this many idle seconds (0: never)."
    )
    vision_model: str | None = Field(
        None,
        min_length=1,
        description="GGUF of a vision language model used to describe images (with mmproj).",
    )
    mmproj: str | None = Field(
        None, min_length=1, description="The vision model's multimodal projector GGUF."
    )
    vision_chat_handler: VisionHandler = Field(
        "mtmd",
        description="llama-cpp-python multimodal handler; 'mtmd' uses the GGUF's own template.",
    )
    vision_n_ctx: int = Field(4096, ge=512, description="Context window of the vision model.")
    vision_max_tokens: int = Field(512, ge=1, description="Cap on a description's tokens.")

    @model_validator(mode="after")
    def _vision_needs_both_files(self) -> MediaSettings:
        if (self.vision_model is None) != (self.mmproj is None):
            raise ValueError("vision_model and mmproj must be set together")
        return self


DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".aws/",
    ".ssh/",
    ".gnupg/",
)


class RunTestsSettings(_Section):
    command: list[str] | None = Field(
        None,
        min_length=1,
        description="Test command as an argv list (unset: detect pytest, unittest, npm/yarn, go, "
        "cargo from the workspace).",
    )
    junit_xml: str | None = Field(
        None,
        description="Where the configured command writes JUnit XML, relative to the workspace "
        "(read for the counts; unset: counts come from the output).",
    )
    timeout_s: float = Field(
        300.0, gt=0, le=3600, description="Wall-clock limit; the whole process tree is killed."
    )
    cpu_seconds: int = Field(600, ge=1, description="CPU-time limit of each test process.")
    memory_mb: int = Field(
        4096, ge=0, description="Address-space limit of each test process in MiB (0: no limit)."
    )
    max_file_mb: int = Field(256, ge=1, description="Largest file a test process may write, MiB.")
    max_processes: int = Field(
        256, ge=1, description="Processes the run may add to the user's current count."
    )
    run_as_user: str | None = Field(
        "nobody",
        min_length=1,
        description="When the daemon runs as root, the tests run as this user (Linux, setpriv): "
        "root ignores RLIMIT_NPROC and may raise its own limits. The tests still read what root "
        "reads (the interpreter may live under /root) but write only where this user may. "
        "Unset: run as root, with no process limit.",
    )
    max_output_bytes: int = Field(
        65536, ge=1024, description="Bytes of the runner's output kept (head and tail)."
    )
    isolate_network: bool = Field(
        True,
        description="Run without network and with the project read-only (Linux namespaces via "
        "`unshare`; elsewhere tests still run in a scratch copy, and the result says so).",
    )
    coverage: bool = Field(
        True, description="Measure line coverage with coverage.py when the interpreter has it."
    )
    visible_secrets: Literal["refuse", "allow"] = Field(
        "refuse",
        description="Where no Linux mount namespace can hide the project's secrets files, .git"
        " and the data dir from the tests: refuse to run while the test user could read one"
        " (default), or run anyway.",
    )
    link_dirs: list[str] = Field(
        [".venv", "venv", "node_modules"],
        description="Workspace folders linked into the scratch copy instead of copied.",
    )
    pass_env: list[str] = Field(
        ["PATH", "LANG", "LC_ALL", "TZ"],
        description="Environment variables the test run inherits; every other one is dropped.",
    )


class ToolsSettings(_Section):
    secret_patterns: list[str] = Field(
        list(DEFAULT_SECRET_PATTERNS),
        description="gitignore-style patterns of secrets files the tools refuse to read.",
    )
    allow_secrets: bool = Field(
        False, description="Let the tools read files matching secret_patterns."
    )
    max_path_chars: int = Field(
        4096, ge=16, le=65536, description="Longest path argument accepted, in characters."
    )
    max_output_bytes: int = Field(
        400_000,
        ge=4096,
        le=MAX_TOOL_RESULT_BYTES,
        description="Largest tool result (as JSON) any tool may return; larger ones are paged or"
        " refused. MCP sends a result twice (text and structure) and its clients refuse a message"
        " over 1 MiB, hence the upper bound.",
    )
    read_max_bytes: int = Field(
        262_144, ge=1024, description="Most bytes read_file returns in one call."
    )
    max_file_bytes: int = Field(
        2_000_000, ge=1024, description="Files larger than this are listed but not parsed."
    )
    git_timeout_s: float = Field(30.0, gt=0, description="Time limit of one git command.")
    run_tests: RunTestsSettings = Field(default_factory=RunTestsSettings)


class Settings(_Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    project: ProjectSettings = Field(default_factory=ProjectSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    downloads: DownloadSettings = Field(default_factory=DownloadSettings)
    model_names: ModelNamesSettings = Field(default_factory=ModelNamesSettings)
    tools: ToolsSettings = Field(default_factory=ToolsSettings)
    preprocessor: AgentSettings = Field(
        default_factory=lambda: AgentSettings(**AGENT_DEFAULTS["preprocessor"])
    )
    planner: AgentSettings = Field(
        default_factory=lambda: AgentSettings(**AGENT_DEFAULTS["planner"])
    )
    coder: AgentSettings = Field(default_factory=lambda: AgentSettings(**AGENT_DEFAULTS["coder"]))
    reviewer: AgentSettings = Field(
        default_factory=lambda: AgentSettings(**AGENT_DEFAULTS["reviewer"])
    )
    media: MediaSettings = Field(default_factory=MediaSettings)
    config_file: Annotated[Path | None, Field(exclude=True)] = None
    # The BREAKINGWIND_* variables these settings took (path values made absolute), so that
    # `service install` can carry them into the service it writes.
    env_overrides: Annotated[dict[str, str], Field(exclude=True)] = {}

    def agents(self) -> dict[str, AgentSettings]:
        """The per-agent settings by agent name, in pipeline order."""
        return {name: getattr(self, name) for name in AGENT_NAMES}

    def model_path(self, agent: str) -> Path:
        """The configured model file of `agent` (it may not exist)."""
        return self.models_dir_path(self.agents()[agent].model)

    def in_process(self, purpose: str) -> Settings:
        """These settings with a data dir of their own, `<data_dir>/<purpose>`, for commands that
        run models in this process (`run --local`, `eval`): their tasks never enter the daemon's
        store, so a daemon start never resumes a task whose temporary project is gone."""
        storage = self.storage.model_copy(update={"data_dir": self.storage.data_dir / purpose})
        return self.model_copy(update={"storage": storage})

    def models_dir_path(self, name: str) -> Path:
        """`name` as a path: absolute as given, relative ones inside models_dir."""
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.engine.models_dir / path


def load_settings(
    config_path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the config file and the environment into a validated `Settings`.

    Raises `ConfigError` naming every bad key (dotted, or the environment variable) and what was
    expected. Nothing is started and no file is written here.
    """
    environ = os.environ if environ is None else environ
    # Absolute, so paths in the file are anchored to an absolute folder: a relative data_dir
    # would move with every subprocess's working directory (git worktrees, test runs).
    path = config_path.expanduser().resolve() if config_path else _config_path_from(environ)
    data: dict[str, Any] = _read_toml(path) if path is not None else {}
    env_data, env_sources, env_applied = _environment_overrides(environ)
    _deep_merge(data, env_data)
    _add_local_defaults(data)
    try:
        # Environment paths were made absolute already, so anchoring only affects file values.
        settings = Settings.model_validate(
            data, context={"base_dir": path.parent if path else Path.cwd()}
        )
    except ValidationError as exc:
        raise ConfigError(_problems(exc, env_sources), source=str(path or "settings")) from None
    _read_api_keys(settings, environ)
    return settings.model_copy(update={"config_file": path, "env_overrides": env_applied})


def _add_local_defaults(data: dict[str, Any]) -> None:
    """The full profile's file and context for each local agent; a remote agent names its own
    model, and its context comes from the server unless it is set."""
    for agent, defaults in AGENT_DEFAULTS.items():
        table = data.setdefault(agent, {})
        if isinstance(table, dict) and table.get("backend", "local") == "local":
            for key, value in defaults.items():
                table.setdefault(key, value)


def _read_api_keys(settings: Settings, environ: Mapping[str, str]) -> None:
    """Read each remote agent's API key from the variable its `api_key_env` names."""
    problems = []
    for name, agent in settings.agents().items():
        if agent.api_key_env is None:
            continue
        key = environ.get(agent.api_key_env)
        if not key:
            problems.append(
                (f"{name}.api_key_env", f"environment variable {agent.api_key_env} is not set")
            )
        else:
            agent._api_key = SecretStr(key)
    if problems:
        raise ConfigError(problems, source="environment")


def _config_path_from(environ: Mapping[str, str]) -> Path | None:
    if environ.get(_ENV_CONFIG):
        path = Path(environ[_ENV_CONFIG]).expanduser()
        if not path.is_file():
            raise ConfigError([(_ENV_CONFIG, f"config file {path} does not exist")], "environment")
        return path.resolve()
    default = Path("config.toml")
    return default.resolve() if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([("config", f"config file {path} does not exist")], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("config", f"not valid TOML: {exc}")], str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                (
                    "config",
                    f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
                    f" {exc.start}); save it as UTF-8",
                )
            ],
            str(path),
        ) from None
    except OSError as exc:
        raise ConfigError([("config", f"cannot be read: {exc.strerror}")], str(path)) from None


def _environment_overrides(
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str], dict[str, str]]:
    """Turn `BREAKINGWIND_*` variables into a nested dict; also return key -> variable name and
    variable name -> the value applied (paths made absolute)."""
    data: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    applied: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == _ENV_CONFIG or name in INSTALL_VARIABLES:
            continue
        if name in _ENV_SHORTCUTS:
            keys = _ENV_SHORTCUTS[name]
        elif "__" in name:
            keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        else:
            problems.append((name, "unknown variable; use BREAKINGWIND_<SECTION>__<KEY>"))
            continue
        if keys[0] not in Settings.model_fields or keys[0] in ("config_file", "env_overrides"):
            problems.append((name, f"unknown section {keys[0]!r}"))
            continue
        value: Any = _env_value(raw)
        if _is_path_field(keys) and isinstance(value, str):
            value = str(Path(value).expanduser().resolve())
        _deep_merge(data, _nest(keys, value))
        sources[keys] = name
        applied[name] = value if isinstance(value, str) else raw
    if problems:
        raise ConfigError(problems, source="environment")
    return data, sources, applied


def _env_value(raw: str) -> Any:
    """JSON for lists and tables, the raw string otherwise (pydantic converts numbers/bools)."""
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _is_path_field(keys: tuple[str, ...]) -> bool:
    model: type[BaseModel] = Settings
    for key in keys[:-1]:
        field = model.model_fields.get(key)
        if field is None or not isinstance(field.annotation, type):
            return False
        if not issubclass(field.annotation, BaseModel):
            return False
        model = field.annotation
    field = model.model_fields.get(keys[-1])
    if field is None:
        return False
    annotation = field.annotation
    if get_origin(annotation) is not None:
        return Path in get_args(annotation)
    return annotation is Path


def _nest(keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(keys):
        value = {key: value}
    return value


def _deep_merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _problems(
    exc: ValidationError, env_sources: dict[tuple[str, ...], str]
) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        dotted = ".".join(loc)
        env = env_sources.get(loc)
        label = f"{dotted} (from {env})" if env else dotted
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == CREDENTIALS_IN_URL:
            pass
        elif "input" in error and not isinstance(error["input"], dict):
            message = f"{message} (got {error['input']!r})"
        problems.append((label, message))
    return problems
