// Call scripts for admins: every queue with its script, a structured editor of the draft (steps,
// their kind, text, answers and where each leads), a JSON view, validation by the server (each
// problem named by its place, e.g. `steps[3].answers[1].next: no step 'x'`), and publishing.

import { $, el, on, show, api, session, toLogin, toast, refreshTokens } from "./util.js";

if (!session.access) toLogin();

const KINDS = ["text", "question", "field", "end"];
const TYPES = ["text", "number", "date", "email", "tel"];
let editing = null; // { queue, scriptId, version, def }

async function call(path, opts) {
  try { return await api(path, opts); } catch (err) {
    if (err.status !== 401) throw err;
    await refreshTokens();
    return api(path, opts);
  }
}

// A fetch whose 400 shows every problem the server named.
async function send(path, opts) {
  $("#sd-problems").replaceChildren();
  try { return await call(path, opts); } catch (err) {
    const problems = err.problems || [err.message];
    $("#sd-problems").replaceChildren(...problems.map((p) => el("li", {}, p)));
    throw err;
  }
}

async function loadQueues() {
  const rows = await call("/api/scripts");
  $("#script-queues tbody").replaceChildren(...rows.map((r) => el("tr", { dataset: { queue: r.queue } },
    el("td", {}, r.queue_label), el("td", { class: "title" }, r.title || "—"),
    el("td", { class: "version" }, r.version ? `version ${r.version}` : "not published"),
    el("td", {}, el("button", { type: "button", class: "edit", dataset: { queue: r.queue, scriptId: r.script_id || "" } },
      r.script_id ? "Edit" : "Write script")))));
}

function blankStep(kind, id) {
  switch (kind) {
    case "question": return { id, kind, text: "", answers: [{ label: "Yes", next: "" }, { label: "No", next: "" }] };
    case "field": return { id, kind, key: id.replace(/[^A-Za-z0-9_.-]/g, "_"), label: "", type: "text", required: true, next: "" };
    case "end": return { id, kind, text: "" };
    default: return { id, kind: "text", text: "", next: "" };
  }
}

function freshId() {
  const ids = new Set(editing.def.steps.map((s) => s.id));
  let n = editing.def.steps.length + 1;
  while (ids.has(`step${n}`)) n += 1;
  return `step${n}`;
}

async function open(queue, scriptId) {
  let def = { title: "", start: "start", steps: [{ id: "start", kind: "text", text: "", next: "end" }, { id: "end", kind: "end", text: "" }] };
  let version = 0;
  if (scriptId) {
    const s = await call(`/api/scripts/${scriptId}`);
    def = s.draft;
    version = s.version;
  }
  editing = { queue, scriptId: scriptId || null, version, def };
  $("#sd-queue").textContent = queue;
  $("#script-editor").dataset.queue = queue;
  $("#sd-problems").replaceChildren();
  show($("#script-editor"), true);
  render();
}

function options(select, value, blank = true) {
  const ids = editing.def.steps.map((s) => s.id);
  select.replaceChildren(...(blank ? [el("option", { value: "" }, "— choose —")] : []),
    ...ids.map((id) => el("option", { value: id }, id)));
  select.value = ids.includes(value) ? value : "";
  return select;
}

function stepItem(s, i) {
  const li = el("li", { class: "sd-step", dataset: { index: i, kind: s.kind } });
  const head = el("div", { class: "controls" },
    el("label", {}, "Id ", el("input", { class: "s-id", value: s.id, maxlength: 64, size: 12 })),
    el("label", {}, "Kind ", (() => {
      const k = el("select", { class: "s-kind" }, ...KINDS.map((x) => el("option", { value: x }, x)));
      k.value = s.kind;
      return k;
    })()),
    el("button", { type: "button", class: "s-remove danger" }, "Remove step"));
  li.append(head);
  const text = el("textarea", { class: "s-text", rows: 2, maxlength: 4000, placeholder: "What the agent says or reads" });
  text.value = s.text || "";
  li.append(text);
  if (s.kind === "field") {
    const type = el("select", { class: "s-type" }, ...TYPES.map((x) => el("option", { value: x }, x)));
    type.value = s.type || "text";
    li.append(el("div", { class: "controls" },
      el("label", {}, "Key ", el("input", { class: "s-key", value: s.key || "", maxlength: 64, size: 12 })),
      el("label", {}, "Label ", el("input", { class: "s-label", value: s.label || "", maxlength: 200 })),
      el("label", {}, "Type ", type),
      el("label", {}, el("input", { class: "s-required", type: "checkbox", checked: s.required !== false }), " required")));
  }
  if (s.kind === "question") {
    li.append(el("ol", { class: "answers" }, ...s.answers.map((a, j) => el("li", { class: "controls answer", dataset: { answer: j } },
      el("label", {}, "Answer ", el("input", { class: "a-label", value: a.label, maxlength: 200 })),
      el("label", {}, "goes to ", options(el("select", { class: "a-next" }), a.next)),
      el("button", { type: "button", class: "a-remove" }, "Remove")))),
    el("button", { type: "button", class: "s-add-answer" }, "Add answer"));
  }
  if (s.kind === "text" || s.kind === "field") {
    li.append(el("div", { class: "controls" }, el("label", {}, "Then ", options(el("select", { class: "s-next" }), s.next))));
  }
  return li;
}

function render() {
  const d = editing.def;
  $("#sd-title").value = d.title || "";
  options($("#sd-start"), d.start, false);
  $("#sd-steps").replaceChildren(...d.steps.map(stepItem));
  $("#sd-status").textContent = editing.version ? `Published: version ${editing.version}` : "Not published yet";
  $("#sd-json").value = JSON.stringify(d, null, 2);
  $("#script-editor").dataset.version = editing.version;
}

// Edits go into the model as they happen; a change of id, kind or the list re-renders.
function stepOf(node) { return editing.def.steps[Number(node.closest(".sd-step").dataset.index)]; }

const steps = $("#sd-steps");
steps.addEventListener("input", (e) => {
  const t = e.target, s = stepOf(t);
  if (t.matches(".s-text")) s.text = t.value;
  else if (t.matches(".s-key")) s.key = t.value.trim();
  else if (t.matches(".s-label")) s.label = t.value;
  else if (t.matches(".a-label")) s.answers[Number(t.closest(".answer").dataset.answer)].label = t.value;
  $("#sd-json").value = JSON.stringify(editing.def, null, 2);
});
steps.addEventListener("change", (e) => {
  const t = e.target, s = stepOf(t);
  if (t.matches(".s-id")) {
    const old = s.id, id = t.value.trim();
    s.id = id;
    for (const x of editing.def.steps) {  // links to the step follow its new id
      if (x.next === old) x.next = id;
      for (const a of x.answers || []) if (a.next === old) a.next = id;
    }
    if (editing.def.start === old) editing.def.start = id;
  } else if (t.matches(".s-kind")) {
    const i = editing.def.steps.indexOf(s);
    editing.def.steps[i] = { ...blankStep(t.value, s.id), text: s.text || "" };
  } else if (t.matches(".s-next")) s.next = t.value;
  else if (t.matches(".a-next")) s.answers[Number(t.closest(".answer").dataset.answer)].next = t.value;
  else if (t.matches(".s-type")) s.type = t.value;
  else if (t.matches(".s-required")) s.required = t.checked;
  else return;
  render();
});
on(steps, "click", "button.s-remove", (_, b) => { editing.def.steps.splice(editing.def.steps.indexOf(stepOf(b)), 1); render(); });
on(steps, "click", "button.s-add-answer", (_, b) => { stepOf(b).answers.push({ label: "", next: "" }); render(); });
on(steps, "click", "button.a-remove", (_, b) => {
  stepOf(b).answers.splice(Number(b.closest(".answer").dataset.answer), 1);
  render();
});
$("#sd-add-step").addEventListener("click", () => { editing.def.steps.push(blankStep("text", freshId())); render(); });
$("#sd-title").addEventListener("input", (e) => { editing.def.title = e.target.value; });
$("#sd-start").addEventListener("change", (e) => { editing.def.start = e.target.value; });
$("#sd-json-toggle").addEventListener("click", (e) => {
  const box = $("#sd-json-box");
  box.hidden = !box.hidden;
  e.target.setAttribute("aria-pressed", String(!box.hidden));
});
$("#sd-json-apply").addEventListener("click", () => {
  try { editing.def = JSON.parse($("#sd-json").value); render(); } catch (err) { toast(`JSON: ${err.message}`); }
});

$("#sd-validate").addEventListener("click", async () => {
  try {
    await send("/api/scripts/validate", { method: "POST", body: { definition: editing.def } });
    toast("The script is valid.", "info");
  } catch { /* the problems are listed */ }
});
async function save() {
  const s = await send(`/api/scripts/queue/${encodeURIComponent(editing.queue)}`, { method: "PUT", body: { definition: editing.def } });
  editing.scriptId = s.script_id;
  return s;
}
$("#sd-save").addEventListener("click", async () => {
  try { await save(); toast("Draft saved.", "info"); await loadQueues(); } catch { /* listed */ }
});
$("#sd-publish").addEventListener("click", async () => {
  try {
    await save();
    const v = await send(`/api/scripts/${editing.scriptId}/publish`, { method: "POST" });
    editing.version = v.version;
    render();
    toast(`Version ${v.version} published: agents get it on their next contact.`, "info");
    await loadQueues();
  } catch { /* listed */ }
});
on($("#script-queues"), "click", "button.edit", (_, b) => open(b.dataset.queue, Number(b.dataset.scriptId) || null)
  .catch((err) => toast(err.message)));
$("#logout").addEventListener("click", toLogin);

call("/api/me").then((me) => {
  $("#who").textContent = me.username;
  if (!me.roles.includes("admin")) { toast("Call scripts are edited by admins."); return; }
  loadQueues().catch((err) => toast(err.message));
}).catch((err) => toast(err.message));
