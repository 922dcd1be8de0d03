// The board's work instructions: publish one to chosen queues, and see live who has acknowledged
// each and who has not (`instruction` and `instruction-ack` frames on the board's stream).

import { $, $$, el, toast, api } from "./util.js";

const time = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export function boardInstructions(hub, agents) {
  const list = new Map();
  const name = (id) => agents.get(id)?.display_name || `agent ${id}`;

  const render = () => {
    const now = hub.now();
    const live = [...list.values()].filter((i) => !i.expires_at || i.expires_at > now).sort((a, b) => b.published_at - a.published_at);
    $("#instructions").replaceChildren(...live.map((i) => {
      const acked = new Set((i.acks || []).map((a) => a.agent_id));
      const pending = (i.agents || []).filter((a) => !acked.has(a));
      return el("li", { class: "instruction", dataset: { id: i.id, pending: pending.length } },
        el("span", { class: "text" }, i.text),
        el("small", { class: "muted" }, `${time(i.published_at)} ${i.published_by} → ${i.queues.join(", ")}`),
        el("span", { class: "acked" }, `${acked.size} of ${(i.agents || []).length} acknowledged`),
        el("span", { class: "pending" }, ...(pending.length
          ? [el("span", { class: "muted" }, "Not yet: "), ...pending.map((a) => el("span", { class: "pending-agent", dataset: { agentId: a } }, name(a)))]
          : [el("span", { class: "muted" }, "Everyone has acknowledged.")])));
    }));
  };

  hub.addEventListener("snapshot", (e) => {
    $("#instruction-queues").replaceChildren(...(e.detail.queues || []).map((q) =>
      el("label", {}, el("input", { type: "checkbox", value: q.name }), ` ${q.label}`)));
    list.clear();
    for (const i of e.detail.instructions || []) list.set(i.id, i);
    render();
  });
  hub.addEventListener("agent-state", render); // names of agents first seen
  hub.addEventListener("instruction", (e) => { list.set(e.detail.instruction.id, e.detail.instruction); render(); });
  hub.addEventListener("instruction-ack", (e) => {
    const i = list.get(e.detail.instruction_id);
    if (!i) return;
    i.acks = [...(i.acks || []).filter((a) => a.agent_id !== e.detail.agent_id), { agent_id: e.detail.agent_id, at: e.detail.at }];
    render();
  });
  $("#instruction-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("#instruction-text").value.trim();
    const queues = $$("#instruction-queues input:checked").map((c) => c.value);
    if (!text || !queues.length) { toast("Write the instruction and choose at least one queue."); return; }
    try {
      const i = await api("/api/instructions", { method: "POST", body: { text, queues } });
      list.set(i.id, { ...list.get(i.id), ...i, acks: list.get(i.id)?.acks || i.acks });
      render();
      $("#instruction-text").value = "";
    } catch (err) { toast(err.message); }
  });
  setInterval(render, 30000);
}
