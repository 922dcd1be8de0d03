import { $, api, session, toast } from "./util.js";

const form = $("#login");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {
    tenant: form.tenant.value.trim(),
    username: form.username.value.trim(),
    password: form.password.value,
  };
  const button = $("button", form);
  button.disabled = true;
  try {
    const tokens = await api("/api/auth/login", { method: "POST", body, auth: false });
    session.save(tokens);
    const me = await api("/api/me");
    const supervisor = me.roles.includes("supervisor") || me.roles.includes("admin");
    location.href = supervisor ? "/board" : "/agent";
  } catch (err) {
    toast(err.message);
  } finally {
    button.disabled = false;
  }
});
const params = new URLSearchParams(location.search);
if (params.get("tenant")) form.tenant.value = params.get("tenant");
