// The agent's softphone: microphone and speaker, headset check, one peer connection
// to a media worker kept up across calls, and calls to other agents (a held call and
// a consult beside it).

import { $, el, on, show, toast } from "./util.js";
import * as rtc from "./rtc.js";
import { Calls, describe, heldState, peerName, renderRows, timerText } from "./calls.js";

const STATE_LABELS = {
  off: "Off", connecting: "Connecting…", ready: "Ready", reconnecting: "Reconnecting…",
  lost: "Lost", failed: "Not connected", "no-microphone": "No microphone", closed: "Closed",
  desk: "Desk phone",
};
const ERRORS = {
  "no-media-worker": "No media server is available.",
  "no-phone": "That agent's phone is not connected.",
  busy: "That agent is on another call.",
  "not-found": "No such agent.",
  "bad-sdp": "The media server refused this browser's audio setup.",
};
export const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
const MIC_ERRORS = {
  NotAllowedError: "Microphone access was refused. Allow the microphone for this site in the browser (the icon in the address bar), then press Try again.",
  NotFoundError: "No microphone was found. Plug in a headset, then press Try again.",
  NotReadableError: "The microphone is in use by another application or could not be started.",
};
MIC_ERRORS.SecurityError = MIC_ERRORS.NotAllowedError;
MIC_ERRORS.OverconstrainedError = MIC_ERRORS.NotFoundError;
const STORE = { input: "ud.phone.input", output: "ud.phone.output" };

export class Softphone {
  constructor(hub, root = $("#phone")) {
    this.hub = hub;
    this.root = root;
    this.audio = $("#remote-audio", root);
    this.iceServers = [];
    this.state = "off";
    // The peer connection, its audio transceiver, the microphone and the far end's audio.
    this.pc = this.transceiver = this.local = this.remote = null;
    this.offerId = null; // only the answer to the latest offer is applied
    this._offers = this._answers = 0;
    this.calls = new Calls(); // the calls in progress, or the last one (ended) until the next
    this.testing = false;
    this.desk = false; // calls ring the agent's SIP desk phone: no softphone meanwhile
    this.contactMuted = false; // the agent muted its contact over SIP (the agent desktop sets it)
    this._retry = { timer: null, delay: 2000 };
    this._iceTimer = this._stats = this._ctx = this._meter = this._remoteAnalyser = this._ring = null;
    this._bind();
    setInterval(() => this._tick(), 1000);
    setInterval(() => this._readQuality(), 2000);
    const phone = this;
    // Test hooks for the browser tests (and a console): the streams, the state, what the
    // far end's audio sounds like, and restartIce() — the same ICE restart a network blip
    // triggers (offer with new ICE credentials, phone-offer, apply the answer; each applied
    // answer counts up #phone-status[data-answers]).
    window.unideskPhone = Object.freeze({
      get remoteStream() { return phone.remote; },
      get localStream() { return phone.local; },
      get state() { return phone.state; },
      get calls() { return phone.calls.list; },
      measureRemoteTone: () => phone.measureRemoteTone(),
      restartIce: () => phone.restartIce(),
    });
  }

  // ------------------------------------------------------------ lifecycle

  // After the hub's welcome and the first snapshot: ask for the microphone, then offer.
  async start(iceServers, calls = []) {
    this.iceServers = iceServers || [];
    this.setStatus("connecting");
    this.resync(calls);
    await this.connect();
  }

  // A later snapshot (the websocket reconnected): the call as the hub sees it now,
  // and a new offer only when the peer connection did not survive.
  reconnected(iceServers, calls = []) {
    this.iceServers = iceServers || [];
    if (this.pc) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: this.iceServers });
    this.resync(calls);
    if (["off", "closed", "no-microphone", "desk"].includes(this.state)) return; // waits for the agent's click
    const pc = this.pc;
    if (!pc || pc.connectionState === "failed" || ["lost", "failed"].includes(this.state)) this.connect({ fresh: true });
    else if (["failed", "disconnected"].includes(pc.iceConnectionState)) this.offer({ iceRestart: true });
  }

  resync(calls) {
    // An ended call stays on screen (with how it ended) until the next one.
    this.calls.resync(calls);
    this.renderCall();
  }

  async connect({ fresh = false } = {}) {
    clearTimeout(this._retry.timer);
    if (this.desk) return;
    if (!this.local && !(await this.openMicrophone())) return;
    if (this.desk) return; // the desk phone was chosen while the microphone opened
    if (fresh || !this.pc || this.pc.connectionState === "closed") this._newPeer();
    if (!["lost", "reconnecting"].includes(this.state)) this.setStatus("connecting");
    await this.offer();
  }

  // Logging out: the hub ends the session and any call on it.
  close() {
    this.hub.send({ type: "phone-close" });
    this._closePeer();
    this.setStatus("off");
  }

  _newPeer() {
    this._closePeer();
    const pc = rtc.createPeer(this.iceServers);
    this.pc = pc;
    this.transceiver = rtc.addMicrophone(pc, this.local);
    pc.addEventListener("track", (e) => {
      this.remote = e.streams[0] || new MediaStream([e.track]);
      this._remoteAnalyser = null;
      this.audio.srcObject = this.remote;
      this.audio.play().catch(() => { /* autoplay blocked: the next click in the phone plays it */ });
    });
    pc.addEventListener("iceconnectionstatechange", () => this._onIce(pc));
  }

  _closePeer() {
    clearTimeout(this._iceTimer);
    if (this.pc) this.pc.close();
    this.pc = null;
    this._stats = null;
    this.offerId = null;
  }

  _onIce(pc) {
    if (pc !== this.pc) return;
    const s = pc.iceConnectionState;
    clearTimeout(this._iceTimer);
    if (s === "connected" || s === "completed") {
      this._retry.delay = 2000;
      this.setStatus("ready");
    } else if (s === "disconnected") {
      // A network blip often heals by itself; restart ICE if it has not after a moment.
      this.setStatus("reconnecting", "The network dropped; reconnecting the audio.");
      this._iceTimer = setTimeout(() => this.offer({ iceRestart: true }), 2000);
    } else if (s === "failed") {
      this.setStatus("reconnecting", "The audio path failed; reconnecting.");
      this.offer({ iceRestart: true });
    }
  }

  // Renegotiate the same peer connection with new ICE credentials: the session and its calls stay.
  restartIce() {
    return this.offer({ iceRestart: true });
  }

  // Send an offer (ICE gathered); the answer arrives as `phone-answer` with the same offer_id.
  async offer({ iceRestart = false } = {}) {
    if (!this.pc) return;
    iceRestart ||= ["failed", "disconnected"].includes(this.pc.iceConnectionState);
    const id = `o${++this._offers}-${Math.random().toString(36).slice(2, 8)}`;
    this.offerId = id;
    try {
      const sdp = await rtc.makeOffer(this.pc, { iceRestart });
      if (this.offerId !== id) return; // replaced by a newer offer while gathering
      await this.hub.request({ type: "phone-offer", offer_id: id, sdp });
    } catch (err) {
      if (this.offerId !== id) return;
      this._failed(ERRORS[err.code] || err.message);
    }
  }

  _failed(message) {
    if (this.desk) return; // the desk phone takes the calls; the softphone was refused on purpose
    if (this.state !== "lost") this.setStatus("failed", `${message} Retrying…`);
    clearTimeout(this._retry.timer);
    this._retry.timer = setTimeout(() => this.connect({ fresh: this.state === "lost" }), this._retry.delay);
    this._retry.delay = Math.min(15000, this._retry.delay * 2);
  }

  async _onAnswer(m) {
    if (!this.pc || m.offer_id !== this.offerId) return;
    try {
      if (!(await rtc.applyAnswer(this.pc, m.sdp))) return;
      this.codec = m.codec;
      const status = $("#phone-status", this.root);
      status.dataset.answers = ++this._answers;
      status.dataset.offerId = m.offer_id;
    } catch (err) {
      this._failed(`The media server's answer did not fit (${err.message}).`);
    }
  }

  _onPhoneState(m) {
    if (this.desk) return; // the softphone stepped aside for the desk phone
    if (m.state === "failed") {
      if (!m.offer_id || m.offer_id === this.offerId) this._failed(m.reason || "The phone could not connect.");
    } else if (m.state === "lost") {
      // The peer connection closed (a reloaded page, a network change): the hub keeps the calls
      // for a moment if the reason says "reconnect within". Or the worker went away: its calls
      // ended (call-changed says so). Either way a fresh offer, at once, finds a worker.
      if (/reconnect within/.test(m.reason || "")) this.setStatus("reconnecting", "Reconnecting audio…");
      else this.setStatus("lost", `The audio connection was lost${m.reason ? ` (${m.reason})` : ""}; reconnecting the phone…`);
      this._closePeer();
      this.connect({ fresh: true });
    } else if (m.state === "closed") {
      this._closePeer();
      this.setStatus("closed", m.reason || "The phone was closed.");
    }
  }

  // The agent's SIP desk phone (docs/sip.md, "Desk phones"): registered or not, and whether calls ring it.
  _onDeskPhone(m) {
    const p = $("#desk-phone", this.root);
    const where = m.registered ? `registered from ${m.remote || m.contact}` : "not registered";
    p.textContent = m.phone === "desk" ? `Calls ring your desk phone (${where}).` : `Desk phone ${where}.`;
    p.dataset.registered = m.registered ? "yes" : "no";
    show(p, m.registered || m.phone === "desk");
    const desk = m.phone === "desk";
    if (desk === this.desk) return;
    this.desk = desk;
    if (desk) {
      clearTimeout(this._retry.timer);
      if (this.pc) this.hub.send({ type: "phone-close" }); // the hub ends the session rather than losing it
      this._closePeer();
      this.setStatus("desk", "Calls ring your desk phone; the desktop shows and controls them.");
    } else {
      this.connect({ fresh: true });
    }
  }

  setStatus(state, message = "") {
    this.state = state;
    $("#phone-status", this.root).dataset.state = state;
    $("#phone-state-label", this.root).textContent = STATE_LABELS[state] || state;
    $("#phone-message", this.root).textContent = message;
    show($("#phone-connect", this.root), state === "closed" || state === "off");
    if (state !== "ready") { const q = $("#phone-quality", this.root); q.textContent = ""; delete q.dataset.level; }
    this.renderCall();
  }

  // ------------------------------------------------------------ microphone and speaker

  async openMicrophone(deviceId = localStorage.getItem(STORE.input)) {
    const help = $("#mic-help", this.root);
    try {
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: deviceId ? { deviceId: { exact: deviceId } } : true });
      } catch (err) {
        if (!deviceId || err.name !== "OverconstrainedError") throw err;
        stream = await navigator.mediaDevices.getUserMedia({ audio: true }); // the saved device is gone
      }
      this._useMicrophone(stream);
      show(help, false);
      await this.listDevices();
      return true;
    } catch (err) {
      $("#mic-help-text", this.root).textContent = MIC_ERRORS[err.name] || `The microphone could not be opened (${err.message || err.name}).`;
      help.dataset.error = err.name;
      show(help, true);
      this.setStatus("no-microphone", "Calls need a microphone.");
      return false;
    }
  }

  _useMicrophone(stream) {
    if (this.local) this.local.getTracks().forEach((t) => t.stop());
    this.local = stream;
    this._applyMute();
    if (this._meter) this._meter.stop();
    this._meter = rtc.analyse(this.ctx(), stream);
  }

  async listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, key) => {
      const list = devices.filter((d) => d.kind === kind);
      select.replaceChildren(...list.map((d, i) => el("option", { value: d.deviceId }, d.label || `${kind} ${i + 1}`)));
      const saved = localStorage.getItem(key);
      if (saved && list.some((d) => d.deviceId === saved)) select.value = saved;
      return list.length;
    };
    const current = this.local && this.local.getAudioTracks()[0];
    fill($("#mic-select", this.root), "audioinput", STORE.input);
    if (current && current.getSettings().deviceId) $("#mic-select", this.root).value = current.getSettings().deviceId;
    const canPick = typeof this.audio.setSinkId === "function";
    show($("#speaker-choice", this.root), canPick && fill($("#speaker-select", this.root), "audiooutput", STORE.output) > 0);
    const out = localStorage.getItem(STORE.output);
    if (canPick && out) this.audio.setSinkId(out).catch(() => localStorage.removeItem(STORE.output));
  }

  async chooseMicrophone(deviceId) {
    localStorage.setItem(STORE.input, deviceId);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId } } });
      if (this.transceiver) await rtc.replaceMicrophone(this.transceiver, stream.getAudioTracks()[0]);
      this._useMicrophone(stream);
    } catch (err) {
      toast(`That microphone could not be opened (${err.message || err.name}).`);
    }
  }

  async chooseSpeaker(deviceId) {
    try {
      await this.audio.setSinkId(deviceId);
      localStorage.setItem(STORE.output, deviceId);
    } catch (err) {
      toast(`That speaker could not be used (${err.message || err.name}).`);
    }
  }

  // ------------------------------------------------------------ sounds and measurements

  ctx() {
    if (!this._ctx) this._ctx = new AudioContext();
    if (this._ctx.state === "suspended") this._ctx.resume().catch(() => {});
    return this._ctx;
  }

  ring(on) {
    if (!on) { if (this._ring) this._ring.stop(); this._ring = null; return; }
    if (this._ring) return;
    // 440 + 480 Hz, two seconds on and four off, for up to five minutes.
    try { this._ring = rtc.playTones(this.ctx(), [440, 480], Array.from({ length: 50 }, (_, i) => [i * 6, 2])); } catch { /* no audio: the banner still shows */ }
  }

  keyTone(digit) {
    try { rtc.playTones(this.ctx(), rtc.dtmfFrequencies(digit), [[0, 0.12]], 0.06); } catch { /* silent keypad */ }
  }

  async measureRemoteTone() {
    if (!this.remote) throw new Error("no remote audio yet");
    const ctx = this.ctx();
    if (!this._remoteAnalyser) this._remoteAnalyser = rtc.analyse(ctx, this.remote, 8192);
    return rtc.measureTone(this._remoteAnalyser.node, ctx.sampleRate);
  }

  // Headset check: the worker plays a tone to us and reports what it hears from our microphone.
  async testHeadset(on) {
    const hz = on ? Number($("#test-headset", this.root).dataset.toneHz || 1000) : 0;
    try {
      await this.hub.request({ type: "phone-test", tone_hz: hz });
      this.testing = on;
      if (!on) { const c = $("#phone-check", this.root); c.textContent = ""; delete c.dataset.frequency; delete c.dataset.levelDb; }
    } catch (err) {
      toast(ERRORS[err.code] || err.message);
    }
    show($("#test-stop", this.root), this.testing);
    $("#test-headset", this.root).disabled = this.testing;
  }

  _onCheck(m) {
    if (!this.testing) return;
    const c = $("#phone-check", this.root);
    c.dataset.frequency = m.frequency;
    c.dataset.levelDb = m.level_db;
    c.textContent = m.level_db < -60 ? "We hear nothing from your microphone."
      : `We hear you: ${Math.round(m.level_db)} dB (${Math.round(m.frequency)} Hz)`;
  }

  // ------------------------------------------------------------ calls

  async request(type, extra = {}) {
    try {
      await this.hub.request({ type, ...extra });
      return true;
    } catch (err) {
      toast(ERRORS[err.code] || err.message);
      return false;
    }
  }

  _onCall(call) {
    const before = this.calls.update(call);
    if (call.status === "ended" && before) {
      // Said only now that the call did end: a lost peer connection alone keeps the call a moment.
      if (call.end_reason === "media-lost") toast(`The audio connection was lost; your call with ${peerName(call)} was ended.`);
      else if (this.calls.live.size) toast(`${describe(call)}.`, "info");
    }
    this.renderCall();
  }

  // The contact panel's mute (a caller over SIP): the microphone stops like a muted call's.
  muteContact(on) {
    this.contactMuted = Boolean(on);
    this._applyMute();
  }

  _applyMute() {
    // Muted calls also stop the microphone at the source, so nothing leaves the browser.
    // A connected call between agents decides; otherwise the contact panel's mute does.
    const c = this.calls.current;
    const muted = c && c.status === "connected" ? Boolean(c.muted) : this.contactMuted;
    if (this.local) this.local.getAudioTracks().forEach((t) => { t.enabled = !muted; });
  }

  // The incoming banner, the other calls as rows (held while consulting), and the current
  // call in #call with the full controls (mute, hold, hang up, keypad).
  renderCall() {
    const r = this.root, calls = this.calls;
    const incoming = calls.ringingIn;
    show($("#call-banner", r), Boolean(incoming));
    this.ring(Boolean(incoming));
    if (incoming) $("#call-banner-name", r).textContent = peerName(incoming);
    const dial = $("#dial", r);
    dial.disabled = !calls.canDial || this.state !== "ready";
    dial.textContent = calls.consulting ? "Consult" : "Call agent";
    dial.dataset.mode = calls.consulting ? "consult" : "call";
    renderRows($("#call-list", r), calls.others, this.hub.now());
    const c = calls.current;
    const box = $("#call", r);
    show(box, Boolean(c));
    this._applyMute();
    if (!c) { delete box.dataset.callId; return; }
    const live = c.status !== "ended";
    Object.assign(box.dataset, { callId: c.id, status: c.status, held: heldState(c) });
    const status = $("#call-status", r);
    Object.assign(status.dataset, { status: c.status, held: heldState(c) });
    status.textContent = describe(c);
    show($("#call-controls-phone", r), live);
    show($("#keypad", r), c.status === "connected");
    const mute = $("#call-mute", r), hold = $("#call-hold", r);
    mute.textContent = c.muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(Boolean(c.muted)));
    hold.textContent = c.held ? "Resume" : "Hold";
    hold.setAttribute("aria-pressed", String(Boolean(c.held)));
    mute.disabled = hold.disabled = c.status !== "connected";
    $("#call-hangup", r).textContent = c.status === "ringing" ? "Cancel" : "Hang up";
    const digits = $("#call-digits", r), pressed = calls.digits.get(c.id);
    if (pressed) {
      digits.dataset.digits = pressed;
      digits.textContent = `${peerName(c)} pressed ${pressed}`;
    } else { digits.textContent = ""; delete digits.dataset.digits; }
    this._tick();
  }

  _tick() {
    const now = this.hub.now();
    $("#call-timer", this.root).textContent = timerText(this.calls.current, now);
    for (const li of $("#call-list", this.root).children) {
      li.children[1].textContent = timerText(this.calls.live.get(li.dataset.callId), now);
    }
  }

  async _readQuality() {
    const pc = this.pc;
    if (!pc || this.state !== "ready") return;
    try {
      const s = await rtc.readStats(pc, this._stats);
      this._stats = s;
      const q = $("#phone-quality", this.root);
      q.dataset.level = rtc.qualityLevel(s);
      Object.assign(q.dataset, { rttMs: s.rtt_ms ?? "", jitterMs: s.jitter_ms ?? "", lossPct: s.loss_pct, codec: s.codec });
      q.textContent = `${s.codec || "audio"} · RTT ${s.rtt_ms ?? "–"} ms · jitter ${s.jitter_ms ?? "–"} ms · loss ${s.loss_pct}%`;
    } catch { /* the peer connection closed meanwhile */ }
  }

  // ------------------------------------------------------------ wiring

  _bind() {
    const r = this.root, hub = this.hub;
    hub.addEventListener("phone-answer", (e) => this._onAnswer(e.detail));
    hub.addEventListener("phone-state", (e) => this._onPhoneState(e.detail));
    hub.addEventListener("phone-check", (e) => this._onCheck(e.detail));
    hub.addEventListener("desk-phone", (e) => this._onDeskPhone(e.detail));
    hub.addEventListener("call-changed", (e) => this._onCall(e.detail.call));
    hub.addEventListener("call-digits", (e) => {
      if (this.calls.addDigits(e.detail.call_id, e.detail.digits)) this.renderCall();
    });
    // Any click may unlock audio the browser held back (autoplay policy).
    r.addEventListener("click", () => { this.ctx(); if (this.audio.srcObject && this.audio.paused) this.audio.play().catch(() => {}); });
    $("#mic-retry", r).addEventListener("click", () => this.connect());
    $("#phone-connect", r).addEventListener("click", () => this.connect({ fresh: true }));
    $("#mic-select", r).addEventListener("change", (e) => this.chooseMicrophone(e.target.value));
    $("#speaker-select", r).addEventListener("change", (e) => this.chooseSpeaker(e.target.value));
    if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", () => { if (this.local) this.listDevices(); });
    $("#test-headset", r).addEventListener("click", () => this.testHeadset(true));
    $("#test-stop", r).addEventListener("click", () => this.testHeadset(false));
    $("#dial-form", r).addEventListener("submit", async (e) => {
      e.preventDefault();
      const to = e.target.to.value.trim();
      if (to && (await this.request("call-dial", { to }))) e.target.reset();
    });
    const current = () => this.calls.current || {};
    const ringing = () => (this.calls.ringingIn || {}).id;
    $("#call-answer", r).addEventListener("click", () => this.request("call-answer", { call_id: ringing() }));
    $("#call-decline", r).addEventListener("click", () => this.request("call-hangup", { call_id: ringing() }));
    $("#call-hangup", r).addEventListener("click", () => this.request("call-hangup", { call_id: current().id }));
    $("#call-mute", r).addEventListener("click", () => this.request("call-mute", { call_id: current().id, on: !current().muted }));
    $("#call-hold", r).addEventListener("click", () => this.request("call-hold", { call_id: current().id, on: !current().held }));
    on($("#call-list", r), "click", "button[data-action]", (_, b) => {
      const c = this.calls.live.get(b.closest("[data-call-id]").dataset.callId);
      if (!c) return;
      if (b.dataset.action === "hold") this.request("call-hold", { call_id: c.id, on: !c.held });
      else this.request("call-hangup", { call_id: c.id });
    });
    $("#keypad", r).replaceChildren(...KEYS.map((k) => el("button", { type: "button", dataset: { digit: k } }, k)));
    on($("#keypad", r), "click", "button[data-digit]", (_, b) => {
      this.keyTone(b.dataset.digit);
      this.request("call-dtmf", { call_id: current().id, digits: b.dataset.digit });
    });
    setInterval(() => {
      if (!this._meter) return;
      const db = rtc.levelDb(this._meter.node);
      const m = $("#mic-level", r);
      m.value = Math.max(-70, db);
      m.dataset.levelDb = Math.round(db);
    }, 100);
  }
}
