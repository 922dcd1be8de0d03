// The agent's softphone: microphone and speaker, headset check, one peer connection
// to a media worker kept up across calls, and calls to other agents.

import { $, el, on, show, toast, formatDuration } from "./util.js";
import * as rtc from "./rtc.js";

const STATE_LABELS = {
  off: "Off", connecting: "Connecting…", ready: "Ready", reconnecting: "Reconnecting…",
  lost: "Lost", failed: "Not connected", "no-microphone": "No microphone", closed: "Closed",
};
const END_REASONS = {
  hangup: "hung up", declined: "declined", cancelled: "cancelled", "no-answer": "not answered",
  "media-lost": "the media server was lost",
};
const ERRORS = {
  "no-media-worker": "No media server is available.",
  "no-phone": "That agent's phone is not connected.",
  busy: "That agent is on another call.",
  "not-found": "No such agent.",
  "bad-sdp": "The media server refused this browser's audio setup.",
};
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
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
    this._offers = 0;
    this.call = null; // the call in progress, or the last one (ended) until the next
    this.testing = false;
    this._retry = { timer: null, delay: 2000 };
    this._iceTimer = this._stats = this._ctx = this._meter = this._remoteAnalyser = this._ring = null;
    this._bind();
    setInterval(() => this._tick(), 1000);
    setInterval(() => this._readQuality(), 2000);
    const phone = this;
    window.unideskPhone = Object.freeze({
      get remoteStream() { return phone.remote; },
      get localStream() { return phone.local; },
      get state() { return phone.state; },
      measureRemoteTone: () => phone.measureRemoteTone(),
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
    if (["off", "closed", "no-microphone"].includes(this.state)) return; // waits for the agent's click
    const pc = this.pc;
    if (!pc || pc.connectionState === "failed" || ["lost", "failed"].includes(this.state)) this.connect({ fresh: true });
    else if (["failed", "disconnected"].includes(pc.iceConnectionState)) this.offer({ iceRestart: true });
  }

  resync(calls) {
    const current = (calls || [])[0] || null;
    // An ended call stays on screen (with how it ended) until the next one.
    if (current || !this.call || this.call.status !== "ended") this.call = current;
    this.renderCall();
  }

  async connect({ fresh = false } = {}) {
    clearTimeout(this._retry.timer);
    if (!this.local && !(await this.openMicrophone())) return;
    if (fresh || !this.pc || this.pc.connectionState === "closed") this._newPeer();
    if (this.state !== "lost") this.setStatus("connecting");
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
    if (this.state !== "lost") this.setStatus("failed", `${message} Retrying…`);
    clearTimeout(this._retry.timer);
    this._retry.timer = setTimeout(() => this.connect({ fresh: this.state === "lost" }), this._retry.delay);
    this._retry.delay = Math.min(15000, this._retry.delay * 2);
  }

  async _onAnswer(m) {
    if (!this.pc || m.offer_id !== this.offerId) return;
    try {
      await rtc.applyAnswer(this.pc, m.sdp);
      this.codec = m.codec;
    } catch (err) {
      this._failed(`The media server's answer did not fit (${err.message}).`);
    }
  }

  _onPhoneState(m) {
    if (m.state === "failed") {
      if (!m.offer_id || m.offer_id === this.offerId) this._failed(m.reason || "The phone could not connect.");
    } else if (m.state === "lost") {
      // The worker went away: its calls ended (with a record). A new offer finds another worker.
      const why = m.reason ? ` (${m.reason})` : "";
      this.setStatus("lost", `The audio connection was lost${why}; reconnecting the phone…`);
      if (this.call && this.call.status !== "ended") toast(`The audio connection was lost${why}; your call was ended.`);
      this._closePeer();
      this.connect({ fresh: true });
    } else if (m.state === "closed") {
      this._closePeer();
      this.setStatus("closed", m.reason || "The phone was closed.");
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
    if (this.call && this.call.id !== call.id && this.call.status !== "ended" && call.status === "ended") return;
    const digits = $("#call-digits", this.root);
    if (!this.call || this.call.id !== call.id || call.status === "ended") { digits.textContent = ""; delete digits.dataset.digits; }
    this.call = call;
    this.renderCall();
  }

  _applyMute() {
    // Muted calls also stop the microphone at the source, so nothing leaves the browser.
    const muted = Boolean(this.call && this.call.status === "connected" && this.call.muted);
    if (this.local) this.local.getAudioTracks().forEach((t) => { t.enabled = !muted; });
  }

  renderCall() {
    const c = this.call;
    const live = c && c.status !== "ended";
    const ringing = Boolean(c && c.status === "ringing" && c.direction === "inbound");
    show($("#call-banner", this.root), ringing);
    this.ring(ringing);
    if (ringing) $("#call-banner-name", this.root).textContent = c.peer_name || c.peer;
    $("#dial", this.root).disabled = Boolean(live) || this.state !== "ready";
    const box = $("#call", this.root);
    show(box, Boolean(c) && !ringing);
    this._applyMute();
    if (!c) { delete box.dataset.callId; return; }
    box.dataset.callId = c.id;
    const status = $("#call-status", this.root);
    status.dataset.status = c.status;
    status.dataset.held = c.held ? "yes" : c.held_by_peer ? "by-peer" : "no";
    const who = c.peer_name || c.peer;
    status.textContent = c.status === "ringing" ? `Calling ${who}…`
      : c.status === "connected" ? (c.held ? `${who} is on hold` : c.held_by_peer ? `On hold by ${who}` : `On call with ${who}`)
        : `Call with ${who} ended: ${END_REASONS[c.end_reason] || c.end_reason || "ended"}${c.ended_by ? ` by ${c.ended_by}` : ""}` +
          (c.answered_at && c.ended_at ? ` after ${formatDuration(c.ended_at - c.answered_at)}` : "");
    show($("#call-controls-phone", this.root), Boolean(live));
    show($("#keypad", this.root), c.status === "connected");
    const mute = $("#call-mute", this.root), hold = $("#call-hold", this.root);
    mute.textContent = c.muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(Boolean(c.muted)));
    hold.textContent = c.held ? "Resume" : "Hold";
    hold.setAttribute("aria-pressed", String(Boolean(c.held)));
    mute.disabled = hold.disabled = c.status !== "connected";
    $("#call-hangup", this.root).textContent = c.status === "ringing" ? "Cancel" : "Hang up";
    this._tick();
  }

  _tick() {
    const c = this.call;
    const t = $("#call-timer", this.root);
    if (!c || !c.answered_at) { t.textContent = ""; return; }
    t.textContent = formatDuration((c.ended_at || this.hub.now()) - c.answered_at);
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
    hub.addEventListener("call-changed", (e) => this._onCall(e.detail.call));
    hub.addEventListener("call-digits", (e) => {
      if (!this.call || e.detail.call_id !== this.call.id) return;
      const p = $("#call-digits", r);
      p.dataset.digits = (p.dataset.digits || "") + e.detail.digits;
      p.textContent = `${this.call.peer_name || this.call.peer} pressed ${p.dataset.digits}`;
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
    const callId = () => this.call && this.call.id;
    $("#call-answer", r).addEventListener("click", () => this.request("call-answer", { call_id: callId() }));
    $("#call-decline", r).addEventListener("click", () => this.request("call-hangup", { call_id: callId() }));
    $("#call-hangup", r).addEventListener("click", () => this.request("call-hangup", { call_id: callId() }));
    $("#call-mute", r).addEventListener("click", () => this.request("call-mute", { call_id: callId(), on: !this.call.muted }));
    $("#call-hold", r).addEventListener("click", () => this.request("call-hold", { call_id: callId(), on: !this.call.held }));
    $("#keypad", r).replaceChildren(...KEYS.map((k) => el("button", { type: "button", dataset: { digit: k } }, k)));
    on($("#keypad", r), "click", "button[data-digit]", (_, b) => {
      this.keyTone(b.dataset.digit);
      this.request("call-dtmf", { call_id: callId(), digits: b.dataset.digit });
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
