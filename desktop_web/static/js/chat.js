// Chat between agents and supervisors, and raised hands: one panel for the agent's desktop, one for the board.
// Messages arrive as `chat` frames on the user's own stream; hands as `hand` frames.

import { $, el, on, toast } from "./util.js";

const time = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function line(m, meId) {
  const to = m.queue ? ` → ${m.queue}` : m.to_supervisors ? " → supervisors" : "";
  return el("li", { class: "chat-line", dataset: { mine: m.from_id === meId ? "yes" : "no", id: m.id } },
    el("small", {}, `${time(m.sent_at)} ${m.from_name}${to}`), el("span", { class: "text" }, m.text));
}

class ChatLog {
  constructor(list) {
    this.list = list;
    this.seen = new Set();
    this.meId = null;
  }

  reset(messages) {
    this.seen.clear();
    this.list.replaceChildren();
    for (const m of messages || []) this.add(m);
  }

  add(m) {
    if (this.seen.has(m.id)) return false;
    this.seen.add(m.id);
    this.list.append(line(m, this.meId));
    this.list.scrollTop = this.list.scrollHeight;
    return true;
  }
}

// The agent's panel: a hand to raise (with a note), messages with the supervisors.
export function agentChat(hub) {
  const log = new ChatLog($("#chat-log"));
  let raised = false;
  const renderHand = () => {
    const b = $("#raise-hand");
    b.textContent = raised ? "Lower hand" : "Raise hand";
    b.setAttribute("aria-pressed", String(raised));
    $("#hand-status").textContent = raised ? "A supervisor has been asked for help." : "";
  };
  hub.addEventListener("welcome", (e) => { log.meId = e.detail.user.id; });
  hub.addEventListener("snapshot", (e) => log.reset(e.detail.chat));
  hub.addEventListener("chat", (e) => {
    if (log.add(e.detail.message) && e.detail.message.from_id !== log.meId) toast(`${e.detail.message.from_name}: ${e.detail.message.text}`, "info");
  });
  hub.addEventListener("hand", (e) => {
    raised = e.detail.raised;
    renderHand();
    if (!raised && e.detail.lowered_by && e.detail.lowered_by !== "") toast(`Help is here: ${e.detail.lowered_by}`, "info");
  });
  $("#raise-hand").addEventListener("click", async () => {
    try {
      await hub.request({ type: "hand-raise", on: !raised, ...(raised ? {} : { note: $("#chat-text").value.trim() || undefined }) });
    } catch (err) { toast(err.message); }
  });
  $("#chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("#chat-text").value.trim();
    if (!text) return;
    try {
      await hub.request({ type: "chat-send", to_supervisors: true, text });
      $("#chat-text").value = "";
    } catch (err) { toast(err.message); }
  });
  renderHand();
}

// The board's panel: raised hands (answer by writing, lower), messages, and broadcasts to a queue.
// `own` is the supervisor's connection on their own stream (chat arrives there); `board` the board's.
export function boardChat(board, own, agents, onJoin) {
  const log = new ChatLog($("#chat-log"));
  const hands = new Map();
  const name = (id) => agents.get(id)?.display_name || `agent ${id}`;
  const renderHands = () => {
    $("#hands-panel").hidden = hands.size === 0;
    $("#hands").replaceChildren(...[...hands.values()].sort((a, b) => a.raised_at - b.raised_at).map((h) =>
      el("li", { class: "hand", dataset: { agentId: h.agent_id } },
        el("span", { class: "who" }, `${name(h.agent_id)} ${time(h.raised_at)}`),
        el("span", { class: "note" }, h.note || ""),
        el("button", { type: "button", class: "reply", dataset: { agentId: h.agent_id } }, "Reply"),
        h.contact_id ? el("button", { type: "button", class: "join", dataset: { contactId: h.contact_id } }, "Whisper") : "",
        el("button", { type: "button", class: "lower", dataset: { agentId: h.agent_id } }, "Lower"))));
  };
  const fillTargets = () => {
    const sel = $("#chat-to"), keep = sel.value;
    sel.replaceChildren(
      ...[...agents.values()].sort((a, b) => a.username.localeCompare(b.username)).map((a) => el("option", { value: `user:${a.id}` }, a.display_name)),
      ...(board.queues || []).map((q) => el("option", { value: `queue:${q.name}` }, `All agents of ${q.label}`)));
    if (keep) sel.value = keep;
  };
  own.addEventListener("welcome", (e) => { log.meId = e.detail.user.id; });
  own.addEventListener("snapshot", (e) => log.reset(e.detail.chat));
  own.addEventListener("chat", (e) => {
    if (log.add(e.detail.message) && e.detail.message.from_id !== log.meId) toast(`${e.detail.message.from_name}: ${e.detail.message.text}`, "info");
  });
  board.addEventListener("snapshot", (e) => {
    board.queues = e.detail.queues;
    hands.clear();
    for (const h of e.detail.hands || []) hands.set(h.agent_id, h);
    renderHands();
    fillTargets();
  });
  board.addEventListener("agent-state", fillTargets);
  board.addEventListener("hand", (e) => {
    if (e.detail.raised) hands.set(e.detail.hand.agent_id, e.detail.hand); else hands.delete(e.detail.hand.agent_id);
    renderHands();
  });
  on($("#hands"), "click", "button.reply", (_, b) => { $("#chat-to").value = `user:${b.dataset.agentId}`; $("#chat-text").focus(); });
  on($("#hands"), "click", "button.lower", async (_, b) => {
    try { await board.request({ type: "hand-raise", on: false, agent_id: Number(b.dataset.agentId) }); } catch (err) { toast(err.message); }
  });
  on($("#hands"), "click", "button.join", (_, b) => onJoin(b.dataset.contactId));
  $("#chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("#chat-text").value.trim(), [kind, value] = $("#chat-to").value.split(":");
    if (!text || !kind) return;
    try {
      await own.request({ type: "chat-send", text, ...(kind === "queue" ? { queue: value } : { to: Number(value) }) });
      $("#chat-text").value = "";
    } catch (err) { toast(err.message); }
  });
}
