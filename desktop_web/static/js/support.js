// The agent's "Video support" card: open a support session (linked to the contact in progress),
// copy the customer's link, admit or turn away the customer waiting in the lobby, then the call
// (video tiles, mute, camera, screen share, chat, end). See video.js for the call itself.

import { $, api, show, toast } from "./util.js";
import { VideoCall, bindCallControls, resetCallView } from "./video.js";

const PHASES = {
  waiting: "Link ready — waiting for the customer",
  lobby: "The customer is waiting in the lobby",
  live: "In a video call",
  ended: "Ended",
};
const ENDED = {
  "host-ended": "You ended the session.",
  "guest-left": "The customer left the session.",
  denied: "You turned the customer away.",
  expired: "The link expired before the customer came.",
};

// `contactId()`: the contact in progress (the session is linked to it), or null.
export function videoSupport(hub, contactId) {
  const root = $("#video-support");
  let session = null;
  let iceServers = [];
  let offered = null; // "<session>:<guest_epoch>" of the last offer made
  const call = new VideoCall(root, (sdpType, sdp) => request({ type: "support-signal", sdp_type: sdpType, sdp }));
  const request = (frame) => hub.request({ ...frame, session_id: session.id });
  const relayed = bindCallControls(root, call, request, () => (session && session.guest_name) || "The customer");
  window.unideskVideo = Object.freeze({
    stats: () => call.stats(),
    measureRemoteTone: () => call.measureRemoteTone(),
    shareScreen: (on) => call.shareScreen(on),
  });

  function render() {
    const phase = session ? session.phase : "none";
    const status = $("#vs-status");
    status.dataset.phase = phase;
    status.textContent = !session ? "No session"
      : phase === "ended" ? `Ended — ${ENDED[session.end_reason] || session.end_reason}`
      : phase === "lobby" ? `${session.guest_name} is waiting in the lobby` : PHASES[phase];
    show($("#vs-link-box"), phase === "waiting" || phase === "lobby");
    show($("#vs-send"), phase === "waiting" || phase === "lobby");
    show($("#vs-lobby"), phase === "lobby");
    show($("#vs-call"), phase === "live");
    $("#vs-start").disabled = phase === "waiting" || phase === "lobby" || phase === "live";
    if (session) root.dataset.sessionId = session.id;
    // The link is only in the creating answer; kept in the tab so a reload of the desktop still shows it.
    if (session && phase !== "live" && phase !== "ended") $("#vs-link").value = sessionStorage.getItem(`ud.support-link.${session.id}`) || "";
  }

  async function apply(s, fresh = false) {
    if (session && s.id !== session.id && s.phase === "ended") return; // an older session of ours ended
    const was = session;
    session = s;
    if (was && was.id !== s.id) resetCallView(root);
    render();
    if (s.phase === "ended") {
      call.close();
      offered = null;
      return;
    }
    // Admitted, or the customer came back after a reload, or our page reconnected: a fresh offer.
    const key = `${s.id}:${s.guest_epoch}`;
    if (s.phase === "live" && (fresh || offered !== key)) {
      offered = key;
      try {
        await call.offer(iceServers);
      } catch (err) {
        toast(`The video call could not start (${err.message || err.name}).`);
      }
    }
  }

  hub.addEventListener("welcome", (e) => { iceServers = e.detail.ice_servers || []; });
  hub.addEventListener("snapshot", (e) => {
    const open = e.detail.support || [];
    if (open.length) apply(open[open.length - 1], true);
  });
  hub.addEventListener("support-changed", (e) => apply(e.detail.session));
  hub.addEventListener("support-relay", (e) => {
    const m = e.detail;
    if (!session || m.session_id !== session.id) return;
    if (m.kind === "signal" && m.sdp_type === "answer") call.gotAnswer(m.sdp).catch((err) => toast(err.message));
    else relayed(m, m.sender === "host");
  });

  $("#vs-start").addEventListener("click", async () => {
    try {
      const id = contactId();
      const made = await api("/api/support-sessions", { method: "POST", body: id ? { contact_id: id } : {} });
      sessionStorage.setItem(`ud.support-link.${made.id}`, made.link);
      $("#vs-link").value = made.link;
      resetCallView(root);
      if (!session || session.id !== made.id) {
        session = { id: made.id, phase: "waiting", contact_id: made.contact_id, guest_epoch: 0 };
        render();
      }
    } catch (err) {
      toast(`No support session: ${err.message}`);
    }
  });
  // The link by e-mail or SMS through the tenant's sender; a bad address or number is said plainly.
  $("#vs-send").addEventListener("submit", async (e) => {
    e.preventDefault();
    const channel = e.submitter?.dataset.channel || "email";
    const status = $("#vs-send-status");
    status.dataset.state = "sending";
    status.textContent = "Sending…";
    try {
      const r = await api(`/api/support-sessions/${session.id}/send`,
        { method: "POST", body: { [channel]: $("#vs-send-to").value.trim() } });
      status.dataset.state = "sent";
      status.textContent = `Sent by ${r.sent === "sms" ? "SMS" : "e-mail"} to ${r.to}`;
    } catch (err) {
      status.dataset.state = "failed";
      status.textContent = err.message;
    }
  });
  $("#vs-copy").addEventListener("click", async () => {
    const link = $("#vs-link");
    link.select();
    try {
      await navigator.clipboard.writeText(link.value);
      toast("Link copied", "info");
    } catch {
      toast("Select the link and copy it (the clipboard is not available here).", "info");
    }
  });
  $("#vs-admit").addEventListener("click", () => request({ type: "support-admit", admit: true }).catch((err) => toast(err.message)));
  $("#vs-deny").addEventListener("click", () => request({ type: "support-admit", admit: false }).catch((err) => toast(err.message)));
  render();
}
