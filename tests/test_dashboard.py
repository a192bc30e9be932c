"""The dashboard end to end: Debian's chromium (never downloaded) driven by Playwright, against a
live server whose agents are scripted (or the real embedded model, for the Models view).

Screenshots of each view are written to test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from breakingwind.api.app import create_app
from breakingwind.config import AGENT_NAMES
from breakingwind.engine import Engine
from breakingwind.engine.scripted import Hang
from tests.conftest import LiveServer, make_settings, script_agents
from tests.pipeline_fixtures import (
    CALC,
    FIX_DIFF,
    NO_TOOLS,
    TASK,
    code,
    make_project,
    plan,
    review,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT_MS = 20_000
# A whole task runs the project's tests in its review stage: slow on a loaded 2-core machine.
TASK_MS = 120_000
# Records every stage the page's stage pill shows, so a test can tell live updates from a page
# that only caught up at the end.
RECORD_STAGES = """
new MutationObserver(() => {
  const pill = document.getElementById("task-stage");
  if (!pill) return;
  const seen = (window.__stages ??= []);
  if (seen.at(-1) !== pill.textContent) seen.push(pill.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

if not CHROMIUM.exists():
    pytest.skip(
        "chromium is not installed (apt-get install chromium; `make test` does it as root)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
sync_api.expect.set_options(timeout=WAIT_MS)  # its own default is 5 s, too short under load


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.add_init_script(RECORD_STAGES)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"the page raised: {errors}"


def screenshot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


class Daemon:
    """A live server whose four agents are scripted models."""

    def __init__(self, server: LiveServer, engine: Engine, project: Path) -> None:
        self.server = server
        self.project = project
        self.models = script_agents(engine)

    def script_approved_fix(self) -> None:
        # Typed input skips the preprocessor's model, so the markup rides in the planner's text.
        self.models["planner"].enqueue(f"<img src=x id=injected> {NO_TOOLS}", plan())
        self.models["coder"].enqueue(NO_TOOLS, code(FIX_DIFF))
        self.models["reviewer"].enqueue(review("approved"))


def _daemon(tmp_path: Path, extra: str = "") -> Iterator[Daemon]:
    project = make_project(tmp_path / "project")
    settings = make_settings(tmp_path, extra, {"BREAKINGWIND_PROJECT_ROOT": str(project)})
    engine = Engine(settings)
    with LiveServer(create_app(settings, engine)) as server:
        yield Daemon(server, engine, project)
    engine.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    yield from _daemon(tmp_path)


def start_task(page: object, daemon: Daemon, text: str = TASK) -> None:
    page.goto(f"{daemon.server.url}/#new")
    page.get_by_label("What should the agents do?").fill(text)
    page.get_by_label("Project folder").fill(str(daemon.project))
    page.get_by_role("button", name="Start task").click()
    page.wait_for_url("**/#task/*")


def test_models_view_shows_the_embedded_model_ready(
    engine: Engine, tmp_path: Path, page: object
) -> None:
    with LiveServer(create_app(make_settings(tmp_path), engine)) as server:
        page.goto(server.url)
        for agent in AGENT_NAMES:
            row = page.locator(f"tr[data-agent={agent}]")
            sync_api.expect(row.locator(".pill")).to_have_text("ready")
            sync_api.expect(row).to_contain_text("SmolLM2")
        sync_api.expect(page.locator("#health-status")).to_have_text("ok")
        screenshot(page, "models")


def test_new_task_runs_live_to_the_final_diff_and_applies(daemon: Daemon, page: object) -> None:
    daemon.script_approved_fix()
    page.goto(f"{daemon.server.url}/#new")
    page.get_by_label("What should the agents do?").fill(TASK)
    screenshot(page, "new-task")
    start_task(page, daemon)

    sync_api.expect(page.locator("#task-stage")).to_have_text("complete", timeout=TASK_MS)
    stages = page.evaluate("window.__stages")
    assert [s for s in stages if s in ("preprocess", "plan", "code", "review", "complete")] == [
        "preprocess",
        "plan",
        "code",
        "review",
        "complete",
    ]
    sync_api.expect(page.locator("#diff .line.add")).to_have_text("+    return a + b")
    sync_api.expect(page.locator("#diff .line.file", has_text="+++ b/calc.py")).to_have_count(1)
    sync_api.expect(page.locator("#diff .line.del")).to_have_text("-    return a - b")
    sync_api.expect(page.locator("#tests")).to_contain_text("2 passed, 0 failed")
    sync_api.expect(page.locator("#reviews")).to_contain_text("Review: approved")
    sync_api.expect(page.locator("#timeline li")).to_have_count(4)
    # Model text is shown as text, never parsed as HTML.
    sync_api.expect(page.locator("#streams")).to_contain_text("<img src=x id=injected>")
    assert page.locator("#injected").count() == 0
    screenshot(page, "task-complete")

    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Apply to project…").click()
    sync_api.expect(page.locator("#outcome")).to_contain_text("Applied to the project.")
    assert "Apply" in dialogs[0]
    assert "return a + b" in (daemon.project / "calc.py").read_text()

    page.get_by_role("link", name="Tasks").click()
    sync_api.expect(page.locator("#tasks-body tr")).to_have_count(1)
    sync_api.expect(page.locator("#tasks-body")).to_contain_text("complete")
    screenshot(page, "tasks")


def test_cancel_stops_a_running_task(daemon: Daemon, page: object) -> None:
    daemon.models["preprocessor"].enqueue("Fix add().")
    daemon.models["planner"].enqueue(NO_TOOLS, plan())
    daemon.models["coder"].enqueue(Hang())
    start_task(page, daemon)

    running = page.locator("#timeline li.running")
    sync_api.expect(running).to_contain_text("code · cycle 1")
    sync_api.expect(page.locator("#plan")).to_contain_text("Make add() return a + b")
    screenshot(page, "task-running")
    page.get_by_role("button", name="Cancel").click()

    sync_api.expect(page.locator("#task-stage")).to_have_text("cancelled")
    sync_api.expect(running).to_have_count(0)
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    sync_api.expect(page.get_by_role("button", name="Apply to project…")).to_be_disabled()
    assert (daemon.project / "calc.py").read_text() == CALC


def test_chat_streams_an_agent_models_answer(daemon: Daemon, page: object) -> None:
    daemon.models["coder"].enqueue("Use `a + b` in add().")
    page.goto(f"{daemon.server.url}/#chat")
    page.get_by_label("Model", exact=True).select_option("breakingwind-coder")
    page.get_by_label("Message").fill("How do I fix add()?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant .content")
    sync_api.expect(answer).to_have_text("Use `a + b` in add().")
    assert daemon.models["coder"].requests[0].messages[-1]["content"] == "How do I fix add()?"
    screenshot(page, "chat")


def test_task_view_says_when_a_model_reads_its_prompt(daemon: Daemon, page: object) -> None:
    daemon.script_approved_fix()
    daemon.models["planner"].prompt_tokens = 6000
    start_task(page, daemon)
    planner = page.get_by_label("planner output")
    sync_api.expect(planner).to_contain_text("(reading 6,000 tokens…)", timeout=TASK_MS)
    sync_api.expect(page.locator("#task-stage")).to_have_text("complete", timeout=TASK_MS)


def test_chat_defaults_to_the_coder_and_names_the_pipelines_folder(
    daemon: Daemon, page: object
) -> None:
    daemon.models["coder"].enqueue("Hello.")
    page.goto(f"{daemon.server.url}/#chat")
    model = page.get_by_label("Model", exact=True)
    sync_api.expect(model).to_have_value("breakingwind-coder")
    note = page.locator("#chat-note")
    sync_api.expect(note).to_contain_text("coder's model; it reads and changes no file")
    screenshot(page, "chat-default")
    page.get_by_label("Message").fill("hi")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(".msg.assistant .content")).to_have_text("Hello.")
    tasks = httpx.get(f"{daemon.server.url}/api/tasks", timeout=10).json()
    assert tasks["total"] == 0  # "hi" started no coding task

    model.select_option("breakingwind")
    sync_api.expect(note).to_contain_text(
        f"starts a coding task (preprocess, plan, code, review) on {daemon.project}"
    )
    screenshot(page, "chat-pipeline")


@pytest.fixture
def keyed_daemon(tmp_path: Path) -> Iterator[Daemon]:
    yield from _daemon(tmp_path, '[server]\napi_key = "s3cret"')


def test_the_page_asks_for_the_api_key_and_sends_it(keyed_daemon: Daemon, page: object) -> None:
    page.goto(f"{keyed_daemon.server.url}/#tasks")
    sync_api.expect(page.locator("#banner")).to_contain_text("API key")
    page.get_by_label("API key").fill("s3cret")
    page.get_by_role("button", name="Save").click()
    sync_api.expect(page.locator("#tasks-empty")).to_be_visible()
    sync_api.expect(page.locator("#banner")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('breakingwind.apiKey')") == "s3cret"


def test_task_view_resumes_with_last_event_id_after_a_drop(daemon: Daemon, page: object) -> None:
    daemon.script_approved_fix()
    response = httpx.post(f"{daemon.server.url}/api/workflow", json={"input": TASK}, timeout=60)
    task_id = response.headers["x-task-id"]
    first_three = "".join(block + "\n\n" for block in response.text.split("\n\n")[:3])
    asked_after: list[str | None] = []

    def drop_after_three_events(route: object) -> None:
        asked_after.append(route.request.headers.get("last-event-id"))
        if len(asked_after) == 1:  # the connection breaks after three events
            route.fulfill(status=200, content_type="text/event-stream", body=first_three)
        else:
            route.continue_()

    page.route("**/api/task/*/events", drop_after_three_events)
    page.goto(f"{daemon.server.url}/#task/{task_id}")
    sync_api.expect(page.locator("#task-stage")).to_have_text("complete", timeout=TASK_MS)
    assert asked_after == ["0", "3"]
    sync_api.expect(page.locator("#timeline li")).to_have_count(4)
    sync_api.expect(page.locator("#reviews .box")).to_have_count(1)
    # planner, coder, reviewer: typed text passes the preprocessor without a model call
    sync_api.expect(page.locator("#streams details")).to_have_count(3)
