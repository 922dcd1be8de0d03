// Small helpers shared by every page: DOM shortcuts, the session's tokens and one fetch wrapper.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function on(root, event, selector, handler) {
  root.addEventListener(event, (e) => {
    const target = e.target.closest(selector);
    if (target && root.contains(target)) handler(e, target);
  });
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function show(node, visible = true) { node.hidden = !visible; }

// A toast in the page's #toast area; errors stay until the next action.
export function toast(message, kind = "error") {
  const box = $("#toast");
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(box._t);
  box._t = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 3000);
}

// Tokens live in sessionStorage: each tab can hold its own login (agent in one, supervisor in another).
export const session = {
  get access() { return sessionStorage.getItem("ud.access"); },
  get refreshToken() { return sessionStorage.getItem("ud.refresh"); },
  get expiresIn() { return Number(sessionStorage.getItem("ud.expires_in") || 900); },
  save(tokens) {
    sessionStorage.setItem("ud.access", tokens.access_token);
    sessionStorage.setItem("ud.refresh", tokens.refresh_token);
    sessionStorage.setItem("ud.expires_in", String(tokens.expires_in));
  },
  clear() { ["ud.access", "ud.refresh", "ud.expires_in"].forEach((k) => sessionStorage.removeItem(k)); },
};

export async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (auth && session.access) headers.Authorization = `Bearer ${session.access}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.message || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.code = data.error;
    err.data = data;
    if (Array.isArray(data.problems)) err.problems = data.problems; // every problem a check named
    throw err;
  }
  return data;
}

export async function refreshTokens() {
  const token = session.refreshToken;
  if (!token) throw new Error("not logged in");
  const tokens = await api("/api/auth/refresh", { method: "POST", body: { refresh_token: token }, auth: false });
  session.save(tokens);
  return tokens;
}

export function toLogin() {
  session.clear();
  location.href = "/";
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(2, "0"), ss = String(r).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export const STATE_LABELS = {
  "logged-out": "Logged out",
  available: "Available",
  ringing: "Ringing",
  "on-call": "On call",
  "wrap-up": "Wrap-up",
  paused: "Paused",
};
