/**
 * DOM building blocks for the chat page. Pure rendering: these functions get
 * plain data and return or fill elements; app.js decides when to call them.
 *
 * Every piece of text from the network goes in with textContent, never as
 * HTML, so a message like `<img src=x onerror=alert(1)>` shows as those
 * characters. Nothing here sets innerHTML.
 */

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

/** One stored message. `grouped`: under the previous message's name line. `people`: names are buttons. */
export function messageNode(msg, me, grouped, people = false) {
  const when = new Date(msg.ts);
  const classes = ["msg"];
  if (msg.name === me) classes.push("msg--mine");
  if (grouped) classes.push("msg--cont");
  return el(
    "li",
    { class: classes.join(" "), data: { seq: msg.seq, name: msg.name, ts: msg.ts, testid: "message", guest: msg.guest ? "1" : "" } },
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
    el("div", { class: "msg-text", text: msg.text, data: { testid: "message-text" } }),
  );
}

/** Fill `list` with all of `messages` (ascending), day separators included. */
export function renderMessages(list, messages, me, people = false) {
  const fragment = document.createDocumentFragment();
  let prev;
  for (const msg of messages) {
    if (prev === undefined || dayKey(prev.ts) !== dayKey(msg.ts)) fragment.append(daySeparator(msg.ts));
    fragment.append(messageNode(msg, me, continues(prev, msg), people));
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
export function appendMessages(list, messages, me, people = false) {
  let last = list.lastElementChild;
  while (last !== null && !last.classList.contains("msg")) last = last.previousElementSibling;
  let prev = last ? { seq: Number(last.dataset.seq), name: last.dataset.name, ts: Number(last.dataset.ts), guest: last.dataset.guest === "1" } : undefined;
  if (prev !== undefined && messages[0].seq <= prev.seq) return false;
  for (const msg of messages) {
    if (prev === undefined || dayKey(prev.ts) !== dayKey(msg.ts)) list.append(daySeparator(msg.ts));
    list.append(messageNode(msg, me, continues(prev, msg), people));
    prev = msg;
  }
  return true;
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
  const count = unread.get(id) ?? 0;
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
