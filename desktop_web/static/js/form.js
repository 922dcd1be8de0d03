// The contact's data form: the queue's published form during the call and in wrap-up, checked here
// as the server checks it (realtime/forms.py), saved as a draft or complete. A `form-changed` frame
// fetches it again; the server keeps a contact in progress on the version it started with.
//
// Other modules fill it through `window.unideskForm` ({ set(key, value), get(key), fields() }) and
// learn that a form is shown for a contact from the `unidesk-form-ready` event on `document`.

import { $, el, show, toast, api } from "./util.js";

const DEFAULT_MAX = { text: 500, textarea: 5000 };
const SHORT_MAX = { email: 254, phone: 40, date: 10, select: 200 };
const EMAIL = /^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const empty = (v) => v === null || v === undefined || v === "" || (Array.isArray(v) && v.length === 0);

// One field's error, or "" (the server's rules; the phone number's validity is the server's to judge).
export function fieldError(f, v, draft) {
  if (empty(v)) return f.required && !draft ? "required" : "";
  switch (f.type) {
    case "boolean": return typeof v === "boolean" ? "" : "expected true or false";
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) return "expected a number";
      if (f.min !== undefined && f.min !== null && v < f.min) return `at least ${f.min}`;
      if (f.max !== undefined && f.max !== null && v > f.max) return `at most ${f.max}`;
      return "";
    case "multiselect": {
      const bad = v.find((x) => !(f.choices || []).includes(x));
      return bad === undefined ? "" : `'${bad}' is not one of the choices`;
    }
    default: break;
  }
  const limit = f.type === "text" || f.type === "textarea" ? f.max_length || DEFAULT_MAX[f.type] : SHORT_MAX[f.type];
  if (v.length > limit) return `at most ${limit} characters`;
  if (f.type === "select" && !(f.choices || []).includes(v)) return `'${v}' is not one of the choices`;
  if (f.type === "date" && (!DATE.test(v) || Number.isNaN(Date.parse(v)))) return "expected a date YYYY-MM-DD";
  if (f.type === "email" && !EMAIL.test(v)) return "not an e-mail address";
  if (f.type === "phone" && (v.replace(/\D/g, "").length < 3 || !/^[+0-9 ()/.-]+$/.test(v))) return "not a phone number";
  if (f.pattern && !new RegExp(`^(?:${f.pattern})$`, "u").test(v)) return "does not have the expected format";
  return "";
}

function input(f) {
  const id = `form-${f.key}`;
  const common = { id, name: f.key, dataset: { key: f.key }, "aria-describedby": `form-error-${f.key}` };
  switch (f.type) {
    case "textarea": return el("textarea", { ...common, rows: 3, maxlength: f.max_length || DEFAULT_MAX.textarea });
    case "number": return el("input", { ...common, type: "number", step: "any", min: f.min ?? null, max: f.max ?? null });
    case "date": return el("input", { ...common, type: "date" });
    case "email": return el("input", { ...common, type: "email", maxlength: 254 });
    case "phone": return el("input", { ...common, type: "tel", maxlength: 40 });
    case "boolean": return el("input", { ...common, type: "checkbox" });
    case "select": return el("select", common, el("option", { value: "" }, "—"),
      ...f.choices.map((c) => el("option", { value: c }, c)));
    case "multiselect": return el("fieldset", { ...common, class: "choices" },
      ...f.choices.map((c) => el("label", {}, el("input", { type: "checkbox", value: c }), ` ${c}`)));
    default: return el("input", { ...common, type: "text", maxlength: f.max_length || DEFAULT_MAX.text });
  }
}

export class FormCard {
  constructor(hub, contactOf) {
    this.contactOf = contactOf;
    this.contactId = null;
    this.version = null;
    this.def = null;
    this.loading = 0;
    const refresh = () => this.refresh();
    for (const t of ["snapshot", "contact-offered", "contact-changed", "agent-state"]) hub.addEventListener(t, refresh);
    hub.addEventListener("form-changed", (e) => {
      const c = this.live();
      if (c && e.detail.queue === c.queue) this.load(c);
    });
    $("#form-body").addEventListener("input", (e) => {
      const box = e.target.closest(".form-field");
      if (box) this.showError(box.dataset.key, "");
    });
    $("#form-card form").addEventListener("submit", (e) => { e.preventDefault(); this.save(e.submitter && e.submitter.value === "draft"); });
  }

  live() {
    const c = this.contactOf();
    return c && ["connected", "wrap-up"].includes(c.status) ? c : null;
  }

  refresh() {
    const c = this.live();
    if (!c) {
      this.contactId = null;
      this.def = null;
      show($("#form-card"), false);
      return;
    }
    if (c.id !== this.contactId) this.load(c);
  }

  async load(c) {
    const ticket = ++this.loading;
    this.contactId = c.id;
    let got;
    try { got = await api(`/api/forms/contact/${encodeURIComponent(c.id)}`); } catch (err) { toast(err.message); return; }
    if (ticket !== this.loading || this.contactId !== c.id) return;
    if (!got.form) {
      this.def = null;
      this.version = null;
      show($("#form-card"), false);
      return;
    }
    // The same version for the same contact: what the agent typed stays.
    if (this.def && this.version === got.form.version && $("#form-card").dataset.contactId === c.id) return;
    this.def = got.form.definition;
    this.version = got.form.version;
    this.render(c, got.answer);
  }

  render(c, answer) {
    const card = $("#form-card");
    card.dataset.contactId = c.id;
    card.dataset.version = String(this.version);
    card.dataset.queue = c.queue;
    $("#form-title").textContent = this.def.title;
    $("#form-body").replaceChildren(...this.def.fields.map((f) => el("div", { class: "form-field", dataset: { key: f.key, type: f.type } },
      el("label", { for: `form-${f.key}` }, f.label, f.required ? el("span", { class: "req", title: "required" }, " *") : ""),
      input(f),
      f.help ? el("small", { class: "muted" }, f.help) : "",
      el("small", { class: "field-error", id: `form-error-${f.key}`, dataset: { errorFor: f.key }, role: "alert" }))));
    for (const [k, v] of Object.entries((answer && answer.data) || {})) this.set(k, v, false);
    this.status(answer ? (answer.draft ? "Draft saved" : "Saved") : "", answer ? (answer.draft ? "draft" : "saved") : "");
    show(card, true);
    document.dispatchEvent(new CustomEvent("unidesk-form-ready", {
      detail: { contactId: c.id, queue: c.queue, version: this.version, fields: this.fields() },
    }));
  }

  node(key) { return $(`#form-body [data-key="${CSS.escape(key)}"] [name="${CSS.escape(key)}"]`); }

  field(key) { return this.def ? this.def.fields.find((f) => f.key === key) : undefined; }

  fields() {
    return this.def ? this.def.fields.map((f) => ({ key: f.key, label: f.label, type: f.type, required: Boolean(f.required),
      ...(f.choices ? { choices: [...f.choices] } : {}) })) : [];
  }

  get(key) {
    const f = this.field(key), n = f && this.node(key);
    if (!n) return undefined;
    if (f.type === "boolean") return n.checked;
    if (f.type === "multiselect") return [...n.querySelectorAll("input:checked")].map((i) => i.value);
    if (f.type === "number") return n.value === "" ? null : Number(n.value);
    return n.value;
  }

  set(key, value, notify = true) {
    const f = this.field(key), n = f && this.node(key);
    if (!n) return false;
    if (f.type === "boolean") n.checked = Boolean(value);
    else if (f.type === "multiselect") {
      const on = new Set(Array.isArray(value) ? value : [value]);
      for (const i of n.querySelectorAll("input")) i.checked = on.has(i.value);
    } else n.value = value === null || value === undefined ? "" : String(value);
    if (notify) n.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  }

  data() {
    const out = {};
    for (const f of this.def.fields) {
      const v = this.get(f.key);
      if (f.type === "boolean" || !empty(v)) out[f.key] = v;
    }
    return out;
  }

  showError(key, text) {
    const node = $(`#form-body [data-error-for="${CSS.escape(key)}"]`);
    if (node) node.textContent = text;
    const box = node && node.closest(".form-field");
    if (box) box.dataset.invalid = text ? "yes" : "no";
  }

  status(text, kind) {
    const s = $("#form-status");
    s.textContent = text;
    s.dataset.saved = kind;
  }

  async save(draft) {
    if (!this.def) return;
    const data = this.data();
    let bad = false;
    for (const f of this.def.fields) {
      const err = fieldError(f, data[f.key], draft);
      this.showError(f.key, err);
      bad = bad || Boolean(err);
    }
    if (bad) { this.status("Check the marked fields", "invalid"); return; }
    const id = this.contactId;
    try {
      await api(`/api/forms/contact/${encodeURIComponent(id)}`, { method: "PUT", body: { data, draft, version: this.version } });
      if (id === this.contactId) this.status(draft ? "Draft saved" : "Saved", draft ? "draft" : "saved");
    } catch (err) {
      for (const [k, msg] of Object.entries((err.data && err.data.fields) || {})) this.showError(k, msg);
      this.status("Not saved", "invalid");
      toast(err.message);
    }
  }
}

export function agentForm(hub, contactOf) {
  const card = new FormCard(hub, contactOf);
  window.unideskForm = {
    set: (key, value) => card.set(key, value),
    get: (key) => card.get(key),
    fields: () => card.fields(),
  };
  return card;
}
