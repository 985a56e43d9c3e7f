/**
 * The "Tokens for scripts" page: list the account's tokens, create one (its
 * secret shown once), revoke one. Everything through the JSON API (api.js).
 */

import { api, copyFrom, when } from "./api.js";
import { el } from "./view.js";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("token-form"),
  label: $("token-label"),
  hint: $("token-hint"),
  fresh: $("new-token"),
  value: $("new-token-value"),
  copy: $("copy-token"),
  copyNote: $("copy-note"),
  list: $("token-list"),
  empty: $("token-empty"),
  error: $("page-error"),
};

function showError(err) {
  ui.error.textContent = err.message;
  ui.error.hidden = false;
}

function tokenItem(token) {
  const revoked = token.revoked !== null && token.revoked !== undefined;
  return el(
    "li",
    { class: `item${revoked ? " item--off" : ""}`, data: { id: token.id, testid: "token" } },
    el(
      "div",
      { class: "item-main" },
      el("span", { class: "item-title", text: token.label || "(no label)", data: { testid: "token-label" } }),
      el("span", { class: "item-meta", text: `Created ${when(token.created)} · last used ${when(token.last_used)}${revoked ? ` · revoked ${when(token.revoked)}` : ""}` }),
    ),
    revoked
      ? el("span", { class: "role-badge role-badge--banned", text: "revoked" })
      : el("button", {
          class: "btn btn--danger",
          text: "Revoke",
          attrs: { type: "button", "aria-label": `Revoke ${token.label || "token"}` },
          data: { revoke: token.id, testid: "token-revoke" },
        }),
  );
}

async function load() {
  try {
    const { tokens } = await api("GET", "/api/tokens");
    const list = Array.isArray(tokens) ? tokens : [];
    ui.list.replaceChildren(...list.map(tokenItem));
    ui.empty.hidden = list.length > 0;
  } catch (err) {
    showError(err);
  }
}

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const label = ui.label.value.trim();
  ui.hint.textContent = "";
  if (!label) {
    ui.hint.textContent = "Give it a label, so that you know later what it was for.";
    return;
  }
  try {
    const { token } = await api("POST", "/api/tokens", { label });
    ui.value.value = token;
    ui.copyNote.textContent = "";
    ui.fresh.hidden = false;
    ui.label.value = "";
    ui.value.focus();
    ui.value.select();
    await load();
  } catch (err) {
    ui.hint.textContent = err.message;
  }
});

ui.copy.addEventListener("click", async () => {
  ui.copyNote.textContent = await copyFrom(ui.value);
});

ui.list.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-revoke]");
  if (button === null) return;
  button.disabled = true;
  try {
    await api("DELETE", `/api/tokens/${encodeURIComponent(button.dataset.revoke)}`);
    await load();
  } catch (err) {
    button.disabled = false;
    showError(err);
  }
});

load();
