/**
 * The admin page: list accounts, disable and enable them, make invite
 * links. Everything through the JSON API (api.js); the server checks that
 * the caller is an admin.
 */

import { api, copyFrom, when } from "./api.js";
import { el } from "./view.js";

const $ = (id) => document.getElementById(id);
const ui = {
  makeInvite: $("make-invite"),
  invite: $("invite"),
  inviteLink: $("invite-link"),
  copy: $("copy-invite"),
  copyNote: $("copy-note"),
  accounts: $("accounts"),
  error: $("page-error"),
};
const me = document.body.dataset.name ?? "";

function showError(err) {
  ui.error.textContent = err.message;
  ui.error.hidden = false;
}

function accountItem(account) {
  const self = account.name === me;
  return el(
    "li",
    { class: `item${account.disabled ? " item--off" : ""}`, data: { name: account.name, testid: "account" } },
    el(
      "div",
      { class: "item-main" },
      el(
        "span",
        { class: "item-title" },
        el("span", { text: account.name }),
        account.admin ? el("span", { class: "role-badge", text: "admin" }) : null,
        account.disabled ? el("span", { class: "role-badge role-badge--banned", text: "disabled", data: { testid: "account-disabled" } }) : null,
      ),
      el("span", { class: "item-meta", text: `Since ${when(account.created, "the start")}` }),
    ),
    // Disabling oneself would lock the last admin out of this page.
    self
      ? el("span", { class: "item-meta", text: "you" })
      : el("button", {
          class: `btn${account.disabled ? "" : " btn--danger"}`,
          text: account.disabled ? "Enable" : "Disable",
          attrs: { type: "button", "aria-label": `${account.disabled ? "Enable" : "Disable"} ${account.name}` },
          data: { account: account.name, disable: account.disabled ? "" : "1", testid: "account-toggle" },
        }),
  );
}

async function load() {
  try {
    const { accounts } = await api("GET", "/api/admin/accounts");
    ui.accounts.replaceChildren(...(Array.isArray(accounts) ? accounts : []).map(accountItem));
  } catch (err) {
    showError(err);
  }
}

ui.accounts.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-account]");
  if (button === null) return;
  button.disabled = true;
  try {
    await api("POST", `/api/admin/accounts/${encodeURIComponent(button.dataset.account)}`, { disabled: button.dataset.disable === "1" });
    await load();
  } catch (err) {
    button.disabled = false;
    showError(err);
  }
});

ui.makeInvite.addEventListener("click", async () => {
  ui.makeInvite.disabled = true;
  try {
    const { link } = await api("POST", "/api/invites");
    ui.inviteLink.value = new URL(link, window.location.origin).href;
    ui.copyNote.textContent = "";
    ui.invite.hidden = false;
    ui.inviteLink.select();
  } catch (err) {
    showError(err);
  } finally {
    ui.makeInvite.disabled = false;
  }
});

ui.copy.addEventListener("click", async () => {
  ui.copyNote.textContent = await copyFrom(ui.inviteLink);
});

load();
