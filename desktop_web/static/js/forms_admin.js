// The admin page of queues: each queue's settings (applied to the running ACD) and its data form
// (a draft, then published as the next version; running desktops get it at once).

import { $, $$, el, on, show, toast, api, session, toLogin } from "./util.js";

if (!session.access) toLogin();

const TYPES = ["text", "textarea", "number", "date", "select", "multiselect", "email", "phone", "boolean"];
let queues = [];
let current = null; // the queue's name being edited

function row(f = { key: "", label: "", type: "text" }) {
  const opt = (v) => (v === undefined || v === null ? "" : String(v));
  return el("div", { class: "field-row" },
    el("label", {}, "Key", el("input", { name: "key", value: f.key, size: 12, "aria-label": "Key" })),
    el("label", {}, "Label", el("input", { name: "label", value: f.label, "aria-label": "Label" })),
    el("label", {}, "Type", el("select", { name: "type", "aria-label": "Type" },
      ...TYPES.map((t) => el("option", { value: t, selected: t === f.type }, t)))),
    el("label", {}, "Required", el("input", { name: "required", type: "checkbox", checked: Boolean(f.required) })),
    el("label", {}, "Choices (comma-separated)", el("input", { name: "choices", value: (f.choices || []).join(", ") })),
    el("label", {}, "Min", el("input", { name: "min", type: "number", step: "any", value: opt(f.min), size: 5 })),
    el("label", {}, "Max", el("input", { name: "max", type: "number", step: "any", value: opt(f.max), size: 5 })),
    el("label", {}, "Max length", el("input", { name: "max_length", type: "number", value: opt(f.max_length), size: 5 })),
    el("label", {}, "Pattern", el("input", { name: "pattern", value: opt(f.pattern), maxlength: 200 })),
    el("button", { type: "button", class: "remove ghost" }, "Remove"));
}

function definition() {
  const form = $("#form-edit");
  const fields = $$("#field-rows .field-row").map((r) => {
    const v = (n) => $(`[name=${n}]`, r).value.trim();
    const f = { key: v("key"), label: v("label"), type: v("type") };
    if ($("[name=required]", r).checked) f.required = true;
    if (v("choices")) f.choices = v("choices").split(",").map((c) => c.trim()).filter(Boolean);
    for (const n of ["min", "max", "max_length"]) if (v(n) !== "") f[n] = Number(v(n));
    if (v("pattern")) f.pattern = v("pattern");
    return f;
  });
  return { title: form.title.value.trim(), required_before_wrap_up: form.required_before_wrap_up.checked, fields };
}

async function load() {
  const [forms, settings] = await Promise.all([api("/api/forms"), api("/api/queues")]);
  const byName = new Map(settings.map((q) => [q.name, q]));
  queues = forms.map((f) => ({ ...f, settings: byName.get(f.queue) }));
  $("#queue-list").replaceChildren(...queues.map((q) => el("li", { dataset: { queue: q.queue } },
    el("button", { type: "button", class: "link", dataset: { queue: q.queue } }, q.settings ? q.settings.label : q.queue),
    el("small", { class: "muted" }, q.published_version ? ` · form v${q.published_version}` : " · no form"))));
  if (current) edit(current);
}

function edit(name) {
  current = name;
  const q = queues.find((x) => x.queue === name);
  if (!q) return;
  $("#editor").dataset.queue = name;
  const s = $("#queue-settings");
  s.label.value = q.settings.label;
  s.wrap_up_seconds.value = q.settings.wrap_up_seconds;
  s.service_level_seconds.value = q.settings.service_level_seconds;
  const d = q.definition || { title: "", fields: [] };
  const form = $("#form-edit");
  form.title.value = d.title || "";
  form.required_before_wrap_up.checked = Boolean(d.required_before_wrap_up);
  $("#field-rows").replaceChildren(...(d.fields.length ? d.fields : [undefined]).map((f) => row(f)));
  $("#form-state").textContent = q.published_version
    ? `Published: version ${q.published_version} of ${q.versions.length}` : q.definition ? "Draft, not published" : "No form yet";
  $("#form-state").dataset.published = String(q.published_version || "");
  $("#form-error").textContent = "";
  show($("#editor"), true);
}

on($("#queue-list"), "click", "button[data-queue]", (_, b) => edit(b.dataset.queue));
$("#add-field").addEventListener("click", () => $("#field-rows").append(row()));
on($("#field-rows"), "click", "button.remove", (_, b) => b.closest(".field-row").remove());
$("#form-edit").addEventListener("submit", async (e) => {
  e.preventDefault();
  const publish = e.submitter && e.submitter.value === "publish";
  $("#form-error").textContent = "";
  try {
    await api(`/api/forms/${current}`, { method: "PUT", body: definition() });
    if (publish) {
      const v = await api(`/api/forms/${current}/publish`, { method: "POST" });
      toast(`Version ${v.version} published`, "info");
    } else toast("Draft saved", "info");
    await load();
  } catch (err) {
    $("#form-error").textContent = err.message;
  }
});
$("#withdraw").addEventListener("click", async () => {
  try {
    await api(`/api/forms/${current}/withdraw`, { method: "POST" });
    await load();
  } catch (err) { toast(err.message); }
});
$("#queue-settings").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  try {
    await api(`/api/queues/${current}`, { method: "PATCH", body: {
      label: f.label.value.trim(), wrap_up_seconds: Number(f.wrap_up_seconds.value),
      service_level_seconds: Number(f.service_level_seconds.value) } });
    toast("Queue settings applied", "info");
    await load();
  } catch (err) { toast(err.message); }
});
$("#logout").addEventListener("click", toLogin);

const me = await api("/api/me").catch(() => null);
if (!me) toLogin();
$("#who").textContent = `${me.display_name} · ${me.tenant.name}`;
const admin = me.roles.includes("admin");
show($("#not-admin"), !admin);
show($("#admin"), admin);
if (admin) load().catch((err) => toast(err.message));
