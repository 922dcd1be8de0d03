// A webinar room in the browser: the presenter publishes camera and microphone (and a screen
// share) and moderates; attendees receive only; a promoted attendee publishes its microphone.
// ?room=ID&token=T for a guest's invitation; a logged-in user's own token otherwise. Without ?room
// the page lists the user's webinars (scheduled for them or live, a join button once one opens,
// refreshed when the hub says one was scheduled or started) and a trainer starts or schedules one.
// Signaling goes over the hub's websocket (docs/protocol.md).

import * as rtc from "./rtc.js";
import { api, session, toast } from "./util.js";

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const token = params.get("token") || session.access;
let room = params.get("room");
let ws = null, seq = 0, state = null, iceServers = [];
const pcs = { view: null, ears: null, publish: null };
const pending = new Map();
let camera = null, screen = null, ctx = null, analyser = null;

function send(frame) {
  const id = `w${++seq}`;
  ws.send(JSON.stringify({ ...frame, id }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

function setStatus(s, text) {
  $("#status").dataset.state = s;
  $("#status").textContent = text;
}

async function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onmessage = (e) => onFrame(JSON.parse(e.data));
  ws.onclose = () => setStatus("off", "Disconnected");
  await new Promise((r) => { ws.onopen = r; });
  const welcome = await send({ type: "auth", token });
  iceServers = welcome.ice_servers || [];
  setInterval(() => ws.readyState === 1 && ws.send(JSON.stringify({ type: "ping" })), 10000);
  await send({ type: "webinar-join", room });
}

function onFrame(m) {
  if (m.ref && pending.has(m.ref)) {
    const p = pending.get(m.ref);
    pending.delete(m.ref);
    if (m.type === "error") { toast(m.message, "error"); p.reject(new Error(m.message)); } else p.resolve(m);
    return;
  }
  if (m.type === "webinar-state") onState(m);
  else if (m.type === "webinar-answer") answers.get(m.offer_id)?.(m.sdp);
  else if (m.type === "webinar-chat-message") addLine("#chat", `${m.name}: ${m.text}`);
  else if (m.type === "webinar-closed") { setStatus("closed", m.message || m.reason); closeAll(); }
  else if (m.type === "webinar-media-lost") onMediaLost(m);
  else if (m.type === "webinar-invited") listWebinars().catch((e) => toast(e.message, "error"));
  else if (m.type === "error") toast(m.message, "error");
}

const answers = new Map();
async function negotiate(pc, publish, slots) {
  const sdp = await rtc.makeOffer(pc);
  const offerId = `o${++seq}`;
  const answered = new Promise((r) => answers.set(offerId, r));
  await send({ type: "webinar-offer", offer_id: offerId, sdp, publish, ...(slots ? { slots } : {}) });
  await rtc.applyAnswer(pc, await answered);
}

function receiver(slots) {
  const pc = rtc.createPeer(iceServers);
  for (const kind of slots) pc.addTransceiver(kind, { direction: "recvonly" });
  const sound = new MediaStream();
  pc.ontrack = (e) => {
    if (e.track.kind === "audio") {
      sound.addTrack(e.track);
      $("#sound").srcObject = sound;
      listen(e.track);
    } else {
      const el = e.transceiver === pc.getTransceivers()[0] ? $("#camera") : $("#screen");
      el.srcObject = new MediaStream([e.track]);
    }
  };
  return pc;
}

// One analyser over every audio track of the room (a MediaStreamSource of a stream takes only one track).
function listen(track) {
  ctx = ctx || new AudioContext();
  if (!analyser) {
    const node = ctx.createAnalyser();
    node.fftSize = 8192;
    node.smoothingTimeConstant = 0;
    analyser = { node };
  }
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser.node);
}

async function startViewing() {
  pcs.view = receiver(["video", "audio", "video", "audio"]);
  await negotiate(pcs.view, false);
  setStatus("ready", "Watching");
}

async function startPresenting() {
  camera = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  $("#camera").srcObject = camera;
  pcs.publish = rtc.createPeer(iceServers);
  pcs.publish.addTransceiver(camera.getVideoTracks()[0], { direction: "sendonly" });
  pcs.publish.addTransceiver(camera.getAudioTracks()[0], { direction: "sendonly" });
  if (screen) pcs.publish.addTransceiver(screen.getVideoTracks()[0], { direction: "sendonly" });
  await negotiate(pcs.publish, true);
  if (!pcs.ears) {
    pcs.ears = receiver(["audio"]);
    await negotiate(pcs.ears, false, ["speaker"]);
  }
  setStatus("ready", "Presenting");
}

async function startSpeaking() {
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  pcs.publish = rtc.createPeer(iceServers);
  pcs.publish.addTransceiver(mic.getAudioTracks()[0], { direction: "sendonly" });
  await negotiate(pcs.publish, true, ["speaker"]);
}

// The media server carrying the room went away: every connection is gone; offer again on the
// room's new server (or wait for `webinar-closed` when there is none).
function onMediaLost(m) {
  closeAll();
  setStatus(m.moved ? "reconnecting" : "closed", m.message);
  if (!m.moved || !state) return;
  const again = state.role === "presenter" ? (state.started === false ? Promise.resolve() : startPresenting())
    : startViewing().then(() => (state.role === "speaker" ? startSpeaking() : null));
  again.catch((e) => toast(e.message, "error"));
}

function closeAll() {
  for (const k of Object.keys(pcs)) { pcs[k]?.close(); pcs[k] = null; }
}

function addLine(list, text) {
  const li = document.createElement("li");
  li.textContent = text;
  $(list).append(li);
}

function onState(m) {
  const first = state === null, was = state?.role, wasStarted = state?.started !== false && !first;
  state = m;
  $("#title").textContent = m.title;
  $("#count").dataset.count = String(m.attendees);
  $("#count").textContent = `${m.attendees} attendee${m.attendees === 1 ? "" : "s"}`;
  $("#moderation").hidden = m.role !== "presenter";
  const started = m.started !== false;
  $("#begin").hidden = started;
  $("#when").hidden = started;
  if (!started) $("#when").textContent = `Starts at ${new Date(m.starts_at * 1000).toLocaleString()}`;
  $("#members").replaceChildren(...m.members.map((x) => {
    const li = document.createElement("li");
    li.dataset.member = x.id;
    li.textContent = `${x.name} (${x.role})${x.hand_since ? " ✋" : ""} `;
    if (m.role === "presenter" && x.role !== "presenter") {
      for (const act of [x.role === "speaker" ? "demote" : "promote", "remove"]) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = act; b.dataset.act = act; b.dataset.member = x.id;
        li.append(b);
      }
    }
    return li;
  }));
  $("#questions").replaceChildren(...(m.questions || []).map((q) => {
    const li = document.createElement("li");
    li.textContent = `${q.name}: ${q.text}${q.answered ? " (answered)" : ""} `;
    if (m.role === "presenter" && !q.answered) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "answered"; b.dataset.act = "answer"; b.dataset.question = q.id;
      li.append(b);
    }
    return li;
  }));
  const go = m.role === "presenter" ? (started ? startPresenting : null) : startViewing;
  if ((first || (m.role === "presenter" && !wasStarted && started)) && go) go().catch((e) => toast(e.message, "error"));
  else if (first) setStatus("waiting", "Waiting for the start");
  else if (was !== "speaker" && m.role === "speaker") startSpeaking().catch((e) => toast(e.message, "error"));
  else if (was === "speaker" && m.role !== "speaker") { pcs.publish?.close(); pcs.publish = null; }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-act]");
  if (!b) return;
  const frame = { type: "webinar-action", action: b.dataset.act };
  if (b.dataset.member) frame.member = b.dataset.member;
  if (b.dataset.question) frame.question = Number(b.dataset.question);
  send(frame).catch(() => {});
});
$("#hand").onclick = () => {
  const up = !state?.members.find((x) => x.id === state.you)?.hand_since;
  send({ type: "webinar-hand", on: up }).catch(() => {});
};
$("#ask").onsubmit = (e) => { e.preventDefault(); send({ type: "webinar-ask", text: e.target.text.value }); e.target.reset(); };
$("#say").onsubmit = (e) => { e.preventDefault(); send({ type: "webinar-chat", text: e.target.text.value }); e.target.reset(); };
$("#invite").onclick = async () => {
  const r = await api(`/api/webinars/${room}/invites`, { method: "POST", body: { name: "Guest" } });
  $("#invite-link").value = new URL(r.url, location.href).href;
};
$("#share").onclick = async () => {
  screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
  pcs.publish?.close();
  await startPresenting();
};
$("#create").onsubmit = async (e) => {
  e.preventDefault();
  const f = e.target, names = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const body = { title: f.title.value, minutes: Number(f.minutes.value) };
  if (f.starts.value) body.starts_at = new Date(f.starts.value).getTime() / 1000;
  if (f.queues.value.trim() || f.teams.value.trim()) body.audience = { queues: names(f.queues.value), teams: names(f.teams.value) };
  let r;
  try { r = await api("/api/webinars", { method: "POST", body }); } catch (err) { toast(err.message, "error"); return; }
  if (body.starts_at) { toast("Scheduled", "info"); f.reset(); await listWebinars(); return; }
  location.href = `/webinar?room=${r.room}`;
};

// The user's webinars, soonest first: joinable from their opening (10 minutes before the start).
let listed = null;
async function listWebinars() {
  const r = await api("/api/webinars");
  const skew = r.now - Date.now() / 1000;
  listed = r.webinars;
  const render = () => {
    const now = Date.now() / 1000 + skew;
    $("#none").hidden = listed.length > 0;
    $("#webinars").replaceChildren(...listed.map((w) => {
      const li = document.createElement("li");
      li.dataset.room = w.room;
      li.dataset.state = w.state;
      const when = new Date(w.starts_at * 1000).toLocaleString();
      li.textContent = `${w.title} — ${w.presenter}, ${w.state === "live" ? "live now" : `starts ${when}`}, ${w.minutes} min `;
      const b = document.createElement("button");
      b.type = "button";
      b.className = "join";
      b.textContent = w.presenting ? "Open" : "Join";
      b.disabled = !w.presenting && now < w.opens_at;
      if (b.disabled) b.title = `Opens at ${new Date(w.opens_at * 1000).toLocaleTimeString()}`;
      b.onclick = () => { location.href = `/webinar?room=${w.room}`; };
      li.append(b);
      return li;
    }));
  };
  render();
  setStatus("listing", `${listed.length} webinar${listed.length === 1 ? "" : "s"}`);
  clearInterval(listWebinars.timer);
  listWebinars.timer = setInterval(render, 15000);
}

// The list page's own connection: the hub tells it when a webinar is scheduled for the user or starts.
async function follow() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onmessage = (e) => onFrame(JSON.parse(e.data));
  await new Promise((r) => { ws.onopen = r; });
  const welcome = await send({ type: "auth", token });
  $("#start").hidden = !(welcome.user?.roles || []).some((x) => ["trainer", "supervisor", "admin"].includes(x));
  setInterval(() => ws.readyState === 1 && ws.send(JSON.stringify({ type: "ping" })), 10000);
}

// For tests and diagnostics: decoded video frames and what the room sounds like.
window.__pcs = pcs;
window.unideskWebinar = {
  role: () => state?.role,
  you: () => state?.you,
  // `freq` in the room's sound over about half a second: its level (dB, as the analyser reports bins)
  // and its prominence over the median of the band.
  async tone(freq) {
    if (!analyser) return { level: -200, prominence: 0 };
    const node = analyser.node, bins = node.frequencyBinCount, spectrum = new Float32Array(bins);
    const power = new Float64Array(bins);
    for (let k = 0; k < 10; k++) {
      if (k) await new Promise((r) => setTimeout(r, 50));
      node.getFloatFrequencyData(spectrum);
      for (let i = 0; i < bins; i++) power[i] += 10 ** (spectrum[i] / 10);
    }
    const hz = ctx.sampleRate / node.fftSize, at = Math.round(freq / hz);
    const db = (i) => 10 * Math.log10(power[i] / 10 + 1e-20);
    const band = [];
    for (let i = Math.floor(100 / hz); i <= Math.ceil(3800 / hz); i++) band.push(db(i));
    band.sort((a, b) => a - b);
    const level = Math.max(db(at - 1), db(at), db(at + 1));
    return { level, prominence: level - band[band.length >> 1] };
  },
  async framesDecoded() {
    const pc = pcs.view;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") n += s.framesDecoded || 0; });
    return n;
  },
  async measureTone() {
    if (!analyser) return { frequency: 0, level_db: -100, prominence_db: 0 };
    return rtc.measureTone(analyser.node, ctx.sampleRate);
  },
};

if (!token) location.href = `/?next=${encodeURIComponent(location.pathname + location.search)}`;
else if (!room) {
  $("#list").hidden = false;
  follow().then(listWebinars).catch((e) => { setStatus("failed", e.message); toast(e.message, "error"); });
}
else connect().catch((e) => { setStatus("failed", e.message); toast(e.message, "error"); });
