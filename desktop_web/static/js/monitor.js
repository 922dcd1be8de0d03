// The supervisor's softphone on the board: listen, whisper and barge into agents' calls.
// A second hub connection on the supervisor's own stream carries the softphone's offer and
// answer and the `monitor` frames; the media worker does the mixing.

import * as rtc from "./rtc.js";
import { HubSocket } from "./ws.js";

export const MODES = { listen: "Listen", whisper: "Whisper", barge: "Barge" };

export class MonitorPhone extends EventTarget {
  constructor() {
    super();
    this.hub = new HubSocket(undefined, { stream: "own" });
    this.pc = null;
    this.remote = null;
    this.audio = new Audio();
    this.audio.autoplay = true;
    this.state = "off"; // off, connecting, ready, failed
    this.watching = null; // the contact id monitored, and how
    this.mode = null;
    this._ctx = this._analyser = null;
    this._answer = null;
    this.iceServers = [];
    this.hub.addEventListener("welcome", (e) => { this.iceServers = e.detail.ice_servers || []; });
    this.hub.addEventListener("phone-answer", (e) => this._onAnswer(e.detail));
    this.hub.addEventListener("phone-state", (e) => {
      if (e.detail.state !== "closed") this._set("failed", e.detail.reason || "the softphone was lost");
    });
    this.hub.addEventListener("monitor-changed", (e) => {
      const m = e.detail;
      if (m.mode) { this.watching = m.call_id; this.mode = m.mode; } else if (this.watching === m.call_id) { this.watching = this.mode = null; }
      this.dispatchEvent(new CustomEvent("change", { detail: m }));
    });
  }

  _set(state, reason = "") {
    this.state = state;
    this.dispatchEvent(new CustomEvent("change", { detail: { state, reason } }));
  }

  _online() {
    if (this.hub.status === "online") return Promise.resolve();
    if (!this.hub.ws) this.hub.start();
    return new Promise((resolve) => {
      const done = (e) => { if (e.detail === "online") { this.hub.removeEventListener("status", done); resolve(); } };
      this.hub.addEventListener("status", done);
    });
  }

  // The softphone, connected once and kept for every call monitored.
  async ready() {
    if (this.state === "ready") return;
    this._set("connecting");
    await this._online();
    const local = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true } });
    const pc = rtc.createPeer(this.iceServers);
    this.pc = pc;
    rtc.addMicrophone(pc, local);
    pc.addEventListener("track", (e) => {
      this.remote = e.streams[0] || new MediaStream([e.track]);
      this._analyser = null;
      this.audio.srcObject = this.remote;
      this.audio.play().catch(() => { /* autoplay blocked: the next click plays it */ });
    });
    const id = `m-${Math.random().toString(36).slice(2, 10)}`;
    const answered = new Promise((resolve) => { this._answer = { id, resolve }; });
    const sdp = await rtc.makeOffer(pc);
    await this.hub.request({ type: "phone-offer", offer_id: id, sdp });
    await answered;
    this._set("ready");
  }

  async _onAnswer(m) {
    if (!this._answer || m.offer_id !== this._answer.id) return;
    await rtc.applyAnswer(this.pc, m.sdp);
    this._answer.resolve();
    this._answer = null;
  }

  async watch(contactId, mode) {
    await this.ready();
    await this.hub.request({ type: "monitor", call_id: contactId, mode });
    this.watching = contactId;
    this.mode = mode;
    if (this.audio.paused) this.audio.play().catch(() => {});
  }

  async leave() {
    if (!this.watching) return;
    const id = this.watching;
    await this.hub.request({ type: "monitor-stop", call_id: id });
    if (this.watching === id) this.watching = this.mode = null;
  }

  // What the supervisor hears within a band (tests and the level shown), about half a second.
  async measureRemoteTone(lowHz = 100, highHz = 3800) {
    if (!this.remote) throw new Error("no remote audio yet");
    if (!this._ctx) this._ctx = new AudioContext();
    if (this._ctx.state === "suspended") await this._ctx.resume();
    if (!this._analyser) this._analyser = rtc.analyse(this._ctx, this.remote, 8192);
    return rtc.measureTone(this._analyser.node, this._ctx.sampleRate, { lowHz, highHz });
  }
}
