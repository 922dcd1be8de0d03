// The call script card: while a contact is live, the current step of its script (pinned on the server
// to the version published when the contact was offered) with the caller's details filled in, answer
// buttons, a field input, Back, the progress and the path so far. Every move is saved on the server
// at once, so a reload or a lost connection restores the same step. Field values also go to the
// contact's form when one is shown (`window.unideskForm`, announced by `unidesk-form-ready`).
// Without a contact the card lists the scripts of the agent's queues; a publication arrives as
// `content-changed {kind: "script"}` and the list follows without a reload.

import { $, el, on, show, toast, api } from "./util.js";

// A path entry as one line of text: "why → Billing", "order = A-17", "back to why".
export function pathLine(e) {
  if (e.back) return `back to ${e.to}`;
  if ("answer" in e) return `${e.step} → ${e.label}`;
  if ("key" in e) return `${e.key} = ${e.value}`;
  return `${e.step} ✓`;
}

// Field values into the contact's form, when one is shown; restored values (`force` false) do not
// overwrite what the agent typed into the form itself.
function toForm(fields, force = false) {
  const form = window.unideskForm;
  if (!form || typeof form.set !== "function") return;
  for (const [k, v] of Object.entries(fields || {})) {
    try { if (force || !form.get || !form.get(k)) form.set(k, v); } catch { /* a field the form does not have */ }
  }
}

class ScriptCard {
  constructor(hub, contactOf) {
    this.contactOf = contactOf;
    this.contactId = null;
    this.state = null;
    this.busy = false;
    on($("#script-answers"), "click", "button[data-answer]", (_, b) => this.move({ answer: Number(b.dataset.answer) }));
    $("#script-continue").addEventListener("click", () => this.move({}));
    $("#script-back").addEventListener("click", () => this.move({ back: true }));
    $("#script-field").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("#script-field-input").value;
      this.move({ value }).then((ok) => { if (ok) toForm({ [this.lastKey]: value.trim() }, true); });
    });
    // The wrap-up finishes the script's path (after the desktop's own handler sends the wrap-up).
    document.addEventListener("submit", (e) => { if (e.target.matches("#wrap-up-form")) this.finish(); });
    document.addEventListener("unidesk-form-ready", () => { if (this.state) toForm(this.state.fields); });
    for (const t of ["snapshot", "contact-offered", "contact-changed"]) hub.addEventListener(t, () => this.follow());
    hub.addEventListener("content-changed", (e) => { if (e.detail.kind === "script") this.loadPublished(); });
    hub.addEventListener("snapshot", () => this.loadPublished());
  }

  // Called on every contact frame: a new live contact loads its script; none shows the queues' list.
  follow() {
    const c = this.contactOf();
    const live = c && ["ringing", "connected", "wrap-up"].includes(c.status) ? c : null;
    const id = live ? live.id : null;
    if (id !== this.contactId) {
      this.contactId = id;
      this.state = null;
      if (id) this.load(id);
    }
    this.render();
  }

  async loadPublished() {
    try {
      const list = await api("/api/scripts/mine");
      $("#script-published").replaceChildren(...(list.length ? list.map((s) => el("li",
        { dataset: { queue: s.queue, scriptId: s.script_id, version: s.version } },
        `${s.queue_label}: `, el("strong", {}, s.title), ` · version ${s.version}`))
        : [el("li", { class: "muted" }, "No scripts published for your queues.")]));
    } catch (err) { toast(err.message); }
  }

  async load(id, tries = 3) {
    try {
      const state = await api(`/api/contacts/${encodeURIComponent(id)}/script`);
      if (this.contactId !== id) return;
      this.state = state.none ? { none: true } : state; // none: the contact's queue has no script
      if (!state.none) toForm(state.fields);
    } catch (err) {
      if (this.contactId !== id) return;
      this.state = null;
      // A contact that just arrived, or a hub restarting: try again shortly before telling the agent.
      if (tries > 1) { setTimeout(() => { if (this.contactId === id && !this.state) this.load(id, tries - 1); }, 1000); }
      else toast(err.message);
    }
    this.render();
  }

  async move(extra) {
    const s = this.state;
    if (!s || s.none || this.busy) return false;
    this.busy = true;
    this.lastKey = s.step.key;
    try {
      this.state = await api(`/api/contacts/${encodeURIComponent(s.contact_id)}/script`,
        { method: "POST", body: { step: s.step.id, ...extra } });
      return true;
    } catch (err) {
      toast(err.message);
      if (err.status === 409) this.load(s.contact_id); // moved elsewhere (another tab): show where it is
      return false;
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async finish() {
    const s = this.state;
    if (!s || s.none || s.finished_at) return;
    try { await api(`/api/contacts/${encodeURIComponent(s.contact_id)}/script/finish`, { method: "POST" }); }
    catch (err) { toast(err.message); }
  }

  render() {
    const s = this.state;
    const running = Boolean(this.contactId && s && !s.none);
    show($("#script-published"), !this.contactId);
    show($("#script-none"), Boolean(this.contactId && s && s.none));
    show($("#script-run"), running);
    const box = $("#script");
    if (!running) { delete box.dataset.step; delete box.dataset.version; return; }
    box.dataset.step = s.step.id;
    box.dataset.version = s.version;
    box.dataset.scriptId = s.script_id;
    $("#script-name").textContent = s.title;
    $("#script-version").textContent = `version ${s.version} · step ${s.done + 1} of ${s.done + 1 + s.remaining}`;
    const p = $("#script-progress");
    p.max = s.done + s.remaining || 1;
    p.value = s.done;
    $("#script-text").textContent = s.step.text;
    const kind = s.step.kind;
    $("#script-answers").replaceChildren(...(kind === "question" ? s.step.answers.map((a, i) =>
      el("button", { type: "button", dataset: { answer: i } }, a)) : []));
    show($("#script-continue"), kind === "text");
    show($("#script-field"), kind === "field");
    if (kind === "field") {
      $("#script-field-label").textContent = s.step.label;
      const input = $("#script-field-input");
      input.type = s.step.type === "email" || s.step.type === "number" || s.step.type === "date" || s.step.type === "tel"
        ? s.step.type : "text";
      input.required = Boolean(s.step.required);
      if (input.dataset.step !== s.step.id) { input.value = s.fields[s.step.key] || ""; input.dataset.step = s.step.id; }
    }
    $("#script-back").disabled = s.done === 0;
    $("#script-path").replaceChildren(...s.path.map((e) => el("li", { dataset: e.back ? { back: "" } : {} }, pathLine(e))));
  }
}

export function agentScript(hub, contactOf) {
  return new ScriptCard(hub, contactOf);
}
