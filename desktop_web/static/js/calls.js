// The agent's calls: every call in progress (a held call and a consult beside it),
// ordered by start, and the last one that ended, shown until the next call.

import { el, formatDuration } from "./util.js";

export const END_REASONS = {
  hangup: "hung up", declined: "declined", cancelled: "cancelled", "no-answer": "not answered",
  "media-lost": "the media server was lost",
};

export function peerName(c) {
  return c.peer_name || c.peer;
}

// The one-line status of a call, as shown in its row.
export function describe(c) {
  const who = peerName(c);
  if (c.status === "ringing") return c.direction === "inbound" ? `${who} is calling` : `Calling ${who}…`;
  if (c.status === "connected") return c.held ? `${who} is on hold` : c.held_by_peer ? `On hold by ${who}` : `On call with ${who}`;
  return `Call with ${who} ended: ${END_REASONS[c.end_reason] || c.end_reason || "ended"}${c.ended_by ? ` by ${c.ended_by}` : ""}` +
    (c.answered_at && c.ended_at ? ` after ${formatDuration(c.ended_at - c.answered_at)}` : "");
}

export function heldState(c) {
  return c.held ? "yes" : c.held_by_peer ? "by-peer" : "no";
}

export function timerText(c, now) {
  return c && c.answered_at ? formatDuration((c.ended_at || now) - c.answered_at) : "";
}

export class Calls {
  constructor() {
    this.live = new Map(); // id → call, while ringing or connected
    this.ended = null; // the last call that ended, while no other is in progress
    this.digits = new Map(); // id → keypad digits the other party pressed
  }

  // The calls in progress as a snapshot lists them.
  resync(calls) {
    const live = (calls || []).filter((c) => c.status !== "ended");
    this.live = new Map(live.map((c) => [c.id, c]));
    if (this.live.size) this.ended = null;
    for (const id of [...this.digits.keys()]) if (!this.live.has(id)) this.digits.delete(id);
  }

  // A call-changed: returns the call as it was known before (undefined when it was not).
  update(call) {
    const before = this.live.get(call.id);
    if (call.status === "ended") {
      this.live.delete(call.id);
      this.digits.delete(call.id);
      this.ended = this.live.size ? null : call;
    } else {
      this.live.set(call.id, call);
      this.ended = null;
    }
    return before;
  }

  addDigits(callId, digits) {
    if (!this.live.has(callId)) return "";
    const all = (this.digits.get(callId) || "") + digits;
    this.digits.set(callId, all);
    return all;
  }

  get list() {
    return [...this.live.values()].sort((a, b) => a.started_at - b.started_at);
  }

  // A call ringing for this agent: it shows as the incoming banner.
  get ringingIn() {
    return this.list.find((c) => c.status === "ringing" && c.direction === "inbound") || null;
  }

  // The call the phone's main controls act on: the latest one not held by this agent,
  // else the latest held one, else the last one that ended.
  get current() {
    const incoming = this.ringingIn;
    const rest = this.list.filter((c) => c !== incoming);
    if (!rest.length) return this.live.size ? null : this.ended;
    return rest.filter((c) => !c.held).at(-1) || rest.at(-1);
  }

  // The other calls in progress (held while this agent consults), each a row of its own.
  get others() {
    const skip = [this.current, this.ringingIn];
    return this.list.filter((c) => !skip.includes(c));
  }

  // Dialling is possible with no call, or while every call is connected and held by this agent (a consult).
  get canDial() {
    return [...this.live.values()].every((c) => c.status === "connected" && c.held);
  }

  get consulting() {
    return this.live.size > 0 && this.canDial;
  }
}

// Rows of the other calls, each with its own hold/resume and hang-up buttons; kept in
// place across renders so a click never lands on a replaced element.
export function renderRows(list, calls, now) {
  const rows = new Map([...list.children].map((li) => [li.dataset.callId, li]));
  const keep = calls.map((c) => {
    let li = rows.get(c.id);
    if (!li) {
      li = el("li", { class: "call-row", dataset: { callId: c.id } },
        el("span", { class: "call-status" }), el("span", { class: "timer" }),
        el("button", { type: "button", dataset: { action: "hold" }, "aria-pressed": "false" }, "Hold"),
        el("button", { type: "button", class: "danger", dataset: { action: "hangup" } }, "Hang up"));
    }
    li.dataset.status = c.status;
    li.dataset.held = heldState(c);
    const [status, timer, hold, hangup] = li.children;
    status.textContent = describe(c);
    timer.textContent = timerText(c, now);
    hold.textContent = c.held ? "Resume" : "Hold";
    hold.setAttribute("aria-pressed", String(Boolean(c.held)));
    hold.disabled = c.status !== "connected";
    hangup.textContent = c.status === "ringing" ? "Cancel" : "Hang up";
    return li;
  });
  rows.forEach((li, id) => { if (!calls.some((c) => c.id === id)) li.remove(); });
  keep.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  list.hidden = keep.length === 0;
}
