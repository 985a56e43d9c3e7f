/**
 * The chat page: wires the connection (connection.js) and the room state
 * (sync.js) to the DOM (view.js), and handles what the user does.
 *
 * Page state that is not chat state lives here: which room is on screen,
 * whether the list is scrolled to the bottom (and so read), where the "new
 * since you left" line goes, the drawers.
 */

import { wireActions } from "./actions.js";
import { Connection, State, socketUrl } from "./connection.js";
import { isMine, messageActions } from "./events.js";
import { wireSearch } from "./finder.js";
import { wireMentions } from "./mention_ui.js";
import { wireNotify } from "./notify.js";
import { PendingStore } from "./pending.js";
import { wirePeople } from "./people.js";
import { allowed, friendly, mayLeave, memberRows, roomLabel, sidebarLists } from "./rooms.js";
import { ChatSync } from "./sync.js";
import { firstUnread, mentionsMe } from "./unread.js";
import * as view from "./view.js";

const $ = (id) => document.getElementById(id);
const ui = {
  body: document.body,
  conn: $("conn"),
  connLabel: $("conn-label"),
  retryNow: $("retry-now"),
  meName: $("me-name"),
  meGuest: $("me-guest"),
  logoutForm: $("logout-form"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  bannerAction: $("banner-action"),
  roomsToggle: $("rooms-toggle"),
  membersToggle: $("members-toggle"),
  backdrop: $("backdrop"),
  joinForm: $("join-form"),
  joinInput: $("join-input"),
  joinHint: $("join-hint"),
  joinedRooms: $("joined-rooms"),
  dmRooms: $("dm-rooms"),
  dmEmpty: $("dm-empty"),
  newRoom: $("new-room"),
  newRoomDialog: $("new-room-dialog"),
  newRoomForm: $("new-room-form"),
  newRoomName: $("new-room-name"),
  newRoomHint: $("new-room-hint"),
  newRoomCancel: $("new-room-cancel"),
  person: $("person"),
  personName: $("person-name"),
  personNote: $("person-note"),
  personActions: $("person-actions"),
  inviteForm: $("invite-form"),
  inviteInput: $("invite-input"),
  inviteHint: $("invite-hint"),
  bannedList: $("banned-list"),
  bannedHeading: $("banned-heading"),
  otherRooms: $("other-rooms"),
  otherHeading: $("other-heading"),
  roomTitle: $("room-title"),
  memberCount: $("member-count"),
  memberList: $("member-list"),
  leaveRoom: $("leave-room"),
  scroller: $("scroller"),
  loadOlder: $("load-older"),
  placeholder: $("placeholder"),
  messages: $("messages"),
  outbox: $("outbox"),
  jump: $("jump"),
  typing: $("typing"),
  composer: $("composer"),
  input: $("composer-input"),
  toasts: $("toasts"),
  deleteDialog: $("delete-dialog"),
  mentionBar: $("mention-bar"),
  notify: $("notify"),
  searchForm: $("search-form"),
  searchInput: $("search-input"),
  searchDialog: $("search-dialog"),
  searchAgain: $("search-again"),
  searchAgainInput: $("search-again-input"),
  searchScope: $("search-scope"),
  searchScopeLabel: $("search-scope-label"),
  searchStatus: $("search-status"),
  searchResults: $("search-results"),
};

// Within this many pixels of the bottom counts as "at the bottom": new
// messages then scroll into view instead of raising the "New messages" button.
const BOTTOM_SLACK_PX = 60;
// Scrolling this close to the top fetches older messages, early enough that
// they are usually there before the user hits the top.
const TOP_PREFETCH_PX = 200;
// Notices stay long enough to read a sentence, then get out of the way.
const TOAST_MS = 6000;
const MAX_TOASTS = 3;
// A message opened from a search result is marked this long (style.css flash).
const FLASH_MS = 2000;

/** The browser's localStorage, or null where it is disabled (some private modes). */
function browserStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

const conn = new Connection(socketUrl());
// Unsent messages outlive the page: kept per server (localStorage is per
// origin) and per name, until the server acknowledges them.
const pending = new PendingStore(browserStorage(), ui.body.dataset.name ?? "");
const sync = new ChatSync(conn, ui.body.dataset.name ?? "", pending);
let current = null; // the room on screen
// The "new since you left" line: above message `seq` of `room`. Placed when a
// room is opened (once its messages are there), kept while it stays on screen.
let divider = { room: null, seq: null, pending: false };
let atBottom = true;
let typingTimer = 0;
let countdownTimer = 0;
// Why the screen shows no room, when it is because we were just removed from it.
let goneText = "";

// -- remembered between visits: the rooms joined, the room on screen ----------

const storeKey = () => `chat:v1:${sync.me}`;

function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(storeKey()) ?? "null");
    if (saved && Array.isArray(saved.rooms)) return saved;
  } catch {
    // Storage disabled or garbled: start as a first visit.
  }
  return { rooms: ["lobby"], current: "lobby" };
}

function save() {
  try {
    localStorage.setItem(storeKey(), JSON.stringify({ rooms: [...sync.rooms.keys()], current }));
  } catch {
    // Storage full or disabled: the page still works, it only forgets.
  }
}

// -- rendering ------------------------------------------------------------------

const room = () => (current === null ? undefined : sync.rooms.get(current));

function isAtBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < BOTTOM_SLACK_PX;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  atBottom = true;
  ui.jump.hidden = true;
}

/** How a room is called on screen: "# general", a private room's title, a DM's people. */
const label = (r) => roomLabel(r.info, sync.me);

/** How messages are drawn for me in room `r` (view.js messageContext). */
function messageContext(r) {
  const facts = { me: sync.me, account: sync.account, role: r?.info.role ?? null, visibility: r?.info.visibility ?? "public" };
  return view.messageContext({
    me: sync.me,
    people: sync.account,
    mine: (m) => isMine(m, sync.me, sync.account),
    actions: (m) => messageActions(m, facts),
    mention: (m) => sync.account && mentionsMe(m, sync.me),
    editing: r ? actions.editingIn(r.name) : null,
    divider: r && divider.room === r.name ? divider.seq : null,
  });
}

function drawMessages(r) {
  view.renderMessages(ui.messages, r?.messages ?? [], messageContext(r));
  actions.refocus();
}

/** Re-render the message list without moving what the user is looking at. */
function rerenderMessages(r) {
  const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
  drawMessages(r);
  if (atBottom) scrollToBottom();
  else ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
}

/** Draw messages of the room on screen again in place (edited, deleted, reacted to). */
function redrawMessages(r, messages) {
  const wasAtBottom = atBottom || isAtBottom();
  const ctx = messageContext(r);
  for (const msg of messages) view.replaceMessage(ui.messages, msg, ctx);
  actions.refocus();
  if (wasAtBottom) scrollToBottom();
}

/**
 * Once the room on screen has its messages: where the "new since you left"
 * line goes (the first message after the read marker), before reading
 * moves the marker.
 */
function placeDivider(r) {
  if (!divider.pending || r === undefined || r.name !== divider.room || !r.synced) return;
  divider = { room: r.name, seq: firstUnread(r.read, { messages: r.messages, me: sync.me, account: sync.account }), pending: false };
}

/** Open on the "new since you left" line when there is one, else at the newest message. */
function scrollToStart() {
  const line = ui.messages.querySelector(".unread-line");
  if (line === null) return scrollToBottom();
  line.scrollIntoView({ block: "start" });
  atBottom = isAtBottom();
  ui.jump.hidden = atBottom;
}

/**
 * The user has seen the room on screen to its end: the room is shown, the
 * tab visible and the list scrolled to the bottom. sync.js moves the marker
 * and tells the server (debounced).
 */
function markRead() {
  if (current === null || document.hidden || !isAtBottom()) return;
  sync.markRead(current);
}

function unreadCounts() {
  return new Map([...sync.rooms.keys()].map((id) => [id, sync.unreadOf(id)]));
}

function renderRooms() {
  const lists = sidebarLists([...sync.rooms.values()].map((r) => r.info), sync.directory);
  const unread = unreadCounts();
  view.renderRoomList(
    { joined: ui.joinedRooms, dms: ui.dmRooms, others: ui.otherRooms },
    lists,
    { current, unread, me: sync.me, label: roomLabel },
  );
  ui.otherHeading.hidden = lists.others.length === 0;
  ui.dmEmpty.hidden = lists.dms.length > 0;
  const total = [...unread.values()].reduce((a, b) => a + b.unread, 0);
  document.title = total ? `(${total}) Chat` : "Chat";
  // The burger shows a dot when a room the user cannot see has news.
  ui.roomsToggle.classList.toggle("has-unread", total > 0);
}

function renderPlaceholder(r) {
  let text = "";
  if (r === undefined) text = goneText || "You are not in any room. Join or create one to start chatting.";
  else if (!r.synced) text = "Loading…";
  else if (r.messages.length === 0 && r.outbox.length === 0) {
    text = r.info.kind === "dm" ? `This is the start of your conversation with ${label(r)}.` : `No messages in ${label(r)} yet. Say hello!`;
  }
  ui.placeholder.textContent = text;
  ui.placeholder.hidden = text === "";
}

function renderOlderButton(r) {
  ui.loadOlder.hidden = r === undefined || !r.hasOlder;
  ui.loadOlder.disabled = r?.loadingOlder ?? false;
  ui.loadOlder.textContent = r?.loadingOlder ? "Loading…" : "Load older messages";
}

function renderMembers(r) {
  const rows = r
    ? memberRows({ roster: r.roster, online: r.members, guests: r.guests, me: sync.me })
    : { members: [], banned: [] };
  view.renderMembers(ui.memberList, rows.members, sync.me, sync.account);
  view.renderMembers(ui.bannedList, rows.banned, sync.me, sync.account);
  ui.bannedHeading.hidden = rows.banned.length === 0;
  // "N here": the people online now; the list also shows members who are away.
  ui.memberCount.textContent = String(r?.members.size ?? 0);
  people.refresh();
}

/** The room header's controls and the invite box follow my role in the room. */
function renderRoomControls(r) {
  ui.roomTitle.textContent = r ? label(r) : "No room";
  ui.input.placeholder = r ? `Message ${label(r)}` : "Join a room first";
  ui.leaveRoom.hidden = r === undefined || !mayLeave(r.info);
  const invite = r !== undefined && allowed("invite", { account: sync.account, myRole: r.info.role, kind: r.info.kind, visibility: r.info.visibility });
  ui.inviteForm.hidden = !invite;
}

function renderOutbox(r) {
  view.renderOutbox(ui.outbox, r?.outbox ?? [], sync.me, conn.online);
}

function renderTyping() {
  clearTimeout(typingTimer);
  const r = room();
  const now = Date.now();
  const names = r ? r.typers(now) : [];
  ui.typing.textContent = view.typingText(names);
  ui.typing.classList.toggle("typing--active", names.length > 0);
  if (names.length) {
    // Come back when the first of them expires.
    const next = Math.min(...names.map((n) => r.typing.get(n)));
    typingTimer = setTimeout(renderTyping, next - now + 50);
  }
}

/** Everything about the room on screen, from scratch (a room switch). */
function renderRoom() {
  const r = room();
  ui.body.classList.toggle("no-room", r === undefined);
  renderRoomControls(r);
  ui.input.disabled = r === undefined;
  placeDivider(r);
  drawMessages(r);
  renderOutbox(r);
  renderMembers(r);
  renderTyping();
  renderPlaceholder(r);
  renderOlderButton(r);
  scrollToStart();
  fillScreen();
  markRead();
}

/** When the messages do not fill the screen, nothing can be scrolled up: fetch older ones now. */
function fillScreen() {
  const r = room();
  if (r?.hasOlder && ui.scroller.scrollHeight <= ui.scroller.clientHeight) sync.loadOlder(r.name);
}

function renderConnection() {
  const state = conn.state;
  ui.conn.dataset.state = state;
  ui.body.classList.toggle("is-offline", state !== State.ONLINE);
  clearInterval(countdownTimer);
  const waiting = conn.retryAt > 0;
  if (state === State.ONLINE) ui.connLabel.textContent = "Online";
  else if (state === State.CLOSED) ui.connLabel.textContent = "Disconnected";
  else if (waiting) {
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000));
      const verb = state === State.CONNECTING ? "Connecting" : "Reconnecting";
      ui.connLabel.textContent = `${verb} in ${seconds} s…`;
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  } else ui.connLabel.textContent = state === State.CONNECTING ? "Connecting…" : "Reconnecting…";
  ui.retryNow.hidden = !waiting || state === State.CLOSED;
}

function toast(text, code, ok = false) {
  while (ui.toasts.children.length >= MAX_TOASTS) ui.toasts.firstElementChild.remove();
  const node = view.toastNode(text, code, ok);
  node.addEventListener("click", () => node.remove());
  ui.toasts.append(node);
  setTimeout(() => node.remove(), TOAST_MS);
}

// -- switching rooms and panels ---------------------------------------------

function select(name) {
  if (name !== current) {
    sync.flushReads(); // the room being left: its marker where the user left it
    actions.roomChanged();
    divider = { room: name, seq: null, pending: name !== null };
  }
  current = name;
  goneText = "";
  sync.focus = name;
  closePanels();
  save();
  renderRooms();
  renderRoom();
  // On a phone, focusing would pop up the keyboard over what they came to read.
  if (name !== null && window.matchMedia("(pointer: fine)").matches) ui.input.focus();
}

function joinRoom(raw) {
  try {
    const r = sync.join(raw);
    ui.joinHint.textContent = "";
    select(r.name);
    return true;
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    ui.joinHint.textContent = err.message;
    return false;
  }
}

function setPanel(cls, toggle, open) {
  ui.body.classList.toggle(cls, open);
  toggle.setAttribute("aria-expanded", String(open));
  ui.backdrop.hidden = !ui.body.classList.contains("show-rooms") && !ui.body.classList.contains("show-members");
}

function closePanels() {
  setPanel("show-rooms", ui.roomsToggle, false);
  setPanel("show-members", ui.membersToggle, false);
}

// -- what the sync layer reports ------------------------------------------------

sync.addEventListener("messages", ({ detail: { room: r, added, mode } }) => {
  if (r.name !== current) return;
  renderPlaceholder(r);
  renderOlderButton(r);
  if (mode === "initial") {
    placeDivider(r);
    drawMessages(r);
    scrollToStart();
    fillScreen();
    markRead();
    return;
  }
  if (mode === "older") {
    rerenderMessages(r);
    fillScreen();
    return;
  }
  const wasAtBottom = atBottom || isAtBottom();
  if (!view.appendMessages(ui.messages, added, messageContext(r))) rerenderMessages(r);
  const mine = mode === "live" && added.some((m) => isMine(m, sync.me, sync.account));
  if (wasAtBottom || mine) scrollToBottom();
  else ui.jump.hidden = false;
  markRead();
});

sync.addEventListener("changed", ({ detail: { room: r, changed } }) => {
  if (r.name === current) redrawMessages(r, changed);
});

sync.addEventListener("unread", renderRooms);

sync.addEventListener("outbox", ({ detail: { room: r } }) => {
  if (r.name !== current) return;
  const wasAtBottom = atBottom || isAtBottom();
  renderOutbox(r);
  renderPlaceholder(r);
  if (wasAtBottom) scrollToBottom();
});

sync.addEventListener("members", ({ detail: { room: r } }) => {
  if (r.name === current) renderMembers(r);
});

sync.addEventListener("roster", ({ detail: { room: r } }) => {
  if (r.name === current) renderMembers(r);
});

// Removed or banned: the room's view empties at once and says why; the
// room leaves the list (the "rooms" event that follows). Left (from another
// device): it just goes.
sync.addEventListener("removed", ({ detail: { room: r, reason } }) => {
  people.roomGone(r.name);
  if (reason === "left") return;
  const text = `You were ${reason === "banned" ? "banned" : "removed"} from ${label(r)}.`;
  toast(text, reason);
  if (r.name !== current) return;
  current = null;
  sync.focus = null;
  goneText = text;
  save();
  renderRoom();
});

sync.addEventListener("typing", ({ detail: { room: r } }) => {
  if (r.name === current) renderTyping();
});

sync.addEventListener("older", ({ detail: { room: r } }) => {
  if (r.name === current) renderOlderButton(r);
});

sync.addEventListener("rooms", () => {
  if (current !== null && !sync.rooms.has(current)) select(sync.rooms.keys().next().value ?? null);
  else {
    save();
    renderRooms();
    // A title, my role or a DM's people may have changed; my role decides
    // what the page offers on messages.
    renderRoomControls(room());
    if (room() !== undefined) rerenderMessages(room());
  }
});

sync.addEventListener("directory", renderRooms);

sync.addEventListener("notice", ({ detail: { code, message } }) => toast(friendly(code, message), code));

conn.addEventListener("state", () => {
  renderConnection();
  renderOutbox(room()); // "Sending…" or "Waiting for connection…"
});

conn.addEventListener("welcome", ({ detail }) => {
  if (typeof detail.name === "string") ui.meName.textContent = detail.name;
  // sync.js has read the welcome first (it listened first): who we are. The
  // server's template said so already; the welcome is the word of the socket.
  ui.body.classList.toggle("is-account", sync.account);
  ui.body.classList.toggle("is-admin", sync.admin);
  ui.body.classList.toggle("is-guest", !sync.account);
  ui.meGuest.hidden = sync.account;
  ui.logoutForm.action = sync.account ? "/signout" : "/logout";
  // Names become buttons for accounts: draw the room again.
  notify.render();
  renderRooms();
  renderRoom();
});

conn.addEventListener("fatal", ({ detail: { reason } }) => {
  if (reason === "logged_out" || reason === "signed_out") {
    window.location.assign("/"); // back to the sign-in form
    return;
  }
  ui.bannerText.textContent =
    reason === "name_taken"
      ? "Someone else is using your name now, so this page was disconnected."
      : reason === "account_disabled"
        ? "This account was disabled by an administrator."
        : "Your sign-in is no longer valid.";
  ui.banner.hidden = false;
});

// The socket's handshake failed. A session that ended while the page was away
// (signed out elsewhere, a password changed, the account disabled) is refused
// with HTTP 401, which a page cannot see on a WebSocket: /api/me tells. A
// server that is away fails the fetch too, and the page keeps retrying.
conn.addEventListener("refused", async () => {
  try {
    const response = await fetch("/api/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) {
      conn.stop();
      window.location.assign("/"); // the sign-in page
    }
  } catch {
    // Offline or the server is down: the reconnect goes on.
  }
});

// -- what the user does -----------------------------------------------------------

const people = wirePeople({ ui, sync, current: () => current, select, toast, label });

const actions = wireActions({
  ui,
  sync,
  current: () => current,
  redraw: (seq) => {
    const r = room();
    const msg = r?.messages.find((m) => m.seq === seq);
    if (msg !== undefined) redrawMessages(r, [msg]);
  },
});

const notify = wireNotify({ ui, sync, label, select });

const mentions = wireMentions({ ui, sync, room });

/** Resolves once room `r` has its first messages (joined), or false if it went meanwhile. */
function whenSynced(r) {
  if (r.synced) return Promise.resolve(true);
  return new Promise((resolve) => {
    const check = () => {
      if (r.synced || sync.rooms.get(r.name) !== r) {
        sync.removeEventListener("messages", check);
        sync.removeEventListener("rooms", check);
        resolve(r.synced && sync.rooms.get(r.name) === r);
      }
    };
    sync.addEventListener("messages", check);
    sync.addEventListener("rooms", check);
  });
}

/** Open a room at one message (a search result): its context loaded, scrolled to, flashed. */
async function openAt(roomId, seq) {
  if (sync.rooms.has(roomId)) select(roomId);
  else if (!joinRoom(roomId)) return;
  const r = sync.rooms.get(roomId);
  if (r === undefined || !(await whenSynced(r))) return;
  try {
    await sync.loadAround(roomId, seq);
  } catch (err) {
    toast(friendly(err.code, err.message), err.code);
    return;
  }
  if (current !== roomId) return; // the user went elsewhere meanwhile
  const node = ui.messages.querySelector(`li.msg[data-seq="${seq}"]`);
  if (node === null) {
    toast("That message is too far back to open here.", "not_found");
    return;
  }
  node.scrollIntoView({ block: "center" });
  atBottom = isAtBottom();
  ui.jump.hidden = atBottom;
  node.classList.add("msg--flash");
  setTimeout(() => node.classList.remove("msg--flash"), FLASH_MS);
}

wireSearch({
  ui,
  sync,
  current: () => current,
  roomName: (id) => {
    const r = sync.rooms.get(id);
    return r ? label(r) : `# ${id}`;
  },
  openAt,
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value.trim();
  if (!text || current === null) return;
  sync.say(current, text);
  ui.input.value = "";
  mentions.hide();
  scrollToBottom();
});

ui.input.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter is a new line. Not while an input method is
  // composing (Japanese, Chinese...): there Enter confirms the composition.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.input.addEventListener("input", () => {
  if (current !== null && ui.input.value.trim()) sync.typing(current);
});

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (ui.joinInput.value.trim() && joinRoom(ui.joinInput.value)) ui.joinInput.value = "";
});

ui.joinInput.addEventListener("input", () => {
  ui.joinHint.textContent = "";
});

for (const list of [ui.joinedRooms, ui.dmRooms, ui.otherRooms]) {
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-room]");
    if (button === null) return;
    if (button.dataset.join) joinRoom(button.dataset.room);
    else select(button.dataset.room);
  });
}

ui.leaveRoom.addEventListener("click", () => {
  if (current !== null) sync.leave(current);
});

ui.outbox.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const ref = button?.closest("li[data-ref]")?.dataset.ref;
  if (ref === undefined || current === null) return;
  if (button.dataset.action === "retry") sync.retry(current, ref);
  else sync.discard(current, ref);
});

ui.scroller.addEventListener("scroll", () => {
  atBottom = isAtBottom();
  if (atBottom) {
    ui.jump.hidden = true;
    markRead();
  }
  if (current !== null && ui.scroller.scrollTop < TOP_PREFETCH_PX) sync.loadOlder(current);
}, { passive: true });

ui.loadOlder.addEventListener("click", () => current !== null && sync.loadOlder(current));
ui.jump.addEventListener("click", scrollToBottom);
ui.retryNow.addEventListener("click", () => conn.retryNow());

ui.roomsToggle.addEventListener("click", () => setPanel("show-rooms", ui.roomsToggle, !ui.body.classList.contains("show-rooms")));
ui.membersToggle.addEventListener("click", () => setPanel("show-members", ui.membersToggle, !ui.body.classList.contains("show-members")));
ui.backdrop.addEventListener("click", closePanels);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closePanels();
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden) sync.flushReads();
  else markRead();
});
window.addEventListener("pagehide", () => sync.flushReads());

async function logout(event) {
  event?.preventDefault();
  // Close the socket first and wait for the server to see it: then it can
  // free the name at once, instead of holding it for the reconnect window.
  await conn.stop();
  try {
    localStorage.removeItem(storeKey());
  } catch {
    // Nothing remembered, nothing to forget.
  }
  // The next sign-in is a new session, which the server would not recognize
  // these refs from: logging out gives up what is still unsent.
  pending.clear();
  ui.logoutForm.submit();
}

ui.logoutForm.addEventListener("submit", logout);
ui.bannerAction.addEventListener("click", () => logout());

// -- start ------------------------------------------------------------------------

const saved = restore();
for (const name of saved.rooms) {
  try {
    sync.join(name);
  } catch {
    // A stored name that is no longer valid: skip it.
  }
}
// What an earlier page typed but never saw stored goes out first, in order.
sync.restorePending();
select(sync.rooms.has(saved.current) ? saved.current : (sync.rooms.keys().next().value ?? null));
renderConnection();
conn.start();
