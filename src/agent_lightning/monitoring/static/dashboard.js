// The Agent Lightning dashboard: one ES module, no build step, nothing fetched from elsewhere.
// Data: /monitoring/summary and /monitoring/alerts (this origin), the orchestrator's /tasks, /policy,
// /assign-task and /tasks/{id}/feedback (config.api_base), the agent registry (config.agents_base), logins
// (config.auth_base), live updates from /ws/events. In one process every base is this origin; in split mode
// (the monitoring process on its own port) they are the other services' URLs, which allow it by CORS.

const TOKEN_KEY = "alp.token";
const ROLES = ["viewer", "operator", "admin", "platform_admin"];
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const FEED_MAX = 100;
const TASKS_MAX = 50;

const state = { config: null, token: sessionStorage.getItem(TOKEN_KEY), role: "admin", tasks: new Map(),
                selected: null, sockets: [], timers: {} };

const $ = (selector) => document.querySelector(selector);
/** Replace an element's children, skipping the absent ones (null would become the text "null"). */
const fill = (selector, ...children) => $(selector).replaceChildren(...children.flat().filter((c) => c != null));

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(0)} %`);
const num = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");
const canWrite = () => ROLES.indexOf(state.role) >= ROLES.indexOf("operator");

class Unauthorized extends Error {}

/** A JSON request to `base` ("api", "agents", "auth" or this origin). Errors carry the platform's message. */
async function call(path, { method = "GET", body, base = null, form = false } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let payload;
  if (form) { payload = new URLSearchParams(body); }
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const origin = base ? state.config[`${base}_base`] : "";
  const response = await fetch(origin + path, { method, headers, body: payload });
  if (response.status === 401) throw new Unauthorized("unauthenticated");
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.error?.message || `HTTP ${response.status}`);
  return data;
}

function debounce(name, fn, ms = 400) {
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(fn, ms);
}

// -- login ------------------------------------------------------------------------------------------------

function showLogin(message = "") {
  closeSockets();
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#whoami").textContent = "";
  $("#login-error").textContent = message;
}

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const token = await call("/auth/token", { method: "POST", form: true, base: "auth",
      body: { username: form.get("username"), password: form.get("password") } });
    state.token = token.access_token;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    event.target.reset();
    await start();
  } catch (error) {
    showLogin(error instanceof Unauthorized ? "Wrong user or password." : error.message);
  }
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin();
}

// -- rendering --------------------------------------------------------------------------------------------

function renderSummary(s) {
  const tile = (label, value, id) => h("div", { class: "tile", "data-tile": id }, h("div", { class: "label" }, label),
                                       h("div", { class: "value" }, value));
  const st = s.by_status;
  $("#tiles").replaceChildren(
    tile("Tasks", s.total_tasks, "total"),
    tile("Running", st.running, "running"),
    tile("Waiting", st.assigned + st.queued, "waiting"),
    tile("In review", st.awaiting_review, "review"),
    tile("Succeeded", st.succeeded, "succeeded"),
    tile("Failed", st.failed, "failed"),
    tile("Success rate", pct(s.success_rate), "success"),
    tile("Recent success", pct(s.recent_success_rate), "recent"),
    tile("p50 / p95 s", `${num(s.latency_s.p50, 1)} / ${num(s.latency_s.p95, 1)}`, "latency"),
    tile("Done / min", num(s.throughput.per_minute, 2), "throughput"),
    tile("Cost $", num(s.total_cost_usd, 4), "cost"),
    tile("Alerts", s.alerts_firing, "alerts"),
  );
  $("#health").replaceChildren(...s.health.map((c) =>
    h("span", { class: c.ok ? "ok" : "down", title: c.detail + (c.url ? ` (${c.url})` : "") }, c.name)));
  $("#agents tbody").replaceChildren(...s.agents.map((a) => h("tr", { "data-agent": a.agent_id },
    h("td", {}, a.agent_id), h("td", {}, a.tasks), h("td", {}, a.succeeded), h("td", {}, a.failed),
    h("td", {}, pct(a.success_rate)), h("td", {}, num(a.mean_reward, 3)), h("td", {}, a.feedback),
    h("td", {}, num(a.mean_latency_s, 2)))));
  $("#models tbody").replaceChildren(...s.models.map((m) => h("tr", {},
    h("td", {}, m.model), h("td", {}, m.requests), h("td", {}, m.errors),
    h("td", {}, `${m.prompt_tokens} / ${m.completion_tokens}`), h("td", {}, num(m.cost_usd, 4)),
    h("td", {}, num(m.mean_latency_ms, 0)))));
}

function renderAlerts(list) {
  const item = (a) => h("li", { class: `${a.severity} ${a.state}`, "data-alert": a.id },
    h("span", { class: "rule" }, a.id), " ", h("span", { class: "badge" }, a.severity), h("br"),
    a.message, h("br"), h("small", { class: "note" },
      a.state === "firing" ? `since ${time(a.started_at)}` : `resolved ${time(a.resolved_at)}`));
  $("#alerts").replaceChildren(...(list.firing.length ? list.firing.map(item)
    : [h("li", { class: "resolved none" }, "No alert is firing.")]));
  $("#alerts-resolved").replaceChildren(...list.resolved.map(item));
}

function renderPolicy(p) {
  $("#policy-name").textContent = `${p.name} v${p.version}${p.default ? "" : " (switched)"}`;
  $("#policy tbody").replaceChildren(...p.agents.map((a) => h("tr", {},
    h("td", {}, a.agent_id), h("td", {}, a.decisions), h("td", {}, a.rewards), h("td", {}, num(a.mean_reward, 3)),
    h("td", {}, time(a.last_decision_at)))));
}

function renderTasks() {
  const rows = [...state.tasks.values()].sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, TASKS_MAX);
  $("#tasks tbody").replaceChildren(...rows.map((t) => h("tr", {
      "data-task": t.task_id, class: t.task_id === state.selected ? "selected" : null, onclick: () => select(t.task_id) },
    h("td", { class: "desc", title: t.description }, t.description),
    h("td", { class: `status ${t.status}`, "data-status": t.status }, t.status),
    h("td", {}, t.assigned_agent ?? "–"), h("td", {}, t.priority), h("td", {}, time(t.created_at)))));
}

/** The agent run's steps (model calls and tool calls), from the execution service's action log. */
function renderSteps(steps, taskId) {
  if (!steps?.length) return null;
  const what = (s) => s.kind === "tool" ? `${s.name}(${JSON.stringify(s.arguments ?? {}).slice(0, 120)})`
    : (s.tool_calls?.length ? `${s.name} → ${s.tool_calls.map((c) => c.function?.name).join(", ")}` : s.name);
  return h("table", { class: "table steps" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Step"), h("th", {}, "Status"), h("th", {}, "ms"),
                              h("th", {}, "Output"))),
    h("tbody", {}, steps.map((s) => h("tr", { "data-step": s.number, "data-kind": s.kind },
      h("td", {}, s.number), h("td", { class: "desc", title: what(s) }, what(s)),
      h("td", { class: `status ${s.status}` }, s.error_kind ? `${s.status} (${s.error_kind})` : s.status),
      h("td", {}, num(s.latency_ms, 0)),
      h("td", { class: "desc", title: s.output }, s.status === "awaiting_approval" && canWrite() && taskId
        ? [h("button", { type: "button", class: "plain", "data-approve": s.number, onclick: () => decide(taskId, s.number, "approve") }, "✓ Approve"),
           h("button", { type: "button", class: "plain", "data-deny": s.number, onclick: () => decide(taskId, s.number, "deny") }, "✗ Deny")]
        : (s.error ?? s.output ?? "").slice(0, 160))))));
}

/** Buttons that move a task on: approve or cancel one held for review, retry a failed or cancelled one. */
function taskActions(t) {
  if (!canWrite()) return null;
  const button = (label, action, path) => h("button", { type: "button", class: "plain", "data-action": action,
    onclick: () => act(t.task_id, path) }, label);
  if (t.status === "awaiting_review") return h("div", { class: "actions" }, button("✓ Approve", "approve", "approve"),
                                               button("✗ Cancel", "cancel", "cancel"));
  if (t.status === "failed" || t.status === "cancelled") return h("div", { class: "actions" }, button("↻ Retry", "retry", "retry"));
  return null;
}

async function act(taskId, path) {
  try { await call(`/tasks/${encodeURIComponent(taskId)}/${path}`, { method: "POST", base: "api" }); await refreshTask(taskId); }
  catch (error) { guard(error); $("#action-result") && ($("#action-result").textContent = error.message); }
}

async function decide(taskId, number, verdict) {
  await act(taskId, `steps/${number}/${verdict}`);
}

function renderDetail(t) {
  const feedback = canWrite() && FINISHED.has(t.status) && t.status !== "cancelled"
    ? h("div", { class: "feedback" }, "Was this good?",
        h("button", { type: "button", class: "plain", "data-feedback": "up", title: "Good (10/10)",
                      onclick: () => sendFeedback(t.task_id, 10) }, "▲ Good"),
        h("button", { type: "button", class: "plain", "data-feedback": "down", title: "Bad (0/10)",
                      onclick: () => sendFeedback(t.task_id, 0) }, "▼ Bad"),
        h("span", { id: "feedback-result", class: "note" }))
    : null;
  const rewards = t.rewards?.length ? h("table", { class: "table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Reward"), h("th", {}, "Source"), h("th", {}, "Agent"))),
    h("tbody", {}, t.rewards.map((r) => h("tr", { "data-reward": r.source },
      h("td", {}, num(r.reward, 3)), h("td", {}, r.source), h("td", {}, r.agent_id))))) : null;
  const attempts = t.attempts?.length ? h("table", { class: "table" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Agent"), h("th", {}, "Status"), h("th", {}, "ms"),
                              h("th", {}, "Error"))),
    h("tbody", {}, t.attempts.map((a) => h("tr", {}, h("td", {}, a.number), h("td", {}, a.agent_id),
      h("td", {}, a.status), h("td", {}, num(a.latency_ms, 0)), h("td", {}, a.error ?? ""))))) : null;
  $("#detail-body").className = "";
  fill("#detail-body",
    h("dl", { class: "kv" },
      h("dt", {}, "Task"), h("dd", {}, t.task_id),
      h("dt", {}, "Status"), h("dd", { class: `status ${t.status}`, id: "detail-status" }, t.status),
      h("dt", {}, "Agent"), h("dd", {}, `${t.assigned_agent ?? "–"}${t.confidence != null ? ` (confidence ${num(t.confidence)})` : ""}`),
      h("dt", {}, "Why"), h("dd", {}, t.reason || "–")),
    h("p", {}, t.description),
    t.result ? h("pre", { class: "result" }, t.result) : null,
    t.error ? h("p", { class: "error" }, t.error) : null,
    taskActions(t), h("span", { id: "action-result", class: "note" }), feedback, attempts, renderSteps(t.steps, t.task_id),
    rewards);
}

// -- data -------------------------------------------------------------------------------------------------

async function loadSummary() { renderSummary(await call("/monitoring/summary")); }
async function loadAlerts() { renderAlerts(await call("/monitoring/alerts")); }
async function loadPolicy() {
  try { renderPolicy(await call("/policy", { base: "api" })); }
  catch (error) { if (error instanceof Unauthorized) throw error; $("#policy-name").textContent = "unavailable"; }
}
async function loadTasks() {
  const page = await call(`/tasks?limit=${TASKS_MAX}`, { base: "api" });
  state.tasks = new Map(page.items.map((t) => [t.task_id, t]));
  renderTasks();
}
async function loadAgents() {
  let ids = [];
  try { ids = (await call("/api/v2/agents?status=active", { base: "agents" })).items.map((a) => a.id); }
  catch (error) { if (error instanceof Unauthorized) throw error; }
  const select = $("#submit-form select[name=agent_id]");
  select.replaceChildren(h("option", { value: "" }, "auto (the policy chooses)"),
                         ...ids.map((id) => h("option", { value: id }, id)));
}

async function refreshTask(taskId) {
  const task = await call(`/tasks/${encodeURIComponent(taskId)}`, { base: "api" });
  if (state.selected === task.task_id) {
    task.steps = await call(`/api/v2/actions/${encodeURIComponent(taskId)}`, { base: "agents" })
      .then((log) => log.steps).catch((error) => { if (error instanceof Unauthorized) throw error; return []; });
  }
  state.tasks.set(task.task_id, task);
  renderTasks();
  if (state.selected === task.task_id) renderDetail(task);
}

async function select(taskId) {
  state.selected = taskId;
  renderTasks();
  await refreshTask(taskId).catch(guard);
}

async function submit(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { description: form.get("description"), priority: Number(form.get("priority") || 5),
                 force_execute: form.get("force_execute") === "on" };
  if (form.get("agent_id")) body.agent_id = form.get("agent_id");
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await call("/assign-task", { method: "POST", body, base: "api" });
    $("#submit-result").textContent = `Task ${answer.task_id.slice(0, 8)}… → ${answer.assigned_agent} (${answer.status})`;
    event.target.querySelector("textarea").value = "";
    await select(answer.task_id);
  } catch (error) {
    guard(error);
    $("#submit-result").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

async function sendFeedback(taskId, score) {
  try {
    const answer = await call(`/tasks/${encodeURIComponent(taskId)}/feedback`, { method: "POST", body: { score }, base: "api" });
    await refreshTask(taskId);
    $("#feedback-result") && ($("#feedback-result").textContent = `Thanks: reward ${num(answer.reward, 2)} to ${answer.agent_id}.`);
  } catch (error) {
    guard(error);
    $("#feedback-result") && ($("#feedback-result").textContent = error.message);
  }
}

// -- live events ------------------------------------------------------------------------------------------

function closeSockets() {
  const sockets = state.sockets;
  state.sockets = [];
  sockets.forEach((socket) => socket.close());
}

/** One WebSocket to this origin; in split mode alerts come from here (monitoring publishes them) and
 * everything else from the orchestrator, whose process publishes the tasks' events. */
function connect() {
  closeSockets();
  const streams = state.config.api_base ? [["", "alert.*"], [state.config.api_base, "task.*,feedback.*,policy.*"]]
                                        : [["", "*"]];
  for (const [base, types] of streams) open(base, types);
}

function open(base, types) {
  const url = new URL("/ws/events", base || location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("types", types);
  url.searchParams.set("replay", "20");
  if (state.token) url.searchParams.set("token", state.token);
  const socket = new WebSocket(url);
  state.sockets.push(socket);
  const live = () => state.sockets.length > 0 && state.sockets.every((s) => s.readyState === WebSocket.OPEN);
  const show = () => {
    $("#live").className = live() ? "live on" : "live off";
    $("#live").textContent = live() ? "● live" : "● offline";
  };
  socket.onopen = show;
  socket.onclose = () => {
    show();
    if (state.sockets.includes(socket) && !$("#app").hidden) {
      state.sockets = state.sockets.filter((s) => s !== socket);
      setTimeout(() => open(base, types), 2000);
    }
  };
  socket.onmessage = (message) => onEvent(JSON.parse(message.data));
}

function onEvent(event) {
  const data = event.data || {};
  const feed = $("#feed");
  const what = data.task_id ? ` ${data.task_id.slice(0, 8)}…` : data.id ? ` ${data.id}` : "";
  const extra = data.agent_id ? ` ${data.agent_id}` : "";
  feed.prepend(h("li", { "data-type": event.type }, `${time(event.timestamp)} `, h("span", { class: "type" }, event.type),
                 what + extra));
  while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  if (event.type.startsWith("task.") || event.type === "feedback.received") {
    if (data.task_id) refreshTask(data.task_id).catch(guard);
    debounce("summary", () => loadSummary().catch(guard));
    debounce("policy", () => loadPolicy().catch(guard), 800);
  } else if (event.type.startsWith("alert.")) {
    loadAlerts().catch(guard);
    debounce("summary", () => loadSummary().catch(guard));
  } else if (event.type === "policy.updated") {
    debounce("policy", () => loadPolicy().catch(guard), 800);
  }
}

function guard(error) {
  if (error instanceof Unauthorized) showLogin("Your session has ended: log in again.");
  else console.warn(error);
}

// -- start ------------------------------------------------------------------------------------------------

async function whoami() {
  if (!state.config.auth_enabled) { state.role = "admin"; return; }
  const me = await call("/auth/me", { base: "auth" });
  state.role = me.role;
  $("#whoami").textContent = `${me.name} (${me.role}, ${me.tenant_id})`;
  $("#logout").hidden = false;
}

async function start() {
  try {
    await whoami();
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#submit-panel").hidden = !canWrite();
    await Promise.all([loadSummary(), loadAlerts(), loadTasks(), loadPolicy(), canWrite() ? loadAgents() : null]);
    connect();
    document.body.dataset.ready = "true";
  } catch (error) {
    if (error instanceof Unauthorized) showLogin(state.token ? "Your session has ended: log in again." : "");
    else { console.error(error); $("#login-error").textContent = error.message; }
  }
}

async function main() {
  state.config = await call("/dashboard/config");
  $("#login-form").addEventListener("submit", login);
  $("#submit-form").addEventListener("submit", submit);
  $("#logout").addEventListener("click", logout);
  setInterval(() => { if (!$("#app").hidden) { loadSummary().catch(guard); loadAlerts().catch(guard); } }, 15000);
  if (state.config.auth_enabled && !state.token) showLogin();
  else await start();
}

main();
