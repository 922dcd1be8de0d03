// The agent desktop: state switcher, time in state, queues, the softphone.

import { $, el, on, show, toast, session, toLogin, formatDuration, STATE_LABELS } from "./util.js";
import { HubSocket } from "./ws.js";
import { Softphone } from "./phone.js";

if (!session.access) toLogin();

const hub = new HubSocket();
const phone = new Softphone(hub);
let iceServers = [];
let me = null;
let agent = null;
let reasons = [];
let codes = [];
let contact = null; // the contact this agent is offered, talking to or wrapping up
let ringUntil = 0;
let ringTone = null;

const CONTACT_STATUS = {
  ringing: "Incoming contact",
  connected: "On call",
  "wrap-up": "Wrap-up",
};

// A short ring from WebAudio, so no sound file is needed; browsers may block it until a click.
function ring(on) {
  if (!on) { if (ringTone) { ringTone.stop(); ringTone = null; } return; }
  if (ringTone) return;
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 440;
    gain.gain.value = 0.05;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    ringTone = { stop: () => { osc.stop(); ctx.close(); } };
  } catch { /* no audio: the banner still shows */ }
}

function renderContact() {
  const box = $("#contact");
  const live = contact && ["ringing", "connected", "wrap-up"].includes(contact.status);
  show(box, Boolean(live));
  ring(Boolean(live && contact.status === "ringing"));
  if (!live) return;
  box.dataset.status = contact.status;
  box.dataset.contactId = contact.id;
  $("#contact-status").textContent = CONTACT_STATUS[contact.status];
  const fields = [
    ["Caller", contact.caller],
    ["Name", contact.caller_name || "unknown"],
    ["Queue", contact.queue],
    ...Object.entries(contact.data || {}),
  ];
  $("#contact-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
  show($("#offer-controls"), contact.status === "ringing");
  show($("#call-controls"), contact.status === "connected");
  show($("#wrap-up-form"), contact.status === "wrap-up");
  if (contact.status === "wrap-up") {
    const select = $("#wrap-up-form select");
    if (select.options.length !== codes.length) {
      select.replaceChildren(...codes.map((c) => el("option", { value: c.code }, c.label)));
    }
  }
}

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
  if (contact && contact.status === "ringing") {
    $("#ring-left").textContent = `${Math.max(0, Math.ceil(ringUntil - hub.now()))} s`;
  }
  if (agent && agent.state === "on-call") $("#talk-timer").textContent = formatDuration(hub.now() - agent.since);
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
  iceServers = e.detail.ice_servers || [];
  $("#who").textContent = `${me.display_name} · ${e.detail.tenant.name}`;
});
hub.addEventListener("snapshot", (e) => {
  codes = e.detail.wrapup_codes || [];
  contact = (e.detail.contacts || [])[0] || null;
  if (contact && contact.status === "ringing") ringUntil = hub.now() + 10;
  renderContact();
  reasons = e.detail.pause_reasons;
  renderReasons();
  agent = e.detail.agents.find((a) => a.id === me.id) || null;
  if (!agent) toast("This login is not an agent; use the supervisor board.");
  render();
  $("#dial-agents").replaceChildren(
    ...e.detail.agents.filter((a) => a.id !== me.id).map((a) => el("option", { value: a.username }, a.display_name)));
  // The phone starts once per page; after a reconnect it only re-offers if its peer connection failed.
  if (phone.state === "off") phone.start(iceServers, e.detail.calls);
  else phone.reconnected(iceServers, e.detail.calls);
});
hub.addEventListener("agent-state", (e) => {
  if (me && e.detail.agent.id === me.id) {
    agent = e.detail.agent;
    render();
  }
});
hub.addEventListener("contact-offered", (e) => {
  contact = e.detail.contact;
  ringUntil = hub.now() + e.detail.ring_timeout;
  renderContact();
});
hub.addEventListener("contact-changed", (e) => {
  const c = e.detail.contact;
  if (c.status === "cancelled") {
    if (contact && contact.id === c.id) {
      contact = null;
      if (e.detail.reason) toast(`The offer was withdrawn (${e.detail.reason}).`, "info");
    }
  } else contact = c;
  renderContact();
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
  phone.close();
  toLogin();
});

async function contactRequest(type, extra = {}) {
  if (!contact) return;
  try {
    await hub.request({ type, contact_id: contact.id, ...extra });
  } catch (err) {
    toast(err.message);
  }
}
$("#accept").addEventListener("click", () => contactRequest("accept-offer"));
$("#reject").addEventListener("click", async () => {
  const id = contact && contact.id;
  await contactRequest("reject-offer");
  if (contact && contact.id === id && contact.status === "ringing") { contact = null; renderContact(); }
});
$("#end-contact").addEventListener("click", () => contactRequest("end-contact"));
$("#wrap-up-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  await contactRequest("complete-wrap-up", { code: form.code.value, notes: form.notes.value });
  form.reset();
});
// Wrap-up timed out or ended by a supervisor: the contact is done on this desktop.
hub.addEventListener("agent-state", (e) => {
  if (me && e.detail.agent.id === me.id && contact && contact.status === "wrap-up" && e.detail.agent.state !== "wrap-up") {
    contact = null;
    renderContact();
  }
});

hub.start();
