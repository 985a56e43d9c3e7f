/**
 * Search on the chat page: the box in the top bar opens the results sheet;
 * the sheet can search again, in every room one may read or only the room on
 * screen; a result opens its room at that message. Wiring only: the frames
 * are search.js's, the results view.js's.
 */

import { friendly } from "./rooms.js";
import { hits, searchFrame } from "./search.js";
import * as view from "./view.js";

/**
 * `current()`: the room on screen (or null); `roomName(id)`: how a room is
 * called; `openAt(room, seq)`: show that message.
 */
export function wireSearch({ ui, sync, current, roomName, openAt }) {
  let asked = 0; // the newest search sent: older answers are dropped

  function renderScope() {
    const room = current();
    ui.searchScope.disabled = room === null;
    if (room === null) ui.searchScope.checked = false;
    ui.searchScopeLabel.textContent = room === null ? "Only this room" : `Only ${roomName(room)}`;
  }

  async function run(raw) {
    const frame = searchFrame(raw, ui.searchScope.checked ? current() : null);
    if (frame === null) {
      ui.searchStatus.textContent = "Type the words to look for.";
      ui.searchResults.replaceChildren();
      return;
    }
    const mine = ++asked;
    ui.searchStatus.textContent = "Searching…";
    try {
      const reply = await sync.search(frame);
      if (mine !== asked) return;
      const results = hits(reply);
      view.renderSearchResults(ui.searchResults, results, roomName);
      ui.searchStatus.textContent = results.length ? `${results.length} result${results.length > 1 ? "s" : ""}, newest first` : "No messages match.";
    } catch (err) {
      if (mine !== asked) return;
      ui.searchResults.replaceChildren();
      ui.searchStatus.textContent = friendly(err.code, err.message);
    }
  }

  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = ui.searchInput.value;
    if (!q.trim()) return;
    ui.searchAgainInput.value = q;
    renderScope();
    if (!ui.searchDialog.open) ui.searchDialog.showModal();
    run(q);
  });

  ui.searchAgain.addEventListener("submit", (event) => {
    event.preventDefault();
    ui.searchInput.value = ui.searchAgainInput.value;
    run(ui.searchAgainInput.value);
  });

  ui.searchScope.addEventListener("change", () => run(ui.searchAgainInput.value));

  ui.searchResults.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-room][data-seq]");
    if (button === null) return;
    ui.searchDialog.close();
    openAt(button.dataset.room, Number(button.dataset.seq));
  });
}
