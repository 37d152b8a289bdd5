// The txgearman dashboard: polls the server's JSON API and shows it.
// Every name from the server is set as text (never as HTML): function
// names and client ids are whatever bytes their peers chose.
"use strict";

// Script errors are kept on the page as well as in the console, so that a
// test (and a person without developer tools) can see them.
function noteError(message) {
  const errors = document.body ? document.body.dataset.errors : undefined;
  if (document.body) document.body.dataset.errors = errors ? `${errors}\n${message}` : message;
}
window.addEventListener("error", (event) => noteError(`${event.message} (${event.filename}:${event.lineno})`));
window.addEventListener("unhandledrejection", (event) => noteError(String(event.reason)));

const HISTORY = 150;        // samples kept for the sparklines
const MAX_ROWS = 2000;      // rows drawn at once; the filter narrows the rest
const NUMERIC = ["jobs", "running", "waiting", "workers", "high", "normal", "low", "oldestAge"];

const params = new URLSearchParams(location.search);
const state = {
  filter: params.get("filter") || "",
  sort: params.get("sort") || "name",
  descending: params.get("order") ? params.get("order") === "desc" : params.get("sort") !== null && params.get("sort") !== "name",
  interval: Math.max(500, Number(params.get("interval")) || 2000),
  rows: new Map(),          // function name -> {tr, cells, values}
  order: "",                // the drawn order, to redraw only when it changes
  history: {waiting: [], running: [], workers: []},
};

function byId(id) { return document.getElementById(id); }

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function saveState() {
  const query = new URLSearchParams();
  if (state.filter) query.set("filter", state.filter);
  if (state.sort !== "name") query.set("sort", state.sort);
  if (state.descending !== (state.sort !== "name")) query.set("order", state.descending ? "desc" : "asc");
  if (params.has("interval")) query.set("interval", String(state.interval));
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

function flatten(f) {
  return {
    name: f.name, jobs: f.jobs, running: f.running, waiting: f.waiting, workers: f.workers,
    high: f.queued.high, normal: f.queued.normal, low: f.queued.low,
    oldestAge: f.oldestAge === null || f.oldestAge === undefined ? 0 : f.oldestAge,
  };
}

function rowFor(name) {
  let row = state.rows.get(name);
  if (row) return row;
  const tr = document.createElement("tr");
  const cells = {};
  for (const key of ["name", ...NUMERIC]) {
    const td = document.createElement("td");
    if (key !== "name") td.className = "n";
    tr.appendChild(td);
    cells[key] = td;
  }
  tr.dataset.function = name;
  row = {tr, cells, values: null};
  state.rows.set(name, row);
  return row;
}

function compare(a, b) {
  const key = state.sort;
  let result;
  if (key === "name") result = a.values.name < b.values.name ? -1 : a.values.name > b.values.name ? 1 : 0;
  else result = a.values[key] - b.values[key] || (a.values.name < b.values.name ? -1 : 1);
  return state.descending ? -result : result;
}

function drawFunctions() {
  const needle = state.filter.toLowerCase();
  const shown = [];
  for (const row of state.rows.values()) {
    if (!needle || row.values.name.toLowerCase().includes(needle)) shown.push(row);
  }
  shown.sort(compare);
  const drawn = shown.slice(0, MAX_ROWS);
  const order = drawn.map((row) => row.values.name).join("\u0000");
  if (order !== state.order) {
    const body = document.querySelector("#functions tbody");
    const fragment = document.createDocumentFragment();
    for (const row of drawn) fragment.appendChild(row.tr);
    body.replaceChildren(fragment);
    state.order = order;
  }
  const total = state.rows.size;
  let count = shown.length === total ? `${total}` : `${shown.length} of ${total}`;
  if (shown.length > MAX_ROWS) count += `, first ${MAX_ROWS} shown`;
  setText(byId("function-count"), `(${count})`);
  for (const th of document.querySelectorAll("#functions th")) {
    th.classList.toggle("sorted", th.dataset.key === state.sort);
    th.classList.toggle("ascending", th.dataset.key === state.sort && !state.descending);
  }
}

function updateFunctions(functions) {
  const seen = new Set();
  for (const f of functions) {
    const values = flatten(f);
    const row = rowFor(values.name);
    seen.add(values.name);
    row.values = values;
    setText(row.cells.name, values.name);
    for (const key of NUMERIC) {
      setText(row.cells[key], key === "oldestAge" ? values[key].toFixed(1) : String(values[key]));
    }
    row.tr.classList.toggle("idle", values.jobs === 0 && values.workers === 0);
  }
  for (const name of [...state.rows.keys()]) {
    if (!seen.has(name)) {
      state.rows.get(name).tr.remove();
      state.rows.delete(name);
    }
  }
  drawFunctions();
}

function spark(id, samples) {
  const line = byId(id).querySelector("polyline");
  if (samples.length < 2) { line.setAttribute("points", ""); return; }
  const top = Math.max(1, ...samples);
  const step = 300 / (HISTORY - 1);
  const start = 300 - step * (samples.length - 1);
  const points = samples.map((v, i) => `${(start + i * step).toFixed(1)},${(39 - v / top * 38).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
}

function record(name, value) {
  const samples = state.history[name];
  samples.push(value);
  if (samples.length > HISTORY) samples.shift();
  setText(byId(`${name}-now`), `(${value} now)`);
  spark(`spark-${name}`, samples);
}

function updateServer(server) {
  setText(byId("version"), server.version);
  setText(byId("uptime"), duration(server.uptime));
  const settings = server.settings || {};
  setText(byId("store"), settings.store || settings.redis || "memory");
  const failing = server.checks.filter((check) => !check.ok);
  setText(byId("ready"), server.ready ? "yes" : `no: ${failing.map((c) => `${c.name}: ${c.detail}`).join("; ")}`);
}

function updateCounters(counters) {
  const submitted = counters.submitted;
  setText(byId("count-submitted"),
    `${submitted.foreground + submitted.background + submitted.epoch} ` +
    `(${submitted.foreground} foreground, ${submitted.background} background, ${submitted.epoch} epoch)`);
  for (const key of ["completed", "failed", "exceptions", "retried", "dropped"]) {
    setText(byId(`count-${key}`), String(counters[key]));
  }
  setText(byId("count-refused"), String(counters.errors.QUEUE_ERROR || 0));
  const c = counters.connections;
  setText(byId("count-connections"), `${c.workers + c.others} (${c.workers} worker${c.workers === 1 ? "" : "s"})`);
}

function updateWorkers(workers) {
  const body = document.querySelector("#workers tbody");
  const fragment = document.createDocumentFragment();
  const registered = workers.filter((w) => w.functions.length);
  for (const worker of registered.slice(0, MAX_ROWS)) {
    const tr = document.createElement("tr");
    for (const text of [String(worker.id), worker.host, worker.clientId, worker.functions.join(" ")]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    fragment.appendChild(tr);
  }
  body.replaceChildren(fragment);
  setText(byId("worker-count"), `(${registered.length})`);
}

function connected(ok, why) {
  const badge = byId("state");
  badge.classList.toggle("ok", ok);
  badge.classList.toggle("down", !ok);
  setText(badge, ok ? "live" : `disconnected: ${why}`);
  document.body.dataset.state = ok ? "live" : "disconnected";
}

async function getJSON(path) {
  const response = await fetch(path, {cache: "no-store"});
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

async function poll() {
  try {
    const [status, server, workers] = await Promise.all(
      [getJSON("/api/status"), getJSON("/api/server"), getJSON("/api/workers")]);
    updateFunctions(status.functions);
    updateServer(server);
    updateCounters(server.counters);
    updateWorkers(workers.workers);
    let waiting = 0, running = 0;
    for (const f of status.functions) { waiting += f.waiting; running += f.running; }
    record("waiting", waiting);
    record("running", running);
    record("workers", workers.workers.filter((w) => w.functions.length).length);
    connected(true);
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (error) {
    connected(false, error.message || String(error));
  }
  setTimeout(poll, state.interval);
}

function start() {
  const filter = byId("filter");
  filter.value = state.filter;
  filter.addEventListener("input", () => { state.filter = filter.value; saveState(); drawFunctions(); });
  for (const th of document.querySelectorAll("#functions th")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      if (state.sort === key) state.descending = !state.descending;
      else { state.sort = key; state.descending = key !== "name"; }
      saveState();
      state.order = "";
      drawFunctions();
    });
  }
  poll();
}

start();
