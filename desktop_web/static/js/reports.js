// Historical reports: a range, an interval and a queue; a chart, a table and a CSV download.

import { $, el, api, session, toLogin, toast, refreshTokens } from "./util.js";
import { drawChart } from "./chart.js";

if (!session.access) toLogin();

const form = $("#report-form");
const QUEUE_COLUMNS = [
  ["offered", "Offered"], ["answered", "Answered"], ["abandoned", "Abandoned"], ["overflowed", "Overflowed"],
  ["service_level", "SL", "pct"], ["asa", "ASA", "s"], ["aht", "AHT", "s"], ["talk_seconds", "Talk", "dur"],
  ["hold_seconds", "Hold", "dur"], ["wrap_up_seconds", "Wrap-up", "dur"], ["occupancy", "Occupancy", "pct"],
  ["paused_seconds", "Paused", "dur"], ["missed_offers", "Missed offers"],
];
const AGENT_COLUMNS = [
  ["offers", "Offers"], ["answered", "Answered"], ["missed_offers", "Missed"], ["rejected_offers", "Rejected"],
  ["asa", "ASA", "s"], ["aht", "AHT", "s"], ["talk_seconds", "Talk", "dur"], ["hold_seconds", "Hold", "dur"],
  ["wrap_up_seconds", "Wrap-up", "dur"], ["logged_in_seconds", "Logged in", "dur"], ["occupancy", "Occupancy", "pct"],
  ["paused_seconds", "Paused", "dur"],
];

function fmt(v, kind) {
  if (v === null || v === undefined) return "—";
  if (kind === "pct") return `${Math.round(v * 100)}%`;
  if (kind === "s") return `${Math.round(v)} s`;
  if (kind === "dur") {
    const s = Math.round(v), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m} min ${String(s % 60).padStart(2, "0")} s`;
  }
  return String(v);
}

function params(format) {
  const p = new URLSearchParams({ from: form.from.value, to: form.to.value, interval: form.interval.value });
  if (form.queue.value) p.set("queue", form.queue.value);
  if (format) p.set("format", format);
  return p;
}

function shortLabel(start, interval) {
  return interval === "1d" ? start.slice(5, 10) : start.slice(11, 16);
}

function render(rep) {
  const kind = rep.report;
  const columns = kind === "queues" ? QUEUE_COLUMNS : AGENT_COLUMNS;
  const reasons = [...new Set(rep.rows.flatMap((r) => Object.keys(r.paused_by_reason)))].sort();
  const who = kind === "queues" ? "queue" : "agent";
  $("#report thead").replaceChildren(el("tr", {}, el("th", {}, "Interval"), el("th", {}, who === "queue" ? "Queue" : "Agent"),
    ...columns.map(([, label]) => el("th", {}, label)), ...reasons.map((r) => el("th", {}, `Paused: ${r}`))));
  const line = (r, first) => el("tr", { dataset: { start: r.start || "", [who]: r[who] } },
    el("td", { class: "start" }, first),
    el("td", { class: who }, r[who]),
    ...columns.map(([key, , f]) => el("td", { class: key.replaceAll("_", "-") }, fmt(r[key], f))),
    ...reasons.map((code) => el("td", { class: `paused-${code}` }, fmt(r.paused_by_reason[code] || 0, "dur"))));
  $("#report tbody").replaceChildren(...rep.rows.map((r) => line(r, r.start.replace("T", " ").slice(0, 16))));
  $("#report tfoot").replaceChildren(...rep.totals.map((r) => line(r, "Total")));
  $("#report-info").textContent = rep.rows.length
    ? `${rep.rows.length} rows · times in ${rep.timezone}`
    : `Nothing recorded in this range · times in ${rep.timezone}`;
  // The chart: per bucket, summed over the queues (or agents) shown.
  const index = new Map(rep.buckets.map((b, i) => [b.start, i]));
  const labels = rep.buckets.map((b) => shortLabel(b.start, rep.interval));
  const zeros = () => rep.buckets.map(() => 0);
  if (kind === "queues") {
    const offered = zeros(), answered = zeros(), abandoned = zeros(), within = zeros(), denom = zeros();
    for (const r of rep.rows) {
      const i = index.get(r.start);
      offered[i] += r.offered; answered[i] += r.answered; abandoned[i] += r.abandoned;
      within[i] += r.answered_within_sl; denom[i] += r.answered + r.abandoned - r.abandoned_within_sl;
    }
    drawChart($("#chart"), labels, [
      { name: "offered", color: "#93b4f5", values: offered },
      { name: "answered", color: "#1f9d55", values: answered },
      { name: "abandoned", color: "#c2410c", values: abandoned },
    ], { name: "service level", color: "#7c3aed", values: denom.map((d, i) => (d ? within[i] / d : null)) });
    legend([["offered", "#93b4f5"], ["answered", "#1f9d55"], ["abandoned", "#c2410c"], ["service level", "#7c3aed"]]);
  } else {
    const answered = zeros(), missed = zeros(), busy = zeros(), ready = zeros();
    for (const r of rep.rows) {
      const i = index.get(r.start);
      answered[i] += r.answered; missed[i] += r.missed_offers; busy[i] += r.busy_seconds; ready[i] += r.ready_seconds;
    }
    drawChart($("#chart"), labels, [
      { name: "answered", color: "#1f9d55", values: answered },
      { name: "missed", color: "#c2410c", values: missed },
    ], { name: "occupancy", color: "#7c3aed", values: busy.map((b, i) => (b + ready[i] ? b / (b + ready[i]) : null)) });
    legend([["answered", "#1f9d55"], ["missed offers", "#c2410c"], ["occupancy", "#7c3aed"]]);
  }
}

function legend(items) {
  $("#legend").replaceChildren(...items.map(([name, color]) =>
    el("span", { class: "key" }, el("i", { style: `background:${color}` }), name)));
}

async function withFreshToken(fn) {
  try { return await fn(); } catch (err) {
    if (err.status !== 401) throw err;
    await refreshTokens();
    return fn();
  }
}

async function show() {
  try {
    const rep = await withFreshToken(() => api(`/api/reports/${form.kind.value}?${params()}`));
    render(rep);
  } catch (err) {
    toast(err.message);
  }
}

async function downloadCsv(path = `/api/reports/${form.kind.value}?${params("csv")}`) {
  const get = async () => {
    const res = await fetch(path, { headers: { Authorization: `Bearer ${session.access}` } });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      const err = new Error(data.message || `${res.status} ${res.statusText}`);
      err.status = res.status;
      throw err;
    }
    return res;
  };
  try {
    const res = await withFreshToken(get);
    const name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "")?.[1] || "report.csv";
    const url = URL.createObjectURL(await res.blob());
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    toast(err.message);
  }
}

async function init() {
  const me = await withFreshToken(() => api("/api/me"));
  if (!me.roles.includes("supervisor") && !me.roles.includes("admin")) {
    toast("Reports are for supervisors and admins");
    return;
  }
  $("#who").textContent = `${me.display_name} · ${me.tenant.name}`;
  const ref = await api("/api/reference");
  form.queue.append(...ref.queues.map((q) => el("option", { value: q.name }, q.label)));
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const q = new URLSearchParams(location.search);
  form.from.value = q.get("from") || iso(today);
  form.to.value = q.get("to") || iso(new Date(today.getTime() + 86400000));
  if (q.get("interval")) form.interval.value = q.get("interval");
  if (q.get("kind")) form.kind.value = q.get("kind");
  await show();
}

form.addEventListener("submit", (e) => { e.preventDefault(); show(); });
$("#csv").addEventListener("click", () => downloadCsv());
// The answers of the queue's data form in the range: one column per field.
$("#forms-csv").addEventListener("click", () => {
  if (!form.queue.value) { toast("Choose the queue whose form answers to download"); return; }
  const p = new URLSearchParams({ queue: form.queue.value, from: form.from.value, to: form.to.value, format: "csv" });
  downloadCsv(`/api/reports/forms?${p}`);
});
$("#logout").addEventListener("click", toLogin);
init().catch((err) => toast(err.message));
