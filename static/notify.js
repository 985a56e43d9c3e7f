/**
 * Desktop notifications for mentions: when a message that names me arrives
 * while the tab is hidden. The browser asks the person once, and only from a
 * click (the "Notify me of mentions" button): browsers ignore or penalize a
 * permission prompt that comes out of nowhere.
 */

import { isMine } from "./events.js";
import { mentionsMe } from "./unread.js";

// Enough of the message to know what it is about.
const BODY_CHARS = 160;

/** `label(room)`: how a room is called; `select(id)`: put a room on screen. */
export function wireNotify({ ui, sync, label, select }) {
  const supported = typeof window.Notification === "function";

  function render() {
    // Offered while the browser has not been asked yet; after that the
    // browser's own site settings are where one changes one's mind.
    ui.notify.hidden = !supported || !sync.account || Notification.permission !== "default";
  }

  ui.notify.addEventListener("click", async () => {
    if (!supported) return;
    try {
      await Notification.requestPermission();
    } catch {
      // An old browser's callback-only API, or a refusal: nothing to do.
    }
    render();
  });

  sync.addEventListener("messages", ({ detail: { room, added, mode } }) => {
    if (mode !== "live" || !document.hidden || !supported || Notification.permission !== "granted" || !sync.account) return;
    for (const msg of added) {
      if (!mentionsMe(msg, sync.me) || isMine(msg, sync.me, sync.account)) continue;
      const note = new Notification(`${msg.name} mentioned you in ${label(room)}`, {
        body: msg.text.length > BODY_CHARS ? `${msg.text.slice(0, BODY_CHARS)}…` : msg.text,
        tag: `${room.name}:${msg.seq}`,
      });
      note.addEventListener("click", () => {
        window.focus();
        if (sync.rooms.get(room.name) === room) select(room.name);
        note.close();
      });
    }
  });

  return { render };
}
