/**
 * Typing `@` in the composer offers the room's members by name: a row of
 * buttons above the composer; a click or Tab takes the first (or the one
 * clicked). The rules are mentions.js's; only accounts with a standing in the
 * room can be mentioned (the server's rule), so the names are the roster's.
 */

import { complete, mentionAt, suggest } from "./mentions.js";
import { el } from "./view.js";

/** `room()`: the Room on screen, or undefined. */
export function wireMentions({ ui, sync, room }) {
  let at = null; // the partial being completed: mentionAt's answer
  let names = [];

  function hide() {
    at = null;
    names = [];
    ui.mentionBar.hidden = true;
    ui.mentionBar.replaceChildren();
  }

  function update() {
    const r = room();
    const caret = ui.input.selectionStart ?? ui.input.value.length;
    at = r === undefined || !sync.account || ui.input.selectionEnd !== caret ? null : mentionAt(ui.input.value, caret);
    const roster = r === undefined ? [] : [...r.roster].filter(([, role]) => role !== "banned").map(([name]) => name);
    names = at === null ? [] : suggest(roster, at.query, sync.me);
    if (names.length === 0) return hide();
    ui.mentionBar.replaceChildren(
      ...names.map((name) => el("button", { class: "mention-option", text: `@${name}`, attrs: { type: "button", tabindex: "-1" }, data: { name, testid: "mention-option" } })),
    );
    ui.mentionBar.hidden = false;
  }

  function pick(name) {
    if (at === null) return;
    const caret = ui.input.selectionStart ?? ui.input.value.length;
    const next = complete(ui.input.value, at, caret, name);
    ui.input.value = next.text;
    ui.input.setSelectionRange(next.caret, next.caret);
    ui.input.focus();
    hide();
  }

  ui.input.addEventListener("input", update);
  ui.input.addEventListener("click", update);
  ui.input.addEventListener("blur", () => setTimeout(() => document.activeElement !== ui.input && hide(), 150));
  ui.input.addEventListener("keydown", (event) => {
    if (ui.mentionBar.hidden) return;
    if (event.key === "Tab" && !event.shiftKey && names.length) {
      event.preventDefault();
      pick(names[0]);
    } else if (event.key === "Escape") {
      event.stopPropagation();
      hide();
    }
  });
  // mousedown: keep the caret in the composer while the button is pressed.
  ui.mentionBar.addEventListener("mousedown", (event) => event.preventDefault());
  ui.mentionBar.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-name]");
    if (button !== null) pick(button.dataset.name);
  });

  return { hide };
}
