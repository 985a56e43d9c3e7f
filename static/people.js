/**
 * The chat page's controls for people and rooms of one's own: the person
 * sheet (opened from a name in the messages or the member list: message
 * privately, make moderator, remove, ban, unban), the invite box of private
 * rooms, and the New room sheet. Wiring, as app.js: the state is sync.js's,
 * the rules rooms.js's, the elements view.js's.
 */

import { allowed, friendly } from "./rooms.js";
import * as view from "./view.js";

/**
 * Wire the controls. `current()` is the id of the room on screen (or null),
 * `select(id)` puts a room on screen, `toast(text, code, ok)` tells the
 * person, `label(room)` names a room. Returns what app.js calls when the
 * room's people change or a room goes.
 */
export function wirePeople({ ui, sync, current, select, toast, label }) {
  let open = null; // the person whose sheet is open, and in which room: {name, room}
  const room = () => (current() === null ? undefined : sync.rooms.get(current()));

  /** The actions the person sheet offers on `name` in the current room. */
  function actionsFor(name) {
    const r = room();
    if (r === undefined) return [];
    const target = r.roster.get(name);
    const facts = {
      account: sync.account,
      myRole: r.info.role,
      kind: r.info.kind,
      visibility: r.info.visibility,
      target,
      targetGuest: r.guests.has(name),
      self: name === sync.me,
    };
    return ["dm", "moderator", "member", "remove", "ban", "unban"].filter((action) => allowed(action, facts));
  }

  function render() {
    const r = room();
    if (open === null || r === undefined || r.name !== open.room) return;
    const { name } = open;
    const role = r.roster.get(name);
    ui.personName.textContent = name;
    ui.personNote.textContent = r.guests.has(name)
      ? "A guest: not signed in to an account."
      : role === "banned"
        ? `Banned from ${label(r)}.`
        : role
          ? `${role[0].toUpperCase()}${role.slice(1)} of ${label(r)}.`
          : "";
    view.renderPersonActions(ui.personActions, actionsFor(name));
  }

  function openPerson(name) {
    if (current() === null) return;
    open = { name, room: current() };
    render();
    ui.person.showModal();
  }

  ui.person.addEventListener("close", () => {
    open = null;
  });

  for (const list of [ui.messages, ui.memberList, ui.bannedList]) {
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-person]");
      if (button !== null) openPerson(button.dataset.person);
    });
  }

  ui.personActions.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (button === null || open === null) return;
    const { name, room: roomId } = open;
    const action = button.dataset.action;
    button.disabled = true;
    try {
      if (action === "dm") {
        const r = await sync.dm([name]);
        ui.person.close();
        select(r.name);
        return;
      }
      await sync.moderate(action, roomId, name);
      const done = { remove: "removed from", ban: "banned from", unban: "unbanned in", moderator: "a moderator of", member: "a member of" };
      const r = sync.rooms.get(roomId);
      toast(`${name} is now ${done[action]} ${r ? label(r) : "the room"}.`, "done", true);
      ui.person.close();
    } catch (err) {
      toast(friendly(err.code, err.message), err.code);
      button.disabled = false;
    }
  });

  ui.inviteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = ui.inviteInput.value.trim();
    if (!name || current() === null) return;
    const roomId = current();
    ui.inviteHint.textContent = "";
    try {
      await sync.moderate("invite", roomId, name);
      ui.inviteInput.value = "";
      const r = sync.rooms.get(roomId);
      toast(`${name} was added to ${r ? label(r) : "the room"}.`, "done", true);
    } catch (err) {
      ui.inviteHint.textContent = friendly(err.code, err.message);
    }
  });

  ui.newRoom.addEventListener("click", () => {
    ui.newRoomHint.textContent = "";
    ui.newRoomDialog.showModal();
    ui.newRoomName.focus();
  });

  ui.newRoomCancel.addEventListener("click", () => ui.newRoomDialog.close());

  ui.newRoomForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const visibility = new FormData(ui.newRoomForm).get("visibility") === "private" ? "private" : "public";
    ui.newRoomHint.textContent = "";
    try {
      const r = await sync.create(ui.newRoomName.value, visibility);
      ui.newRoomDialog.close();
      ui.newRoomForm.reset();
      select(r.name);
    } catch (err) {
      ui.newRoomHint.textContent = err instanceof RangeError ? err.message : friendly(err.code, err.message);
    }
  });

  return {
    /** The room's members or roles changed: the open sheet follows. */
    refresh() {
      if (open !== null) render();
    },
    /** A room went (removed, left): its sheet closes. */
    roomGone(roomId) {
      if (open?.room === roomId) ui.person.close();
    },
  };
}
