// The customer's page of a support session (/support/<id>#t=<token>): no account, one link.
// It connects to the hub with the link's token and this browser's own secret (kept in
// sessionStorage: a reload of the page comes back, another browser with the same link is refused),
// lets the customer test camera and microphone, waits in the lobby until the agent admits them,
// then answers the agent's offer (video.js). Every refusal is shown as a plain message.

import { $, show, toast } from "./util.js";
import { VideoCall, bindCallControls, resetCallView } from "./video.js";

const root = $("#guest");
const roomId = decodeURIComponent(location.pathname.split("/").pop() || "");
const token = new URLSearchParams(location.hash.slice(1)).get("t");
const ENDED = {
  "host-ended": "Your agent ended the session. Thank you — you can close this page.",
  "guest-left": "You left the session. You can close this page.",
  denied: "Your agent could not take the call now. Please ask for a new link.",
  expired: "This link has expired. Please ask your agent for a new link.",
};

let ws = null;
let session = null;
let iceServers = [];
let agentName = "Your agent";
let finished = false;
let joined = false;
let n = 0;
const waiting = new Map();

function guestKey() {
  const name = `ud.guest.${roomId}`;
  let key = sessionStorage.getItem(name);
  if (!key) {
    key = [...crypto.getRandomValues(new Uint8Array(24))].map((b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(name, key);
  }
  return key;
}

function step(name) {
  root.dataset.step = name;
  show($("#g-test"), name === "test");
  show($("#g-lobby"), name === "lobby");
  show($("#vs-call"), name === "live");
  show($("#g-tiles"), name === "test" || name === "lobby" || name === "live");
  show($("#vs-remote"), name === "live");
  $("#g-tiles").dataset.alone = name === "live" ? "no" : "yes";
}

function problem(title, text) {
  finished = true;
  call.close();
  step("problem");
  $("#g-status").textContent = "";
  $("#g-problem-title").textContent = title;
  $("#g-problem-text").textContent = text;
  show($("#g-problem"), true);
  if (ws) ws.close();
}

// The hub refused the link: a plain page (the hub's reason is kept in data-reason, for support staff).
function refused(m) {
  const sentence = `${m.message[0].toUpperCase()}${m.message.slice(1)}.`;
  if (m.code === "support-ended") problem("The session has ended", sentence);
  else if (/already used/.test(m.message)) problem("This link cannot be used", sentence);
  else if (/expired/.test(m.message)) problem("This link has expired", "Please ask your agent for a new link.");
  else problem("This link is not valid", "Check that you opened the whole link your agent sent you, or ask for a new one.");
  $("#g-problem").dataset.reason = m.message;
}

function send(frame) {
  const id = `g${++n}`;
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) { reject(new Error("not connected; reconnecting")); return; }
    waiting.set(id, { resolve, reject });
    ws.send(JSON.stringify({ ...frame, id }));
  });
}
const request = (frame) => send({ ...frame, session_id: roomId });

const call = new VideoCall(root, (sdpType, sdp) => request({ type: "support-signal", sdp_type: sdpType, sdp }));
const relayed = bindCallControls(root, call, request, () => agentName);
window.unideskVideo = Object.freeze({
  stats: () => call.stats(),
  measureRemoteTone: () => call.measureRemoteTone(),
  shareScreen: (on) => call.shareScreen(on),
});

async function deviceTest() {
  step("test");
  $("#g-status").textContent = "";
  try {
    await call.startMedia();
  } catch (err) {
    toast(`Your camera or microphone is not available (${err.name}). Allow them in the browser and reload the page.`);
    return;
  }
  const meter = $("#g-level");
  const tick = () => {
    if (root.dataset.step !== "test") return;
    const db = call.micLevel();
    meter.value = Math.max(-70, db);
    meter.dataset.levelDb = String(Math.round(db));
    requestAnimationFrame(tick);
  };
  tick();
}

async function join() {
  joined = true;
  try {
    await call.startMedia();
    await request({ type: "support-join", name: $("#g-name").value.trim() });
  } catch (err) {
    joined = false;
    toast(err.message);
  }
}

function apply(s) {
  session = s;
  if (s.phase === "ended") {
    problem("The session has ended", ENDED[s.end_reason] || "This support session is over.");
    return;
  }
  if (s.phase === "waiting") {
    if (!joined) deviceTest();
  } else if (s.phase === "lobby") {
    step("lobby");
    $("#g-status").textContent = "Waiting for your agent…";
  } else if (s.phase === "live") {
    step("live");
    $("#g-status").textContent = "In a video call with your agent";
    // Back after a reload: ask to come in again, and the agent offers a fresh connection.
    if (!joined) join();
  }
}

function onFrame(m) {
  if (m.ref && waiting.has(m.ref)) {
    const { resolve, reject } = waiting.get(m.ref);
    waiting.delete(m.ref);
    if (m.type === "error") reject(Object.assign(new Error(m.message), { code: m.code }));
    else resolve(m);
  }
  switch (m.type) {
    case "welcome":
      iceServers = m.ice_servers || [];
      $("#g-title").textContent = `Video support · ${m.tenant.name}`;
      document.title = `Video support · ${m.tenant.name}`;
      clearInterval(ws.pinger);
      ws.pinger = setInterval(() => send({ type: "ping" }).catch(() => {}), m.heartbeat_seconds * 1000);
      break;
    case "error":
      if (m.ref === "auth") refused(m);
      break;
    case "support-changed":
      apply(m.session);
      break;
    case "support-relay":
      if (m.sender === "host") agentName = m.sender_name || agentName;
      if (m.kind === "signal" && m.sdp_type === "offer") {
        call.answer(iceServers, m.sdp).catch((err) => toast(`The video call could not start (${err.message || err.name}).`));
      } else relayed(m, m.sender === "guest");
      break;
  }
}

function connect(attempt = 0) {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token, guest_key: guestKey(), id: "auth" }));
  ws.onmessage = (e) => onFrame(JSON.parse(e.data));
  ws.onclose = () => {
    clearInterval(ws.pinger);
    for (const { reject } of waiting.values()) reject(new Error("connection lost"));
    waiting.clear();
    if (finished) return;
    joined = false;
    $("#g-status").textContent = "Connection lost — reconnecting…";
    setTimeout(() => connect(attempt + 1), Math.min(5000, 250 * 2 ** attempt));
  };
}

$("#g-join").addEventListener("click", join);
resetCallView(root);
if (!token || !roomId) problem("This link is not complete", "Open the whole link your agent sent you, or ask for a new one.");
else connect();
