// The wall screen: authenticates with the wallboard token from the URL (no login), shows the
// chosen queues' live figures in big type with colour thresholds, reconnects by itself.

const $ = (sel) => document.querySelector(sel);
const token = new URLSearchParams(location.search).get("token");
const stats = new Map();
let board = null;
let attempt = 0;
let pingTimer = null;
let refused = false;
let clockOffset = 0;

function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(n.dataset, v);
    else n.setAttribute(k, v);
  }
  n.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return n;
}

function status(s, text) {
  $("#wb-status").dataset.status = s;
  $("#wb-status").textContent = text;
}

function refuse(message) {
  refused = true;
  clearInterval(pingTimer);
  status("refused", "Not connected");
  $("#wb-message").textContent = message;
  $("#wb-message").hidden = false;
  $("#wb-queues").replaceChildren();
}

// Higher is worse, except for the service level.
function level(figure, value) {
  const t = board?.thresholds?.[figure];
  if (!t || value === null || value === undefined) return "none";
  if (figure === "service_level") return value < t.red ? "red" : value < t.amber ? "amber" : "green";
  return value >= t.red ? "red" : value >= t.amber ? "amber" : "green";
}

const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
const secs = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)} s`);
function mmss(x) {
  const s = Math.max(0, Math.floor(x || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function figure(name, label, value, text) {
  return el("div", { class: "wb-figure", dataset: { figure: name, level: level(name, value) } }, el("b", {}, text), el("span", {}, label));
}

function render() {
  if (!board) return;
  $("#wb-queues").replaceChildren(...board.queues.map((q) => {
    const s = stats.get(q.name) || { waiting: 0, longest_wait: 0, offered: 0, answered: 0 };
    return el("section", { class: "wb-queue", dataset: { queue: q.name } },
      el("h2", {}, q.label),
      el("div", { class: "wb-figures" },
        figure("waiting", "Waiting", s.waiting, s.waiting),
        figure("longest_wait", "Longest wait", s.longest_wait, mmss(s.longest_wait)),
        figure("service_level", "Service level", s.service_level, pct(s.service_level)),
        figure("asa", "ASA", s.asa, secs(s.asa)),
        figure("abandon_rate", "Abandoned", s.abandon_rate, pct(s.abandon_rate)),
        figure("available", "Agents available", null, `${s.agents_available || 0} / ${s.agents_logged_in || 0}`),
        figure("offered", "Offered", null, s.offered),
        figure("answered", "Answered", null, s.answered),
        figure("on_call", "On call", null, s.agents_on_call || 0)));
  }));
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token, id: "wallboard" }));
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "wallboard") {
      attempt = 0;
      board = msg;
      clockOffset = msg.server_time - Date.now() / 1000;
      document.title = `unidesk · ${msg.name}`;
      $("#wb-name").textContent = msg.name;
      $("#wb-message").hidden = true;
      stats.clear();
      for (const s of msg.queue_stats || []) stats.set(s.queue, s);
      clearInterval(pingTimer);
      pingTimer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), msg.heartbeat_seconds * 1000);
      status("online", "Live");
      render();
    } else if (msg.type === "queue-stats") {
      for (const s of msg.queues) stats.set(s.queue, s);
      render();
    } else if (msg.type === "error" && msg.code === "unauthorized") {
      refuse(`This wallboard link does not work: ${msg.message}.`);
      ws.close();
    }
  };
  ws.onclose = (e) => {
    clearInterval(pingTimer);
    if (refused) return;
    if (e.code === 4401) {
      refuse(`This wallboard link does not work: ${e.reason || "the token was refused"}.`);
      return;
    }
    status("reconnecting", "Reconnecting…");
    setTimeout(connect, Math.min(10000, 500 * 2 ** attempt++));
  };
}

function tick() {
  const now = new Date(Date.now() + clockOffset * 1000);
  $("#wb-clock").textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
setInterval(tick, 1000);
tick();

if (!token) refuse("This page needs a wallboard link: /wallboard?token=… (a supervisor creates one under Wallboards).");
else connect();
