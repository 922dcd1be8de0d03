// Wallboard links: create one for chosen queues, list them, revoke one.

import { $, el, api, on, session, toLogin, toast, refreshTokens } from "./util.js";

if (!session.access) toLogin();
const form = $("#new-wallboard");

async function call(path, opts) {
  try { return await api(path, opts); } catch (err) {
    if (err.status !== 401) throw err;
    await refreshTokens();
    return api(path, opts);
  }
}

async function load() {
  const rows = await call("/api/wallboards");
  $("#wallboards tbody").replaceChildren(...rows.map((w) => el("tr", { dataset: { id: w.id } },
    el("td", {}, w.name), el("td", {}, w.queues.join(", ")),
    el("td", {}, new Date(w.expires_at * 1000).toLocaleDateString()),
    el("td", { class: "status" }, w.revoked ? "revoked" : "active"),
    el("td", {}, w.revoked ? "" : el("button", { type: "button", class: "revoke danger" }, "Revoke")))));
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const queues = [...form.querySelectorAll("input[name=queue]:checked")].map((i) => i.value);
  const body = {
    name: form.name.value.trim(), queues, days: Number(form.days.value),
    thresholds: { service_level: { amber: Number(form.sl_amber.value) / 100, red: Number(form.sl_red.value) / 100 } },
  };
  try {
    const w = await call("/api/wallboards", { method: "POST", body });
    $("#new-link-url").href = w.path;
    $("#new-link-url").textContent = w.url;
    $("#new-link").hidden = false;
    await load();
  } catch (err) {
    toast(err.message);
  }
});

on($("#wallboards"), "click", "button.revoke", async (_, button) => {
  try {
    await call(`/api/wallboards/${button.closest("tr").dataset.id}`, { method: "DELETE" });
    await load();
  } catch (err) {
    toast(err.message);
  }
});
$("#logout").addEventListener("click", toLogin);

(async () => {
  const me = await call("/api/me");
  $("#who").textContent = `${me.display_name} · ${me.tenant.name}`;
  const ref = await api("/api/reference");
  $("#wb-queue-choice").append(...ref.queues.map((q) =>
    el("label", {}, el("input", { type: "checkbox", name: "queue", value: q.name, checked: true }), ` ${q.label}`)));
  await load();
})().catch((err) => toast(err.message));
