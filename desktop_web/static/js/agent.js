// The agent desktop: state switcher, time in state, queues.

import { $, el, on, show, toast, session, toLogin, formatDuration, STATE_LABELS } from "./util.js";
import { HubSocket } from "./ws.js";

if (!session.access) toLogin();

const hub = new HubSocket();
let me = null;
let agent = null;
let reasons = [];

function render() {
  if (!agent) return;
  const box = $("#state");
  box.dataset.state = agent.state;
  $("#state-label").textContent = STATE_LABELS[agent.state] || agent.state;
  const reason = reasons.find((r) => r.code === agent.reason);
  $("#state-reason").textContent = agent.reason ? (reason ? reason.label : agent.reason) : "";
  $("#queues").replaceChildren(...(agent.queues.length ? agent.queues : ["—"]).map((q) => el("li", {}, q)));
  $("#changed-by").textContent = agent.changed_by ? `set by ${agent.changed_by}` : "";
  show($("#wrap-up-controls"), agent.state === "wrap-up");
  $("#go-available").disabled = agent.state === "available" || ["ringing", "on-call"].includes(agent.state);
  tick();
}

function tick() {
  if (!agent) return;
  $("#state-timer").textContent = formatDuration(hub.now() - agent.since);
  if (agent.state === "wrap-up" && agent.wrap_up_until) {
    $("#wrap-up-left").textContent = `${formatDuration(agent.wrap_up_until - hub.now())} left`;
  }
}
setInterval(tick, 1000);

function renderReasons() {
  $("#pause-reasons").replaceChildren(
    ...reasons.filter((r) => r.code !== "no-answer").map((r) =>
      el("button", { type: "button", class: "pause", dataset: { reason: r.code } }, r.label)),
  );
}

async function setState(state, reason) {
  try {
    await hub.request({ type: "set-state", state, ...(reason ? { reason } : {}) });
  } catch (err) {
    toast(err.message);
  }
}

hub.addEventListener("welcome", (e) => {
  me = e.detail.user;
  $("#who").textContent = `${me.display_name} · ${e.detail.tenant.name}`;
});
hub.addEventListener("snapshot", (e) => {
  reasons = e.detail.pause_reasons;
  renderReasons();
  agent = e.detail.agents.find((a) => a.id === me.id) || null;
  if (!agent) toast("This login is not an agent; use the supervisor board.");
  render();
});
hub.addEventListener("agent-state", (e) => {
  if (me && e.detail.agent.id === me.id) {
    agent = e.detail.agent;
    render();
  }
});
hub.addEventListener("status", (e) => {
  const s = $("#conn");
  s.dataset.status = e.detail;
  s.textContent = e.detail === "online" ? "Connected" : e.detail === "reconnecting" ? "Reconnecting…" : "Connecting…";
  document.body.classList.toggle("offline", e.detail !== "online");
});

$("#go-available").addEventListener("click", () => setState("available"));
on($("#pause-reasons"), "click", "button.pause", (_, b) => setState("paused", b.dataset.reason));
$("#extend").addEventListener("click", async () => {
  try { await hub.request({ type: "extend-wrap-up", seconds: 30 }); } catch (err) { toast(err.message); }
});
$("#end-wrap-up").addEventListener("click", () => setState("available"));
$("#logout").addEventListener("click", async () => {
  if (agent && agent.state !== "logged-out") {
    try { await hub.request({ type: "set-state", state: "logged-out" }); } catch (err) { toast(err.message); return; }
  }
  toLogin();
});

hub.start();
