// The agent desktop: state switcher, time in state, queues, the contact panel (with call
// controls for a caller over SIP), the softphone, work instructions, knowledge and snippets.

import { $, el, on, show, toast, session, toLogin, formatDuration, STATE_LABELS } from "./util.js";
import { HubSocket } from "./ws.js";
import { Softphone, KEYS } from "./phone.js";
import { agentChat } from "./chat.js";
import { videoSupport } from "./support.js";
import { CustomerPanel } from "./customer.js";
import { agentKnowledge } from "./knowledge.js";
import { agentForm } from "./form.js";
import { agentScript } from "./script.js";

if (!session.access) toLogin();

const hub = new HubSocket();
const phone = new Softphone(hub);
agentChat(hub);
const customer = new CustomerPanel();
let iceServers = [];
let me = null;
let agent = null;
let reasons = [];
let codes = [];
let queueLabels = new Map(); // queue name → label, kept current by `queue-changed`
let contact = null; // the contact this agent is offered, talking to or wrapping up
let ringUntil = 0;
let ringTone = null;
// The call behind the connected contact when it came over SIP (`media`): mute, the digits sent
// and the caller's digits, and since when it is connected. Forgotten when the contact ends.
const contactCalls = new Map();
// A support session opened during a contact is linked to it.
videoSupport(hub, () => (contact && contact.status !== "wrap-up" ? contact.id : null));

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

// The call of the connected contact, made on first sight; others are forgotten (and unmuted).
function contactCall() {
  const c = contact && contact.status === "connected" && contact.media ? contact : null;
  for (const id of contactCalls.keys()) if (!c || id !== c.id) contactCalls.delete(id);
  if (c && !contactCalls.has(c.id)) contactCalls.set(c.id, { muted: false, sent: "", heard: "", since: hub.now() });
  const call = c ? contactCalls.get(c.id) : null;
  phone.muteContact(Boolean(call && call.muted));
  return call;
}

// The agent's answered consult call beside a caller (after holding the caller and dialling), if any.
function consultCall() {
  return [...phone.calls.live.values()].find((c) => c.status === "connected" && !c.held) || null;
}

function renderContactCall(call) {
  show($("#contact-call"), Boolean(call));
  if (!call) return;
  const held = Boolean(contact.held);
  const consult = contact.status === "connected" ? consultCall() : null;
  const joined = Boolean(consult && consult.conference === contact.id);
  show($("#contact-consult"), Boolean(consult));
  if (consult) {
    const who = consult.peer_name || consult.peer;
    $("#contact-consult-label").textContent = joined ? `Conference with ${who}` : `Consulting ${who}`;
    show($("#contact-conference"), !joined);
  }
  const status = $("#contact-call-status");
  status.dataset.held = held ? "yes" : "no";
  status.textContent = joined ? "Conference" : held ? "On hold — the caller hears music" : call.muted ? "On call (muted)" : "On call";
  const mute = $("#contact-mute"), hold = $("#contact-hold");
  mute.textContent = call.muted ? "Unmute" : "Mute";
  mute.setAttribute("aria-pressed", String(call.muted));
  hold.textContent = held ? "Resume" : "Hold";
  hold.setAttribute("aria-pressed", String(held));
  const line = (node, digits, text) => {
    node.textContent = digits ? text : "";
    if (digits) node.dataset.digits = digits; else delete node.dataset.digits;
  };
  line($("#contact-sent"), call.sent, `Sent ${call.sent}`);
  line($("#contact-digits"), call.heard, `The caller pressed ${call.heard}`);
}

function renderContact() {
  const box = $("#contact");
  const live = contact && ["ringing", "connected", "wrap-up"].includes(contact.status);
  const call = contactCall();
  show(box, Boolean(live));
  ring(Boolean(live && contact.status === "ringing"));
  renderContactCall(live ? call : null);
  customer.render(live ? contact : null);
  if (!live) return;
  box.dataset.status = contact.status;
  box.dataset.contactId = contact.id;
  box.dataset.media = contact.media ? "yes" : "no";
  box.dataset.held = contact.held ? "yes" : "no";
  $("#contact-status").textContent = contact.status === "connected" && contact.held ? "On hold" : CONTACT_STATUS[contact.status];
  const fields = [
    ["Caller", contact.caller],
    ["Name", contact.caller_name || "unknown"],
    ["Queue", contact.queue],
    ...Object.entries(contact.data || {}),
  ];
  $("#contact-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
  show($("#offer-controls"), contact.status === "ringing");
  show($("#call-controls"), contact.status === "connected");
  show($("#talk-timer"), !call); // a call over SIP has its own timer above
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
  $("#queues").replaceChildren(...(agent.queues.length ? agent.queues : ["—"]).map((q) =>
    el("li", { dataset: { queue: q } }, queueLabels.get(q) || q)));
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
  const call = contact && contactCalls.get(contact.id);
  if (call) {
    // The agent's time on call is the time connected; before the agent's state arrives, since first seen.
    const since = agent && agent.state === "on-call" ? agent.since : call.since;
    $("#contact-timer").textContent = formatDuration(hub.now() - since);
  }
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
  // Transfer targets offered as the agent types: the tenant's queues.
  $("#transfer-targets").replaceChildren(...(e.detail.queues || []).map((q) => el("option", { value: q.name }, q.label)));
  codes = e.detail.wrapup_codes || [];
  queueLabels = new Map((e.detail.queues || []).map((q) => [q.name, q.label]));
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
// An admin changed a queue's settings: the new label shows without a reload.
hub.addEventListener("queue-changed", (e) => {
  queueLabels.set(e.detail.queue.name, e.detail.queue.label);
  render();
});

// A webinar scheduled for this agent, or starting: the header's link to the webinar page says so.
hub.addEventListener("webinar-invited", (e) => {
  const w = e.detail.webinar, link = $("#webinars-link");
  link.dataset.count = String(Number(link.dataset.count) + 1);
  link.textContent = `Webinars (${link.dataset.count} new)`;
  toast(w.state === "live" ? `Webinar "${w.title}" is live now` :
    `Webinar "${w.title}" scheduled for ${new Date(w.starts_at * 1000).toLocaleString()}`, "info");
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
  if (!contact) return false;
  try {
    await hub.request({ type, contact_id: contact.id, ...extra });
    return true;
  } catch (err) {
    toast(err.message);
    return false;
  }
}

// Call controls of a contact over SIP: the softphone's call frames with the contact's id as call_id.
async function contactCallRequest(type, extra = {}) {
  const call = contactCall();
  if (!call) return null;
  const id = contact.id;
  try {
    await hub.request({ type, call_id: id, ...extra });
  } catch (err) {
    toast(err.message);
    return null;
  }
  // Still the same contact's call once acknowledged (it may have ended meanwhile).
  return contact && contact.id === id ? contactCalls.get(id) || null : null;
}
$("#contact-hold").addEventListener("click", () => {
  // The label follows `held` from contact-changed, which follows the ack.
  if (contact) contactCallRequest("call-hold", { on: !contact.held });
});
$("#contact-mute").addEventListener("click", async () => {
  const before = contactCall();
  if (!before) return;
  const on = !before.muted;
  const call = await contactCallRequest("call-mute", { on });
  if (!call) return;
  call.muted = on;
  renderContact();
});
// Blind transfer: the caller goes to a queue (or to an agent first); this agent goes to wrap-up.
$("#contact-transfer-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const to = $("#contact-transfer-to").value.trim();
  if (!to || !contactCall()) return;
  const name = contact.caller_name || contact.caller;
  try {
    await hub.request({ type: "call-transfer", call_id: contact.id, to });
  } catch (err) {
    toast(err.message);
    return;
  }
  $("#contact-transfer-to").value = "";
  toast(`${name} transferred to ${to}`, "info");
});
// Attended transfer and conference: with the caller held and a consult call answered.
async function consultRequest(type) {
  const consult = consultCall();
  if (!contact || !consult) return;
  const who = consult.peer_name || consult.peer;
  try {
    await hub.request({ type, call_id: contact.id, consult: consult.id });
  } catch (err) {
    toast(err.message);
    return;
  }
  toast(type === "call-transfer" ? `Caller transferred to ${who}` : `Conference with ${who}`, "info");
}
$("#contact-complete").addEventListener("click", () => consultRequest("call-transfer"));
$("#contact-conference").addEventListener("click", () => consultRequest("call-conference"));
hub.addEventListener("call-changed", () => renderContact());
// A supervisor monitoring this agent's call (only when the tenant lets agents see it).
const MONITOR_MODES = { listen: "is listening to", whisper: "is whispering on", barge: "has joined" };
hub.addEventListener("monitor-changed", (e) => {
  const m = e.detail;
  const text = m.mode ? `${m.supervisor} ${MONITOR_MODES[m.mode]} this call` : "";
  const badge = $("#monitor-badge");
  badge.textContent = text;
  badge.hidden = !text;
  if (text) toast(text, "info");
});
$("#contact-keypad").replaceChildren(...KEYS.map((k) => el("button", { type: "button", dataset: { digit: k } }, k)));
on($("#contact-keypad"), "click", "button[data-digit]", async (_, b) => {
  const digit = b.dataset.digit;
  phone.keyTone(digit);
  const call = await contactCallRequest("call-dtmf", { digits: digit });
  if (!call) return;
  call.sent = (call.sent + digit).slice(-32);
  renderContact();
});
// Digits the caller pressed arrive like an agent's call digits, with the contact's id.
hub.addEventListener("call-digits", (e) => {
  const call = contact && e.detail.call_id === contact.id && contactCalls.get(contact.id);
  if (!call) return;
  call.heard = (call.heard + e.detail.digits).slice(-32);
  renderContact();
});
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

// After the desktop's own listeners, so `contact` is current when knowledge reacts to a frame.
agentKnowledge(hub, () => contact);
agentForm(hub, () => contact);
agentScript(hub, () => contact);
hub.start();
