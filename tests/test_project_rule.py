"""The one project rule (breakingwind/projects.py) through every door that takes a project folder:
the workflow API (and its media paths), apply, the tools' registry, spec-kit and the CLI."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from breakingwind.api.app import create_app
from breakingwind.cli import main
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.errors import ProjectRefused
from breakingwind.pipeline import Pipeline
from breakingwind.projects import allowed_project
from breakingwind.store import TaskStore
from breakingwind.tasks import FinalReport, WorkflowOptions
from breakingwind.tools.registry import build_registry
from tests.conftest import LiveServer, make_settings
from tests.pipeline_fixtures import make_project

# A 1x1 PNG is not needed: the project is refused before any media path is looked at.
IMAGE_PART = {"type": "image_url", "image_url": {"url": "shadow"}}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Settings, Path, Path]:
    """project.root = tmp/project; tmp/shared is an allowed root; tmp/other is neither."""
    project = make_project(tmp_path / "project")
    (tmp_path / "shared" / "lib").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (project / "etc-link").symlink_to("/etc")
    environ = {
        "BREAKINGWIND_PROJECT_ROOT": str(project),
        "BREAKINGWIND_PROJECT__ALLOWED_ROOTS": f'["{tmp_path / "shared"}"]',
    }
    settings = make_settings(tmp_path, environ=environ)
    return settings, project, tmp_path


def refused_forms(settings: Settings, project: Path, tmp: Path) -> list[str]:
    data = settings.storage.data_dir
    data.mkdir(parents=True, exist_ok=True)
    (data / "workspaces" / "t1").mkdir(parents=True, exist_ok=True)
    return [
        "/", "/etc", "/etc/ssl", "/proc/self", "/proc/1/root", "/usr", "/usr/lib", "/var",
        "/var/lib", "/sys", "/dev", "/boot", "/tmp", "/home", "/opt", str(Path.home()), "~",
        str(Path.home().parent), str(data), str(data / "workspaces" / "t1"), str(tmp / "other"),
        str(tmp), str(project / "etc-link"), str(project / ".." / "other"), "../other",
        "//etc", "/etc/../etc/", "/./proc/self/cwd",
    ]  # fmt: skip


def test_only_the_root_and_allowed_roots_are_projects(layout: tuple) -> None:
    settings, project, tmp = layout
    assert settings.project.allowed_roots == [tmp / "shared"]
    assert allowed_project(None, settings) == project.resolve()
    assert allowed_project(project / "tests", settings) == (project / "tests").resolve()
    assert allowed_project(tmp / "shared" / "lib", settings) == (tmp / "shared" / "lib").resolve()
    refused = []
    for form in refused_forms(settings, project, tmp):
        with pytest.raises(ProjectRefused) as caught:
            allowed_project(form, settings)
        refused.append(caught.value.param)
    assert refused == ["project"] * len(refused)


def test_a_refused_root_stops_the_tools_and_the_daemon(layout: tuple) -> None:
    settings, _, _ = layout
    home = settings.model_copy(
        update={"project": settings.project.model_copy(update={"root": Path.home()})}
    )
    with pytest.raises(ProjectRefused, match="home folder"):
        build_registry(home)  # the MCP and REST tools, and create_app, are built on it
    with pytest.raises(ProjectRefused):
        create_app(home)


@pytest.fixture
def live(layout: tuple) -> Iterator[tuple[str, Settings, Path, Path]]:
    settings, project, tmp = layout
    engine = Engine(settings)  # never started: nothing here reaches a model
    with LiveServer(create_app(settings, engine)) as server:
        yield server.url, settings, project, tmp
    engine.close()


def test_workflow_refuses_every_form_of_a_forbidden_project(live: tuple) -> None:
    url, settings, project, tmp = live
    forms = refused_forms(settings, project, tmp)
    for form in forms:
        for body in (
            {"input": "list the files", "project": form},
            {"input": [{"type": "text", "text": "read this"}, IMAGE_PART], "project": form},
            {"input": "apply it", "project": form, "options": {"apply": True}},
        ):
            response = httpx.post(f"{url}/api/workflow", json=body, timeout=30)
            assert response.status_code == 403, (form, response.text)
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("project_refused", "project"), form
    assert httpx.get(f"{url}/api/tasks").json()["total"] == 0  # nothing was created
    with httpx.stream(
        "POST", f"{url}/api/workflow", json={"input": "x", "project": str(tmp / "shared" / "lib")}
    ) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("event:"))
        assert first == "event: task_created"


def test_apply_refuses_a_stored_project_outside_the_rule(layout: tuple) -> None:
    """A task recorded before the rule (or before allowed_roots was narrowed) is never applied."""
    settings, _, tmp = layout
    store = TaskStore(settings.storage.database_path)
    try:
        state = store.create("x", tmp / "other", WorkflowOptions())
        report = FinalReport(summary="done", diff="", test_results=None, open_issues=[])
        state = state.model_copy(
            update={"current_stage": "complete", "final_output": report, "base_fingerprint": "f"}
        )
        store.commit(state)
        pipeline = Pipeline(settings, Engine(settings), store)
        with pytest.raises(ProjectRefused):
            asyncio.run(pipeline.apply(state.task_id))
        assert not store.get(state.task_id).final_output.applied_to_project
    finally:
        store.close()


def test_cli_refuses_a_forbidden_project(layout: tuple) -> None:
    settings, project, tmp = layout
    config = str(settings.config_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKINGWIND_")}
    env["BREAKINGWIND_PROJECT_ROOT"] = str(project)
    for args in (
        ["run", "x", "--project", "/etc", "--local"],
        ["speckit", "specify", "x", "--project", str(tmp / "other")],
        ["speckit", "plan", "--project", "/usr"],
    ):
        result = CliRunner().invoke(main, ["--config", config, *args], env=env)
        assert result.exit_code == 2, (args, result.output)
        assert "refused" in result.output and "Traceback" not in result.output
