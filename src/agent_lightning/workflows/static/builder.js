// The visual workflow builder: a palette from GET /workflows/components, nodes dragged onto an SVG canvas,
// ports connected by dragging, configuration in the side panel, save (errors shown on their nodes), run with
// live node statuses from /ws/events, and export to Python. Plain ES module; no build step, nothing fetched
// from outside the platform.

const TOKEN_KEY = "alp.workflows.token";
const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 180, NODE_H = 64;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  catalogue: null, types: {},
  nodes: [], edges: [],
  selected: null,                 // {kind: "node"|"edge", id}
  workflowId: null, version: null, dirty: false,
  errors: [],
  runId: null, statuses: {}, socket: null, poller: null,
};

const $ = (id) => document.getElementById(id);

// -- HTTP -------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) { super(error?.message || `HTTP ${status}`); this.status = status; this.error = error || {}; }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) showLogin("Your session has ended; log in again.");
    throw new ApiError(response.status, data.error);
  }
  return data;
}

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = `status ${kind}`;
}

// -- login (only when the platform has authentication on) ---------------------------------------------------

function showLogin(message = "") {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const token = await api("/auth/token", { method: "POST",
      body: { username: form.get("username"), password: form.get("password") } });
    state.token = token.access_token;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("login").hidden = true;
    await start();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", () => showLogin());

// -- the palette ------------------------------------------------------------------------------------------

function renderPalette() {
  const list = $("palette");
  list.replaceChildren();
  for (const component of state.catalogue.components) {
    const item = document.createElement("li");
    item.draggable = true;
    item.dataset.type = component.type;
    item.title = component.description;
    item.innerHTML = `<span></span><small></small>`;
    item.firstChild.textContent = component.title;
    item.lastChild.textContent = component.category;
    item.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("text/plain", component.type);
      event.dataTransfer.effectAllowed = "copy";
    });
    item.addEventListener("dblclick", () => addNode(component.type, 40 + 30 * state.nodes.length, 40 + 30 * state.nodes.length));
    list.append(item);
  }
}

function canvasPoint(clientX, clientY) {
  const box = $("canvas").getBoundingClientRect();
  return { x: clientX - box.left, y: clientY - box.top };
}

$("canvas").addEventListener("dragover", (event) => { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; });
$("canvas").addEventListener("drop", (event) => {
  event.preventDefault();
  const type = event.dataTransfer.getData("text/plain");
  if (!state.types[type]) return;
  const point = canvasPoint(event.clientX, event.clientY);
  addNode(type, point.x - NODE_W / 2, point.y - NODE_H / 2);
});

const DEFAULTS = {
  input: () => ({ fields: [{ name: "topic", type: "string", required: true }] }),
  agent_task: () => ({ prompt: "" }),
  condition: () => ({ expression: "" }),
  transform: () => ({ template: "" }),
  output: () => ({}),
};

function addNode(type, x, y) {
  let n = 1;
  while (state.nodes.some((node) => node.id === `${type}_${n}`)) n += 1;
  const node = { id: `${type}_${n}`, type, label: "", config: DEFAULTS[type](), position: { x: Math.max(0, Math.round(x)), y: Math.max(0, Math.round(y)) } };
  state.nodes.push(node);
  changed();
  select("node", node.id);
}

// -- the canvas -------------------------------------------------------------------------------------------

function el(name, attrs = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, value);
  if (parent) parent.append(element);
  return element;
}

function portPosition(node, direction, portName) {
  const ports = state.types[node.type]?.[direction === "in" ? "inputs" : "outputs"] || [];
  const index = Math.max(0, ports.findIndex((p) => p.name === portName));
  const step = NODE_H / (ports.length + 1);
  return { x: node.position.x + (direction === "in" ? 0 : NODE_W), y: node.position.y + step * (index + 1) };
}

function problemsOf(kind, id) {
  return state.errors.filter((e) => (kind === "node" ? e.node_id === id || (e.node_ids || []).includes(id) : e.edge_id === id));
}

function render() {
  const layer = $("nodes");
  layer.replaceChildren();
  for (const node of state.nodes) {
    const component = state.types[node.type];
    const status = state.statuses[node.id];
    const problems = problemsOf("node", node.id);
    const classes = ["node"];
    if (state.selected?.kind === "node" && state.selected.id === node.id) classes.push("selected");
    if (problems.length) classes.push("invalid");
    if (status) classes.push(`status-${status}`);
    const group = el("g", { class: classes.join(" "), transform: `translate(${node.position.x},${node.position.y})`,
                            "data-node-id": node.id, "data-testid": `node-${node.id}`, "data-status": status || "" }, layer);
    const rect = el("rect", { width: NODE_W, height: NODE_H }, group);
    if (problems.length) el("title", {}, rect).textContent = problems.map((p) => p.message).join("\n");
    el("text", { x: 12, y: 22, class: "title" }, group).textContent = node.label || node.id;
    el("text", { x: 12, y: 40, class: "kind" }, group).textContent = component ? component.title : `unknown: ${node.type}`;
    if (status) el("text", { x: 12, y: 56, class: "state" }, group).textContent = status;
    group.addEventListener("pointerdown", (event) => startMove(event, node));
    for (const direction of ["in", "out"]) {
      const ports = component ? component[direction === "in" ? "inputs" : "outputs"] : [];
      for (const port of ports) {
        const at = portPosition(node, direction, port.name);
        const circle = el("circle", { class: "port", r: 7, cx: at.x - node.position.x, cy: at.y - node.position.y,
          "data-node": node.id, "data-port": port.name, "data-dir": direction,
          "data-testid": `port-${node.id}-${direction}-${port.name}` }, group);
        el("title", {}, circle).textContent = `${port.name} (${port.type})`;
        if (direction === "out") circle.addEventListener("pointerdown", (event) => startConnect(event, node, port.name));
        if (ports.length > 1 || direction === "out" && node.type === "condition") {
          const label = el("text", { class: "port-label", x: at.x - node.position.x + (direction === "in" ? 10 : -10),
            y: at.y - node.position.y - 8, "text-anchor": direction === "in" ? "start" : "end" }, group);
          label.textContent = port.name;
        }
      }
    }
  }
  renderEdges();
  renderPanel();
}

function edgePath(edge) {
  const source = state.nodes.find((n) => n.id === edge.source);
  const target = state.nodes.find((n) => n.id === edge.target);
  if (!source || !target) return null;
  const a = portPosition(source, "out", edge.source_port);
  const b = portPosition(target, "in", edge.target_port);
  const bend = Math.max(40, Math.abs(b.x - a.x) / 2);
  return `M ${a.x} ${a.y} C ${a.x + bend} ${a.y}, ${b.x - bend} ${b.y}, ${b.x - 6} ${b.y}`;
}

function renderEdges() {
  const layer = $("edges");
  layer.replaceChildren();
  for (const edge of state.edges) {
    const d = edgePath(edge);
    if (!d) continue;
    const classes = ["edge"];
    if (state.selected?.kind === "edge" && state.selected.id === edge.id) classes.push("selected");
    if (problemsOf("edge", edge.id).length) classes.push("invalid");
    const path = el("path", { d, class: classes.join(" "), "data-edge-id": edge.id }, layer);
    path.addEventListener("pointerdown", (event) => { event.stopPropagation(); select("edge", edge.id); });
  }
}

function startMove(event, node) {
  if (event.target.classList.contains("port")) return;
  event.preventDefault();
  select("node", node.id);
  const origin = { x: event.clientX, y: event.clientY, nx: node.position.x, ny: node.position.y };
  let moved = false;
  const move = (e) => {
    node.position.x = Math.max(0, Math.round(origin.nx + e.clientX - origin.x));
    node.position.y = Math.max(0, Math.round(origin.ny + e.clientY - origin.y));
    moved = true;
    const group = document.querySelector(`[data-node-id="${CSS.escape(node.id)}"]`);
    if (group) group.setAttribute("transform", `translate(${node.position.x},${node.position.y})`);
    renderEdges();
  };
  const up = () => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    if (moved) state.dirty = true;
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
}

function startConnect(event, node, portName) {
  event.preventDefault();
  event.stopPropagation();
  const draft = $("draft-edge");
  const from = portPosition(node, "out", portName);
  const move = (e) => {
    const to = canvasPoint(e.clientX, e.clientY);
    draft.setAttribute("d", `M ${from.x} ${from.y} L ${to.x} ${to.y}`);
    draft.hidden = false;
  };
  const up = (e) => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    draft.hidden = true;
    const target = document.elementFromPoint(e.clientX, e.clientY)?.closest?.('.port[data-dir="in"]');
    if (!target || target.dataset.node === node.id) return;
    connect(node.id, portName, target.dataset.node, target.dataset.port);
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
}

function connect(source, sourcePort, target, targetPort) {
  const id = `${source}.${sourcePort}->${target}`;
  if (state.edges.some((e) => e.id === id)) return;
  state.edges.push({ id, source, source_port: sourcePort, target, target_port: targetPort });
  changed();
}

function select(kind, id) {
  state.selected = kind ? { kind, id } : null;
  render();
}

$("canvas").addEventListener("pointerdown", (event) => { if (event.target.id === "canvas") select(null); });

function changed() {
  state.dirty = true;
  state.statuses = {};
  render();
}

function removeSelected() {
  if (!state.selected) return;
  if (state.selected.kind === "node") {
    const id = state.selected.id;
    state.nodes = state.nodes.filter((n) => n.id !== id);
    state.edges = state.edges.filter((e) => e.source !== id && e.target !== id);
  } else {
    state.edges = state.edges.filter((e) => e.id !== state.selected.id);
  }
  state.selected = null;
  changed();
}

$("delete-node").addEventListener("click", removeSelected);
$("delete-edge").addEventListener("click", removeSelected);
document.addEventListener("keydown", (event) => {
  if ((event.key === "Delete" || event.key === "Backspace") && !event.target.closest("input, textarea, select")) removeSelected();
});

// -- the side panel ---------------------------------------------------------------------------------------

function schemaKind(prop) {
  if (prop.type) return prop.type === "array" ? `array:${prop.items?.type || "object"}` : prop.type;
  const options = (prop.anyOf || []).filter((o) => o.type !== "null");
  return options.length ? schemaKind(options[0]) : "string";
}

function field(form, labelText, control) {
  const label = document.createElement("label");
  label.textContent = labelText;
  label.append(control);
  form.append(label);
  return control;
}

function renderPanel() {
  const node = state.selected?.kind === "node" ? state.nodes.find((n) => n.id === state.selected.id) : null;
  const edge = state.selected?.kind === "edge" ? state.edges.find((e) => e.id === state.selected.id) : null;
  $("node-section").hidden = !node;
  $("edge-section").hidden = !edge;
  if (edge) $("edge-title").textContent = `${edge.source}.${edge.source_port} → ${edge.target}.${edge.target_port}`;
  if (node && $("node-form").dataset.node !== node.id) renderNodeForm(node);
  if (!node) $("node-form").dataset.node = "";
  const errors = $("errors");
  errors.replaceChildren();
  for (const problem of state.errors) {
    const item = document.createElement("li");
    const where = problem.node_id || problem.edge_id || (problem.node_ids || []).join(", ");
    item.textContent = where ? `${where}: ${problem.message}` : problem.message;
    errors.append(item);
  }
  $("errors-section").hidden = state.errors.length === 0;
  renderRunForm();
}

function renderNodeForm(node) {
  const form = $("node-form");
  form.dataset.node = node.id;
  form.replaceChildren();
  $("node-title").textContent = `${node.id} · ${node.type}`;
  const label = field(form, "Label", document.createElement("input"));
  label.name = "label";
  label.value = node.label;
  label.addEventListener("input", () => { node.label = label.value; state.dirty = true; renderCanvasOnly(); });
  const component = state.types[node.type];
  if (!component) return;
  const schema = component.config_schema;
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const kind = schemaKind(prop);
    const title = prop.title || name;
    let control;
    if (node.type === "input" && name === "fields") {
      control = field(form, "Inputs (comma-separated names)", document.createElement("input"));
      control.value = (node.config.fields || []).map((f) => f.name).join(", ");
      control.addEventListener("change", () => {
        const old = Object.fromEntries((node.config.fields || []).map((f) => [f.name, f]));
        node.config.fields = control.value.split(",").map((s) => s.trim()).filter(Boolean)
          .map((n) => old[n] || { name: n, type: "string", required: true });
        changed();
      });
    } else if (component.template_fields.includes(name)) {
      control = field(form, `${title} (template: {{ inputs.… }}, {{ nodes.….output }})`, document.createElement("textarea"));
      control.value = node.config[name] ?? "";
      control.addEventListener("input", () => { setConfig(node, name, control.value || null, true); });
    } else if (kind === "integer" || kind === "number") {
      control = field(form, title, document.createElement("input"));
      control.type = "number";
      control.value = node.config[name] ?? "";
      control.addEventListener("input", () => setConfig(node, name, control.value === "" ? null : Number(control.value)));
    } else if (kind.startsWith("array")) {
      control = field(form, `${title} (comma-separated)`, document.createElement("input"));
      control.value = (node.config[name] || []).join(", ");
      control.addEventListener("input", () => setConfig(node, name, control.value.split(",").map((s) => s.trim()).filter(Boolean)));
    } else {
      control = field(form, title, document.createElement("input"));
      control.value = node.config[name] ?? "";
      control.addEventListener("input", () => setConfig(node, name, control.value || null));
    }
    control.name = name;
    if (prop.description) control.title = prop.description;
  }
}

function setConfig(node, name, value, keepEmpty = false) {
  if (value === null || (Array.isArray(value) && value.length === 0)) {
    if (keepEmpty && name in DEFAULTS[node.type]()) node.config[name] = "";
    else delete node.config[name];
  } else node.config[name] = value;
  state.dirty = true;
}

function renderCanvasOnly() {
  const form = $("node-form");
  const focused = document.activeElement;
  render();
  if (focused && form.contains(focused)) focused.focus();
}

function inputFields() {
  return state.nodes.filter((n) => n.type === "input").flatMap((n) => n.config.fields || []);
}

function renderRunForm() {
  const form = $("run-form");
  const names = inputFields().map((f) => f.name);
  if (form.dataset.names === names.join(",")) return;
  const values = Object.fromEntries([...form.querySelectorAll("input")].map((i) => [i.name, i.value]));
  form.dataset.names = names.join(",");
  form.replaceChildren();
  for (const name of names) {
    const input = field(form, name, document.createElement("input"));
    input.name = name;
    input.value = values[name] ?? "";
  }
  if (!names.length) {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "No inputs: add an Inputs node to ask for some.";
    form.append(note);
  }
}

// -- save, open, run, export ------------------------------------------------------------------------------

function payload() {
  return { name: $("workflow-name").value.trim() || "Untitled workflow", description: "",
           graph: { nodes: state.nodes, edges: state.edges } };
}

async function save() {
  try {
    const body = payload();
    const saved = state.workflowId
      ? await api(`/workflows/${state.workflowId}`, { method: "PUT", body })
      : await api("/workflows", { method: "POST", body });
    state.workflowId = saved.id;
    state.version = saved.version;
    state.errors = [];
    state.dirty = false;
    $("workflow-version").textContent = `v${saved.version}`;
    render();
    await refreshList();
    setStatus(`Saved version ${saved.version}.`, "ok");
    return true;
  } catch (error) {
    state.errors = error.error?.details?.errors || [];
    if (!state.errors.length && error.error?.details) {
      state.errors = [].concat(error.error.details).map((d) => ({ message: `${(d.loc || []).join(".")}: ${d.msg}` }));
    }
    setStatus(error.message, "bad");
    render();
    return false;
  }
}

async function refreshList() {
  const list = await api("/workflows");
  const select = $("workflow-list");
  select.replaceChildren(new Option("New workflow", ""));
  for (const item of list.items) select.append(new Option(`${item.name} (v${item.latest_version})`, item.id));
  select.value = state.workflowId || "";
}

async function open(workflowId) {
  closeRun();
  state.errors = [];
  state.statuses = {};
  state.selected = null;
  $("export-section").hidden = true;
  $("run-result").replaceChildren();
  if (!workflowId) {
    Object.assign(state, { workflowId: null, version: null, nodes: [], edges: [], dirty: false });
    $("workflow-name").value = "Untitled workflow";
    $("workflow-version").textContent = "";
  } else {
    const workflow = await api(`/workflows/${workflowId}`);
    Object.assign(state, { workflowId: workflow.id, version: workflow.version, nodes: workflow.graph.nodes,
                           edges: workflow.graph.edges, dirty: false });
    $("workflow-name").value = workflow.name;
    $("workflow-version").textContent = `v${workflow.version}`;
  }
  render();
}

function closeRun() {
  if (state.socket) state.socket.close();
  if (state.poller) clearInterval(state.poller);
  state.socket = null;
  state.poller = null;
}

function connectEvents() {
  return new Promise((resolve) => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ types: "workflow.*" });
    if (state.token) query.set("token", state.token);
    const socket = new WebSocket(`${scheme}://${location.host}/ws/events?${query}`);
    state.socket = socket;
    socket.addEventListener("open", () => resolve(socket));
    socket.addEventListener("error", () => resolve(null));  // the poller still follows the run
    socket.addEventListener("message", (message) => onEvent(JSON.parse(message.data)));
  });
}

function onEvent(event) {
  if (!state.runId || event.data?.run_id !== state.runId) return;
  if (event.type === "workflow.node.started") state.statuses[event.data.node_id] = "running";
  if (event.type === "workflow.node.finished") state.statuses[event.data.node_id] = event.data.status;
  if (event.type === "workflow.run.finished") refreshRun();
  renderCanvasOnly();
}

async function refreshRun() {
  if (!state.runId) return;
  const run = await api(`/workflows/runs/${state.runId}`);
  for (const node of run.nodes) if (node.status !== "pending") state.statuses[node.node_id] = node.status;
  const result = $("run-result");
  result.replaceChildren();
  const head = document.createElement("p");
  head.dataset.testid = "run-status";
  head.dataset.status = run.status;
  head.textContent = `Run ${run.status}` + (run.error ? `: ${run.error}` : "");
  head.className = run.status === "succeeded" ? "status ok" : run.status === "failed" ? "status bad" : "status";
  result.append(head);
  if (Object.keys(run.outputs).length) {
    const list = document.createElement("dl");
    list.className = "outputs";
    for (const [name, value] of Object.entries(run.outputs)) {
      const dt = document.createElement("dt"); dt.textContent = name;
      const dd = document.createElement("dd"); dd.textContent = typeof value === "string" ? value : JSON.stringify(value);
      list.append(dt, dd);
    }
    result.append(list);
  }
  if (["succeeded", "failed", "cancelled"].includes(run.status)) {
    closeRun();
    setStatus(`Run ${run.status}.`, run.status === "succeeded" ? "ok" : "bad");
  }
  renderCanvasOnly();
}

async function run() {
  if ((state.dirty || !state.workflowId) && !(await save())) return;
  closeRun();
  state.statuses = Object.fromEntries(state.nodes.map((n) => [n.id, "pending"]));
  render();
  const inputs = Object.fromEntries([...$("run-form").querySelectorAll("input")].map((i) => [i.name, i.value]));
  await connectEvents();
  try {
    const accepted = await api(`/workflows/${state.workflowId}/runs`, { method: "POST", body: { inputs } });
    state.runId = accepted.run_id;
    setStatus(`Running ${accepted.run_id.slice(0, 8)}…`);
    state.poller = setInterval(() => refreshRun().catch(() => {}), 2000);  // in case an event was missed
  } catch (error) {
    closeRun();
    state.statuses = {};
    state.errors = error.error?.details?.errors || [];
    setStatus(error.message, "bad");
    render();
  }
}

async function exportCode() {
  if ((state.dirty || !state.workflowId) && !(await save())) return;
  const exported = await api(`/workflows/${state.workflowId}/export?language=python`);
  $("export-code").textContent = exported.code;
  const link = $("export-download");
  link.href = URL.createObjectURL(new Blob([exported.code], { type: "text/x-python" }));
  link.download = exported.filename;
  $("export-section").hidden = false;
}

$("save").addEventListener("click", save);
$("run").addEventListener("click", run);
$("export").addEventListener("click", () => exportCode().catch((e) => setStatus(e.message, "bad")));
$("workflow-list").addEventListener("change", (event) => open(event.target.value).catch((e) => setStatus(e.message, "bad")));
$("workflow-name").addEventListener("input", () => { state.dirty = true; });

// -- start ------------------------------------------------------------------------------------------------

async function start() {
  try {
    state.catalogue = await api("/workflows/components");
  } catch (error) {
    if (error.status !== 401) setStatus(error.message, "bad");
    return;
  }
  state.types = Object.fromEntries(state.catalogue.components.map((c) => [c.type, c]));
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !state.token;
  renderPalette();
  await refreshList();
  render();
}

start();
