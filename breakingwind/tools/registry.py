"""The one tool registry: agents, REST, MCP and `doctor` all read this table.

A tool is a typed function with a docstring, registered once in `build_registry()`:

    def read_file(ctx: ToolContext, path: Annotated[Path, PathArgument(kind="file")], ...)
        -> ReadFileResult

Its input schema is a pydantic model derived from the signature (every parameter after `ctx`),
its output schema is the return annotation (a pydantic model). `ToolRegistry.call()` is the one
dispatch: validate the arguments, run every `PathArgument` through the sandbox (so a tool only
ever receives resolved paths inside the project), run the tool (sync tools in a worker thread),
validate and bound the result. Errors are `SandboxViolation` or a `ToolError` subclass.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from breakingwind.config import ProjectSettings, Settings, ToolsSettings
from breakingwind.errors import InvalidToolArguments, ToolOutputTooLarge, UnknownTool
from breakingwind.tools.sandbox import PathKind, Sandbox

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PathArgument:
    """Marks a parameter (a `Path`, `Path | None` or `list[Path]`) as a project path.

    The registry resolves it through the sandbox before the tool runs.
    """

    kind: PathKind = "any"
    must_exist: bool = True


@dataclass
class ToolContext:
    """What every tool receives first: the sandbox, the settings, and per-registry caches."""

    sandbox: Sandbox
    settings: ToolsSettings
    cache_dir: Path
    _shared: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def data_dir(self) -> Path:
        """The daemon's data dir (the caches live in it): never shown to a test run."""
        return self.cache_dir.parent

    def shared(self, key: type[_T], factory: Callable[[], _T]) -> _T:
        """The one instance of `key` for this registry (a cache, a lock), made on first use."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]


class ToolHints(BaseModel):
    """Behaviour hints, published as MCP tool annotations."""

    read_only: bool = Field(description="The tool never changes the project.")
    destructive: bool = Field(description="The tool may delete or overwrite project data.")
    idempotent: bool = Field(description="Calling twice with the same arguments does no more.")
    open_world: bool = Field(description="The tool reaches outside the project (network).")


class ToolDescription(BaseModel):
    """A tool as clients see it (GET /api/mcp/tools, MCP tools/list, doctor)."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    annotations: ToolHints
    max_output_bytes: int


@dataclass(frozen=True)
class ToolSpec:
    """One registered tool."""

    name: str
    title: str
    description: str
    fn: Callable[..., Any]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    hints: ToolHints
    path_arguments: dict[str, PathArgument]
    parameters: tuple[inspect.Parameter, ...]

    def describe(self, max_output_bytes: int) -> ToolDescription:
        return ToolDescription(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_model.model_json_schema(),
            output_schema=self.output_model.model_json_schema(),
            annotations=self.hints,
            max_output_bytes=max_output_bytes,
        )


class ToolRegistry:
    """The table of tools and its dispatch. Safe to call from many tasks at once."""

    def __init__(self, context: ToolContext) -> None:
        self.context = context
        self._tools: dict[str, ToolSpec] = {}

    def register(
        self,
        fn: Callable[..., Any],
        *,
        title: str,
        read_only: bool = True,
        destructive: bool = False,
        idempotent: bool = True,
        open_world: bool = False,
    ) -> ToolSpec:
        """Register `fn` under its own name; its schemas come from its signature."""
        spec = _spec_from_function(
            fn,
            title,
            ToolHints(
                read_only=read_only,
                destructive=destructive,
                idempotent=idempotent,
                open_world=open_world,
            ),
        )
        if spec.name in self._tools:
            raise ValueError(f"tool {spec.name!r} is registered twice")
        self._tools[spec.name] = spec
        return spec

    def specs(self) -> list[ToolSpec]:
        return list(self._tools.values())

    def spec(self, name: str) -> ToolSpec:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools))
            raise UnknownTool(f"no tool named {name!r}; known tools: {known}", name) from None

    def describe(self) -> list[ToolDescription]:
        return [spec.describe(self.context.settings.max_output_bytes) for spec in self.specs()]

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None) -> BaseModel:
        """Validate, sandbox, run and bound one tool call; returns the tool's output model."""
        spec = self.spec(name)
        started = time.perf_counter()
        try:
            validated = spec.input_model.model_validate(dict(arguments or {}))
        except ValidationError as exc:
            raise InvalidToolArguments(_describe_validation(name, exc), name) from None
        kwargs = {key: getattr(validated, key) for key in spec.input_model.model_fields}
        for argument, marker in spec.path_arguments.items():
            kwargs[argument] = self._sandboxed(argument, kwargs[argument], marker)
        if inspect.iscoroutinefunction(spec.fn):
            result = await spec.fn(self.context, **kwargs)
        else:
            result = await asyncio.to_thread(spec.fn, self.context, **kwargs)
        output = spec.output_model.model_validate(result)
        size = len(output.model_dump_json())
        if size > self.context.settings.max_output_bytes:
            raise ToolOutputTooLarge(
                f"{name} returned {size} bytes; the bound is "
                f"{self.context.settings.max_output_bytes} (narrow the request)",
                name,
            )
        logger.debug("tool %s ran in %.3fs", name, time.perf_counter() - started)
        return output

    def _sandboxed(self, argument: str, value: Any, marker: PathArgument) -> Any:
        if value is None:
            return None
        resolve = self.context.sandbox.resolve_inside_project
        if isinstance(value, list):
            return [
                resolve(item, argument=argument, kind=marker.kind, must_exist=marker.must_exist)
                for item in value
            ]
        return resolve(value, argument=argument, kind=marker.kind, must_exist=marker.must_exist)


def build_registry(settings: Settings, *, check_project: bool = True) -> ToolRegistry:
    """The six tools around `settings.project.root`; caches live under the data dir. The root
    must pass `allowed_project` unless `check_project` is off (a task's own workspace)."""
    from breakingwind.projects import allowed_project
    from breakingwind.tools.analyze_codebase import analyze_codebase
    from breakingwind.tools.find_references import find_references
    from breakingwind.tools.git_diff import git_diff
    from breakingwind.tools.read_file import read_file
    from breakingwind.tools.run_tests import run_tests
    from breakingwind.tools.search_docs import search_docs

    context = ToolContext(
        sandbox=Sandbox.create(
            allowed_project(None, settings) if check_project else settings.project.root,
            settings.tools,
        ),
        settings=settings.tools,
        cache_dir=settings.storage.data_dir / "tools",
    )
    registry = ToolRegistry(context)
    registry.register(read_file, title="Read a file")
    registry.register(analyze_codebase, title="Map the codebase")
    registry.register(search_docs, title="Search the documentation")
    registry.register(find_references, title="Find definitions and references")
    registry.register(git_diff, title="Show a git diff")
    registry.register(run_tests, title="Run the tests", read_only=False, idempotent=False)
    return registry


def _spec_from_function(fn: Callable[..., Any], title: str, hints: ToolHints) -> ToolSpec:
    signature = inspect.signature(fn)
    types = get_type_hints(fn, include_extras=True)
    parameters = list(signature.parameters.values())
    if not parameters or types.get(parameters[0].name) is not ToolContext:
        raise TypeError(f"{fn.__name__}: the first parameter must be `ctx: ToolContext`")
    fields: dict[str, Any] = {}
    path_arguments: dict[str, PathArgument] = {}
    resolved: list[inspect.Parameter] = []
    for parameter in parameters[1:]:
        annotation = types[parameter.name]
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
        resolved.append(parameter.replace(annotation=annotation))
        for meta in getattr(annotation, "__metadata__", ()):
            if isinstance(meta, PathArgument):
                path_arguments[parameter.name] = meta
    output_model = types.get("return")
    if not (isinstance(output_model, type) and issubclass(output_model, BaseModel)):
        raise TypeError(f"{fn.__name__}: the return annotation must be a pydantic model")
    camel = "".join(part.title() for part in fn.__name__.split("_"))
    input_model = create_model(f"{camel}Arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return ToolSpec(
        name=fn.__name__,
        title=title,
        description=inspect.getdoc(fn) or title,
        fn=fn,
        input_model=input_model,
        output_model=output_model,
        hints=hints,
        path_arguments=path_arguments,
        parameters=tuple(resolved),
    )


def _describe_validation(name: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid arguments for {name}: " + "; ".join(problems)


class ToolRegistries:
    """One tool registry per project root: the daemon's project, each task's workspace, a
    spec-kit project. Built on first use; a task releases its workspace's when it ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_root: dict[Path, ToolRegistry] = {}

    def get(self, root: Path) -> ToolRegistry:
        """The registry whose tools work inside `root`."""
        if root not in self._by_root:
            settings = self.settings.model_copy(update={"project": ProjectSettings(root=root)})
            # Task workspaces live in the data dir: entry points check the project folders
            # they take with `allowed_project` (submit, create_app, the CLI) before this.
            self._by_root[root] = build_registry(settings, check_project=False)
        return self._by_root[root]

    def release(self, root: Path) -> None:
        """Forget `root`'s registry (its folder is going away)."""
        self._by_root.pop(root, None)

    def __len__(self) -> int:
        return len(self._by_root)
