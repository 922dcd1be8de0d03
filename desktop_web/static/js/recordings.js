// Call recordings for supervisors: the list (newest first), one player, and download links for
// those the tenant lets download. The audio URLs carry a token for their recording only (an
// <audio> element sends no Authorization header).

import { $, api, el, on, toast, session, toLogin, formatDuration, refreshTokens } from "./util.js";

if (!session.access) toLogin();

const player = $("#player");
let recordings = [];

function started(at) {
  return new Date(at * 1000).toLocaleString();
}

function row(r) {
  const actions = r.available
    ? [
        el("button", { type: "button", class: "play", dataset: { id: r.id } }, "Play"),
        ...(r.download ? [el("a", { class: "download", href: `${r.audio_url}&download=1`, download: "" }, "Download")] : []),
      ]
    : [el("span", { class: "muted" }, r.deleted_at ? "deleted (retention)" : r.error ? "failed" : "not finished")];
  return el(
    "tr",
    { dataset: { id: r.id, contactId: r.contact_id } },
    el("td", { class: "started" }, started(r.started_at)),
    el("td", { class: "contact" }, r.contact_id),
    el("td", { class: "caller" }, r.caller || ""),
    el("td", { class: "agent" }, r.agent || ""),
    el("td", { class: "queue" }, r.queue),
    el("td", { class: "length" }, r.seconds == null ? "" : formatDuration(r.seconds)),
    el("td", { class: "actions" }, ...actions),
  );
}

async function load() {
  const contact = $("#filter").contact_id.value.trim();
  const query = contact ? `?contact_id=${encodeURIComponent(contact)}` : "";
  try {
    recordings = await api(`/api/recordings${query}`);
  } catch (err) {
    if (err.status === 401) {
      await refreshTokens().catch(toLogin);
      return load();
    }
    toast(err.status === 403 ? "Recordings are for supervisors and admins." : err.message);
    return;
  }
  $("#recordings tbody").replaceChildren(...recordings.map(row));
  $("#empty").hidden = recordings.length > 0;
}

on(document.body, "click", "button.play", (_e, button) => {
  const r = recordings.find((x) => x.id === button.dataset.id);
  if (!r) return;
  player.src = r.audio_url;
  player.dataset.id = r.id;
  $("#playing").textContent = `${r.caller || r.contact_id} with ${r.agent || "?"}, ${started(r.started_at)}`;
  player.play().catch(() => {}); // autoplay may be refused; the controls are there
});

player.addEventListener("error", () => toast("The recording could not be played."));
$("#filter").addEventListener("submit", (e) => {
  e.preventDefault();
  load();
});
$("#logout").addEventListener("click", toLogin);

load();
