// The supervisor board: every agent live, filterable, with forced state changes.

import { $, el, on, toast, session, toLogin, formatDuration, STATE_LABELS } from "./util.js";
import { HubSocket } from "./ws.js";
import { MonitorPhone, MODES } from "./monitor.js";
import { boardChat } from "./chat.js";
import { boardInstructions } from "./instructions.js";

if (!session.access) toLogin();

const hub = new HubSocket();
const agents = new Map();
const agentStats = new Map();
let reasons = [];
let queues = [];
const filter = { queue: "", state: "" };
const liveCalls = new Map();
const alerts = new Map();
const monitor = new MonitorPhone();
window.unideskMonitor = { measureRemoteTone: (lo, hi) => monitor.measureRemoteTone(lo, hi) };

function visible(a) {
  return (!filter.queue || a.queues.includes(filter.queue)) && (!filter.state || a.state === filter.state);
}

function forceOptions() {
  return [
    el("option", { value: "" }, "Set state…"),
    el("option", { value: "available" }, "Available"),
    ...reasons.map((r) => el("option", { value: `paused:${r.code}` }, `Pause: ${r.label}`)),
    el("option", { value: "logged-out" }, "Log out"),
  ];
}

function row(a) {
  const reason = reasons.find((r) => r.code === a.reason);
  return el(
    "tr",
    { dataset: { agentId: a.id, username: a.username, state: a.state } },
    el("td", { class: "name" }, a.display_name, el("small", {}, ` ${a.username}`)),
    el("td", { class: "state" }, el("span", { class: "badge", dataset: { state: a.state } }, STATE_LABELS[a.state] || a.state)),
    el("td", { class: "reason" }, a.reason ? (reason ? reason.label : a.reason) : ""),
    el("td", { class: "timer", dataset: { since: a.since } }, formatDuration(hub.now() - a.since)),
    el("td", { class: "queues" }, a.queues.join(", ")),
    el("td", { class: "answered" }, agentStats.get(a.id)?.answered ?? 0),
    el("td", { class: "missed" }, agentStats.get(a.id)?.missed ?? 0),
    el("td", { class: "talk" }, formatDuration(agentStats.get(a.id)?.talk_seconds ?? 0)),
    el("td", { class: "changed-by" }, a.changed_by || ""),
    el("td", { class: "actions" }, el("select", { class: "force", "aria-label": `Set state of ${a.username}` }, ...forceOptions()),
      ...monitorButtons(a)),
  );
}

// Listen, whisper or barge into an agent's call (with a caller); the mode in use is pressed.
function monitorButtons(a) {
  if (a.state !== "on-call" || !a.contact_id) return [];
  const mine = monitor.watching === a.contact_id;
  return [
    ...Object.entries(MODES).map(([mode, label]) => el("button", {
      type: "button", class: "monitor", dataset: { mode, contactId: a.contact_id },
      "aria-pressed": String(mine && monitor.mode === mode), "aria-label": `${label}: ${a.username}`,
    }, label)),
    ...(mine ? [el("button", { type: "button", class: "monitor-leave", dataset: { contactId: a.contact_id } }, "Leave")] : []),
  ];
}

function render() {
  const list = [...agents.values()].sort((x, y) => x.username.localeCompare(y.username));
  $("#agents tbody").replaceChildren(...list.filter(visible).map(row));
  const counts = {};
  for (const a of list) counts[a.state] = (counts[a.state] || 0) + 1;
  $("#summary").replaceChildren(
    ...Object.keys(STATE_LABELS).map((s) =>
      el("div", { class: "count", dataset: { state: s } }, el("b", {}, counts[s] || 0), STATE_LABELS[s])),
  );
}

const queueStats = new Map();
const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
const secs = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)} s`);

function renderQueues() {
  const rows = [...queueStats.values()].sort((a, b) => a.queue.localeCompare(b.queue)).map((q) => {
    const paused = Object.values(q.agents_paused || {}).reduce((a, b) => a + b, 0);
    const level = q.service_level === undefined || q.service_level === null ? "" : q.service_level >= 0.8 ? "good" : "bad";
    return el("tr", { dataset: { queue: q.queue } },
      el("td", { class: "name" }, q.queue),
      el("td", { class: "waiting" }, q.waiting),
      el("td", { class: "longest" }, formatDuration(q.longest_wait)),
      el("td", { class: "offered" }, q.offered),
      el("td", { class: "answered" }, q.answered),
      el("td", { class: "abandoned" }, q.abandoned),
      el("td", { class: "sl", dataset: { level } }, pct(q.service_level)),
      el("td", { class: "asa" }, secs(q.asa)),
      el("td", { class: "aht" }, secs(q.aht)),
      el("td", { class: "abandon-rate" }, pct(q.abandon_rate)),
      el("td", { class: "occupancy" }, pct(q.occupancy)),
      el("td", { class: "agents" }, `${q.agents_available || 0} / ${q.agents_on_call || 0} / ${q.agents_wrap_up || 0} / ${paused}`));
  });
  $("#queue-panel tbody").replaceChildren(...rows);
}

function tick() {
  const now = hub.now();
  for (const td of document.querySelectorAll("#agents td.timer")) {
    td.textContent = formatDuration(now - Number(td.dataset.since));
  }
}
setInterval(tick, 1000);

function fillFilters() {
  $("#filter-queue").replaceChildren(el("option", { value: "" }, "All queues"),
    ...queues.map((q) => el("option", { value: q.name }, q.label)));
  $("#filter-state").replaceChildren(el("option", { value: "" }, "All states"),
    ...Object.entries(STATE_LABELS).map(([v, l]) => el("option", { value: v }, l)));
  $("#filter-queue").value = filter.queue;
  $("#filter-state").value = filter.state;
}

// Calls with callers and their live figures (from the media worker, about once a second).
const db = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)} dB`);
function renderLiveCalls() {
  const rows = [...liveCalls.values()].sort((a, b) => a.contact_id.localeCompare(b.contact_id)).map((c) => {
    const f = c.figures, a = agents.get(c.agent_id);
    return el("tr", { dataset: { contactId: c.contact_id, silence: f.silence >= 10 ? "long" : "" } },
      el("td", { class: "agent" }, a ? a.display_name : String(c.agent_id)),
      el("td", { class: "caller" }, c.caller),
      el("td", { class: "queue" }, c.queue),
      el("td", { class: "duration" }, formatDuration(f.seconds)),
      el("td", { class: "agent-talk" }, formatDuration(f.agent_talk)),
      el("td", { class: "caller-talk" }, formatDuration(f.caller_talk)),
      el("td", { class: "overtalk" }, formatDuration(f.overtalk)),
      el("td", { class: "silence" }, formatDuration(f.silence)),
      el("td", { class: "levels" }, `${db(f.agent_level_db)} / ${db(f.caller_level_db)}`),
      el("td", { class: "quality" },
        `${(f.agent_missing_pct || 0).toFixed(1)}% ${(f.agent_jitter_ms || 0).toFixed(0)} ms · ${(f.caller_missing_pct || 0).toFixed(1)}% ${(f.caller_jitter_ms || 0).toFixed(0)} ms`));
  });
  $("#live-calls tbody").replaceChildren(...rows);
}

// Alerts not cleared, newest first; each can be acknowledged once.
function renderAlerts() {
  const list = [...alerts.values()].sort((a, b) => b.raised_at - a.raised_at);
  $("#alerts-panel").hidden = list.length === 0;
  $("#alerts").replaceChildren(...list.map((a) => el("li", { class: "alert", dataset: { alertId: a.id, kind: a.kind, acked: a.acked_at ? "yes" : "no" } },
    el("span", { class: "message" }, a.message),
    a.acked_at
      ? el("small", { class: "acked" }, ` acknowledged by ${a.acked_by}`)
      : el("button", { type: "button", class: "ack", dataset: { alertId: a.id } }, "Acknowledge"))));
}

// An admin changed a queue's settings: its label changes here without a reload.
hub.addEventListener("queue-changed", (e) => {
  const q = e.detail.queue;
  queues = queues.map((x) => (x.name === q.name ? { ...x, label: q.label } : x));
  fillFilters();
});

hub.addEventListener("welcome", (e) => {
  $("#who").textContent = `${e.detail.user.display_name} · ${e.detail.tenant.name}`;
});
hub.addEventListener("snapshot", (e) => {
  reasons = e.detail.pause_reasons;
  queues = e.detail.queues;
  agents.clear();
  for (const a of e.detail.agents) agents.set(a.id, a);
  fillFilters();
  render();
  queueStats.clear();
  for (const q of e.detail.queue_stats || []) queueStats.set(q.queue, q);
  agentStats.clear();
  for (const a of e.detail.agent_stats || []) agentStats.set(a.agent_id, a);
  renderQueues();
  render();
  liveCalls.clear();
  for (const c of e.detail.live_calls || []) liveCalls.set(c.contact_id, c);
  renderLiveCalls();
  alerts.clear();
  for (const a of e.detail.alerts || []) alerts.set(a.id, a);
  renderAlerts();
});
hub.addEventListener("live-calls", (e) => {
  for (const c of e.detail.calls || []) liveCalls.set(c.contact_id, c);
  for (const id of e.detail.ended || []) liveCalls.delete(id);
  renderLiveCalls();
});
hub.addEventListener("alert", (e) => {
  const a = e.detail.alert;
  if (a.cleared_at) alerts.delete(a.id); else alerts.set(a.id, a);
  renderAlerts();
});
hub.addEventListener("queue-stats", (e) => {
  for (const q of e.detail.queues) queueStats.set(q.queue, q);
  renderQueues();
  if ((e.detail.agents || []).length) {
    for (const a of e.detail.agents) agentStats.set(a.agent_id, a);
    render();
  }
});
hub.addEventListener("agent-state", (e) => {
  agents.set(e.detail.agent.id, e.detail.agent);
  render();
});
hub.addEventListener("status", (e) => {
  const s = $("#conn");
  s.dataset.status = e.detail;
  s.textContent = e.detail === "online" ? "Live" : e.detail === "reconnecting" ? "Reconnecting…" : "Connecting…";
  document.body.classList.toggle("offline", e.detail !== "online");
});

$("#filter-queue").addEventListener("change", (e) => { filter.queue = e.target.value; render(); });
$("#filter-state").addEventListener("change", (e) => { filter.state = e.target.value; render(); });
on($("#agents"), "change", "select.force", async (_, select) => {
  const agentId = Number(select.closest("tr").dataset.agentId);
  const [state, reason] = select.value.split(":");
  select.value = "";
  if (!state) return;
  try {
    await hub.request({ type: "force-state", agent_id: agentId, state, ...(reason ? { reason } : {}) });
  } catch (err) {
    toast(err.message);
  }
});
on($("#alerts"), "click", "button.ack", async (_, b) => {
  try { await hub.request({ type: "alert-ack", alert_id: b.dataset.alertId }); } catch (err) { toast(err.message); }
});
on($("#agents"), "click", "button.monitor", async (_, b) => {
  try {
    await monitor.watch(b.dataset.contactId, b.dataset.mode);
  } catch (err) {
    toast(err.message);
  }
  render();
});
on($("#agents"), "click", "button.monitor-leave", async () => {
  try { await monitor.leave(); } catch (err) { toast(err.message); }
  render();
});
monitor.addEventListener("change", (e) => {
  const m = e.detail;
  const status = $("#monitor-status");
  status.dataset.mode = monitor.mode || "";
  const doing = { listen: "Listening to a call", whisper: "Whispering to the agent", barge: "Barged into a call" };
  status.textContent = monitor.watching ? doing[monitor.mode] : monitor.state === "failed" ? `Softphone: ${m.reason}` : "";
  if (m.reason === "call-ended") toast("The call you monitored has ended.", "info");
  render();
});
$("#logout").addEventListener("click", toLogin);

// After the board's own listeners (the agents are known when the chat fills its recipients).
// A raised hand's "Whisper": join the agent's call talking to the agent only.
boardChat(hub, monitor.hub, agents, async (contactId) => {
  try { await monitor.watch(contactId, "whisper"); } catch (err) { toast(err.message); }
  render();
});
boardInstructions(hub, agents);
monitor.hub.start(); // the supervisor's own stream: messages now, the softphone when monitoring
hub.start();
