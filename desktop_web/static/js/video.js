// A 1:1 video call between two browsers (a support session): camera and microphone, the peer
// connection (the agent offers, the customer answers; ICE gathered before sending, no trickle),
// screen share, and the call's buttons, chat and measurements shared by the agent's card and the
// customer's page. The hub only relays the SDP; media flows browser to browser (or through TURN).
//
// Screen share replaces the camera's track on the one video sender (`replaceTrack`): no
// renegotiation, so no offer glare when either side starts sharing; the other side's tile shows
// the screen instead of the camera until sharing stops.

import { $, el, show, toast } from "./util.js";
import { createPeer, makeOffer, applyAnswer, gatheringComplete, analyse, measureTone, levelDb } from "./rtc.js";

export class VideoCall extends EventTarget {
  // `send(sdpType, sdp)`: relays SDP to the other side (a promise).
  constructor(root, send) {
    super();
    this.root = root;
    this.send = send;
    this.local = $("#vs-local", root);
    this.remote = $("#vs-remote", root);
    this.stream = null;
    this.pc = null;
    this.videoSender = null;
    this.screen = null;
    this.muted = false;
    this.cameraOff = false;
  }

  // Camera and microphone, once; shown in the local tile (muted, so nobody hears themselves).
  async startMedia() {
    if (!this.stream) {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
      this.local.srcObject = this.stream;
    }
    return this.stream;
  }

  _newPeer(iceServers) {
    if (this.pc) this.pc.close();
    const pc = createPeer(iceServers);
    this.pc = pc;
    for (const track of this.stream.getTracks()) {
      const sender = pc.addTrack(track, this.stream);
      if (track.kind === "video") this.videoSender = sender;
    }
    if (this.screen) this.videoSender.replaceTrack(this.screen.getVideoTracks()[0]);
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      if (this.remote.srcObject !== stream) {
        this.remote.srcObject = stream;
        this._remoteAnalyser = null;
      }
      this.dispatchEvent(new CustomEvent("remote"));
    };
    pc.onconnectionstatechange = () => this.dispatchEvent(new CustomEvent("state", { detail: pc.connectionState }));
    return pc;
  }

  // The agent's side: a fresh peer connection and its offer.
  async offer(iceServers) {
    await this.startMedia();
    const pc = this._newPeer(iceServers);
    await this.send("offer", await makeOffer(pc));
  }

  // The customer's side: every offer gets a fresh peer connection (the agent re-offers after a reload).
  async answer(iceServers, sdp) {
    await this.startMedia();
    const pc = this._newPeer(iceServers);
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gatheringComplete(pc);
    await this.send("answer", pc.localDescription.sdp);
  }

  async gotAnswer(sdp) {
    if (this.pc) await applyAnswer(this.pc, sdp);
  }

  setMuted(on) {
    this.muted = on;
    if (this.stream) this.stream.getAudioTracks().forEach((t) => { t.enabled = !on; });
  }

  setCameraOff(on) {
    this.cameraOff = on;
    if (this.stream) this.stream.getVideoTracks().forEach((t) => { t.enabled = !on; });
  }

  // The screen instead of the camera on the video sender (true), or the camera again (false).
  async shareScreen(on) {
    if (on && !this.screen) {
      this.screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = this.screen.getVideoTracks()[0];
      track.addEventListener("ended", () => this.shareScreen(false));
      if (this.videoSender) await this.videoSender.replaceTrack(track);
    } else if (!on && this.screen) {
      const screen = this.screen;
      this.screen = null;
      if (this.videoSender && this.stream) await this.videoSender.replaceTrack(this.stream.getVideoTracks()[0]);
      screen.getTracks().forEach((t) => t.stop());
    } else return;
    this.dispatchEvent(new CustomEvent("screen", { detail: on }));
  }

  // What arrives: video frames decoded and their size, audio packets (for the page and the tests).
  async stats() {
    const out = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, audioPackets: 0, state: this.pc ? this.pc.connectionState : "none" };
    if (!this.pc) return out;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") {
        out.framesDecoded += s.framesDecoded || 0;
        out.frameWidth = s.frameWidth || out.frameWidth;
        out.frameHeight = s.frameHeight || out.frameHeight;
      } else if (s.kind === "audio") out.audioPackets += s.packetsReceived || 0;
    });
    return out;
  }

  ctx() {
    if (!this._ctx) this._ctx = new AudioContext();
    if (this._ctx.state === "suspended") this._ctx.resume().catch(() => {});
    return this._ctx;
  }

  // The dominant tone of what the other side sends (see rtc.measureTone).
  async measureRemoteTone() {
    const stream = this.remote.srcObject;
    if (!stream || !stream.getAudioTracks().length) throw new Error("no remote audio yet");
    if (!this._remoteAnalyser) this._remoteAnalyser = analyse(this.ctx(), stream, 8192);
    return measureTone(this._remoteAnalyser.node, this.ctx().sampleRate);
  }

  // The local microphone's level in dBFS (the customer's device test).
  micLevel() {
    if (!this.stream) return -100;
    if (!this._micAnalyser) this._micAnalyser = analyse(this.ctx(), this.stream);
    return levelDb(this._micAnalyser.node);
  }

  close() {
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.screen) this.screen.getTracks().forEach((t) => t.stop());
    this.screen = null;
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this._micAnalyser = null;
    this._remoteAnalyser = null;
    this.muted = false;
    this.cameraOff = false;
    this.local.srcObject = null;
    this.remote.srcObject = null;
  }
}

// The call's buttons and chat inside `root` (#vs-mute, #vs-camera, #vs-screen, #vs-end, #vs-chat-form);
// `request(frame)` sends a support frame of this session and waits for its ack.
export function bindCallControls(root, call, request, otherName) {
  const press = (id, on, onText, offText) => {
    const b = $(id, root);
    b.setAttribute("aria-pressed", String(on));
    b.textContent = on ? onText : offText;
  };
  $("#vs-mute", root).addEventListener("click", () => {
    call.setMuted(!call.muted);
    press("#vs-mute", call.muted, "Unmute", "Mute");
  });
  $("#vs-camera", root).addEventListener("click", () => {
    call.setCameraOff(!call.cameraOff);
    press("#vs-camera", call.cameraOff, "Camera on", "Camera off");
  });
  $("#vs-screen", root).addEventListener("click", async () => {
    try {
      await call.shareScreen(!call.screen);
    } catch (err) {
      toast(`The screen could not be shared (${err.message || err.name}).`);
    }
  });
  call.addEventListener("screen", (e) => {
    press("#vs-screen", e.detail, "Stop sharing", "Share screen");
    request({ type: "support-screen", on: e.detail }).catch((err) => toast(err.message));
  });
  $("#vs-end", root).addEventListener("click", () => request({ type: "support-end" }).catch((err) => toast(err.message)));
  $("#vs-chat-form", root).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("#vs-chat-text", root);
    const text = input.value.trim();
    if (!text) return;
    try {
      await request({ type: "support-chat", text });
      input.value = "";
    } catch (err) {
      toast(err.message);
    }
  });
  // Relayed frames from the other side (and our own chat lines, which come back to us).
  return function relayed(m, mine) {
    if (m.kind === "chat") {
      $("#vs-chat", root).append(el("li", { class: "chat-line", dataset: { sender: m.sender } },
        el("b", { class: "who" }, mine ? "You" : m.sender_name), " ", el("span", { class: "text" }, m.text)));
    } else if (m.kind === "screen") {
      const note = $("#vs-remote-screen", root);
      note.textContent = m.on ? `${otherName()} is sharing their screen` : "";
      note.dataset.sharing = m.on ? "yes" : "no";
    }
  };
}

export function resetCallView(root) {
  $("#vs-chat", root).replaceChildren();
  const note = $("#vs-remote-screen", root);
  note.textContent = "";
  note.dataset.sharing = "no";
  for (const [id, text] of [["#vs-mute", "Mute"], ["#vs-camera", "Camera off"], ["#vs-screen", "Share screen"]]) {
    const b = $(id, root);
    b.setAttribute("aria-pressed", "false");
    b.textContent = text;
  }
  show($("#vs-call", root), false);
}
