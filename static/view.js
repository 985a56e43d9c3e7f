/**
 * DOM building blocks for the chat page. Pure rendering: these functions get
 * plain data and return or fill elements; app.js decides when to call them.
 *
 * Every piece of text from the network goes in with textContent, never as
 * HTML, so a message like `<img src=x onerror=alert(1)>` shows as those
 * characters. Nothing here sets innerHTML.
 */

import { REACTIONS } from "./events.js";
import { snippetParts } from "./search.js";

// Messages from the same person within this window are grouped under one
// name line, as most chat apps do: less noise when someone writes in bursts.
const GROUP_WINDOW_MS = 5 * 60 * 1000;
// Name colours: a fixed set of classes (style.css has light and dark
// variants), because the page's CSP allows no inline style attributes.
const HUES = 8;

/** Create an element: el("li", {class: "x", text: "y", data: {seq: 1}}, child...). */
export function el(tag, { class: className, text, data, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [key, value] of Object.entries(data ?? {})) node.dataset[key] = String(value);
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

/** The same name always gets the same colour class. */
export function hueClass(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hue-${hash % HUES}`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric", year: "numeric" });

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ts, now = Date.now()) {
  if (dayKey(ts) === dayKey(now)) return "Today";
  if (dayKey(ts) === dayKey(now - 86_400_000)) return "Yesterday";
  return dayFormat.format(new Date(ts));
}

// A plain list item ("Today"), not role=separator: a list may hold only list
// items, and a separator's role would take this one out of the list.
function daySeparator(ts) {
  return el("li", { class: "day", data: { day: dayKey(ts) } }, el("span", { text: dayLabel(ts) }));
}

/** Does `msg` continue the group of the message `prev` (same author, same day, shortly after)? */
function continues(prev, msg) {
  return (
    prev !== undefined &&
    prev.name === msg.name &&
    !prev.guest === !msg.guest &&
    msg.ts - prev.ts < GROUP_WINDOW_MS &&
    dayKey(prev.ts) === dayKey(msg.ts)
  );
}

/** The small "guest" mark next to a guest's name, wherever it shows. */
export function guestMark() {
  return el("span", { class: "guest-mark", text: "guest", data: { testid: "guest-mark" }, attrs: { title: "A guest: not signed in to an account" } });
}

/**
 * A person's name. With `people` (the viewer has an account) it is a button
 * that opens what one can do with that person (a DM, moderation); a guest
 * viewer, who may do neither, gets plain text.
 */
function nameNode(name, { people, classes, testid }) {
  const options = { class: `${classes} ${hueClass(name)}`, text: name, data: { testid } };
  if (!people) return el("span", options);
  return el("button", { ...options, class: `${options.class} name-btn`, attrs: { type: "button" }, data: { testid, person: name } });
}

/**
 * How messages are drawn for this viewer: `me`; `people` (names are
 * buttons); `actions(msg)` -> {edit, delete, react} offered on it (events.js
 * messageActions); `mention(msg)`: it names me; `editing`: {seq, draft}
 * of the message being edited here, or null; `divider`: the seq above which the
 * "new since you left" line goes, or null.
 */
export function messageContext(ctx) {
  return { people: false, actions: () => ({}), mention: () => false, editing: null, divider: null, ...ctx };
}

const editedFormat = (ts) => `edited ${fullFormat.format(new Date(ts))}`;

/** The reaction chips under a message: emoji and count, mine pressed; a click toggles mine. */
function chipsNode(msg, me, canReact) {
  if (!msg.reactions.length) return null;
  return el(
    "div",
    { class: "chips", data: { testid: "reactions" } },
    ...msg.reactions.map(([emoji, names]) => {
      const mine = names.includes(me);
      const label = `${emoji} ${names.length}: ${names.join(", ")}`;
      const data = { emoji, testid: "reaction-chip", mine: mine ? "1" : "" };
      const children = [el("span", { class: "chip-emoji", text: emoji, attrs: { "aria-hidden": "true" } }), el("span", { class: "chip-count", text: String(names.length) })];
      if (!canReact) return el("span", { class: `chip${mine ? " chip--mine" : ""}`, data, attrs: { title: label, "aria-label": label } }, ...children);
      return el(
        "button",
        { class: `chip${mine ? " chip--mine" : ""}`, data: { ...data, action: "chip" }, attrs: { type: "button", title: label, "aria-label": label, "aria-pressed": String(mine) } },
        ...children,
      );
    }),
  );
}

/** The hover (or long-press) tools of a message, and its emoji palette. */
function toolsNode(msg, actions, me) {
  if (!actions.edit && !actions.delete && !actions.react) return null;
  const button = (action, text, label) =>
    el("button", { class: "tool-btn", text, attrs: { type: "button", "aria-label": label, title: label }, data: { action, testid: `message-${action}` } });
  const mine = new Set(msg.reactions.filter(([, names]) => names.includes(me)).map(([emoji]) => emoji));
  return el(
    "div",
    { class: "msg-tools", attrs: { role: "group", "aria-label": "Message actions" } },
    actions.react ? button("react", "☺+", "Add a reaction") : null,
    actions.edit ? button("edit", "✎", "Edit message") : null,
    actions.delete ? button("delete", "🗑", "Delete message") : null,
    actions.react
      ? el(
          "div",
          { class: "palette", attrs: { role: "group", "aria-label": "Reactions" } },
          ...REACTIONS.map((emoji) =>
            el("button", {
              class: `palette-btn${mine.has(emoji) ? " palette-btn--mine" : ""}`,
              text: emoji,
              attrs: { type: "button", "aria-label": `React ${emoji}`, "aria-pressed": String(mine.has(emoji)) },
              data: { action: "pick", emoji, testid: "react-pick" },
            }),
          ),
        )
      : null,
  );
}

/** The inline editor of one of my messages: Enter saves, Esc cancels. */
function editorNode(msg, draft) {
  const input = el("textarea", { class: "edit-input", attrs: { rows: "2", "aria-label": "Edit message", enterkeyhint: "done" }, data: { testid: "edit-input" } });
  input.value = draft ?? msg.text;
  return el("form", { class: "msg-edit", data: { testid: "edit-form" } }, input, el("p", { class: "edit-hint", text: "Enter saves · Esc cancels" }));
}

/** One stored message. `grouped`: under the previous message's name line. `ctx`: messageContext. */
export function messageNode(msg, ctx, grouped) {
  const { me, people } = ctx;
  const when = new Date(msg.ts);
  const mine = ctx.mine ? ctx.mine(msg) : msg.name === me;
  const actions = ctx.actions(msg);
  const classes = ["msg"];
  if (mine) classes.push("msg--mine");
  if (grouped) classes.push("msg--cont");
  if (ctx.mention(msg)) classes.push("msg--mention");
  if (msg.deleted) classes.push("msg--deleted");
  const editing = ctx.editing?.seq === msg.seq && actions.edit;
  let body;
  if (msg.deleted) body = el("div", { class: "msg-body" }, el("span", { class: "msg-text msg-text--deleted", text: "message deleted", data: { testid: "message-text" } }));
  else if (editing) body = editorNode(msg, ctx.editing.draft);
  else {
    body = el(
      "div",
      { class: "msg-body" },
      el("span", { class: "msg-text", text: msg.text, data: { testid: "message-text" } }),
      msg.edited !== null && msg.edited !== undefined
        ? el("span", { class: "msg-edited", text: " (edited)", data: { testid: "message-edited" }, attrs: { title: editedFormat(msg.edited) } })
        : null,
    );
  }
  return el(
    "li",
    {
      class: classes.join(" "),
      data: { seq: msg.seq, name: msg.name, ts: msg.ts, testid: "message", guest: msg.guest ? "1" : "", mine: mine ? "1" : "" },
    },
    el(
      "div",
      { class: "msg-meta" },
      // A grouped message's name line is hidden from sight: no button there,
      // which would be a stop for the keyboard that nobody sees.
      nameNode(msg.name, { people: people && !grouped && msg.name !== me && !msg.guest, classes: "msg-name", testid: "message-name" }),
      msg.guest ? guestMark() : null,
      el("time", {
        class: "msg-time",
        text: timeFormat.format(when),
        attrs: { datetime: when.toISOString(), title: fullFormat.format(when) },
        data: { testid: "message-time" },
      }),
    ),
    body,
    chipsNode(msg, me, actions.react === true),
    editing ? null : toolsNode(msg, actions, me),
  );
}

// The line above the first message that arrived since the reader was last here.
function unreadLine() {
  return el("li", { class: "unread-line", data: { testid: "unread-line" } }, el("span", { text: "New since you left" }));
}

/** Fill `list` with all of `messages` (ascending), day separators included. */
export function renderMessages(list, messages, ctx) {
  const fragment = document.createDocumentFragment();
  let prev;
  for (const msg of messages) {
    if (prev === undefined || dayKey(prev.ts) !== dayKey(msg.ts)) fragment.append(daySeparator(msg.ts));
    const divider = ctx.divider === msg.seq;
    if (divider) fragment.append(unreadLine());
    fragment.append(messageNode(msg, ctx, !divider && continues(prev, msg)));
    prev = msg;
  }
  list.replaceChildren(fragment);
}

/**
 * Append messages that are all newer than the last one shown: the live path,
 * which leaves the rest of the list (and the user's text selection) alone.
 * Returns false, appending nothing, when they do not all belong at the end;
 * the caller then re-renders the list.
 */
export function appendMessages(list, messages, ctx) {
  let last = list.lastElementChild;
  while (last !== null && !last.classList.contains("msg")) last = last.previousElementSibling;
  let prev = last ? { seq: Number(last.dataset.seq), name: last.dataset.name, ts: Number(last.dataset.ts), guest: last.dataset.guest === "1" } : undefined;
  if (prev !== undefined && messages[0].seq <= prev.seq) return false;
  for (const msg of messages) {
    if (prev === undefined || dayKey(prev.ts) !== dayKey(msg.ts)) list.append(daySeparator(msg.ts));
    list.append(messageNode(msg, ctx, continues(prev, msg)));
    prev = msg;
  }
  return true;
}

/** Draw one message again in place (edited, deleted, reacted to); false when it is not shown. */
export function replaceMessage(list, msg, ctx) {
  const old = list.querySelector(`li.msg[data-seq="${msg.seq}"]`);
  if (old === null) return false;
  old.replaceWith(messageNode(msg, ctx, old.classList.contains("msg--cont")));
  return true;
}

/** Search results: where, who, when, and the snippet with its matched words marked (never as HTML). */
export function renderSearchResults(list, results, roomName) {
  list.replaceChildren(
    ...results.map((hit) => {
      const when = new Date(hit.ts);
      const snippet = el("p", { class: "result-snippet", data: { testid: "result-snippet" } });
      for (const part of snippetParts(hit.snippet)) snippet.append(part.mark ? el("mark", { text: part.text }) : document.createTextNode(part.text));
      return el(
        "li",
        {},
        el(
          "button",
          { class: "result", attrs: { type: "button" }, data: { room: hit.room, seq: hit.seq, testid: "search-result" } },
          el(
            "span",
            { class: "result-meta" },
            el("span", { class: "result-room", text: roomName(hit.room) }),
            el("span", { class: `result-name ${hueClass(hit.name)}`, text: hit.name }),
            el("time", { class: "msg-time", text: `${dayLabel(hit.ts)} ${timeFormat.format(when)}`, attrs: { datetime: when.toISOString() } }),
          ),
          snippet,
        ),
      );
    }),
  );
}

/** The messages we sent that the server has not acknowledged yet. */
export function renderOutbox(list, entries, me, online) {
  list.replaceChildren(
    ...entries.map((entry) => {
      const failed = entry.state === "failed";
      const status = failed ? "Not sent" : online ? "Sending…" : "Waiting for connection…";
      const node = el(
        "li",
        { class: `msg msg--mine msg--pending${failed ? " msg--failed" : ""}`, data: { ref: entry.ref, testid: "pending-message" } },
        el(
          "div",
          { class: "msg-meta" },
          el("span", { class: `msg-name ${hueClass(me)}`, text: me }),
          el("span", { class: "msg-status", text: status }),
        ),
        el("div", { class: "msg-text", text: entry.text }),
      );
      if (failed) {
        node.append(
          el(
            "div",
            { class: "msg-actions" },
            el("span", { class: "msg-error", text: entry.error ?? "" }),
            el("button", { class: "link-btn", text: "Retry", attrs: { type: "button" }, data: { action: "retry" } }),
            el("button", { class: "link-btn", text: "Discard", attrs: { type: "button" }, data: { action: "discard" } }),
          ),
        );
      }
      return node;
    }),
  );
}

function roomButton(info, { current, unread, me, label }) {
  const id = info.room;
  const count = unread.get(id)?.unread ?? 0;
  const mentions = unread.get(id)?.mentions ?? 0;
  const kind = info.kind === "dm" ? " room-btn--dm" : info.visibility === "private" ? " room-btn--private" : "";
  const button = el(
    "button",
    {
      class: `room-btn${kind}${id === current ? " room-btn--current" : ""}${count ? " room-btn--unread" : ""}`,
      attrs: { type: "button" },
      data: { room: id, testid: `room-${id}` },
    },
    info.visibility === "private" && info.kind !== "dm" ? el("span", { class: "lock", attrs: { "aria-hidden": "true" } }) : null,
    el("span", { class: "room-name", text: label(info, me) }),
    info.visibility === "private" && info.kind !== "dm" ? el("span", { class: "sr-only", text: " (private)" }) : null,
    mentions
      ? el("span", { class: "badge badge--mention", text: `@${mentions > 99 ? "99+" : mentions}`, data: { testid: `mentions-${id}` }, attrs: { "aria-label": `${mentions} mentioning you` } })
      : null,
    count ? el("span", { class: "badge", text: count > 99 ? "99+" : String(count), data: { testid: `unread-${id}` }, attrs: { "aria-label": `${count} unread` } }) : null,
  );
  if (id === current) button.setAttribute("aria-current", "true");
  return el("li", {}, button);
}

/**
 * The rooms sidebar: my rooms and my direct messages, with unread badges,
 * then the public rooms the server knows of that I am not in, with how many
 * people are in them. `label(info, me)` names a room (rooms.js roomLabel).
 */
export function renderRoomList(lists, { rooms, dms, others }, { current, unread, me, label }) {
  lists.joined.replaceChildren(...rooms.map((info) => roomButton(info, { current, unread, me, label })));
  lists.dms.replaceChildren(...dms.map((info) => roomButton(info, { current, unread, me, label })));
  lists.others.replaceChildren(
    ...others.map((r) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            class: "room-btn room-btn--other",
            attrs: { type: "button", title: `Join #${r.room}` },
            data: { room: r.room, join: "1", testid: `other-room-${r.room}` },
          },
          el("span", { class: "room-name", text: `# ${r.room}` }),
          r.members ? el("span", { class: "room-count", text: `${r.members} here` }) : null,
        ),
      ),
    ),
  );
}

/**
 * The people of the current room: `rows` from rooms.js memberRows (me
 * first, then by rank). Online members have a filled dot; roles show as a
 * word. With `people`, names open the person sheet.
 */
export function renderMembers(list, rows, me, people = false) {
  list.replaceChildren(
    ...rows.map((row) =>
      el(
        "li",
        { class: `member${row.online ? "" : " member--away"}`, data: { name: row.name, testid: "member", online: row.online ? "1" : "" } },
        el("span", { class: "presence-dot", attrs: { "aria-hidden": "true" } }),
        nameNode(row.name, { people: people && row.name !== me && !row.guest, classes: "member-name", testid: "member-name" }),
        row.name === me ? el("span", { class: "member-you", text: " (you)" }) : null,
        row.guest ? guestMark() : null,
        row.role && row.role !== "member" ? el("span", { class: `role-badge role-badge--${row.role}`, text: row.role, data: { testid: "member-role" } }) : null,
        row.online ? null : el("span", { class: "sr-only", text: " (away)" }),
      ),
    ),
  );
}

const ACTION_LABELS = {
  dm: "Message privately",
  moderator: "Make moderator",
  member: "Make member",
  remove: "Remove from room",
  ban: "Ban",
  unban: "Unban",
};

/** The buttons of the person sheet, for the actions offered (in this order). */
export function renderPersonActions(container, actions) {
  container.replaceChildren(
    ...actions.map((action) =>
      el("button", {
        class: `btn${action === "dm" ? " btn--primary" : ""}${action === "remove" || action === "ban" ? " btn--danger" : ""}`,
        text: ACTION_LABELS[action],
        attrs: { type: "button" },
        data: { action, testid: `person-${action}` },
      }),
    ),
  );
}

/** "ann is typing…", "ann and bo are typing…", "ann, bo and 2 others are typing…". */
export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  const rest = names.length - 2;
  return `${names[0]}, ${names[1]} and ${rest} other${rest > 1 ? "s" : ""} are typing…`;
}

/** A short, dismissable notice at the corner of the screen. */
export function toastNode(text, code, ok = false) {
  return el("div", { class: `toast${ok ? " toast--ok" : ""}`, text, data: { code: code ?? "", testid: "toast" }, attrs: { role: "status" } });
}
