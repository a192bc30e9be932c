// The BreakingWind dashboard. Uses only the public APIs (/api, /v1, /health, /metrics).
// Everything a model wrote is untrusted: it is put on the page with textContent / text nodes,
// never as HTML. Streams are read with fetch (so the API key travels as a header) and resumed
// with Last-Event-ID when the connection drops.

const KEY_STORAGE = "breakingwind.apiKey";
const TERMINAL_EVENTS = new Set(["completed", "failed", "cancelled"]);
const TERMINAL_STAGES = new Set(["complete", "failed", "cancelled"]);

const $ = (id) => document.getElementById(id);

/** An element with text children (strings become text nodes, never markup). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace `node`'s children, skipping the absent ones (null, undefined, false). */
function fill(node, ...children) {
  node.replaceChildren(...children.filter((child) => child !== null && child !== undefined && child !== false));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function formatBytes(n) {
  if (!n) return "–";
  const gib = n / 1024 ** 3;
  return gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(0)} MiB`;
}

function formatSeconds(s) {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 90) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// --- API --------------------------------------------------------------------------------

function authHeaders(extra = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders(headers), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const payload = await response.json();
      message = payload.error?.message || message;
    } catch {
      /* not JSON */
    }
    if (response.status === 401) showBanner("This daemon needs an API key: enter it at the top right.");
    throw new ApiError(message, response.status);
  }
  return response;
}

/** Server-sent events of a fetch response: {id, event, data} per block; comments skipped.
 * Aborting `signal` closes the connection (the task itself goes on). */
async function* readSse(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  signal?.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = { id: null, event: "message", data: [] };
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "id") event.id = text;
          else if (field === "event") event.event = text;
          else if (field === "data") event.data.push(text);
        }
        if (event.data.length) yield { ...event, data: event.data.join("\n") };
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** Follow a task's events to the end, reconnecting with Last-Event-ID after a drop. */
class TaskFollower {
  constructor(taskId, onEvent, onConnection) {
    this.taskId = taskId;
    this.onEvent = onEvent;
    this.onConnection = onConnection;
    this.lastId = 0;
    this.controller = new AbortController();
  }

  stop() {
    this.controller.abort();
  }

  async run(firstResponse = null) {
    let response = firstResponse;
    let delay = 500;
    let finished = false;
    while (!finished && !this.controller.signal.aborted) {
      try {
        response ??= await api(`/api/task/${encodeURIComponent(this.taskId)}/events`, {
          headers: { "Last-Event-ID": String(this.lastId) },
          signal: this.controller.signal,
        });
        this.onConnection("live");
        for await (const message of readSse(response, this.controller.signal)) {
          if (this.controller.signal.aborted) return; // a newer view owns the page now
          const id = Number(message.id);
          if (id <= this.lastId) continue; // never apply an event twice
          this.lastId = id;
          delay = 500;
          const data = JSON.parse(message.data);
          this.onEvent(data);
          if (TERMINAL_EVENTS.has(data.type)) finished = true;
        }
        response = null;
      } catch (error) {
        if (this.controller.signal.aborted) return;
        if (error instanceof ApiError && error.status < 500) {
          this.onConnection(`error: ${error.message}`);
          return;
        }
        response = null;
      }
      if (!finished && !this.controller.signal.aborted) {
        this.onConnection(`reconnecting after event ${this.lastId}…`);
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
    if (finished) this.onConnection("finished");
  }
}

// --- banner and API key -------------------------------------------------------------------

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

function setupKeyForm() {
  const input = $("api-key");
  input.value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    showBanner("");
    route();
  });
}

// --- views and routing ---------------------------------------------------------------------

const VIEWS = ["models", "tasks", "task", "new", "chat"];
let leaveView = () => {};

function route() {
  leaveView();
  leaveView = () => {};
  const [name, arg] = (location.hash.slice(1) || "models").split("/");
  const view = VIEWS.includes(name) ? name : "models";
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  const navName = view === "task" ? "tasks" : view;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === navName) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const enter = { models: enterModels, tasks: enterTasks, task: enterTask, new: enterNew, chat: enterChat };
  const leave = enter[view](arg ? decodeURIComponent(arg) : null);
  leaveView = typeof leave === "function" ? leave : () => {};
}

/** Call `fn` now and every `ms` until the returned stop function is called. */
function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) showBanner(`Cannot reach the daemon: ${error.message}`);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// --- Models ---------------------------------------------------------------------------------

function parseMetrics(text) {
  const values = {};
  for (const line of text.split("\n")) {
    const match = /^(breakingwind_model_\w+)\{agent="([^"]+)"\}\s+(\S+)$/.exec(line);
    if (match) (values[match[2]] ??= {})[match[1]] = Number(match[3]);
  }
  return values;
}

async function refreshModels() {
  const response = await fetch("/health", { headers: authHeaders() });
  const health = await response.json();
  let metrics = {};
  try {
    metrics = parseMetrics(await (await api("/metrics")).text());
  } catch {
    /* /metrics needs the key when one is set; /health does not */
  }
  const status = $("health-status");
  status.textContent = health.status;
  status.className = `pill state-${health.status}`;
  const rows = Object.entries(health.agents).map(([agent, info]) => {
    const load = info.load;
    const rate = metrics[agent]?.breakingwind_model_decode_tokens_per_second;
    const memory = load ? `${formatBytes(load.weights_bytes)} + KV ${formatBytes(load.kv_cache_bytes)}` : "–";
    return el(
      "tr",
      { dataset: { agent } },
      el("th", { scope: "row" }, agent),
      el("td", {}, el("span", { class: `pill state-${info.state}` }, info.state), info.error ? el("div", { class: "error small" }, info.error) : null),
      el("td", { class: "path" }, info.model_file.split("/").pop(), info.embedded_default ? el("span", { class: "muted small" }, " (embedded default)") : null),
      el("td", {}, load ? load.backend : "–"),
      el("td", {}, memory),
      el("td", {}, load ? String(load.n_ctx) : "–"),
      el("td", { class: "num" }, rate ? rate.toFixed(1) : "–"),
      el("td", { class: "num" }, String(info.queue_depth)),
      el("td", {}, info.busy ? "generating" : "idle"),
    );
  });
  $("models-body").replaceChildren(...rows);
}

function enterModels() {
  return poll(refreshModels, 2000);
}

// --- Task list --------------------------------------------------------------------------------

async function refreshTasks() {
  const { tasks } = await (await api("/api/tasks?limit=100")).json();
  $("tasks-empty").hidden = tasks.length > 0;
  const rows = tasks.map((task) => {
    const outcome = TERMINAL_STAGES.has(task.stage) ? task.error || task.stage : "running";
    return el(
      "tr",
      {},
      el("td", {}, el("a", { href: `#task/${encodeURIComponent(task.task_id)}` }, task.input || task.task_id), el("div", { class: "muted small path" }, task.project)),
      el("td", {}, el("span", { class: `pill stage-${task.stage}` }, task.stage)),
      el("td", {}, age(task.created_at)),
      el("td", { class: TERMINAL_STAGES.has(task.stage) && task.stage !== "complete" ? "error" : "" }, outcome),
    );
  });
  $("tasks-body").replaceChildren(...rows);
}

function enterTasks() {
  return poll(refreshTasks, 3000);
}

// --- Task view ----------------------------------------------------------------------------------

/** What the task view shows, built from the task's events. */
class TaskView {
  constructor(taskId) {
    this.taskId = taskId;
    this.segments = []; // {stage, cycle, escalation, start, end}
    this.streams = new Map(); // agent -> <pre>
    this.finished = false;
    this.applied = false;
    this.stage = "";
    this.clear();
  }

  clear() {
    $("task-id").textContent = this.taskId;
    for (const id of ["timeline", "cycles", "tools", "streams", "reviews", "escalations", "outcome"]) $(id).replaceChildren();
    $("plan").replaceChildren(el("p", { class: "muted" }, "No plan yet."));
    $("tests").replaceChildren(el("p", { class: "muted" }, "Not run yet."));
    $("diff").replaceChildren(el("span", { class: "muted" }, "No diff yet."));
    $("task-input").textContent = "";
    this.setStage("…");
  }

  setStage(stage) {
    this.stage = stage;
    const pill = $("task-stage");
    pill.textContent = stage;
    pill.className = `pill stage-${stage}`;
    $("cancel-btn").disabled = this.finished;
    $("apply-btn").disabled = !(stage === "complete" && !this.applied);
  }

  handle(event) {
    const at = event.at ? Date.parse(event.at) : Date.now();
    const handler = this[`on_${event.type}`];
    if (handler) handler.call(this, event, at);
    if (TERMINAL_EVENTS.has(event.type)) {
      this.closeSegment(at);
      this.finished = true;
      this.setStage({ completed: "complete", failed: "failed", cancelled: "cancelled" }[event.type]);
    }
    this.renderTimeline();
  }

  closeSegment(at) {
    const open = this.segments.at(-1);
    if (open && open.end === null) open.end = at;
  }

  on_task_created(event) {
    $("task-input").textContent = event.input;
  }

  on_stage_started(event, at) {
    this.closeSegment(at);
    this.segments.push({ stage: event.stage, cycle: event.cycle, escalation: event.escalation, start: at, end: null });
    this.setStage(event.stage);
    this.currentLabel = segmentLabel(this.segments.at(-1));
  }

  on_resumed(event) {
    this.streamFor("pipeline").append(`\n[resumed at ${event.stage}]\n`);
  }

  on_token(event) {
    const pre = this.labelledStream(event.agent);
    pre.append(event.text);
    pre.scrollTop = pre.scrollHeight;
  }

  // A model starts reading its prompt: with a big prompt, the wait before its first token.
  on_prefill(event) {
    const pre = this.labelledStream(event.agent);
    const newline = pre.textContent && !pre.textContent.endsWith("\n") ? "\n" : "";
    pre.append(el("span", { class: "marker" }, `${newline}(reading ${event.prompt_tokens.toLocaleString("en")} tokens…)\n`));
    pre.scrollTop = pre.scrollHeight;
  }

  labelledStream(agent) {
    const pre = this.streamFor(agent);
    if (pre.dataset.label !== this.currentLabel) {
      pre.dataset.label = this.currentLabel;
      pre.append(el("span", { class: "marker" }, `${pre.childNodes.length ? "\n" : ""}── ${this.currentLabel} ──\n`));
    }
    return pre;
  }

  streamFor(agent) {
    if (!this.streams.has(agent)) {
      const pre = el("pre", { class: "stream", tabindex: "0", "aria-label": `${agent} output` });
      $("streams").append(el("details", { open: "", dataset: { agent } }, el("summary", {}, agent), pre));
      this.streams.set(agent, pre);
    }
    return this.streams.get(agent);
  }

  on_tool_call(event) {
    $("tools").append(
      el(
        "li",
        { class: event.ok ? "" : "failed" },
        el("strong", {}, `${event.agent} → ${event.name}`),
        " ",
        el("code", {}, JSON.stringify(event.arguments)),
        el("div", { class: "small muted" }, event.ok ? "" : "failed: ", event.summary),
      ),
    );
  }

  on_plan(event) {
    const plan = event.plan;
    const context = plan.codebase_context || {};
    fill(
      $("plan"),
      event.escalation ? el("p", { class: "warn" }, "New plan after escalation") : null,
      el(
        "ol",
        {},
        (plan.task_breakdown || []).map((step) =>
          el("li", {}, step.description, " ", el("span", { class: "muted small" }, `(${step.priority}, ${step.estimated_complexity})`)),
        ),
      ),
      context.relevant_files?.length ? el("p", { class: "small" }, "Files: ", context.relevant_files.join(", ")) : null,
      context.architecture_notes ? el("p", { class: "small muted" }, context.architecture_notes) : null,
    );
  }

  async on_diff(event) {
    if (!event.applied) {
      $("reviews").append(el("div", { class: "box rejected" }, el("strong", {}, `Iteration ${event.iteration}: the diff did not apply`), el("p", { class: "small" }, event.error)));
      return;
    }
    try {
      const state = await (await api(`/api/task/${encodeURIComponent(this.taskId)}`)).json();
      const iteration = state.code_iterations.at(-1);
      if (iteration && !this.finalDiff && activeTask?.view === this) renderDiff(iteration.diff, `iteration ${event.iteration}`);
    } catch {
      /* the final diff arrives with the completion event anyway */
    }
  }

  on_test_results(event) {
    const green = event.failed === 0 && event.errors === 0 && !event.timed_out;
    fill(
      $("tests"),
      el(
        "p",
        { class: green ? "ok" : "error" },
        `${event.runner}: ${event.passed} passed, ${event.failed} failed, ${event.errors} errors, ${event.skipped} skipped`,
        event.timed_out ? " (timed out)" : "",
        event.coverage_percent !== null && event.coverage_percent !== undefined ? ` · coverage ${event.coverage_percent.toFixed(0)}%` : "",
      ),
      event.failures?.length ? el("ul", { class: "small" }, event.failures.map((f) => el("li", {}, el("code", {}, f)))) : null,
    );
  }

  on_review(event) {
    const status = event.review_status;
    $("reviews").append(
      el(
        "div",
        { class: `box ${status === "approved" ? "approved" : "rejected"}` },
        el("strong", {}, `Review: ${status}`),
        list("Issues", event.issues_found),
        list("Recommendations", event.recommendations),
        event.next_iteration ? el("p", { class: "small" }, "Next: ", event.next_iteration) : null,
      ),
    );
  }

  on_escalated(event) {
    $("escalations").append(el("div", { class: "box warn" }, el("strong", {}, "Escalated to the planner: "), event.reason, list("Issues", event.issues)));
  }

  on_completed(event) {
    this.showReport(event.report, "Completed");
  }

  on_failed(event) {
    $("outcome").append(el("p", { class: "error" }, `Failed: ${event.error}`));
    if (event.report) this.showReport(event.report, "Report");
  }

  on_cancelled(event) {
    $("outcome").append(el("p", { class: "warn" }, `Cancelled during ${event.stage}.`));
  }

  showReport(report, title) {
    this.finalDiff = true;
    this.applied = report.applied_to_project;
    renderDiff(report.diff, "final");
    $("outcome").append(
      el("div", { class: "box" }, el("strong", {}, title), el("p", {}, report.summary), list("Open issues", report.open_issues), report.applied_to_project ? el("p", { class: "ok" }, "Applied to the project.") : null),
    );
  }

  renderTimeline() {
    const now = Date.now();
    const duration = (s) => ((s.end ?? now) - s.start) / 1000;
    const bars = (items) => {
      const longest = Math.max(0.001, ...items.map((i) => i.seconds));
      return items.map((item) => {
        const bar = el("span", { class: `bar stage-${item.stage}` });
        bar.style.width = `${Math.max(1, (100 * item.seconds) / longest)}%`;
        return el(
          "li",
          { class: item.running ? "running" : "" },
          el("span", { class: "label" }, item.label),
          el("span", { class: "track", "aria-hidden": "true" }, bar),
          el("span", { class: "time" }, formatSeconds(item.seconds), item.running ? " …" : ""),
        );
      });
    };
    $("timeline").replaceChildren(
      ...bars(this.segments.map((s) => ({ label: segmentLabel(s), stage: s.stage, seconds: duration(s), running: s.end === null }))),
    );
    const cycles = new Map();
    for (const s of this.segments) {
      if (s.stage !== "code" && s.stage !== "review") continue;
      const label = `${s.escalation ? "after escalation, " : ""}cycle ${s.cycle}`;
      const entry = cycles.get(label) ?? { label, stage: "cycle", seconds: 0, running: false };
      entry.seconds += duration(s);
      entry.running ||= s.end === null;
      cycles.set(label, entry);
    }
    $("cycles").replaceChildren(...bars([...cycles.values()]));
  }
}

function segmentLabel(segment) {
  const cycle = segment.stage === "code" || segment.stage === "review" ? ` · cycle ${segment.cycle}` : "";
  const escalation = segment.escalation ? " · esc" : "";
  return `${segment.stage}${cycle}${escalation}`;
}

function list(title, items) {
  if (!items?.length) return null;
  return el("div", { class: "small" }, `${title}:`, el("ul", {}, items.map((item) => el("li", {}, item))));
}

/** The diff, one span per line, classed by kind; text only (no markup from the diff). */
function renderDiff(diff, label) {
  const pre = $("diff");
  if (!diff) {
    pre.replaceChildren(el("span", { class: "muted" }, `No changes (${label}).`));
    return;
  }
  const lines = diff.replace(/\n$/, "").split("\n").map((line) => {
    let kind = "ctx";
    if (line.startsWith("diff ") || line.startsWith("--- ") || line.startsWith("+++ ") || line.startsWith("index ")) kind = "file";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    return el("span", { class: `line ${kind}` }, `${line}\n`);
  });
  pre.replaceChildren(...lines);
  pre.dataset.label = label;
}

let activeTask = null; // {view, follower}
let pendingStream = null; // {taskId, response}: the POST /api/workflow stream to read first

function enterTask(taskId) {
  if (!taskId) {
    location.hash = "#tasks";
    return null;
  }
  const view = new TaskView(taskId);
  const follower = new TaskFollower(
    taskId,
    (event) => view.handle(event),
    (text) => ($("task-conn").textContent = text),
  );
  activeTask = { view, follower };
  const first = pendingStream?.taskId === taskId ? pendingStream.response : null;
  pendingStream = null;
  api(`/api/task/${encodeURIComponent(taskId)}`)
    .then((r) => r.json())
    .then((state) => {
      $("task-input").textContent = state.user_input;
      $("task-input").title = state.project;
    })
    .catch((error) => showBanner(`Task ${taskId}: ${error.message}`));
  follower.run(first);
  const ticker = setInterval(() => view.finished || view.renderTimeline(), 1000);
  return () => {
    clearInterval(ticker);
    follower.stop();
    activeTask = null;
  };
}

function setupTaskButtons() {
  $("cancel-btn").addEventListener("click", async () => {
    if (!activeTask) return;
    try {
      await api(`/api/task/${encodeURIComponent(activeTask.view.taskId)}/cancel`, { method: "POST" });
    } catch (error) {
      showBanner(`Cancel: ${error.message}`);
    }
  });
  $("apply-btn").addEventListener("click", async () => {
    if (!activeTask) return;
    const target = $("task-input").title || "the project";
    if (!confirm(`Apply this task's diff to ${target}? This changes your files.`)) return;
    try {
      const state = await (await api(`/api/task/${encodeURIComponent(activeTask.view.taskId)}/apply`, { method: "POST" })).json();
      activeTask.view.applied = state.final_output?.applied_to_project;
      activeTask.view.setStage(activeTask.view.stage);
      $("outcome").append(el("p", { class: "ok" }, "Applied to the project."));
    } catch (error) {
      showBanner(`Apply: ${error.message}`);
    }
  });
}

// --- New task -----------------------------------------------------------------------------------

let chosenFiles = [];

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

const AUDIO_FORMATS = { "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/ogg": "ogg", "audio/flac": "flac", "audio/webm": "webm", "audio/mp4": "m4a" };

async function contentPart(file) {
  const url = await readDataUrl(file);
  if (file.type.startsWith("image/")) return { type: "image_url", image_url: { url } };
  const format = AUDIO_FORMATS[file.type] || file.name.split(".").pop().toLowerCase();
  return { type: "input_audio", input_audio: { data: url.slice(url.indexOf(",") + 1), format } };
}

function showChosenFiles() {
  $("new-files").replaceChildren(
    ...chosenFiles.map((file, index) =>
      el("li", {}, `${file.name} (${file.type || "unknown type"}, ${formatBytes(file.size)})`, " ", el("button", { type: "button", class: "link", "aria-label": `Remove ${file.name}`, onclick: () => { chosenFiles.splice(index, 1); showChosenFiles(); } }, "remove")),
    ),
  );
}

function addFiles(files) {
  for (const file of files) {
    if (file.type.startsWith("image/") || file.type.startsWith("audio/")) chosenFiles.push(file);
    else $("new-error").textContent = `${file.name}: only audio and images can be attached.`;
  }
  showChosenFiles();
}

function setupNewTask() {
  const drop = $("drop");
  $("new-file").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  $("new-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("new-error").textContent = "";
    const text = $("new-input").value.trim();
    if (!text && !chosenFiles.length) {
      $("new-error").textContent = "Describe the task, or attach a recording or a screenshot.";
      return;
    }
    const submit = $("new-submit");
    submit.disabled = true;
    try {
      const parts = await Promise.all(chosenFiles.map(contentPart));
      const input = parts.length ? [...(text ? [{ type: "text", text }] : []), ...parts] : text;
      const body = { input, options: { apply: $("new-apply").checked } };
      const project = $("new-project").value.trim();
      if (project) body.project = project;
      const response = await api("/api/workflow", { method: "POST", body });
      const taskId = response.headers.get("X-Task-Id");
      pendingStream = { taskId, response };
      chosenFiles = [];
      showChosenFiles();
      $("new-input").value = "";
      location.hash = `#task/${encodeURIComponent(taskId)}`;
    } catch (error) {
      $("new-error").textContent = error.message;
    } finally {
      submit.disabled = false;
    }
  });
}

function enterNew() {
  $("new-input").focus();
}

// --- Chat ---------------------------------------------------------------------------------------

const chat = { messages: [], controller: null, models: {} };
// Chat starts with the coder's model: talking to the pipeline starts a coding task, so it is
// chosen on purpose, and the note says which folder that task works on.
const CHAT_DEFAULT_AGENT = "coder";
const PIPELINE_MODEL = "breakingwind";

async function enterChat() {
  const select = $("chat-model");
  if (select.options.length) return;
  try {
    const { data } = await (await api("/v1/models")).json();
    chat.models = Object.fromEntries(data.map((model) => [model.id, model]));
    select.replaceChildren(...data.map((model) => el("option", { value: model.id }, model.id)));
    const coder = data.find((model) => model.agent === CHAT_DEFAULT_AGENT);
    if (coder) select.value = coder.id;
    showChatNote();
  } catch (error) {
    showBanner(`Models: ${error.message}`);
  }
}

function showChatNote() {
  const model = chat.models[$("chat-model").value];
  const note = $("chat-note");
  // /v1/models names the agent a model reaches; the pipeline's card says "breakingwind".
  const pipeline = Boolean(model && (!model.agent || model.agent === PIPELINE_MODEL));
  note.classList.toggle("warn", pipeline);
  if (!model) {
    note.textContent = "";
  } else if (!pipeline) {
    note.textContent = `A conversation with the ${model.agent}'s model; it reads and changes no file.`;
  } else {
    note.replaceChildren(
      "Each message starts a coding task (preprocess, plan, code, review) on ",
      el("code", {}, model.project),
      ": it works on a copy and changes the folder only when you apply its diff.",
    );
  }
}

function chatBubble(role, text = "") {
  const content = el("div", { class: "content" }, text);
  const item = el("li", { class: `msg ${role}` }, el("span", { class: "who" }, role), content);
  $("chat-log").append(item);
  return { item, content };
}

async function sendChat() {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || chat.controller) return;
  input.value = "";
  chat.messages.push({ role: "user", content: text });
  chatBubble("user", text);
  const { item, content } = chatBubble("assistant");
  const thinking = el("div", { class: "thinking small muted" });
  item.insertBefore(thinking, content);
  chat.controller = new AbortController();
  $("chat-send").hidden = true;
  $("chat-stop").hidden = false;
  let answer = "";
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      body: { model: $("chat-model").value, messages: chat.messages, stream: true },
      signal: chat.controller.signal,
    });
    for await (const message of readSse(response, chat.controller.signal)) {
      if (message.data === "[DONE]") break;
      const chunk = JSON.parse(message.data);
      const delta = chunk.choices?.[0]?.delta || {};
      if (delta.reasoning_content) thinking.append(delta.reasoning_content);
      if (delta.content) {
        answer += delta.content;
        content.append(delta.content);
      }
      item.scrollIntoView({ block: "end" });
    }
  } catch (error) {
    if (error.name !== "AbortError") content.append(el("span", { class: "error" }, ` [${error.message}]`));
  } finally {
    chat.messages.push({ role: "assistant", content: answer });
    chat.controller = null;
    $("chat-send").hidden = false;
    $("chat-stop").hidden = true;
  }
}

function setupChat() {
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendChat();
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendChat();
    }
  });
  $("chat-model").addEventListener("change", showChatNote);
  $("chat-stop").addEventListener("click", () => chat.controller?.abort());
  $("chat-clear").addEventListener("click", () => {
    chat.controller?.abort();
    chat.messages = [];
    $("chat-log").replaceChildren();
  });
}

// --- start ------------------------------------------------------------------------------------

setupKeyForm();
setupTaskButtons();
setupNewTask();
setupChat();
window.addEventListener("hashchange", route);
route();
