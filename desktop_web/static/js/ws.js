// The hub connection: authenticates with the first frame, resumes from the last
// sequence after a reconnect, pings, refreshes its token, and dispatches every
// server frame as a CustomEvent named after its type.

import { session, refreshTokens, toLogin } from "./util.js";

export class HubSocket extends EventTarget {
  // `auth`: extra fields of the auth frame (a supervisor's second connection: {stream: "own"}).
  constructor(url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`, auth = {}) {
    super();
    this.url = url;
    this.auth = auth;
    this.lastSeq = null;
    this.status = "connecting";
    this.clockOffset = 0; // server time minus local time, seconds
    this._n = 0;
    this._waiting = new Map();
    this._attempt = 0;
    this._pingTimer = null;
    this._refreshTimer = null;
  }

  start() {
    this._connect();
    this._scheduleRefresh();
  }

  now() { return Date.now() / 1000 + this.clockOffset; }

  _setStatus(status) {
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  _connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      const frame = { type: "auth", token: session.access, id: this._id(), ...this.auth };
      if (this.lastSeq !== null) frame.last_seq = this.lastSeq;
      ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (e) => this._onFrame(JSON.parse(e.data));
    ws.onclose = (e) => this._onClose(e);
  }

  _onFrame(msg) {
    if (msg.type === "welcome") {
      this._attempt = 0;
      this.clockOffset = msg.server_time - Date.now() / 1000;
      clearInterval(this._pingTimer);
      this._pingTimer = setInterval(() => this.send({ type: "ping" }), msg.heartbeat_seconds * 1000);
      this._setStatus("online");
    }
    if (msg.type === "snapshot") this.lastSeq = msg.seq;
    else if (typeof msg.seq === "number") this.lastSeq = Math.max(this.lastSeq ?? 0, msg.seq);
    if (msg.ref && this._waiting.has(msg.ref)) {
      const { resolve, reject } = this._waiting.get(msg.ref);
      this._waiting.delete(msg.ref);
      if (msg.type === "error") {
        const err = new Error(msg.message);
        err.code = msg.code;
        reject(err);
      } else resolve(msg);
    }
    if (msg.type === "error" && (msg.code === "unauthorized")) this._reauthSoon = true;
    this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
  }

  async _onClose(e) {
    clearInterval(this._pingTimer);
    for (const { reject } of this._waiting.values()) reject(new Error("connection lost"));
    this._waiting.clear();
    this._setStatus("reconnecting");
    if (e.code === 4401 || this._reauthSoon) {
      this._reauthSoon = false;
      try { await refreshTokens(); } catch { toLogin(); return; }
    }
    const delay = Math.min(5000, 250 * 2 ** this._attempt++) * (0.75 + Math.random() / 2);
    setTimeout(() => this._connect(), delay);
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(async () => {
      try {
        await refreshTokens();
        if (this.status === "online") this.send({ type: "auth", token: session.access });
      } catch { /* the next reconnect retries; an expired refresh token leads to the login page */ }
      this._scheduleRefresh();
    }, session.expiresIn * 800);
  }

  _id() { return `c${++this._n}`; }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  // Send a frame and wait for its ack (or error, which rejects).
  request(frame, timeoutMs = 10000) {
    const id = this._id();
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected; reconnecting"));
        return;
      }
      this._waiting.set(id, { resolve, reject });
      setTimeout(() => {
        if (this._waiting.delete(id)) reject(new Error("no answer from the server"));
      }, timeoutMs);
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }
}
