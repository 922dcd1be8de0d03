// The agent's knowledge: work instructions (a banner to acknowledge), the knowledge base (search,
// suggestions for the contact's queue and wrap-up code, an article's sanitized HTML), and snippets
// inserted into the focused text field with Ctrl+/ (or the Snippets button).
// Changes arrive as `instruction`, `instruction-ack` and `content-changed` frames: nothing reloads.

import { $, el, on, show, toast, api } from "./util.js";

// Article bodies come from the server already sanitized (markdown-it + nh3); they are the only HTML
// this module sets, and only into #kb-article-body.
function showArticle(a) {
  const box = $("#kb-article");
  box.dataset.articleId = a.id;
  $("#kb-article-title").textContent = a.title;
  $("#kb-article-tags").textContent = (a.tags || []).join(", ");
  $("#kb-article-body").innerHTML = a.body_html;
  show(box, true);
}

function hitItem(h) {
  return el("li", { dataset: { articleId: h.id } },
    el("button", { type: "button", class: "kb-hit link", dataset: { articleId: h.id } }, h.title),
    el("small", { class: "muted" }, ` ${h.excerpt || ""}`));
}

class Instructions {
  constructor(hub) {
    this.hub = hub;
    this.list = new Map();
    hub.addEventListener("snapshot", (e) => {
      this.list.clear();
      for (const i of e.detail.instructions || []) this.list.set(i.id, i);
      this.render();
    });
    hub.addEventListener("instruction", (e) => {
      this.list.set(e.detail.instruction.id, e.detail.instruction);
      this.render();
    });
    hub.addEventListener("instruction-ack", (e) => {
      if (this.list.delete(e.detail.instruction_id)) this.render();
    });
    on($("#instructions"), "click", "button.ack", async (_, b) => {
      const id = Number(b.dataset.id);
      b.disabled = true;
      try {
        await api(`/api/instructions/${id}/ack`, { method: "POST" });
        this.list.delete(id);
        this.render();
      } catch (err) { b.disabled = false; toast(err.message); }
    });
    setInterval(() => this.render(), 30000); // expired ones go
  }

  render() {
    const now = this.hub.now();
    const live = [...this.list.values()].filter((i) => !i.expires_at || i.expires_at > now)
      .sort((a, b) => a.published_at - b.published_at);
    show($("#instructions"), live.length > 0);
    $("#instructions").replaceChildren(...live.map((i) => el("li", { class: "instruction", dataset: { id: i.id } },
      el("strong", {}, "Instruction: "), el("span", { class: "text" }, i.text),
      el("small", { class: "muted" }, ` — ${i.published_by}, ${i.queues.join(", ")}`),
      el("button", { type: "button", class: "ack primary", dataset: { id: i.id } }, "Acknowledge"))));
  }
}

class KnowledgeBase {
  constructor(hub, contactOf) {
    this.contactOf = contactOf;
    this.query = "";
    this.shown = new Set(); // article ids in the results and suggestions
    $("#kb-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.search($("#kb-q").value.trim()); });
    on($("#knowledge"), "click", "button.kb-hit", (_, b) => this.open(Number(b.dataset.articleId)));
    $("#kb-close").addEventListener("click", () => { show($("#kb-article"), false); delete $("#kb-article").dataset.articleId; });
    const suggestSoon = () => this.suggest();
    for (const t of ["snapshot", "contact-offered", "contact-changed"]) hub.addEventListener(t, suggestSoon);
    document.addEventListener("change", (e) => { if (e.target.matches("#wrap-up-form select")) this.suggest(); });
    hub.addEventListener("content-changed", (e) => {
      const { kind, id, action } = e.detail;
      if (kind !== "article") return;
      const open = Number($("#kb-article").dataset.articleId || 0);
      if (open === id) {
        if (action === "deleted") { show($("#kb-article"), false); toast("The article you were reading was removed.", "info"); }
        else this.open(id);
      }
      if (this.query) this.search(this.query, true);
      this.suggest();
    });
  }

  async search(q, quiet = false) {
    this.query = q;
    if (!q) { $("#kb-results").replaceChildren(); return; }
    const contact = this.contactOf();
    const params = new URLSearchParams({ q, limit: "10" });
    if (contact && contact.queue) params.set("queue", contact.queue);
    try {
      const hits = await api(`/api/kb/search?${params}`);
      $("#kb-results").replaceChildren(...(hits.length ? hits.map(hitItem) : [el("li", { class: "muted none" }, "No article found.")]));
    } catch (err) { if (!quiet) toast(err.message); }
  }

  async suggest() {
    const contact = this.contactOf();
    const code = contact && contact.status === "wrap-up" ? $("#wrap-up-form select").value : "";
    const params = new URLSearchParams({ limit: "5" });
    if (contact && contact.queue) params.set("queue", contact.queue);
    if (code) params.set("wrapup", code);
    if (!params.has("queue") && !params.has("wrapup")) { $("#kb-suggest").replaceChildren(); show($("#kb-suggest-box"), false); return; }
    try {
      const hits = await api(`/api/kb/suggest?${params}`);
      $("#kb-suggest").replaceChildren(...hits.map(hitItem));
      show($("#kb-suggest-box"), hits.length > 0);
    } catch { /* suggestions are a convenience: the search still works */ }
  }

  async open(id) {
    try { showArticle(await api(`/api/kb/articles/${id}`)); } catch (err) { toast(err.message); }
  }
}

// Snippets: the list is fetched once and again when one changes; picking renders it on the server
// with the contact's data and inserts the text (never HTML) at the cursor of the field last focused.
class Snippets {
  constructor(hub, contactOf) {
    this.contactOf = contactOf;
    this.items = null;
    this.target = null;
    document.addEventListener("focusin", (e) => {
      if (e.target.matches("textarea, input[type=text], input:not([type])") && !e.target.closest("#snippet-picker")) this.target = e.target;
    });
    document.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "/") { e.preventDefault(); this.openPicker(); }
      else if (e.key === "Escape" && !$("#snippet-picker").hidden) this.closePicker();
    });
    $("#snippet-open").addEventListener("mousedown", (e) => e.preventDefault()); // keep the field's focus
    $("#snippet-open").addEventListener("click", () => this.openPicker());
    $("#snippet-filter").addEventListener("input", () => this.render());
    $("#snippet-filter").addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); const first = $("#snippets button.snippet"); if (first) this.insert(Number(first.dataset.id)); }
    });
    on($("#snippets"), "click", "button.snippet", (_, b) => this.insert(Number(b.dataset.id)));
    hub.addEventListener("content-changed", (e) => { if (e.detail.kind === "snippet") this.load(); });
    hub.addEventListener("snapshot", () => { if (this.items !== null) this.load(); }); // after a reconnect
  }

  async load() {
    try { this.items = await api("/api/snippets"); } catch (err) { toast(err.message); this.items = this.items || []; }
    this.render();
  }

  async openPicker() {
    show($("#snippet-picker"), true);
    $("#snippet-filter").value = "";
    $("#snippet-filter").focus();
    await this.load();
  }

  closePicker() {
    show($("#snippet-picker"), false);
    if (this.target) this.target.focus();
  }

  render() {
    const f = $("#snippet-filter").value.trim().toLowerCase();
    const list = (this.items || []).filter((s) => !f || s.shortcut.toLowerCase().includes(f) || s.name.toLowerCase().includes(f));
    $("#snippets").replaceChildren(...list.map((s) => el("li", {},
      el("button", { type: "button", class: "snippet", dataset: { id: s.id, shortcut: s.shortcut } }, `${s.shortcut} — ${s.name}`),
      el("small", { class: "muted" }, ` ${s.text.slice(0, 80)}`))));
  }

  async insert(id) {
    const contact = this.contactOf();
    const q = contact ? `?contact_id=${encodeURIComponent(contact.id)}` : "";
    let text;
    try { text = (await api(`/api/snippets/${id}/render${q}`)).text; } catch (err) { toast(err.message); return; }
    const field = this.target && document.contains(this.target) && !this.target.closest("[hidden]") ? this.target : null;
    this.closePicker();
    if (!field) { toast("Click into a text field first, then pick a snippet."); return; }
    const start = field.selectionStart ?? field.value.length, end = field.selectionEnd ?? start;
    field.setRangeText(text, start, end, "end");
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.focus();
  }
}

export function agentKnowledge(hub, contactOf) {
  return {
    instructions: new Instructions(hub),
    kb: new KnowledgeBase(hub, contactOf),
    snippets: new Snippets(hub, contactOf),
  };
}
