// The screen pop: the caller's customer record beside the contact. One match shows the record
// (editable, with its last contacts); several let the agent choose; none offer a "new customer"
// form. The choice links the contact to the customer, so its history shows the contact.

import { $, el, on, show, toast, api } from "./util.js";
import { pathLine } from "./script.js";

const when = (t) => new Date(t * 1000).toLocaleString();

// The form filled with a past contact, one line: "Reason: refund · Items: 2".
function formLine(form) {
  if (!form || !form.fields.length) return "";
  const value = (v) => (Array.isArray(v) ? v.join(", ") : v === true ? "yes" : v === false ? "no" : String(v));
  return el("div", { class: "contact-form muted", dataset: { version: form.version } },
    form.fields.map((f) => `${f.label}: ${value(f.value)}`).join(" · "));
}

// The contact's script and the agent's path through it, under the contact's line.
function scriptLine(s) {
  if (!s) return "";
  const steps = s.path.filter((e) => !e.back && ("answer" in e || "key" in e)).map(pathLine);
  return el("div", { class: "script-path", dataset: { scriptId: s.script_id, version: s.version } },
    `Script ${s.title} (version ${s.version}): ${steps.length ? steps.join(" · ") : "no answers"}`);
}

export class CustomerPanel {
  constructor() {
    this.contactId = null;
    this.customerId = null; // the customer shown for this contact
    this.loading = null;
    on($("#customer-choices"), "click", "button[data-customer-id]", (_, b) => this.choose(Number(b.dataset.customerId)));
    $("#customer-new").addEventListener("submit", (e) => { e.preventDefault(); this.create(e.target); });
    $("#customer-edit").addEventListener("submit", (e) => { e.preventDefault(); this.save(e.target); });
  }

  // Called with every render of the contact (null: no contact).
  render(contact) {
    const box = $("#customer");
    show(box, Boolean(contact));
    if (!contact) { this.contactId = null; this.customerId = null; return; }
    const matches = contact.customers || [];
    if (contact.id !== this.contactId) {
      this.contactId = contact.id;
      this.customerId = contact.customer_id || null;
      this.record = null;
      this.brief = null;
      if (this.customerId) {
        // The offer carries the match's brief: drawn at once, the full record replaces it when loaded.
        const brief = matches.find((m) => m.id === this.customerId);
        if (brief) this.drawBrief(brief);
        this.load(this.customerId);
      }
    }
    const crm = Object.entries(contact.crm || {});
    $("#crm-fields").replaceChildren(...crm.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { crm: k } }, v)]));
    show($("#crm-fields"), crm.length > 0);
    box.dataset.matches = String(matches.length);
    show($("#customer-choose"), !this.customerId && matches.length > 1);
    show($("#customer-new"), !this.customerId && matches.length === 0);
    show($("#customer-record"), Boolean(this.customerId && (this.record || this.brief)));
    if (!this.customerId && matches.length > 1) {
      $("#customer-choices").replaceChildren(...matches.map((m) => el("li", {},
        el("button", { type: "button", dataset: { customerId: m.id } }, m.name),
        " ", el("span", { class: "muted" }, [m.company, ...(m.numbers || [])].filter(Boolean).join(" · ")))));
    }
    if (!this.customerId && matches.length === 0) {
      const number = $("#customer-new [name=number]");
      if (number.dataset.contactId !== contact.id) { number.value = contact.caller; number.dataset.contactId = contact.id; }
    }
  }

  async load(id) {
    const contactId = this.contactId;
    try {
      const [record, history] = await Promise.all([api(`/api/customers/${id}`), api(`/api/customers/${id}/history`)]);
      if (this.contactId !== contactId) return;
      this.record = record;
      this.draw(record, history);
    } catch (err) { toast(err.message); }
  }

  // What the pop brought with the offer: name, company, numbers and the last contacts.
  drawBrief(b) {
    this.brief = b;
    const box = $("#customer");
    box.dataset.customerId = b.id;
    box.dataset.record = "brief";
    $("#customer-name").textContent = b.name;
    const fields = [["Numbers", (b.numbers || []).join(", ")], ["Company", b.company || ""]].filter(([, v]) => v);
    $("#customer-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
    const past = (b.last_contacts || []).filter((h) => h.contact_id !== this.contactId);
    $("#customer-contacts").replaceChildren(...(past.length ? past.slice(0, 5).map((h) => el("li",
      { dataset: { contactId: h.contact_id } },
      `${when(h.at)} · ${h.queue || ""} · ${h.outcome || "in progress"}`,
      h.wrapup_code ? ` · ${h.wrapup_code}` : "", h.notes ? ` — ${h.notes}` : ""))
      : [el("li", { class: "muted" }, "No contacts yet")]));
    show($("#customer-record"), true);
    show($("#customer-choose"), false);
    show($("#customer-new"), false);
  }

  draw(c, history) {
    history = history.filter((h) => h.contact_id !== this.contactId); // this contact is no past one
    const box = $("#customer");
    box.dataset.customerId = c.id;
    box.dataset.record = "full";
    $("#customer-name").textContent = c.name;
    const fields = [
      ["Numbers", c.numbers.map((n) => n.number + (n.label ? ` (${n.label})` : "")).join(", ")],
      ["Company", c.company || ""], ["E-mail", c.email || ""],
      ...c.addresses.map((a) => ["Address", [a.street, `${a.postcode} ${a.city}`.trim(), a.country].filter(Boolean).join(", ")]),
      ...Object.entries(c.fields || {}),
    ].filter(([, v]) => v);
    $("#customer-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
    $("#customer-contacts").replaceChildren(...(history.length ? history.slice(0, 5).map((h) => el("li",
      { dataset: { contactId: h.contact_id } },
      `${when(h.at)} · ${h.queue || h.direction} · ${h.outcome || "in progress"}`,
      h.wrapup_code ? ` · ${h.wrapup_code}` : "", h.notes ? ` — ${h.notes}` : "", scriptLine(h.script), formLine(h.form)))
      : [el("li", { class: "muted" }, "No contacts yet")]));
    const form = $("#customer-edit");
    for (const k of ["first_name", "last_name", "company", "email"]) form[k].value = c[k] || "";
    show($("#customer-record"), true);
    show($("#customer-choose"), false);
    show($("#customer-new"), false);
  }

  async link(id) {
    await api(`/api/contacts/${this.contactId}/customer`, { method: "PUT", body: { customer_id: id } });
    this.customerId = id;
    await this.load(id);
  }

  async choose(id) {
    try { await this.link(id); } catch (err) { toast(err.message); }
  }

  async create(form) {
    const body = { first_name: form.first_name.value.trim(), last_name: form.last_name.value.trim() };
    if (form.number.value.trim()) body.numbers = [{ number: form.number.value.trim() }];
    try {
      const c = await api("/api/customers", { method: "POST", body });
      await this.link(c.id);
      form.reset();
      toast(`${c.name} created`, "info");
    } catch (err) { toast(err.message); }
  }

  async save(form) {
    if (!this.record) return;
    const body = {};
    for (const k of ["first_name", "last_name", "company", "email"]) {
      const v = form[k].value.trim();
      if (v !== (this.record[k] || "")) body[k] = k === "company" || k === "email" ? v || null : v;
    }
    if (!Object.keys(body).length) return;
    try {
      await api(`/api/customers/${this.record.id}`, { method: "PATCH", body });
      await this.load(this.record.id);
      toast("Customer saved", "info");
    } catch (err) { toast(err.message); }
  }
}
