/**
 * What one can do to a message on the chat page: react (the palette and the
 * chips), edit one's own (inline: Enter saves, Esc cancels), delete (one's
 * own, or anyone's as an owner or moderator, after a confirmation). The tools
 * show on hover with a mouse, on keyboard focus, or after a long press on a
 * touch screen. Wiring only: what is offered is events.js messageActions, the
 * state is sync.js's, the elements view.js's.
 */

// A press this long without moving is a long press (the platforms' own is ~500 ms).
const LONG_PRESS_MS = 450;
// A finger that moves this far is scrolling, not pressing.
const LONG_PRESS_SLOP_PX = 10;

/**
 * Wire the message list. `current()` is the room on screen (or null);
 * `redraw(seq)` draws one message of it again. Returns what app.js needs to
 * draw messages: which one is being edited (and its draft) and a way to put
 * the caret back after the list was drawn again.
 */
export function wireActions({ ui, sync, current, redraw }) {
  let editing = null; // {room, seq, draft}
  let deleting = null; // {room, seq}: the message the confirmation is about
  let press = null; // {timer, x, y, li}
  let pressed = false; // a long press just opened the tools: the click that follows is not a tap

  const itemOf = (node) => node?.closest("li.msg[data-seq]") ?? null;

  function closeTools(except = null) {
    for (const li of ui.messages.querySelectorAll(".msg--tools-open, .msg--picking")) {
      if (li !== except) li.classList.remove("msg--tools-open", "msg--picking");
    }
  }

  function startEdit(seq) {
    editing = { room: current(), seq, draft: null };
    closeTools();
    redraw(seq);
    focusEditor();
  }

  function stopEdit() {
    if (editing === null) return;
    const { seq } = editing;
    editing = null;
    redraw(seq);
  }

  /** Put the caret at the end of the editor, if one is shown. */
  function focusEditor() {
    const input = ui.messages.querySelector(".edit-input");
    if (input === null) return;
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  async function save(input) {
    if (editing === null) return;
    const { room, seq } = editing;
    const msg = sync.rooms.get(room)?.messages.find((m) => m.seq === seq);
    const text = input.value.trim();
    // Nothing changed, or nothing left: an empty message is a deletion, which has its own button.
    if (msg === undefined || text === "" || text === msg.text) return stopEdit();
    input.disabled = true;
    const ok = await sync.edit(room, seq, text);
    if (editing?.seq !== seq || editing.room !== room) return;
    if (ok) stopEdit();
    else {
      input.disabled = false; // refused: the notice says why; the text is still there to fix
      input.focus();
    }
  }

  ui.messages.addEventListener("click", (event) => {
    if (pressed) {
      pressed = false;
      event.preventDefault();
      return;
    }
    const button = event.target.closest("button[data-action]");
    const li = itemOf(event.target);
    if (button === null || li === null) {
      // A tap elsewhere closes the tools a long press opened.
      if (!event.target.closest(".msg-tools")) closeTools();
      return;
    }
    const room = current();
    const seq = Number(li.dataset.seq);
    if (room === null) return;
    switch (button.dataset.action) {
      case "react":
        closeTools(li);
        li.classList.toggle("msg--picking");
        break;
      case "pick":
      case "chip":
        li.classList.remove("msg--picking", "msg--tools-open");
        sync.react(room, seq, button.dataset.emoji);
        break;
      case "edit":
        startEdit(seq);
        break;
      case "delete":
        closeTools();
        deleting = { room, seq };
        ui.deleteDialog.returnValue = "";
        ui.deleteDialog.showModal();
        break;
      default:
        break;
    }
  });

  ui.deleteDialog.addEventListener("close", () => {
    const target = deleting;
    deleting = null;
    if (target !== null && ui.deleteDialog.returnValue === "delete") sync.deleteMessage(target.room, target.seq);
  });

  ui.messages.addEventListener("keydown", (event) => {
    const input = event.target.closest(".edit-input");
    if (input === null) {
      if (event.key === "Escape") closeTools();
      return;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // the page's Escape closes drawers, not this
      stopEdit();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      save(input);
    }
  });

  ui.messages.addEventListener("input", (event) => {
    if (editing !== null && event.target.closest(".edit-input")) editing.draft = event.target.value;
  });

  ui.messages.addEventListener("submit", (event) => {
    const input = event.target.querySelector(".edit-input");
    event.preventDefault();
    if (input !== null) save(input);
  });

  // -- long press (touch and pen) ----------------------------------------------

  function cancelPress() {
    if (press !== null) clearTimeout(press.timer);
    press = null;
  }

  ui.messages.addEventListener("pointerdown", (event) => {
    cancelPress();
    pressed = false; // a new touch: its click is a real tap
    const li = itemOf(event.target);
    if (event.pointerType === "mouse" || li === null || event.target.closest("button, textarea, a")) return;
    press = {
      x: event.clientX,
      y: event.clientY,
      timer: setTimeout(() => {
        press = null;
        if (!li.querySelector(".msg-tools")) return;
        closeTools(li);
        li.classList.add("msg--tools-open");
        pressed = true;
      }, LONG_PRESS_MS),
    };
  });
  ui.messages.addEventListener("pointermove", (event) => {
    if (press !== null && Math.hypot(event.clientX - press.x, event.clientY - press.y) > LONG_PRESS_SLOP_PX) cancelPress();
  });
  for (const type of ["pointerup", "pointercancel", "pointerleave"]) ui.messages.addEventListener(type, cancelPress);
  // The long press is ours: no text selection menu on top of the tools.
  ui.messages.addEventListener("contextmenu", (event) => {
    if (pressed || itemOf(event.target)?.classList.contains("msg--tools-open")) event.preventDefault();
  });

  return {
    /** The seq being edited in `room` and its draft, or null. */
    editingIn(room) {
      return editing !== null && editing.room === room ? editing : null;
    },
    /** After the list was drawn again: the editor gets the caret back. */
    refocus() {
      if (editing !== null && editing.room === current()) focusEditor();
    },
    /** The room changed: an edit in progress elsewhere is dropped. */
    roomChanged() {
      editing = null;
      closeTools();
    },
  };
}
